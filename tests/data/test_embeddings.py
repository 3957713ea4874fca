"""t2i.data.embeddings: HDF5 round trip, resume, refusals, reader errors, the tf.data join, importers, the binary.

The corpus is shapes with 13 images (batches of 4 leave a remainder of 1), 10 captions each; the encoder is a test-local
hashing bag of words with 6 dimensions, deterministic and different for different sentences.
"""
import itertools
import os
import pickle

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import run_binary
from t2i.data import captions, embeddings, shapes
from t2i.data.embeddings import EmbeddingDimError, EmbeddingFileError

NUM_IMAGES, CAPTIONS, DIM, BATCH = 13, 10, 6, 4


class HashingEncoder(keras.layers.Layer):
    """Sum over words of sin(hash(word) * frequencies): a fixed vector per sentence. Counts calls and their sizes."""

    def __init__(self, dim=DIM, **kwargs):
        super().__init__(**kwargs)
        self.dim = dim
        self.kind = "hashing"
        self.call_sizes = []

    def call(self, texts):
        self.call_sizes.append(int(tf.shape(texts)[0]))
        words = tf.strings.split(texts)
        buckets = tf.cast(tf.strings.to_hash_bucket_fast(words, 100003), tf.float32)
        frequencies = tf.range(1, self.dim + 1, dtype=tf.float32) * 0.01
        features = tf.ragged.map_flat_values(lambda b: tf.sin(b[:, None] * frequencies), buckets)
        return tf.reduce_sum(features, axis=1)

    def vectors(self, sentences):
        return self.call(tf.constant(list(sentences))).numpy()


class FlakyEncoder(HashingEncoder):
    """Fails on call number `fail_on` (1-based), like a run killed mid-way."""

    def __init__(self, fail_on, **kwargs):
        super().__init__(**kwargs)
        self.fail_on = fail_on

    def call(self, texts):
        if len(self.call_sizes) + 1 == self.fail_on:
            self.call_sizes.append(-1)
            raise RuntimeError("encoder crashed")
        return super().call(texts)


@pytest.fixture(autouse=True)
def eager_encoders(monkeypatch):
    """The test encoders count their calls in Python, which `encoders.encode`'s traced function would do only once
    (tests/text/test_seq2seq.py checks that traced path's values)."""
    from t2i.text import encoders

    monkeypatch.setattr(encoders, "graph_call", lambda encoder: encoder)


@pytest.fixture
def corpus():
    return captions.shapes_corpus(num_examples=NUM_IMAGES, seed=3)


@pytest.fixture
def written(tmp_path, corpus):
    path = str(tmp_path / "shapes.h5")
    embeddings.write_embeddings(path, corpus, HashingEncoder(), batch_size=BATCH, progress=False)
    return path


def _contents(path):
    with h5py.File(path, "r") as f:
        return {key: f[key][...] for key in ("embeddings", "filenames", "captions", "class_ids")}, dict(f.attrs)


# ---------------------------------------------------------------------------------------
# Writing and reading


def test_round_trip_stores_each_caption_vector_with_its_metadata(written, corpus):
    encoder = HashingEncoder()
    with embeddings.read_embeddings(written, expected_dim=DIM) as handle:
        assert len(handle) == NUM_IMAGES and handle.dim == DIM and handle.captions_per_image == CAPTIONS
        assert handle.filenames == [f"train_{i:06d}" for i in range(NUM_IMAGES)]
        np.testing.assert_array_equal(handle.class_ids, np.full(NUM_IMAGES, -1, np.int32))
        for i in (0, 5, 12):
            expected_captions = shapes.example_captions(i, seed=3)
            assert list(handle.captions[i]) == expected_captions
            np.testing.assert_allclose(handle.embeddings[i], encoder.vectors(expected_captions), rtol=1e-6)
        attrs = handle.attrs
    assert attrs["encoder"] == "hashing" and attrs["dim"] == DIM and attrs["format_version"] == 1
    assert attrs["dataset"] == "shapes" and attrs["split"] == "train" and attrs["num_examples"] == NUM_IMAGES
    assert attrs["captions_per_image"] == CAPTIONS and attrs["complete"] is True and attrs["num_written"] == NUM_IMAGES
    assert '"seed": 3' in attrs["corpus_options"]
    # Different captions, different vectors: the checks below that pick rows by value are meaningful.
    with h5py.File(written, "r") as f:
        flat = f["embeddings"][...].reshape(-1, DIM)
    assert len(np.unique(flat.round(4), axis=0)) == NUM_IMAGES * CAPTIONS


def test_datasets_are_chunked_by_rows_and_compressed(written):
    with h5py.File(written, "r") as f:
        assert f["embeddings"].dtype == np.float32
        assert f["embeddings"].chunks == (NUM_IMAGES, CAPTIONS, DIM)
        assert f["embeddings"].compression == "gzip" and f["embeddings"].shuffle
        assert f["class_ids"].dtype == np.int32
        assert h5py.check_string_dtype(f["filenames"].dtype).encoding == "utf-8"
    # Large rows: 1 MiB chunks of whole rows (skip-thought's 4800 floats x 10 captions is 192 KB a row).
    assert embeddings._chunk_rows(8855, 10, 4800) == 5
    assert embeddings._chunk_rows(8855, 10, 1024) == 25
    assert embeddings._chunk_rows(3, 10, 1024) == 3


def test_encoder_sees_one_batch_of_captions_at_a_time(tmp_path, corpus):
    encoder = HashingEncoder()
    embeddings.write_embeddings(str(tmp_path / "e.h5"), corpus, encoder, batch_size=BATCH, progress=False)
    assert encoder.call_sizes == [BATCH * CAPTIONS] * 3 + [1 * CAPTIONS]


def test_interrupted_write_resumes_without_re_encoding_and_equals_a_clean_write(tmp_path, corpus, written):
    path = str(tmp_path / "resumed.h5")
    with pytest.raises(RuntimeError, match="encoder crashed"):
        embeddings.write_embeddings(path, corpus, FlakyEncoder(fail_on=3), batch_size=BATCH, progress=False)
    assert not os.path.exists(path)
    partial = embeddings.partial_path(path)
    with h5py.File(partial, "r") as f:
        assert f.attrs["num_written"] == 2 * BATCH and not f.attrs["complete"]
    with pytest.raises(FileNotFoundError, match="unfinished write; resume"):
        embeddings.read_embeddings(path)
    with pytest.raises(EmbeddingFileError, match="unfinished write \\(8 of 13 rows\\)"):
        embeddings.read_embeddings(partial)

    encoder = HashingEncoder()
    embeddings.write_embeddings(path, corpus, encoder, batch_size=BATCH, progress=False)
    # Only images 8..12 were encoded: one batch of 4 and the remainder of 1.
    assert encoder.call_sizes == [BATCH * CAPTIONS, CAPTIONS]
    assert not os.path.exists(partial)
    resumed, resumed_attrs = _contents(path)
    clean, clean_attrs = _contents(written)
    for key in clean:
        np.testing.assert_array_equal(resumed[key], clean[key])
    assert resumed_attrs == clean_attrs


def test_resume_refuses_an_unfinished_write_of_another_corpus(tmp_path):
    path = str(tmp_path / "e.h5")
    with pytest.raises(RuntimeError):
        embeddings.write_embeddings(path, captions.shapes_corpus(NUM_IMAGES, seed=3), FlakyEncoder(fail_on=2),
                                    batch_size=BATCH, progress=False)
    # Same filenames, other captions: the seed is recorded and compared.
    other_seed = captions.shapes_corpus(NUM_IMAGES, seed=4)
    with pytest.raises(EmbeddingFileError, match="corpus_options") as error:
        embeddings.write_embeddings(path, other_seed, HashingEncoder(), batch_size=BATCH, progress=False)
    assert "--noresume" in str(error.value) and str(tmp_path) in str(error.value)
    with pytest.raises(EmbeddingDimError, match="dim 6 but the encoder gives 8"):
        embeddings.write_embeddings(path, captions.shapes_corpus(NUM_IMAGES, seed=3), HashingEncoder(dim=8),
                                    batch_size=BATCH, progress=False)
    # resume=False starts over.
    encoder = HashingEncoder()
    embeddings.write_embeddings(path, other_seed, encoder, batch_size=BATCH, resume=False, progress=False)
    assert sum(encoder.call_sizes) == NUM_IMAGES * CAPTIONS
    with embeddings.read_embeddings(path) as handle:
        assert list(handle.captions[0]) == shapes.example_captions(0, seed=4)


def test_resume_checks_the_rows_already_written(tmp_path, corpus):
    path = str(tmp_path / "e.h5")
    with pytest.raises(RuntimeError):
        embeddings.write_embeddings(path, corpus, FlakyEncoder(fail_on=2), batch_size=BATCH, progress=False)
    with h5py.File(embeddings.partial_path(path), "r+") as f:
        f["captions"][2, 0] = "an edited caption."
    with pytest.raises(EmbeddingFileError, match="row 2 holds 'train_000002'"):
        embeddings.write_embeddings(path, corpus, HashingEncoder(), batch_size=BATCH, progress=False)


def test_existing_file_needs_overwrite_and_overwrite_replaces_it(tmp_path, written):
    with pytest.raises(EmbeddingFileError) as error:
        embeddings.write_embeddings(written, captions.shapes_corpus(5, seed=3), HashingEncoder(), progress=False)
    assert written in str(error.value) and "--overwrite" in str(error.value)
    assert "\n" not in str(error.value)
    embeddings.write_embeddings(written, captions.shapes_corpus(5, seed=3), HashingEncoder(dim=8), overwrite=True,
                                progress=False)
    with embeddings.read_embeddings(written) as handle:
        assert (len(handle), handle.dim) == (5, 8)
    assert not os.path.exists(embeddings.partial_path(written))


def test_overwrite_keeps_the_old_file_until_the_new_one_is_complete(written):
    with pytest.raises(RuntimeError):
        embeddings.write_embeddings(written, captions.shapes_corpus(NUM_IMAGES, seed=5), FlakyEncoder(fail_on=2),
                                    batch_size=BATCH, overwrite=True, progress=False)
    with embeddings.read_embeddings(written) as handle:
        assert list(handle.captions[0]) == shapes.example_captions(0, seed=3)


def test_read_errors_name_the_file_and_the_problem(tmp_path, written):
    missing = str(tmp_path / "missing.h5")
    with pytest.raises(FileNotFoundError, match="missing.h5: no such embedding file"):
        embeddings.read_embeddings(missing)

    other = str(tmp_path / "other.h5")
    with h5py.File(other, "w") as f:
        f["filenames"] = np.asarray([b"a"])
    with pytest.raises(EmbeddingFileError, match="other.h5: not a t2i embedding file: no '/embeddings' dataset"):
        embeddings.read_embeddings(other)

    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    with pytest.raises(EmbeddingFileError, match="notes.h5: not a readable HDF5 file"):
        embeddings.read_embeddings(str(text))

    with pytest.raises(EmbeddingDimError) as error:
        embeddings.read_embeddings(written, expected_dim=16)
    assert str(error.value) == (
        f"{written}: embeddings have dim 6 but the model expects 16 (--embedding_dim / the model's text input). "
        "Received: expected_dim=16")


# ---------------------------------------------------------------------------------------
# tf.data


def _rows(path):
    with h5py.File(path, "r") as f:
        return f["embeddings"][...], f["captions"].asstr()[...]


# Both ways to reach the rows: read into memory once (small files) or read per element from the open file.
IN_MEMORY = pytest.mark.parametrize("in_memory_bytes", [256 << 20, 0], ids=["in-memory", "row-by-row"])


@IN_MEMORY
def test_pipeline_joins_each_image_with_its_own_embeddings(written, corpus, in_memory_bytes):
    stored, texts = _rows(written)
    dataset = embeddings.embedding_pipeline(written, corpus, image_size=32, seed=1, expected_dim=DIM,
                                            in_memory_bytes=in_memory_bytes)
    assert dataset.element_spec["embedding"] == tf.TensorSpec([DIM], tf.float32)
    elements = list(dataset.as_numpy_iterator())
    assert [e["filename"].decode() for e in elements] == [f"train_{i:06d}" for i in range(NUM_IMAGES)]
    for i, element in enumerate(elements):
        expected_image = shapes.render_example(i, seed=3, image_size=32)["image"] / 127.5 - 1.0
        np.testing.assert_allclose(element["image"], expected_image, atol=1e-6)
        k = list(texts[i]).index(element["caption"].decode())
        np.testing.assert_array_equal(element["embedding"], stored[i, k])
        assert element["index"] == i and element["class_id"] == -1


def _captions_per_epoch(dataset, epochs):
    iterator = iter(dataset.repeat(epochs))
    return [[next(iterator)["caption"].numpy().decode() for _ in range(NUM_IMAGES)] for _ in range(epochs)]


def test_one_caption_sampling_varies_by_epoch_and_is_reproducible(written, corpus):
    def run(seed):
        return _captions_per_epoch(embeddings.embedding_table_dataset(written, seed=seed), epochs=3)

    first = run(seed=7)
    assert first[0] != first[1] != first[2]
    assert run(seed=7) == first
    assert run(seed=8) != first
    # Every pick is one of that image's own captions, and over 3 epochs more than one is picked.
    for epoch in first:
        for i, caption in enumerate(epoch):
            assert caption in shapes.example_captions(i, seed=3)
    assert len({epoch[0] for epoch in first} | {epoch[1] for epoch in first}) > 2


def test_mean_sampling_averages_num_mean_distinct_captions(written, corpus):
    stored, texts = _rows(written)
    dataset = embeddings.embedding_pipeline(written, corpus, image_size=32, sampling="mean", num_mean=3, seed=2)
    for i, element in enumerate(dataset.take(4).as_numpy_iterator()):
        matches = [subset for subset in itertools.combinations(range(CAPTIONS), 3)
                   if np.allclose(element["embedding"], stored[i, list(subset)].mean(axis=0), atol=1e-5)]
        assert len(matches) == 1, matches
        assert element["caption"].decode() in [texts[i, k] for k in matches[0]]


@IN_MEMORY
def test_pipeline_indexes_into_a_larger_file_in_any_order(tmp_path, written, in_memory_bytes):
    # The file holds 13 images; a corpus of the first 5 in reverse order takes its rows by filename.
    full = captions.shapes_corpus(num_examples=NUM_IMAGES, seed=3)
    subset = captions.CaptionCorpus("shapes", [full[i] for i in range(4, -1, -1)], CAPTIONS,
                                    options=dict(full.options))
    stored, _ = _rows(written)
    with embeddings.read_embeddings(written) as handle:
        np.testing.assert_array_equal(handle.rows_of([r.filename for r in subset]), [4, 3, 2, 1, 0])
    elements = list(embeddings.embedding_pipeline(written, subset, image_size=32, sampling="mean", num_mean=10,
                                                  in_memory_bytes=in_memory_bytes).as_numpy_iterator())
    for element, source in zip(elements, [4, 3, 2, 1, 0]):
        assert element["filename"].decode() == f"train_{source:06d}"
        np.testing.assert_allclose(element["embedding"], stored[source].mean(axis=0), atol=1e-5)


def test_pipeline_refuses_missing_images_and_other_captions(written):
    with pytest.raises(EmbeddingFileError, match="no embeddings for 'train_000013'"):
        embeddings.embedding_pipeline(written, captions.shapes_corpus(num_examples=14, seed=3), image_size=32)
    with pytest.raises(EmbeddingFileError, match="caption 0 of 'train_000000' differs"):
        embeddings.embedding_pipeline(written, captions.shapes_corpus(num_examples=NUM_IMAGES, seed=4), image_size=32)
    with pytest.raises(ValueError, match="num_mean=11"):
        embeddings.embedding_pipeline(written, captions.shapes_corpus(NUM_IMAGES, seed=3), sampling="mean",
                                      num_mean=11)


# ---------------------------------------------------------------------------------------
# Importers


def test_import_paarthneekhara_file(tmp_path):
    rng = np.random.default_rng(0)
    vectors = {f"image_{i:05d}.jpg": rng.normal(size=(5, 4)).astype(np.float32) for i in (3, 1, 2)}
    src = str(tmp_path / "flower_tv.hdf5")
    with h5py.File(src, "w") as f:
        for key, value in vectors.items():
            f.create_dataset(key, data=value)
    out = embeddings.import_paarthneekhara(src, str(tmp_path / "out.h5"),
                                           captions={"image_00002": [f"caption {k}" for k in range(10)]})
    with embeddings.read_embeddings(out) as handle:
        assert handle.filenames == ["image_00001", "image_00002", "image_00003"]
        assert (handle.dim, handle.captions_per_image, handle.encoder) == (4, 5, "skip_thought")
        for row, name in enumerate(handle.filenames):
            np.testing.assert_array_equal(handle.embeddings[row], vectors[name + ".jpg"])
        assert list(handle.captions[0]) == [""] * 5
        assert list(handle.captions[1]) == [f"caption {k}" for k in range(5)]
        np.testing.assert_array_equal(handle.class_ids, [-1, -1, -1])

    chosen = embeddings.import_paarthneekhara(src, str(tmp_path / "chosen.h5"), filenames=["image_00003.jpg",
                                                                                           "image_00001"])
    with embeddings.read_embeddings(chosen) as handle:
        assert handle.filenames == ["image_00003", "image_00001"]
        np.testing.assert_array_equal(handle.embeddings[0], vectors["image_00003.jpg"])

    with h5py.File(src, "a") as f:
        f.create_dataset("image_00004.jpg", data=np.zeros((3, 4), np.float32))
    with pytest.raises(EmbeddingFileError, match="'image_00004.jpg' has shape \\(3, 4\\)"):
        embeddings.import_paarthneekhara(src, str(tmp_path / "bad.h5"))
    assert not os.path.exists(tmp_path / "bad.h5")


def test_import_stackgan_pickles(tmp_path):
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(3, 10, 7)).astype(np.float32)
    names = ["002.Laysan_Albatross/Laysan_Albatross_0002_1027", "001.Black_footed_Albatross/B_0046_18",
             "002.Laysan_Albatross/Laysan_Albatross_0003_1033"]
    split_dir = tmp_path / "birds" / "test"
    split_dir.mkdir(parents=True)
    for name, value in (("char-CNN-RNN-embeddings.pickle", list(vectors)), ("filenames.pickle", names),
                        ("class_info.pickle", [2, 1, 2])):
        with open(split_dir / name, "wb") as f:
            pickle.dump(value, f, protocol=2)
    out = embeddings.import_stackgan(str(tmp_path / "birds"), "test", str(tmp_path / "cub_test.h5"))
    with embeddings.read_embeddings(out, expected_dim=7) as handle:
        assert handle.filenames == names and handle.encoder == "char-CNN-RNN"
        np.testing.assert_array_equal(handle.class_ids, [1, 0, 1])
        np.testing.assert_array_equal(handle.embeddings[...], vectors)
        assert handle.attrs["dataset"] == "birds" and handle.attrs["split"] == "test"


# ---------------------------------------------------------------------------------------
# The binary


class _ToyHubModule(tf.Module):
    """Strings → [B, 3]: (character count, word count, 1), a SavedModel hub.load reads."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, texts):
        chars = tf.cast(tf.strings.length(texts), tf.float32)
        words = tf.cast(tf.strings.split(texts).row_lengths(), tf.float32)
        return tf.stack([chars, words, tf.ones_like(chars)], axis=1)


def test_embed_corpus_loads_the_named_encoder_and_records_its_path(tmp_path):
    module_dir = str(tmp_path / "toy_hub")
    tf.saved_model.save(_ToyHubModule(), module_dir)
    output = embeddings.embed_corpus(str(tmp_path / "e.h5"), "shapes", "hub", module_dir, num_examples=2, seed=1,
                                     batch_size=1, progress=False)
    with embeddings.read_embeddings(output) as handle:
        assert handle.attrs["encoder"] == "hub" and handle.attrs["encoder_path"] == module_dir
        sentences = shapes.example_captions(1, seed=1)
        np.testing.assert_array_equal(handle.embeddings[1], [[len(s.encode()), len(s.split()), 1.0] for s in sentences])
    with pytest.raises(ValueError, match="Received: encoder='bert'"):
        embeddings.embed_corpus(str(tmp_path / "f.h5"), "shapes", "bert", module_dir)
    with pytest.raises(ValueError, match="needs --import_path"):
        embeddings.import_embeddings("stackgan", "", str(tmp_path / "g.h5"))


@pytest.mark.slow
def test_binary_embeds_with_a_hub_saved_model_and_reports_errors_in_one_line(tmp_path):
    module_dir = str(tmp_path / "toy_hub")
    tf.saved_model.save(_ToyHubModule(), module_dir)
    output = str(tmp_path / "shapes_hub.h5")
    args = ["--dataset=shapes", "--num_examples=3", "--seed=1", "--encoder=hub", f"--encoder_path={module_dir}",
            f"--output={output}", "--batch_size=2", "--noprogress"]
    out = run_binary("data_prep.embed_captions", *args)
    assert out.returncode == 0, out.stderr
    assert f"Wrote 3 images x 10 captions x 3 (hub) to {output}" in out.stdout
    with embeddings.read_embeddings(output) as handle:
        sentences = shapes.example_captions(2, seed=1)
        expected = [[len(s.encode()), len(s.split()), 1.0] for s in sentences]
        np.testing.assert_array_equal(handle.embeddings[2], expected)

    bad = run_binary("data_prep.embed_captions", "--dataset=shapes", "--encoder=hub",
                     f"--encoder_path={tmp_path / 'nowhere'}", f"--output={tmp_path / 'x.h5'}")
    # TensorFlow's C++ start-up lines may precede it; ours is one line, the last, with no traceback.
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    last = bad.stderr.strip().splitlines()[-1]
    assert last.startswith("embed_captions: error: ") and "nowhere" in last and "--encoder_path" in last


@pytest.mark.slow
def test_binary_import_mode_and_flag_errors(tmp_path):
    src = str(tmp_path / "flower_tv.hdf5")
    with h5py.File(src, "w") as f:
        f.create_dataset("image_00002.jpg", data=np.full((5, 4), 2.0, np.float32))
        f.create_dataset("image_00001.jpg", data=np.full((5, 4), 1.0, np.float32))
    output = str(tmp_path / "imported.h5")
    out = run_binary("data_prep.embed_captions", "--import_format=paarthneekhara", f"--import_path={src}",
                     f"--output={output}")
    assert out.returncode == 0, out.stderr
    assert f"Wrote 2 images x 5 captions x 4 (skip_thought) to {output}" in out.stdout
    with embeddings.read_embeddings(output) as handle:
        assert handle.filenames == ["image_00001", "image_00002"]
        np.testing.assert_array_equal(handle.embeddings[1], np.full((5, 4), 2.0))

    no_encoder = run_binary("data_prep.embed_captions", "--dataset=shapes", f"--output={tmp_path / 'y.h5'}")
    assert no_encoder.returncode == 1
    assert no_encoder.stderr.strip().splitlines()[-1] == ("embed_captions: error: --dataset and --encoder are required (or "
                                         "--import_format). Received: dataset='shapes', encoder=None")
