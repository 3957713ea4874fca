"""End to end: captions of a CUB-layout tree → each encoder kind → HDF5 → a text-to-image training loop."""
import os

import h5py
import numpy as np
import pytest
import tensorflow as tf

from conftest import run_binary, tiny_config
from t2i.data import captions, embeddings
from t2i.text import encoders, seq2seq, vocabulary
from t2i.training import factory, run
from test_hub_encoder import _CallableModule
from test_skip_thought import write_model as write_skip_thought

CLASSES = ("001.Black_footed_Albatross", "002.Laysan_Albatross")
COLOURS = ((200, 30, 30), (30, 30, 200))


@pytest.fixture(scope="module")
def cub_tree(tmp_path_factory):
    """CUB-200-2011 layout: 2 classes x 3 images (train, train, test), bounding boxes, Reed's text_c10."""
    root = tmp_path_factory.mktemp("cub") / "CUB_200_2011"
    rows = []
    for c, (class_dir, colour) in enumerate(zip(CLASSES, COLOURS)):
        for k in range(3):
            rows.append((len(rows) + 1, f"{class_dir}/{class_dir.split('.')[1]}_{k:04d}.png", c + 1, int(k < 2)))
    for image_id, rel, _, _ in rows:
        colour = COLOURS[CLASSES.index(rel.split("/")[0])]
        os.makedirs(root / "images" / os.path.dirname(rel), exist_ok=True)
        pixels = np.broadcast_to(np.asarray(colour, np.uint8), (40, 48, 3))
        (root / "images" / rel).write_bytes(tf.io.encode_png(pixels).numpy())
        text = root / "text_c10" / (os.path.splitext(rel)[0] + ".txt")
        os.makedirs(text.parent, exist_ok=True)
        bird = "red" if colour[0] > 100 else "blue"
        text.write_text("".join(f"this {bird} bird number {image_id} has wings, view {j}.\n" for j in range(10)))

    def index(name, values):
        (root / name).write_text("".join(" ".join(str(v) for v in row) + "\n" for row in values))

    index("images.txt", [(i, rel) for i, rel, _, _ in rows])
    index("image_class_labels.txt", [(i, c) for i, _, c, _ in rows])
    index("train_test_split.txt", [(i, t) for i, _, _, t in rows])
    index("bounding_boxes.txt", [(i, 2.0, 3.0, 30.0, 28.0) for i, _, _, _ in rows])
    return str(root)


@pytest.fixture(scope="module")
def encoder_paths(tmp_path_factory, cub_tree):
    root = tmp_path_factory.mktemp("encoders")
    corpus = captions.cub_corpus(cub_tree, split="all")
    vocab = vocabulary.Vocabulary.build(c for record in corpus for c in record.captions)
    model = seq2seq.Seq2SeqAutoencoder(len(vocab), embedding_dim=6, units=5)
    model(np.zeros((1, 4), np.int32))
    paths = {"seq2seq": seq2seq.save_encoder_dir(model, vocab, {"max_length": 16}, str(root / "seq2seq"))}
    paths["skip_thought"] = write_skip_thought(str(root / "skip_thought"))
    paths["hub"] = str(root / "hub")
    tf.saved_model.save(_CallableModule(), paths["hub"])
    return paths


@pytest.mark.parametrize("kind", ["seq2seq", "skip_thought", "hub"])
def test_each_encoder_kind_embeds_the_cub_captions_into_hdf5(tmp_path, cub_tree, encoder_paths, kind):
    output = str(tmp_path / f"cub_{kind}.h5")
    embeddings.embed_corpus(output, "cub", kind, encoder_paths[kind], data_dir=cub_tree, split="train",
                            batch_size=3, progress=False)
    corpus = captions.cub_corpus(cub_tree, split="train")
    encoder = encoders.load_encoder(kind, encoder_paths[kind])
    with h5py.File(output, "r") as f:
        assert f["embeddings"].shape == (4, 10, encoder.dim)
        assert f.attrs["encoder"] == kind and int(f.attrs["dim"]) == encoder.dim
        assert [s.decode() for s in f["filenames"][...]] == [r.filename for r in corpus]
        np.testing.assert_array_equal(f["class_ids"][...], [0, 0, 1, 1])
        # Row 2, caption 7 is what the encoder makes of that sentence.
        expected = encoders.encode(encoder, [corpus[2].captions[7]])[0]
        np.testing.assert_allclose(f["embeddings"][2, 7], expected, rtol=1e-5, atol=1e-6)


def test_data_prep_binary_embeds_shapes_with_a_trained_seq2seq(tmp_path):
    encoder_dir, output = str(tmp_path / "encoder"), str(tmp_path / "shapes.h5")
    trained = run_binary("data_prep.train_seq2seq", "--dataset=shapes", "--num_examples=20", "--steps=3",
                         f"--output_dir={encoder_dir}", "--embedding_dim=8", "--units=8", "--batch_size=8")
    assert trained.returncode == 0, trained.stderr[-2000:]
    embedded = run_binary("data_prep.embed_captions", "--dataset=shapes", "--num_examples=20", "--encoder=seq2seq",
                          f"--encoder_path={encoder_dir}", f"--output={output}", "--noprogress")
    assert embedded.returncode == 0, embedded.stderr[-2000:]
    with embeddings.read_embeddings(output, expected_dim=16) as handle:
        assert handle.embeddings.shape == (20, 10, 16)
    again = run_binary("data_prep.embed_captions", "--dataset=shapes", "--num_examples=20", "--encoder=seq2seq",
                       f"--encoder_path={encoder_dir}", f"--output={output}")
    assert again.returncode == 1 and "--overwrite" in again.stderr


def test_the_reader_feeds_cub_embeddings_to_a_stackgan_training_loop(tmp_path, cub_tree, encoder_paths):
    output = str(tmp_path / "cub.h5")
    embeddings.embed_corpus(output, "cub", "hub", encoder_paths["hub"], data_dir=cub_tree, split="train",
                            progress=False)
    config = tiny_config(tmp_path / "run", model="stackgan_stage1", dataset="cub", data_dir=cub_tree,
                         embeddings=output, image_size=16, batch_size=2, steps=2, gf_dim=8, df_dim=8, ca_dim=4,
                         num_samples=4, embedding_sampling="mean", num_mean=4, loss="non_saturating")
    result = run.train(config, verbose=False)
    assert result.step == 2 and os.path.isfile(result.samples)
    saved = factory.resolve_text(config)
    assert saved.embedding_dim == 4 and saved.text_encoder == "hub"
