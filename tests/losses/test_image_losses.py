"""Pixel MSE and total variation against values worked out by hand on a 2×3 image."""
import numpy as np
import tensorflow as tf

from t2i.losses.image import pixel_mse, total_variation

# One-channel 2×3 images, batch of 2 (the second example is flat).
IMAGE = np.array([[1.0, 2.0, 4.0],
                  [0.0, 5.0, 3.0]], np.float32)
OTHER = np.array([[1.0, 0.0, 4.0],
                  [1.0, 5.0, 0.0]], np.float32)


def _batch(*images):
    return np.stack(images)[..., None]


def test_pixel_mse_by_hand():
    # IMAGE - OTHER = [[0, 2, 0], [-1, 0, 3]] → squares 0 + 4 + 0 + 1 + 0 + 9 = 14 over H·W·C = 6 values.
    flat = np.full((2, 3), 7.0, np.float32)
    loss = pixel_mse(_batch(IMAGE, flat), _batch(OTHER, flat)).numpy()
    np.testing.assert_allclose(loss, [14.0 / 6.0, 0.0], rtol=1e-6)


def test_pixel_mse_is_float32_for_half_precision_inputs():
    loss = pixel_mse(tf.zeros([2, 4, 4, 3], tf.float16), tf.ones([2, 4, 4, 3], tf.float16))
    assert loss.dtype == tf.float32
    np.testing.assert_array_equal(loss.numpy(), [1.0, 1.0])


def test_total_variation_by_hand():
    # Down the columns: |0 - 1| + |5 - 2| + |3 - 4| = 1 + 3 + 1 = 5.
    # Along the rows:   |2 - 1| + |4 - 2| = 3 and |5 - 0| + |3 - 5| = 7.
    # Total 5 + 3 + 7 = 15; a flat image has none.
    tv = total_variation(_batch(IMAGE, np.full((2, 3), -0.5, np.float32))).numpy()
    np.testing.assert_allclose(tv, [15.0, 0.0])


def test_total_variation_sums_over_channels():
    # Channel 0 is IMAGE (15), channel 1 is -2·IMAGE (30): the channels add up.
    images = np.stack([IMAGE, -2 * IMAGE], axis=-1)[None]
    np.testing.assert_allclose(total_variation(images).numpy(), [45.0])


def test_total_variation_matches_numpy_on_random_images():
    images = np.random.default_rng(0).uniform(-1, 1, (3, 5, 7, 2)).astype(np.float32)
    expected = (np.abs(np.diff(images, axis=1)).sum(axis=(1, 2, 3))
                + np.abs(np.diff(images, axis=2)).sum(axis=(1, 2, 3)))
    np.testing.assert_allclose(total_variation(images).numpy(), expected, rtol=1e-5)
