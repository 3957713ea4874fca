"""Feature networks loaded by path (a tiny Inception-shaped SavedModel, a small Keras InceptionV3) and scored."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from t2i.evaluation import features, metrics

SIZE = 32  # the module's input side; the real Inception takes 299


class TinyInception(tf.Module):
    """Inception-shaped: one image input in [-1, 1], outputs pool_3 [B, 1, 1, 8] and logits [B, 5]."""

    def __init__(self, pool_weights, logit_weights):
        super().__init__()
        self.pool_weights = tf.Variable(pool_weights)
        self.logit_weights = tf.Variable(logit_weights)

    @tf.function(input_signature=[tf.TensorSpec([None, SIZE, SIZE, 3], tf.float32, name="images")])
    def __call__(self, images):
        pool = tf.reshape(images, [tf.shape(images)[0], -1]) @ self.pool_weights
        return {"pool_3": tf.reshape(pool, [-1, 1, 1, 8]), "logits": pool @ self.logit_weights}


@pytest.fixture(scope="module")
def tiny_module(tmp_path_factory):
    rng = np.random.default_rng(0)
    pool_weights = (rng.normal(size=(SIZE * SIZE * 3, 8)) / 30).astype(np.float32)
    logit_weights = rng.normal(size=(8, 5)).astype(np.float32)
    module = TinyInception(pool_weights, logit_weights)
    path = str(tmp_path_factory.mktemp("hub") / "tiny_inception")
    tf.saved_model.save(module, path, signatures={"default": module.__call__})

    def reference(uint8_images):
        """What the module computes on [-1, 1] inputs, in float64 numpy."""
        x = uint8_images.astype(np.float64) / 127.5 - 1.0
        pool = x.reshape(len(x), -1) @ pool_weights.astype(np.float64)
        return pool, pool @ logit_weights.astype(np.float64)

    return path, reference


def _uint8_images(n, size=SIZE, seed=1):
    return np.random.default_rng(seed).integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)


def test_hub_inception_features_equal_the_modules_own_computation(tiny_module):
    path, reference = tiny_module
    extractor = features.HubInception(path)
    assert (extractor.input_size, extractor.feature_dim, extractor.num_logits) == (SIZE, 8, 5)
    assert extractor.name == "hub_inception(tiny_inception)"
    images = _uint8_images(3)
    outputs = extractor(images)
    pool, logits = reference(images)
    assert outputs["pool"].dtype == np.float32 and outputs["pool"].shape == (3, 8)
    np.testing.assert_allclose(outputs["pool"], pool, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(outputs["logits"], logits, rtol=1e-4, atol=1e-4)
    # Float images in [-1, 1] are quantised like a saved PNG first: round((x + 1)·127.5).
    floats = images.astype(np.float32) / 127.5 - 1.0 + np.float32(0.001)
    np.testing.assert_allclose(extractor(floats)["pool"], pool, rtol=1e-4, atol=1e-4)


def test_resize_policy_is_declared_and_applied(tiny_module):
    path, reference = tiny_module
    assert features.HubInception(path).policy == "uint8→bilinear(aa=False)→32"
    extractor = features.HubInception(path, resize="nearest")
    assert extractor.policy == "uint8→nearest(aa=False)→32"
    small = _uint8_images(2, size=16)
    # Nearest-neighbour 2× upsampling repeats every pixel twice along each axis.
    upsampled = np.repeat(np.repeat(small, 2, axis=1), 2, axis=2)
    np.testing.assert_allclose(extractor(small)["pool"], reference(upsampled)[0], rtol=1e-4, atol=1e-4)
    with pytest.raises(features.FeatureNetworkError, match="resize='cubic'"):
        features.HubInception(path, resize="cubic")


def test_prepare_images_by_hand():
    image = np.array([-1.0, 0.0, 1.0], np.float32).reshape(1, 1, 1, 3)
    # round((x + 1)·127.5): 0, 127.5 → 128 (half to even), 255; then [0, 255] → [-1, 1] as x/127.5 − 1.
    np.testing.assert_allclose(features.prepare_images(image, 1, input_range=None).numpy().ravel(), [0, 128, 255])
    np.testing.assert_allclose(features.prepare_images(image, 1).numpy().ravel(), [-1.0, 128 / 127.5 - 1.0, 1.0],
                               rtol=0, atol=1e-7)  # float32 cancellation in 128/127.5 − 1
    # Grey images become three equal channels; bilinear upsampling keeps a constant image constant.
    grey = np.full((1, 2, 2, 1), 200, np.uint8)
    np.testing.assert_allclose(features.prepare_images(grey, 4, input_range=None).numpy(), np.full((1, 4, 4, 3), 200))


@pytest.mark.parametrize("bad, match", [
    (np.full((1, 2, 2, 3), 200.0, np.float32), "max_abs_value=200"),
    (np.full((1, 2, 2, 3), np.nan, np.float32), "non-finite"),
    (np.zeros((2, 2, 3), np.uint8), "images.shape"),
])
def test_bad_images_are_refused_not_clipped(bad, match):
    with pytest.raises(features.FeatureNetworkError, match=match):
        features.quantize_images(bad)


class _Recording:
    """Wraps an extractor and records the batch sizes it is called with."""

    def __init__(self, inner):
        self.inner, self.sizes = inner, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __call__(self, images):
        self.sizes.append(int(images.shape[0]))
        return self.inner(images)


def test_extract_keeps_the_remainder_and_scores_end_to_end(tiny_module):
    path, reference = tiny_module
    extractor = _Recording(features.HubInception(path))
    images = _uint8_images(10, seed=2)
    result = features.extract(extractor, images, batch_size=4, keep_pool=True)
    assert extractor.sizes == [4, 4, 2]
    assert result.num_images == 10 and result.stats.n == 10
    assert (result.extractor_name, result.policy) == ("hub_inception(tiny_inception)", "uint8→bilinear(aa=False)→32")
    pool, logits = reference(images)
    np.testing.assert_allclose(result.pool, pool, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(result.stats.cov, np.cov(pool, rowvar=False), rtol=1e-3, atol=1e-4)
    assert metrics.inception_score(result.logits, splits=2) == pytest.approx(
        metrics.inception_score(logits, splits=2), rel=1e-4)
    assert abs(metrics.fid_from_stats(result.stats, result.stats)) < 1e-9

    # A dataset of dicts in uneven batches gives the same features, re-batched to 4, 4, 2.
    extractor.sizes.clear()
    dataset = tf.data.Dataset.from_tensor_slices({"image": images, "label": np.arange(10)}).batch(3)
    again = features.extract(extractor, dataset, batch_size=4, keep_pool=True)
    assert extractor.sizes == [4, 4, 2]
    np.testing.assert_allclose(again.pool, result.pool, rtol=1e-6, atol=1e-6)

    extractor.sizes.clear()
    assert features.extract(extractor, iter(images), batch_size=4, max_images=6).num_images == 6
    assert extractor.sizes == [4, 2]


def test_saved_model_classifier_drops_the_background_logit(tiny_module):
    path, reference = tiny_module
    classifier = features.SavedModelClassifier(path, signature="default", logits_key="logits",
                                               drop_background_logit=True)
    images = _uint8_images(2, seed=3)
    outputs = classifier(images)
    logits = reference(images)[1]
    np.testing.assert_allclose(outputs["logits"], logits[:, 1:], rtol=1e-4, atol=1e-4)
    # Without a pool output named, the (kept) logits serve as features.
    np.testing.assert_allclose(outputs["pool"], logits[:, 1:], rtol=1e-4, atol=1e-4)
    assert (classifier.feature_dim, classifier.num_logits) == (4, 4)


def test_wrong_signature_output_or_size_is_one_clear_error(tiny_module):
    path, _ = tiny_module
    with pytest.raises(features.FeatureNetworkError, match="no signature 'serving_default'.*'default'"):
        features.SavedModelClassifier(path)
    with pytest.raises(features.FeatureNetworkError, match="has \\['logits', 'pool_3'\\]. Received: pool_key='pool'"):
        features.HubInception(path, pool_key="pool")
    with pytest.raises(features.FeatureNetworkError, match="takes 32px images. Received: input_size=299"):
        features.HubInception(path, input_size=299)


def test_missing_path_names_the_flag(tmp_path):
    missing = str(tmp_path / "inception")
    with pytest.raises(FileNotFoundError, match="--inception_path.*Received: inception_path="):
        features.HubInception(missing)
    with pytest.raises(FileNotFoundError, match="--inception_path"):
        features.KerasInceptionV3(missing + ".weights.h5")
    with pytest.raises(FileNotFoundError, match="--feature_network_path"):
        features.SavedModelClassifier(missing)
    with pytest.raises(FileNotFoundError, match="--birds_inception"):
        features.SavedModelClassifier("", flag_name="--birds_inception")


@pytest.mark.slow  # two full InceptionV3 builds, an 88 MB weights file and one graph trace: ~10-25 s on 2 cores
def test_keras_inception_v3_from_a_weights_file(tmp_path):
    # A freshly built 75px, 3-class InceptionV3 stands in for the ImageNet weights (same file format).
    original = keras.applications.InceptionV3(weights=None, include_top=True, input_shape=(75, 75, 3), classes=3)
    path = str(tmp_path / "inception.weights.h5")
    original.save_weights(path)
    extractor = features.KerasInceptionV3(path, input_size=75, classes=3)
    assert (extractor.feature_dim, extractor.num_logits) == (2048, 3)
    images = _uint8_images(3, size=75, seed=4)
    outputs = extractor(images)
    inputs = keras.applications.inception_v3.preprocess_input(images.astype(np.float32))
    pool_model = keras.Model(original.input, original.get_layer("avg_pool").output)
    np.testing.assert_allclose(outputs["pool"], pool_model(inputs, training=False).numpy(), rtol=1e-4, atol=1e-6)
    probabilities = original(inputs, training=False).numpy()
    np.testing.assert_allclose(tf.nn.softmax(outputs["logits"]).numpy(), probabilities, rtol=1e-4, atol=1e-6)
    # Logits, not probabilities: their differences are log-ratios of the model's probabilities.
    np.testing.assert_allclose(outputs["logits"] - outputs["logits"][:, :1],
                               np.log(probabilities) - np.log(probabilities[:, :1]), rtol=1e-3, atol=1e-5)
