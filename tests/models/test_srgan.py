"""SRGAN networks: PixelShuffle against numpy, shapes per size/scale, the paper's layout, labels, round trips."""
import keras
import numpy as np
import pytest

from t2i.layers.pixel_shuffle import PixelShuffle
from t2i.models.srgan import SRGANDiscriminator, SRGANGenerator

RNG = np.random.default_rng(0)


def _uniform(*shape):
    return RNG.uniform(-1, 1, shape).astype("float32")


def _multi_hot(rows, num_labels):
    labels = np.zeros((len(rows), num_labels), np.float32)
    for i, row in enumerate(rows):
        labels[i, row] = 1
    return labels


def test_pixel_shuffle_matches_a_numpy_reshape_and_transpose():
    batch, height, width, scale, channels = 2, 3, 4, 2, 5
    x = np.arange(batch * height * width * scale * scale * channels, dtype=np.float32)
    x = x.reshape(batch, height, width, scale * scale * channels)
    # depth_to_space: out[b, r·h + i, r·w + j, c] = in[b, h, w, (r·i + j)·C + c].
    expected = x.reshape(batch, height, width, scale, scale, channels).transpose(0, 1, 3, 2, 4, 5)
    expected = expected.reshape(batch, height * scale, width * scale, channels)
    out = np.asarray(PixelShuffle(scale)(x))
    np.testing.assert_array_equal(out, expected)
    # One spot check written out: output pixel (1, 3) of channel 2 comes from input pixel (0, 1), depth (2·1 + 1)·5 + 2.
    assert out[0, 1, 3, 2] == x[0, 0, 1, 17]


def test_pixel_shuffle_rejects_channels_not_divisible_by_scale_squared():
    with pytest.raises(ValueError, match=r"divisible by 4.*Received: input_shape=\(None, 4, 4, 6\)"):
        PixelShuffle(2)(keras.Input(shape=(4, 4, 6)))
    with pytest.raises(ValueError, match="Received: scale=1"):
        PixelShuffle(1)


def test_pixel_shuffle_survives_a_keras_round_trip(tmp_path):
    inputs = keras.Input(shape=(None, None, 12))
    model = keras.Model(inputs, PixelShuffle(2, name="shuffle")(inputs))
    path = tmp_path / "shuffle.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    assert isinstance(restored.get_layer("shuffle"), PixelShuffle)
    assert restored.get_layer("shuffle").scale == 2
    x = _uniform(1, 3, 5, 12)
    np.testing.assert_array_equal(np.asarray(restored(x)), np.asarray(model(x)))


@pytest.mark.parametrize("image_size,scale,channels", [(32, 2, 3), (32, 4, 1), (16, 4, 3), (64, 8, 3)])
def test_output_shapes(image_size, scale, channels):
    generator = SRGANGenerator(image_size=image_size, scale=scale, channels=channels, filters=8, residual_blocks=1)
    discriminator = SRGANDiscriminator(image_size=image_size, channels=channels, filters=8)
    low_size = image_size // scale
    assert generator.input.shape == (None, low_size, low_size, channels)
    images = generator(_uniform(2, low_size, low_size, channels))
    assert images.shape == (2, image_size, image_size, channels)
    values = np.asarray(images)
    assert values.min() >= -1 and values.max() <= 1
    logits = discriminator(images)
    assert logits.shape == (2, 1) and logits.dtype == "float32"


def test_paper_generator_layout():
    generator = SRGANGenerator(image_size=96, scale=4)
    assert generator.input.shape == (None, 24, 24, 3)
    residual_adds = [layer.name for layer in generator.layers if layer.name.startswith("res")
                     and layer.name.endswith("_add")]
    assert len(residual_adds) == 16
    shuffles = [layer for layer in generator.layers if isinstance(layer, PixelShuffle)]
    assert [layer.output.shape[1:] for layer in shuffles] == [(48, 48, 64), (96, 96, 64)]
    assert generator.get_layer("head_conv").kernel.shape == (9, 9, 3, 64)
    assert generator.get_layer("to_image_conv").kernel.shape == (9, 9, 64, 3)
    # PReLU slopes are shared over H and W: one per channel.
    assert generator.get_layer("head_prelu").alpha.shape == (1, 1, 64)


def test_paper_discriminator_layout():
    discriminator = SRGANDiscriminator(image_size=96)
    activations = [layer.output.shape for layer in discriminator.layers if layer.name.endswith("_lrelu")][:-1]
    assert [shape[1] for shape in activations] == [96, 48, 48, 24, 24, 12, 12, 6]
    assert [shape[3] for shape in activations] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert discriminator.get_layer("dense").kernel.shape == (6 * 6 * 512, 1024)


def test_small_discriminators_stop_halving_at_4x4():
    discriminator = SRGANDiscriminator(image_size=32, filters=8)
    activations = [layer.output.shape for layer in discriminator.layers if layer.name.startswith("block")
                   and layer.name.endswith("_lrelu")]
    # 32 → 16 → 16 → 8 → 8 → 4 → 4: the last stride-2 block (4 → 2) is dropped.
    assert [shape[1] for shape in activations] == [16, 16, 8, 8, 4, 4]
    assert [shape[3] for shape in activations] == [8, 16, 16, 32, 32, 64]


def test_labels_condition_both_networks():
    num_labels = 5
    generator = SRGANGenerator(image_size=32, scale=4, filters=8, residual_blocks=1, num_labels=num_labels)
    discriminator = SRGANDiscriminator(image_size=32, filters=8, num_labels=num_labels)
    assert sorted(generator.input) == ["labels", "low_res"]
    assert sorted(discriminator.input) == ["image", "labels"]
    low_res = np.repeat(_uniform(1, 8, 8, 3), 2, axis=0)  # the same image twice, with different labels
    labels = _multi_hot([[0, 3], [1]], num_labels)
    images = np.asarray(generator({"low_res": low_res, "labels": labels}))
    assert images.shape == (2, 32, 32, 3)
    assert not np.allclose(images[0], images[1])
    same_image = np.repeat(images[:1], 2, axis=0)
    logits = np.asarray(discriminator({"image": same_image, "labels": labels}))
    assert logits.shape == (2, 1) and logits[0, 0] != logits[1, 0]


@pytest.mark.parametrize("kwargs,message", [
    (dict(image_size=32, scale=3), "power of two >= 2. Received: scale=3"),
    (dict(image_size=32, scale=1), "Received: scale=1"),
    (dict(image_size=8, scale=4), "image_size / scale >= 4. Received: image_size=8, scale=4"),
    (dict(image_size=30, scale=4), "multiple of scale.*Received: image_size=30, scale=4"),
])
def test_bad_generator_sizes_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SRGANGenerator(filters=8, residual_blocks=1, **kwargs)


def test_tiny_discriminator_is_a_clear_error():
    with pytest.raises(ValueError, match="Received: image_size=4"):
        SRGANDiscriminator(image_size=4, filters=8)


@pytest.mark.parametrize("cls,kwargs", [
    (SRGANGenerator, dict(image_size=32, scale=2, channels=1, filters=8, residual_blocks=2)),
    (SRGANGenerator, dict(image_size=32, scale=4, filters=8, residual_blocks=1, num_labels=3)),
    (SRGANDiscriminator, dict(image_size=32, channels=1, filters=8)),
    (SRGANDiscriminator, dict(image_size=32, filters=8, num_labels=3)),
])
def test_keras_round_trip_gives_identical_outputs(tmp_path, cls, kwargs):
    model = cls(**kwargs)
    channels = kwargs.get("channels", 3)
    size = kwargs["image_size"] // kwargs.get("scale", 1)
    images = _uniform(3, size, size, channels)
    if kwargs.get("num_labels"):
        key = "low_res" if cls is SRGANGenerator else "image"
        inputs = {key: images, "labels": _multi_hot([[0], [1, 2], []], kwargs["num_labels"])}
    else:
        inputs = images
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    assert type(restored) is cls
    assert restored.get_config() == model.get_config()
    np.testing.assert_array_equal(np.asarray(restored(inputs)), np.asarray(model(inputs)))
