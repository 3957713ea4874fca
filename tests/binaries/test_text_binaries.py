"""Text to image through the binaries: captions in, a string-input SavedModel out."""
import json

import pytest

from conftest import run_binary, run_python


@pytest.mark.slow
def test_text_to_image_from_captions_to_a_string_input_saved_model(tmp_path):
    encoder_dir, embeddings_path = tmp_path / "encoder", tmp_path / "shapes.h5"
    run_dir, export_dir = tmp_path / "run", tmp_path / "exports"
    for module, *args in (
        ("data_prep.train_seq2seq", "--dataset=shapes", "--num_examples=16", "--steps=2", "--batch_size=8",
         f"--output_dir={encoder_dir}", "--embedding_dim=8", "--units=8"),
        ("data_prep.embed_captions", "--dataset=shapes", "--num_examples=16", "--encoder=seq2seq",
         f"--encoder_path={encoder_dir}", f"--output={embeddings_path}", "--noprogress"),
        ("t2i.bin.train", "--model=stackgan_stage1", "--image_size=32", "--batch_size=4", "--steps=2",
         "--num_examples=16", "--gf_dim=8", "--df_dim=8", "--ca_dim=8", "--num_samples=4",
         f"--embeddings={embeddings_path}", f"--log_dir={run_dir}", f"--export_dir={export_dir}",
         "--export_name=shapes_text"),
    ):
        out = run_binary(module, *args)
        assert out.returncode == 0, (module, out.stderr[-2000:])
    assert len((run_dir / "samples_captions.txt").read_text().splitlines()) == 2  # 4 samples: 2 rows of 2

    grid = tmp_path / "grids" / "grid.png"
    out = run_binary("t2i.bin.sample", f"--log_dir={run_dir}", f"--output={grid}", "--num_samples=4",
                     "--text=a red circle.", "--text=a blue square and a green triangle.")
    assert out.returncode == 0, out.stderr[-2000:]
    assert {p.name for p in grid.parent.iterdir()} == {"grid_00.png", "grid_01.png", "grid_captions.txt"}

    out = run_binary("t2i.bin.export", f"--log_dir={run_dir}", f"--export_dir={export_dir}", "--name=shapes_text",
                     "--print_request")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "to " + str(export_dir / "shapes_text" / "2") in out.stdout
    assert list(json.loads(out.stdout.strip().splitlines()[-1])["inputs"]) == ["text"]

    # A fresh interpreter without t2i: captions in, uint8 images out; the seeded signature is reproducible.
    code = f"""
import numpy as np, tensorflow as tf
loaded = tf.saved_model.load({str(export_dir / 'shapes_text' / '1')!r})
out = loaded.signatures["serving_default"](text=tf.constant(["a red circle.", "two purple squares."]))
seeded = loaded.signatures["seeded"]
a = seeded(text=tf.constant(["a red circle."]), seed=tf.constant(3, tf.int64))["images"].numpy()
b = seeded(text=tf.constant(["a red circle."]), seed=tf.constant(3, tf.int64))["images"].numpy()
c = seeded(text=tf.constant(["a red circle."]), seed=tf.constant(4, tf.int64))["images"].numpy()
print(out["images"].dtype.name, tuple(out["images"].shape), np.array_equal(a, b), np.array_equal(a, c))
"""
    out = run_python(code)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("uint8 (2, 32, 32, 3) True False")
