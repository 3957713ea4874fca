"""The WGAN-GP gradient penalty on critics whose input gradient is known in closed form."""
import numpy as np
import tensorflow as tf

from t2i.losses import penalties


def _linear_critic(weights):
    w = tf.constant(weights, tf.float32)
    return lambda x: tf.reduce_sum(x * w, axis=[1, 2, 3])


def test_penalty_is_zero_for_a_unit_norm_gradient():
    w = np.random.default_rng(0).standard_normal((4, 4, 3)).astype(np.float32)
    w /= np.linalg.norm(w)
    real = tf.random.normal([5, 4, 4, 3])
    fake = tf.random.normal([5, 4, 4, 3])
    gp = penalties.gradient_penalty(_linear_critic(w), real, fake)
    assert gp.shape == (5,)
    np.testing.assert_allclose(gp.numpy(), np.zeros(5), atol=1e-6)


def test_penalty_equals_squared_norm_excess():
    # ∇D = w with ‖w‖ = 3 everywhere, so the penalty is (3 - 1)² = 4 for every example.
    w = np.zeros((2, 2, 1), np.float32)
    w[0, 0, 0] = 3.0
    gp = penalties.gradient_penalty(_linear_critic(w), tf.ones([3, 2, 2, 1]), tf.zeros([3, 2, 2, 1]))
    np.testing.assert_allclose(gp.numpy(), [4.0, 4.0, 4.0], rtol=1e-5)


def test_penalty_of_a_quadratic_critic_at_chosen_interpolates():
    # D(x) = ½‖x‖², ∇D(x̂) = x̂; with real = 2, fake = 0 per pixel (4 pixels) and α = 0.25 / 1.0:
    # x̂ = 0.5 → ‖x̂‖ = 1 → penalty 0;  x̂ = 2 → ‖x̂‖ = 4 → penalty 9.
    critic = lambda x: 0.5 * tf.reduce_sum(tf.square(x), axis=[1, 2, 3])  # noqa: E731
    real = tf.fill([2, 2, 2, 1], 2.0)
    fake = tf.zeros([2, 2, 2, 1])
    alpha = tf.constant([0.25, 1.0])[:, None, None, None]
    gp = penalties.gradient_penalty(critic, real, fake, alpha=alpha)
    np.testing.assert_allclose(gp.numpy(), [0.0, 9.0], atol=1e-5)


def test_interpolates_draw_one_alpha_per_example_in_unit_interval():
    real = tf.ones([64, 3, 3, 2])
    fake = tf.zeros([64, 3, 3, 2])
    x_hat = penalties.interpolate(real, fake, seed=1).numpy()
    per_example = x_hat.reshape(64, -1)
    # Every pixel of an example shares α (real = 1, fake = 0 makes x̂ = α).
    np.testing.assert_allclose(per_example, per_example[:, :1].repeat(per_example.shape[1], axis=1))
    assert per_example.min() >= 0 and per_example.max() <= 1 and per_example[:, 0].std() > 0.1


def test_penalty_is_differentiable_with_respect_to_the_critic():
    w = tf.Variable(tf.fill([2, 2, 1], 1.0))
    critic = lambda x: tf.reduce_sum(x * w, axis=[1, 2, 3])  # noqa: E731
    with tf.GradientTape() as tape:
        gp = tf.reduce_mean(penalties.gradient_penalty(critic, tf.ones([2, 2, 2, 1]), tf.zeros([2, 2, 2, 1])))
    grad = tape.gradient(gp, w)
    # ‖w‖ = 2 → d/dw (‖w‖ - 1)² = 2(‖w‖ - 1)·w/‖w‖ = w = 1 per entry.
    np.testing.assert_allclose(grad.numpy(), np.ones((2, 2, 1)), rtol=1e-5)
