"""kill -9 at any moment of a run never leaves a state that breaks resume."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import REPO, run_binary


@pytest.mark.slow
def test_kill_9_at_any_moment_never_breaks_resume(tmp_path):
    """SIGKILL a run that checkpoints every step at a few moments; every time the next run resumes cleanly."""
    run_dir = tmp_path / "run"
    args = ["-m", "t2i.bin.train", "--image_size=32", "--batch_size=4", "--steps=400", "--num_examples=16",
            "--gf_dim=8", "--df_dim=8", "--max_filters=32", "--checkpoint_every=1", "--sample_every=3",
            "--log_every=1", "--keep_checkpoints=2", f"--log_dir={run_dir}"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO)
    rng = np.random.default_rng(0)
    for attempt in range(3):
        proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=env)
        try:
            deadline = time.time() + 120
            while time.time() < deadline and proc.poll() is None:
                state = run_dir / "checkpoints" / "checkpoint"
                if state.exists() and "ckpt-" in state.read_text():
                    break
                time.sleep(0.05)
            time.sleep(float(rng.uniform(0.0, 1.5)))  # somewhere inside a step, a save or a sample write
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        assert (run_dir / "checkpoints" / "checkpoint").exists(), f"no checkpoint before kill {attempt}"

    import tensorflow as tf

    latest = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
    saved_step = int(latest.rsplit("-", 1)[1])
    final = [a if not a.startswith("--steps=") else f"--steps={saved_step + 2}" for a in args[2:]]
    out = run_binary("t2i.bin.train", *final)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"at step {saved_step}." in out.stdout
    assert (run_dir / "checkpoints" / f"ckpt-{saved_step + 2}.index").exists()
