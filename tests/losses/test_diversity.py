"""The mode-seeking regulariser (MSGAN) against hand-computed values."""
import numpy as np
import pytest
import tensorflow as tf

from t2i.losses.diversity import EPSILON, mode_seeking_loss


def test_mode_seeking_loss_is_the_inverse_distance_ratio():
    # Image pairs differ by |0.5| and |1.5| everywhere → mean 1.0; noise pairs by |2| and |2| → mean 2.0.
    images_a = np.zeros((2, 3, 3, 1), np.float32)
    images_b = np.stack([np.full((3, 3, 1), 0.5), np.full((3, 3, 1), -1.5)]).astype(np.float32)
    noise_a = np.array([[0.0, 1.0], [1.0, 1.0]], np.float32)
    noise_b = np.array([[2.0, -1.0], [3.0, -1.0]], np.float32)
    value = float(mode_seeking_loss(images_a, images_b, noise_a, noise_b))
    assert value == pytest.approx(1.0 / (1.0 / 2.0 + EPSILON), rel=1e-6)


def test_identical_images_give_the_bounded_maximum():
    images = tf.ones([4, 2, 2, 3])
    assert float(mode_seeking_loss(images, images, tf.zeros([4, 5]), tf.ones([4, 5]))) == pytest.approx(1 / EPSILON)


def test_the_gradient_pushes_paired_images_apart():
    images_a = tf.Variable(tf.zeros([1, 2, 2, 1]))
    images_b = tf.constant(tf.fill([1, 2, 2, 1], 0.25))
    with tf.GradientTape() as tape:
        loss = mode_seeking_loss(images_a, images_b, tf.zeros([1, 3]), tf.ones([1, 3]))
    # Lowering images_a (away from images_b) lowers the loss: the gradient is positive.
    assert np.all(tape.gradient(loss, images_a).numpy() > 0)
