"""AC-GAN through the binaries: labels by name in t2i-sample and in the exported signature."""
import json

import numpy as np
import pytest

from conftest import run_binary, run_python


@pytest.mark.slow
def test_acgan_trains_samples_by_label_name_and_serves_labels(tmp_path):
    run_dir, export_dir = tmp_path / "run", tmp_path / "exports"
    out = run_binary("t2i.bin.train", "--model=acgan", "--image_size=32", "--batch_size=8", "--steps=2",
                     "--num_examples=16", "--gf_dim=8", "--df_dim=8", "--condition_dim=8", f"--log_dir={run_dir}")
    assert out.returncode == 0, out.stderr[-2000:]

    grid = tmp_path / "grid.png"
    out = run_binary("t2i.bin.sample", f"--log_dir={run_dir}", f"--output={grid}", "--num_samples=4",
                     "--labels=red circle,blue square", "--labels=7")
    assert out.returncode == 0, out.stderr[-2000:]
    assert grid.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = run_binary("t2i.bin.sample", f"--log_dir={run_dir}", f"--output={grid}", "--labels=pink cube")
    assert out.returncode == 1 and "unknown label 'pink cube'" in out.stderr.strip().splitlines()[-1]

    out = run_binary("t2i.bin.export", f"--log_dir={run_dir}", f"--export_dir={export_dir}", "--name=acgan",
                     "--print_request")
    assert out.returncode == 0, out.stderr[-2000:]
    request = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(request["inputs"]) == {"noise", "labels"}
    assert np.asarray(request["inputs"]["labels"]).shape == (1, 24)

    out = run_binary("t2i.bin.sample", f"--saved_model={export_dir / 'acgan' / '1'}", f"--output={grid}",
                     "--num_samples=4", "--labels=green triangle")
    assert out.returncode == 0, out.stderr[-2000:]

    # A fresh interpreter without t2i feeds multi-hot labels to the served signature.
    code = f"""
import numpy as np, tensorflow as tf
serve = tf.saved_model.load({str(export_dir / 'acgan' / '1')!r}).signatures["serving_default"]
labels = np.zeros([2, 24], np.float32); labels[0, [0, 9]] = 1; labels[1, 23] = 1
out = serve(noise=tf.random.normal([2, 100]), labels=tf.constant(labels))
print(sorted(serve.structured_input_signature[1]), out["images"].dtype.name, tuple(out["images"].shape))
"""
    out = run_python(code)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("['labels', 'noise'] uint8 (2, 32, 32, 3)")
