"""Regularisers on the discriminator: the WGAN-GP gradient penalty."""
import tensorflow as tf


def interpolate(real, fake, alpha=None, seed=None):
    """x̂ = α·x + (1 - α)·G(z) with one α ~ U[0, 1] per example (Gulrajani et al. 2017, Alg. 1)."""
    real = tf.cast(real, tf.float32)
    fake = tf.cast(fake, tf.float32)
    if alpha is None:
        shape = tf.concat([tf.shape(real)[:1], tf.ones([tf.rank(real) - 1], tf.int32)], axis=0)
        alpha = tf.random.uniform(shape, 0.0, 1.0, seed=seed)
    return alpha * real + (1.0 - alpha) * fake


def gradient_penalty(critic_fn, real, fake, alpha=None, target_norm=1.0, seed=None):
    """Per-example gradient penalty (‖∇_x̂ D(x̂)‖₂ - target_norm)², Gulrajani et al. 2017.

    `critic_fn` maps a batch of images to logits of any shape; logits are summed per example, so a patch critic's
    penalty is on the gradient of its total score. The caller weights the result (λ = 10 in the paper) and reduces it
    over the global batch like any other per-example loss. Works nested inside an outer GradientTape, which is how
    the critic's update differentiates through it.
    """
    x_hat = interpolate(real, fake, alpha=alpha, seed=seed)
    with tf.GradientTape() as tape:
        tape.watch(x_hat)
        scores = tf.cast(critic_fn(x_hat), tf.float32)
        scores = tf.reduce_sum(tf.reshape(scores, [tf.shape(scores)[0], -1]), axis=1)
    grads = tape.gradient(scores, x_hat)
    # The epsilon keeps the gradient of the norm finite at zero.
    norms = tf.sqrt(tf.reduce_sum(tf.square(tf.reshape(grads, [tf.shape(grads)[0], -1])), axis=1) + 1e-12)
    return tf.square(norms - target_norm)
