"""t2i-train → resume → t2i-sample → t2i-export → serve, each in a fresh process."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import run_binary, run_python


@pytest.mark.slow
def test_train_resume_sample_export_and_serve_in_fresh_processes(tmp_path):
    run_dir, export_dir = tmp_path / "run", tmp_path / "exports"
    train_args = ["--model=dcgan", "--dataset=shapes", "--image_size=32", "--batch_size=8", "--steps=4",
                  f"--log_dir={run_dir}", "--num_examples=64", "--gf_dim=16", "--df_dim=16"]
    out = run_binary("t2i.bin.train", *train_args)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (run_dir / "checkpoints" / "ckpt-4.index").exists()
    assert (run_dir / "samples.png").exists() and (run_dir / "loss_curves.png").exists()

    out = run_binary("t2i.bin.train", *train_args[:4], "--steps=6", *train_args[5:])
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Resumed from" in out.stdout and "at step 4" in out.stdout
    assert (run_dir / "checkpoints" / "ckpt-6.index").exists()

    grid_path = tmp_path / "grid.png"
    out = run_binary("t2i.bin.sample", f"--log_dir={run_dir}", f"--output={grid_path}", "--num_samples=9")
    assert out.returncode == 0, out.stderr[-2000:]
    assert grid_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    for version in (1, 2):
        out = run_binary("t2i.bin.export", f"--log_dir={run_dir}", f"--export_dir={export_dir}", "--name=shapes",
                         "--print_request")
        assert out.returncode == 0, out.stderr[-2000:]
        assert (export_dir / "shapes" / str(version) / "saved_model.pb").exists()
    request = json.loads(out.stdout.strip().splitlines()[-1])
    assert np.asarray(request["inputs"]["noise"]).shape == (1, 100)

    out = run_binary("t2i.bin.export", f"--log_dir={run_dir}", f"--export_dir={export_dir}", "--name=shapes",
                     "--print_request", "--request_signature=seeded")
    assert out.returncode == 0, out.stderr[-2000:]
    request = json.loads(out.stdout.strip().splitlines()[-1])
    assert request == {"signature_name": "seeded", "inputs": {"seed": [0]}}

    # The README's saved_model_cli commands: both signatures listed, and `run` on the seeded one.
    saved_model_cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    version_dir = str(export_dir / "shapes" / "1")
    cli = subprocess.run([saved_model_cli, "show", "--dir", version_dir, "--all"], capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr[-2000:]
    for expected in ("signature_def['serving_default']", "signature_def['seeded']", "inputs['noise']",
                     "inputs['seed']", "dtype: DT_INT64", "outputs['images']", "dtype: DT_UINT8",
                     "outputs['images_float']", "shape: (-1, 32, 32, 3)"):
        assert expected in cli.stdout, expected
    cli = subprocess.run([saved_model_cli, "run", "--dir", version_dir, "--tag_set", "serve", "--signature_def",
                          "seeded", "--input_exprs", "seed=[3,5]", "--outdir", str(tmp_path / "cli")],
                         capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr[-2000:]
    from_cli = np.load(tmp_path / "cli" / "images.npy")
    assert from_cli.dtype == np.uint8 and from_cli.shape == (2, 32, 32, 3)

    # A fresh interpreter that never imports t2i loads and calls the export: serving_default with noise, and seeded
    # (reproducible, one seed names one image whatever the batch, equal to saved_model_cli's output).
    code = f"""
import numpy as np, tensorflow as tf
loaded = tf.saved_model.load({str(export_dir / 'shapes' / '2')!r})
out = loaded.signatures["serving_default"](noise=tf.random.normal([3, 100]))
print(out["images"].dtype.name, tuple(out["images"].shape), out["images_float"].dtype.name,
      float(tf.reduce_min(out["images_float"])) >= -1.0, float(tf.reduce_max(out["images_float"])) <= 1.0)
seeded = loaded.signatures["seeded"]
pair = seeded(seed=tf.constant([3, 5], tf.int64))["images"].numpy()
np.save({str(tmp_path / "python.npy")!r}, pair)
print("same", np.array_equal(pair, seeded(seed=tf.constant([3, 5], tf.int64))["images"].numpy()),
      np.array_equal(pair[1], seeded(seed=tf.constant([5], tf.int64))["images"].numpy()[0]),
      not np.array_equal(pair[0], pair[1]))
"""
    out = run_python(code)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert lines[-2].endswith("uint8 (3, 32, 32, 3) float32 True True") and lines[-1] == "same True True True"
    np.testing.assert_array_equal(np.load(tmp_path / "python.npy"), from_cli)  # versions 1 and 2: same weights
