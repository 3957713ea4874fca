"""Tests for t2i.text.hub_encoder against tiny sentence-encoder SavedModels built here (5 words, dim 4)."""
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from t2i.text import encoders, hub_encoder

WORDS = ["a", "small", "red", "bird"]  # ids 0..3; every other word is id 4 (the one out-of-vocabulary bucket)
TABLE = (np.arange(5 * 4, dtype=np.float32).reshape(5, 4) * 0.25 - 2.0) ** 2
SENTENCES = ["a red bird", "small bird", "a blue bird flies"]


def _numpy_mean(sentence):
    ids = [WORDS.index(word) if word in WORDS else len(WORDS) for word in sentence.split()]
    return TABLE[ids].mean(axis=0) if ids else np.zeros(4, np.float32)


EXPECTED = np.stack([_numpy_mean(s) for s in SENTENCES])


class _BagOfWords(tf.Module):
    """Mean of word vectors: a vocabulary table and an embedding variable, like a real hub text module."""

    def __init__(self):
        super().__init__()
        self.words = tf.lookup.StaticVocabularyTable(
            tf.lookup.KeyValueTensorInitializer(WORDS, tf.range(len(WORDS), dtype=tf.int64)), num_oov_buckets=1
        )
        self.table = tf.Variable(TABLE)

    def embed(self, sentences):
        words = tf.strings.split(sentences)
        vectors = tf.gather(self.table, self.words.lookup(words))
        counts = tf.cast(words.row_lengths(), tf.float32)[:, None]
        return tf.math.divide_no_nan(tf.reduce_sum(vectors, axis=1), counts)


class _CallableModule(_BagOfWords):
    """TF2 style (Universal Sentence Encoder): `module(strings)` returns the vectors."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, sentences):
        return self.embed(sentences)


@pytest.fixture(scope="module")
def module_path(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("hub") / "bag_of_words")
    tf.saved_model.save(_CallableModule(), path)
    return path


@pytest.fixture(scope="module")
def signature_module_path(tmp_path_factory):
    """TF1-Hub style: no __call__, a "default" signature returning a dict of outputs."""
    module = _BagOfWords()
    signature = tf.function(
        lambda text: {"default": module.embed(text), "doubled": 2.0 * module.embed(text)},
        input_signature=[tf.TensorSpec([None], tf.string, name="text")],
    )
    path = str(tmp_path_factory.mktemp("hub") / "signature_only")
    tf.saved_model.save(module, path, signatures={"default": signature})
    return path


def test_callable_module_gives_the_mean_of_word_vectors(module_path):
    encoder = hub_encoder.load(module_path)

    vectors = encoder(tf.constant(SENTENCES))

    assert encoder.kind == "hub" and encoder.dim == 4
    assert vectors.dtype == tf.float32 and vectors.shape == (3, 4)
    np.testing.assert_allclose(vectors.numpy(), EXPECTED, rtol=1e-6)
    assert not encoder.trainable


def test_registry_and_batched_encode(module_path):
    encoder = encoders.load_encoder("hub", module_path)

    assert isinstance(encoder, hub_encoder.HubSentenceEncoder)
    np.testing.assert_allclose(encoders.encode(encoder, SENTENCES + [""], batch_size=2),
                               np.concatenate([EXPECTED, np.zeros((1, 4))]), rtol=1e-6)


def test_signature_module_and_output_key(signature_module_path):
    default = hub_encoder.load(signature_module_path)
    doubled = hub_encoder.load(signature_module_path, output_key="doubled")

    np.testing.assert_allclose(default(tf.constant(SENTENCES)).numpy(), EXPECTED, rtol=1e-6)
    np.testing.assert_allclose(doubled(tf.constant(SENTENCES)).numpy(), 2 * EXPECTED, rtol=1e-6)
    with pytest.raises(hub_encoder.HubEncoderError, match=r"no output 'pooled'.*\['default', 'doubled'\]"):
        hub_encoder.load(signature_module_path, output_key="pooled")


def test_missing_or_remote_path_is_refused(tmp_path):
    missing = str(tmp_path / "use_v4")
    with pytest.raises(FileNotFoundError, match=rf"^{missing}: .*--encoder_path.*Received: encoder_path='{missing}'"):
        hub_encoder.load(missing)
    with pytest.raises(FileNotFoundError, match="--encoder_path"):
        encoders.load_encoder("hub", missing)
    # A tfhub.dev handle would make hub.load download; it is refused like any other non-folder.
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        hub_encoder.load("https://tfhub.dev/google/universal-sentence-encoder/4")
    with pytest.raises(hub_encoder.HubEncoderError, match="no saved_model.pb"):
        hub_encoder.load(str(tmp_path))


@pytest.mark.parametrize("fixture, output_key, scale", [
    ("module_path", None, 1.0), ("signature_module_path", "doubled", 2.0),
])
def test_saved_model_round_trip_carries_the_module(request, tmp_path, fixture, output_key, scale):
    # A copy, deleted before reloading: the outer SavedModel must hold the module's table and variable itself.
    copy = str(tmp_path / "module_copy")
    shutil.copytree(request.getfixturevalue(fixture), copy)
    outer = tf.Module()
    outer.encoder = hub_encoder.load(copy, output_key=output_key)
    outer.encode = tf.function(lambda text: outer.encoder(text), input_signature=[tf.TensorSpec([None], tf.string)])
    np.testing.assert_allclose(outer.encode(tf.constant(SENTENCES)).numpy(), scale * EXPECTED, rtol=1e-6)
    export = str(tmp_path / "export")
    tf.saved_model.save(outer, export)
    shutil.rmtree(copy)

    restored = tf.saved_model.load(export)

    np.testing.assert_allclose(restored.encode(tf.constant(SENTENCES)).numpy(), scale * EXPECTED, rtol=1e-6)


def test_keras_model_round_trip(module_path, tmp_path):
    text = keras.Input(shape=(), dtype="string", name="text")
    encoder = hub_encoder.HubSentenceEncoder(module_path)
    model = keras.Model(text, keras.layers.Dense(2, name="head")(encoder(text)))
    expected = model(tf.constant(SENTENCES)).numpy()
    head = model.get_layer("head")
    np.testing.assert_allclose(expected, EXPECTED @ head.kernel.numpy() + head.bias.numpy(), rtol=1e-5, atol=1e-6)
    path = str(tmp_path / "model.keras")
    model.save(path)

    restored = keras.saving.load_model(path)

    assert encoder.get_config()["module_path"] == module_path and encoder.get_config()["output_key"] is None
    np.testing.assert_allclose(restored(tf.constant(SENTENCES)).numpy(), expected, rtol=1e-6)
