"""Tests for t2i.data.images: value mapping, centre crop and StackGAN preprocessing."""
import numpy as np
import pytest
import tensorflow as tf

from t2i.data import images


def test_to_unit_range_exact_endpoints():
    x = tf.constant([0, 255, 127, 128], tf.uint8)
    np.testing.assert_array_equal(
        images.to_unit_range(x).numpy(), np.array([0, 255, 127, 128], np.float32) / 127.5 - 1
    )
    assert images.to_unit_range(x).dtype == tf.float32
    assert images.to_unit_range(tf.constant(0, tf.uint8)).numpy() == -1.0
    assert images.to_unit_range(tf.constant(255, tf.uint8)).numpy() == 1.0


def test_to_unit_range_float_input_assumed_unit_interval():
    x = tf.constant([0.0, 0.5, 1.0], tf.float64)
    out = images.to_unit_range(x)
    assert out.dtype == tf.float32
    np.testing.assert_allclose(out.numpy(), [-1.0, 0.0, 1.0])


def test_to_uint8_round_trip_is_exact_for_all_values():
    values = tf.range(256, dtype=tf.int32)
    x = tf.cast(values, tf.uint8)
    back = images.to_uint8(images.to_unit_range(x))
    assert back.dtype == tf.uint8
    np.testing.assert_array_equal(back.numpy(), np.arange(256, dtype=np.uint8))


def test_to_uint8_clips_and_rounds():
    out = images.to_uint8(tf.constant([-1.5, -1.0, 0.0, 1.0, 2.0])).numpy()
    np.testing.assert_array_equal(out, [0, 0, 128, 255, 255])  # 127.5 rounds half-to-even


@pytest.mark.parametrize("shape, expected", [((4, 10, 3), (4, 4, 3)), ((9, 5, 18), (5, 5, 18))])
def test_center_crop_square_static_shapes(shape, expected):
    out = images.center_crop_square(tf.zeros(shape))
    assert tuple(out.shape) == expected


def test_center_crop_square_keeps_centre_and_dynamic_shape():
    image = np.zeros((4, 8, 1), np.uint8)
    image[:, 2:6] = 7

    @tf.function(input_signature=[tf.TensorSpec([None, None, None], tf.uint8)])
    def crop(x):
        return images.center_crop_square(x)

    out = crop(image).numpy()
    assert out.shape == (4, 4, 1)
    assert np.all(out == 7)


def _margined_image(height=64, width=96, channels=3):
    """Centre square colour 200, left/right margins colour 10."""
    image = np.full((height, width, channels), 10, np.uint8)
    left = (width - height) // 2
    image[:, left : left + height] = 200
    return image


@pytest.mark.parametrize("load_ratio", [1.0, 76 / 64])
def test_eval_centre_crop_removes_margins(load_ratio):
    out = images.stackgan_preprocess(
        _margined_image(), 32, training=False, load_ratio=load_ratio
    ).numpy()
    np.testing.assert_allclose(out, 200 / 127.5 - 1, atol=1e-5)


def test_eval_centre_crop_removes_margins_tall_image():
    out = images.stackgan_preprocess(
        np.transpose(_margined_image(), (1, 0, 2)), 16, training=False
    ).numpy()
    np.testing.assert_allclose(out, 200 / 127.5 - 1, atol=1e-5)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("channels", [1, 3, 4, 18])
def test_output_shape_dtype_and_range(training, channels):
    rng = np.random.default_rng(channels)
    image = rng.integers(0, 256, (50, 70, channels), dtype=np.uint8)
    out = images.stackgan_preprocess(image, 32, training=training, seed=3)
    assert out.dtype == tf.float32
    assert tuple(out.shape) == (32, 32, channels)
    assert out.numpy().min() >= -1.0 and out.numpy().max() <= 1.0


def test_float_input_in_unit_interval():
    image = np.random.default_rng(0).random((40, 40, 18)).astype(np.float32)
    out = images.stackgan_preprocess(image, 16, training=False, load_ratio=1.0).numpy()
    assert out.shape == (16, 16, 18)
    assert out.min() >= -1.0 and out.max() <= 1.0
    solid = np.full((20, 30, 1), 0.25, np.float32)
    np.testing.assert_allclose(
        images.stackgan_preprocess(solid, 8, training=False).numpy(), -0.5, atol=1e-6
    )


def test_static_shape_in_graph_with_unknown_spatial_dims():
    @tf.function(input_signature=[tf.TensorSpec([None, None, 18], tf.float32)])
    def prep(x):
        out = images.stackgan_preprocess(x, 16, training=True)
        assert out.shape.as_list() == [16, 16, 18]
        return out

    assert prep(tf.zeros([30, 20, 18])).shape == (16, 16, 18)


def test_eval_mode_is_deterministic():
    image = np.random.default_rng(1).integers(0, 256, (48, 60, 3), dtype=np.uint8)
    first = images.stackgan_preprocess(image, 32, training=False).numpy()
    second = images.stackgan_preprocess(image, 32, training=False).numpy()
    np.testing.assert_array_equal(first, second)


def test_training_same_seed_same_output():
    image = np.random.default_rng(2).integers(0, 256, (48, 60, 3), dtype=np.uint8)
    first = images.stackgan_preprocess(image, 32, training=True, seed=7).numpy()
    second = images.stackgan_preprocess(image, 32, training=True, seed=7).numpy()
    np.testing.assert_array_equal(first, second)
    tensor_seed = images.stackgan_preprocess(image, 32, seed=tf.constant([7, 0])).numpy()
    np.testing.assert_array_equal(first, tensor_seed)


def test_training_flips_sometimes_and_crops_differ():
    # Dark left half, bright right half: a flip swaps which side is brighter.
    image = np.zeros((64, 64, 3), np.uint8)
    image[:, 32:] = 255
    flipped, crops = [], set()
    for seed in range(24):
        out = images.stackgan_preprocess(image, 64, training=True, seed=seed).numpy()
        flipped.append(out[:, :8].mean() > out[:, -8:].mean())
        crops.add(out.tobytes())
    assert any(flipped) and not all(flipped)
    assert len(crops) > 2


def test_training_unseeded_varies():
    image = np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    outs = {images.stackgan_preprocess(image, 32, training=True).numpy().tobytes() for _ in range(8)}
    assert len(outs) > 1


def test_invalid_arguments():
    with pytest.raises(ValueError, match="load_ratio=0.5"):
        images.stackgan_preprocess(np.zeros((8, 8, 3), np.uint8), 8, load_ratio=0.5)
    with pytest.raises(ValueError, match="image_size=0"):
        images.stackgan_preprocess(np.zeros((8, 8, 3), np.uint8), 0)
    with pytest.raises(ValueError, match="image.shape"):
        images.stackgan_preprocess(np.zeros((8, 8), np.uint8), 8)
