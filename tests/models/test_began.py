"""BEGAN networks: per-resolution shapes, the number of resolution changes, the embedding and `.keras` round trips."""
import keras
import numpy as np
import pytest

from t2i.models.began import BEGANDiscriminator, BEGANGenerator

TINY = dict(noise_dim=16, hidden_dim=8)


def _layers(model, kind):
    return [layer for layer in model.layers if isinstance(layer, kind)]


@pytest.mark.parametrize("image_size,channels", [(32, 3), (64, 3), (32, 1)])
def test_output_shapes(image_size, channels):
    generator = BEGANGenerator(image_size=image_size, channels=channels, **TINY)
    discriminator = BEGANDiscriminator(image_size=image_size, channels=channels, **TINY)
    images = generator(np.random.default_rng(0).uniform(-1, 1, (2, 16)).astype("float32"))
    assert images.shape == (2, image_size, image_size, channels)
    assert discriminator(images).shape == (2, image_size, image_size, channels)


@pytest.mark.parametrize("image_size,repeat_num", [(32, 3), (64, 4)])
def test_resolution_changes_number_repeat_num_minus_one(image_size, repeat_num):
    """repeat_num = log2(image_size) - 2 stages between 8×8 and the image, so repeat_num - 1 doublings/halvings."""
    generator = BEGANGenerator(image_size=image_size, **TINY)
    discriminator = BEGANDiscriminator(image_size=image_size, **TINY)
    assert len(_layers(generator, keras.layers.UpSampling2D)) == repeat_num - 1
    assert len(_layers(discriminator, keras.layers.UpSampling2D)) == repeat_num - 1
    stride2 = [layer for layer in _layers(discriminator, keras.layers.Conv2D) if layer.strides == (2, 2)]
    assert len(stride2) == repeat_num - 1
    # Every resolution change sits between two stages: the first map is 8×8 in both networks.
    assert generator.get_layer("project_reshape").output.shape[1:] == (8, 8, 8)
    assert discriminator.get_layer("encoder_flatten").output.shape[-1] == 8 * 8 * 8 * repeat_num


def test_encoder_widths_grow_linearly_and_decoder_stays_at_hidden_dim():
    discriminator = BEGANDiscriminator(image_size=64, **TINY)
    encoder = [layer.filters for layer in _layers(discriminator, keras.layers.Conv2D)
               if layer.name.startswith("encoder_")]
    # from_image, then per stage conv1, conv2 (and the stride-2 conv between stages): n, 2n, 3n, 4n with n = 8.
    assert encoder == [8, 8, 8, 8, 16, 16, 16, 24, 24, 24, 32, 32]
    decoder = [layer.filters for layer in _layers(discriminator, keras.layers.Conv2D)
               if layer.name.startswith("decoder_")]
    assert decoder == [8] * 8 + [3]


def test_embedding_has_noise_dim_units_and_is_linear():
    discriminator = BEGANDiscriminator(image_size=32, channels=1, noise_dim=5, hidden_dim=8)
    encoder = keras.Model(discriminator.input, discriminator.get_layer("embedding").output)
    embedding = np.asarray(encoder(np.random.default_rng(2).uniform(-1, 1, (3, 32, 32, 1)).astype("float32")))
    assert embedding.shape == (3, 5)
    assert embedding.min() < 0  # no ReLU on the code


def test_outputs_are_linear_not_squashed():
    """The reference generator has no tanh: the output conv is linear, so values are not confined to [-1, 1]."""
    generator = BEGANGenerator(image_size=32, **TINY)
    assert generator.get_layer("to_image").activation is keras.activations.linear
    scaled = generator(np.full((1, 16), 1e3, "float32"))
    assert np.abs(np.asarray(scaled)).max() > 1


def test_zero_images_reconstruct_to_zero_at_initialisation():
    """Zero biases and ELU(0) = 0 make D(0) = 0 before training; the trainer tests build on this."""
    discriminator = BEGANDiscriminator(image_size=32, **TINY)
    np.testing.assert_array_equal(np.asarray(discriminator(np.zeros((2, 32, 32, 3), "float32"))), 0.0)


def test_bad_image_size_is_a_clear_error():
    with pytest.raises(ValueError, match="power of two.*Received: image_size=48"):
        BEGANDiscriminator(image_size=48)


@pytest.mark.parametrize("cls,shape", [(BEGANGenerator, (3, 16)), (BEGANDiscriminator, (3, 32, 32, 1))])
def test_keras_round_trip_gives_identical_outputs(tmp_path, cls, shape):
    model = cls(image_size=32, channels=1, **TINY)
    inputs = np.random.default_rng(1).uniform(-1, 1, shape).astype("float32")
    path = tmp_path / "m.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    assert type(restored) is cls
    assert restored.get_config() == model.get_config()
    np.testing.assert_array_equal(np.asarray(restored(inputs)), np.asarray(model(inputs)))
