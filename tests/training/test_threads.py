"""--intra_op_threads / --inter_op_threads: applied before the first op by `run.train`, refused politely after it."""
import json
import os

from conftest import run_python

_FRESH = r"""
import json, sys
from absl import logging
import tensorflow as tf
from conftest import tiny_config
from t2i.training import distribute, run

warnings = []
logging.warning = lambda message, *args: warnings.append(message % args)
result = run.train(tiny_config(sys.argv[1], steps=1, intra_op_threads=1, inter_op_threads=3), verbose=False)
sizes = [tf.config.threading.get_intra_op_parallelism_threads(),
         tf.config.threading.get_inter_op_parallelism_threads()]
late = distribute.configure_threads(2, 0)
same = distribute.configure_threads(1, 3)
print(json.dumps(dict(step=result.step, sizes=sizes, late=late, same=same, warnings=warnings,
                      after=[tf.config.threading.get_intra_op_parallelism_threads(),
                             tf.config.threading.get_inter_op_parallelism_threads()])))
"""


def test_train_sizes_the_thread_pools_before_any_op_and_a_later_change_only_warns(tmp_path):
    tests_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = run_python("import sys; sys.path.insert(0, %r); sys.argv[1:] = [%r]\n" % (tests_dir, str(tmp_path / "run"))
                     + _FRESH)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["step"] == 1
    assert got["sizes"] == [1, 3]          # applied: train() ran no op before sizing the pools
    assert got["late"] is False and got["same"] is True
    assert got["after"] == [1, 3]          # the late request changed nothing ...
    late_warnings = [w for w in got["warnings"] if "not applied" in w]
    assert len(late_warnings) == 1 and late_warnings[0].startswith("--intra_op_threads=2 not applied")  # ... said so


def test_one_thread_per_op_on_a_many_core_machine_says_how_to_use_them_all(monkeypatch):
    from t2i.training import distribute

    warnings = []
    monkeypatch.setattr(distribute.logging, "warning", lambda message, *args: warnings.append(message % args))
    monkeypatch.setattr(distribute.os, "cpu_count", lambda: 16)
    distribute.configure_threads(1, 0)
    assert any("each op uses 1 of this machine's 16 cores" in w and "--intra_op_threads=0" in w for w in warnings)
    warnings.clear()
    monkeypatch.setattr(distribute.os, "cpu_count", lambda: 2)
    distribute.configure_threads(1, 0)
    assert not any("cores" in w for w in warnings)  # 2 cores: the preset's setting is the right one
