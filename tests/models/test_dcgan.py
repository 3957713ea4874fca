"""DCGAN networks: per-resolution shapes, the classic 64×64 widths, initialisation and `.keras` round trips."""
import keras
import numpy as np
import pytest

from t2i.models.dcgan import DCGANDiscriminator, DCGANGenerator


@pytest.mark.parametrize("image_size,channels,upsampling", [
    (32, 3, "transposed"), (64, 1, "nearest"), (128, 18, "transposed"), (32, 2, "nearest_fused"),
])
def test_output_shapes(image_size, channels, upsampling):
    generator = DCGANGenerator(image_size=image_size, channels=channels, noise_dim=16, base_filters=8,
                               max_filters=32, upsampling=upsampling)
    discriminator = DCGANDiscriminator(image_size=image_size, channels=channels, base_filters=8, max_filters=32)
    images = generator(np.random.default_rng(0).standard_normal((2, 16)).astype("float32"))
    assert images.shape == (2, image_size, image_size, channels)
    values = np.asarray(images)
    assert values.min() >= -1 and values.max() <= 1
    assert discriminator(images).shape == (2, 1)


def test_classic_dcgan64_widths():
    generator = DCGANGenerator()
    widths = [layer.output.shape[-1] for layer in generator.layers if layer.name.endswith("_relu")]
    assert widths == [512, 256, 128, 64]
    assert generator.output.shape[1:] == (64, 64, 3)
    discriminator = DCGANDiscriminator()
    widths = [layer.output.shape[-1] for layer in discriminator.layers if layer.name.endswith("_lrelu")]
    assert widths == [64, 128, 256, 512]
    spatial = [layer.output.shape[1] for layer in discriminator.layers if layer.name.endswith("_lrelu")]
    assert spatial == [32, 16, 8, 4]


def test_widths_are_capped_at_256_pixels():
    generator = DCGANGenerator(image_size=256, base_filters=8, max_filters=32)
    widths = [layer.output.shape[-1] for layer in generator.layers if layer.name.endswith("_relu")]
    assert widths == [32, 32, 32, 32, 16, 8]


def test_initialisation_is_normal_0_02():
    kernel = DCGANGenerator().get_layer("up1_deconv").kernel.numpy()
    assert abs(kernel.mean()) < 1e-3
    assert kernel.std() == pytest.approx(0.02, rel=0.05)


def test_bad_image_size_is_a_clear_error():
    with pytest.raises(ValueError, match="power of two.*Received: image_size=48"):
        DCGANGenerator(image_size=48)


@pytest.mark.parametrize("cls,shape", [(DCGANGenerator, (3, 16)), (DCGANDiscriminator, (3, 32, 32, 1))])
def test_keras_round_trip_gives_identical_outputs(tmp_path, cls, shape):
    kwargs = dict(image_size=32, base_filters=8, max_filters=16, channels=1)
    if cls is DCGANGenerator:
        kwargs["noise_dim"] = 16
    model = cls(**kwargs)
    inputs = np.random.default_rng(1).standard_normal(shape).astype("float32")
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    assert type(restored) is cls
    assert restored.get_config() == model.get_config()
    np.testing.assert_array_equal(np.asarray(restored(inputs)), np.asarray(model(inputs)))
