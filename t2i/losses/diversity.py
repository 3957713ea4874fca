"""The mode-seeking regulariser (Mao et al. 2019, "Mode Seeking Generative Adversarial Networks for Diverse Image
Synthesis", MSGAN): a conditional generator that maps every z to one image per condition is mode-collapsed.

For pairs of fakes made from the same condition c with different noise,

    d = mean |G(c, z₁) − G(c, z₂)| / mean |z₁ − z₂|,        L_ms = 1 / (d + ε),

the means running over all pairs, pixels and noise dimensions (as in the authors' code, ε = 1e-5). Minimising L_ms
pushes the generator to map distant noise to distant images. Like any term of the generator's objective it is a
pure function of tensors; the trainer pairs its fakes.
"""
import tensorflow as tf

EPSILON = 1e-5


def mode_seeking_loss(images_a, images_b, noise_a, noise_b, epsilon=EPSILON):
    """Scalar L_ms = 1 / (mean|images_a − images_b| / mean|noise_a − noise_b| + ε) for row-paired fakes.

    Args:
        images_a, images_b: [P, ...] fakes; row i of both was generated for the same condition.
        noise_a, noise_b: [P, Z] the noise each was generated from.
        epsilon: ε, keeps the loss finite for identical images.
    """
    image_distance = tf.reduce_mean(tf.abs(tf.cast(images_a, tf.float32) - tf.cast(images_b, tf.float32)))
    noise_distance = tf.reduce_mean(tf.abs(tf.cast(noise_a, tf.float32) - tf.cast(noise_b, tf.float32)))
    return 1.0 / (image_distance / noise_distance + epsilon)
