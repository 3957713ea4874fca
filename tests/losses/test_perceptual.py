"""Perceptual loss: the maths against numpy, and feature networks loaded from files the tests write themselves."""
import keras
import numpy as np
import pytest

from t2i.losses.perceptual import load_feature_network, perceptual_loss

RNG = np.random.default_rng(0)


def _images(*shape):
    return RNG.uniform(-1, 1, shape).astype("float32")


def test_perceptual_loss_by_hand():
    real = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    fake = np.array([[1.0, 0.0], [0.0, 4.0]], np.float32)
    # Example 1: (0² + 2²) / 2 = 2; example 2: (3² + 0²) / 2 = 4.5.
    np.testing.assert_allclose(perceptual_loss(real, fake).numpy(), [2.0, 4.5])


@pytest.fixture
def keras_model_path(tmp_path):
    """A small saved `.keras` model whose layer "features" is a 1×1 conv: features = x·W + b per pixel."""
    inputs = keras.Input(shape=(4, 4, 3))
    features = keras.layers.Conv2D(2, 1, name="features")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    model = keras.Model(inputs, keras.layers.Dense(1, name="score")(pooled))
    kernel = np.array([[1.0, -2.0], [0.5, 0.0], [3.0, 1.0]], np.float32)
    model.get_layer("features").set_weights([kernel[None, None], np.array([0.25, -1.0], np.float32)])
    path = tmp_path / "critic.keras"
    model.save(path)
    return path, kernel


def test_keras_model_layer_gives_the_exact_loss(keras_model_path):
    path, kernel = keras_model_path
    network = load_feature_network(path, layer="features")
    real, fake = _images(2, 4, 4, 3), _images(2, 4, 4, 3)
    loss = perceptual_loss(network(real), network(fake)).numpy()
    # The images are fed as they are; the bias cancels in the difference.
    expected = np.mean(np.square(real @ kernel - fake @ kernel), axis=(1, 2, 3))
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_keras_model_without_layer_is_used_whole(keras_model_path):
    path, _ = keras_model_path
    network = load_feature_network(path)
    images = _images(2, 4, 4, 3)
    np.testing.assert_allclose(network(images), keras.models.load_model(path)(images), rtol=1e-6)


def test_feature_networks_are_frozen(keras_model_path):
    network = load_feature_network(keras_model_path[0], layer="features")
    assert network.trainable is False
    assert network.trainable_weights == []


def test_unknown_layer_names_the_flag_and_some_layers(keras_model_path):
    with pytest.raises(ValueError, match=r"--perceptual_layer.*features.*Received: perceptual_layer='nope'"):
        load_feature_network(keras_model_path[0], layer="nope")


def test_missing_file_names_the_flag_and_the_path(tmp_path):
    path = str(tmp_path / "vgg19_notop.h5")
    with pytest.raises(FileNotFoundError) as error:
        load_feature_network(path)
    message = str(error.value)
    assert "--perceptual_weights" in message and path in message and "\n" not in message


def test_unrecognisable_file_name_asks_for_the_network(tmp_path):
    path = tmp_path / "features.h5"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="--perceptual_network"):
        load_feature_network(path)


@pytest.fixture(scope="module")
def vgg16():
    # Random weights: nothing is downloaded; the test is that the file's weights, whatever they are, are used.
    keras.utils.set_random_seed(1)
    return keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))


def _expected_features(vgg16, layer, images):
    trunk = keras.Model(vgg16.input, vgg16.get_layer(layer).output)
    return np.asarray(trunk(keras.applications.vgg16.preprocess_input((images + 1.0) * 127.5)))


def test_vgg16_weights_file_reloads_with_its_preprocessing(tmp_path, vgg16):
    path = tmp_path / "vgg16.weights.h5"
    vgg16.save_weights(path)
    network = load_feature_network(path)  # "auto": vgg16 from the file name, default layer block2_conv2
    images = _images(2, 32, 32, 3)
    features = np.asarray(network(images))
    assert features.shape == (2, 16, 16, 128)
    np.testing.assert_allclose(features, _expected_features(vgg16, "block2_conv2", images), rtol=1e-5, atol=1e-4)
    assert network.trainable_weights == []


def test_legacy_keras_applications_h5_file_loads(tmp_path, vgg16):
    """The files Keras distributes (`vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5`) use the legacy h5 layout."""
    legacy = pytest.importorskip("keras.src.legacy.saving.legacy_h5_format")
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    with h5py.File(path, "w") as file:
        legacy.save_weights_to_hdf5_group(file, vgg16)
    network = load_feature_network(path, layer="block1_conv2")
    images = _images(1, 32, 32, 3)
    np.testing.assert_allclose(network(images), _expected_features(vgg16, "block1_conv2", images), rtol=1e-5,
                               atol=1e-4)


# Keras warns about each layer it cannot fill before it gives up; those warnings are expected here.
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_weights_of_another_architecture_are_a_clear_error(tmp_path, vgg16):
    path = tmp_path / "vgg16.weights.h5"
    vgg16.save_weights(path)
    with pytest.raises(ValueError, match=r"not a vgg19 include_top=False weights file"):
        load_feature_network(path, network="vgg19")
