"""BEGAN losses and its equilibrium controller (Berthelot et al. 2017, §3.2–3.4), as pure functions.

BEGAN's discriminator D is an autoencoder and every loss is built from its L1 reconstruction error
L(v) = mean |v - D(v)|. With k_t ∈ [0, 1] the weight of the fake term and γ ∈ [0, 1] the diversity ratio:

    L_D = L(x) - k_t·L(G(z))                               (discriminator, over its variables)
    L_G = L(G(z))                                          (generator, over its variables)
    k_{t+1} = clip(k_t + λ_k·(γ·L(x) - L(G(z))), 0, 1)     (proportional control of E[L(G(z))] = γ·E[L(x)])
    M_global = L(x) + |γ·L(x) - L(G(z))|                   (convergence measure)

`reconstruction_loss` returns per-example values (shape [batch]) that trainers reduce over the global batch; the
other functions are elementwise, so they take per-example values or batch means alike. The controller and the
convergence measure are meant for batch means, as in the paper.
"""
import tensorflow as tf


def _float(values):
    # Losses are computed in float32 even when the networks run in mixed precision.
    return tf.cast(values, tf.float32)


def reconstruction_loss(images, reconstructions):
    """L(v) = mean over pixels and channels of |v - D(v)|, per example: shape [batch]."""
    error = tf.abs(_float(images) - _float(reconstructions))
    return tf.reduce_mean(tf.reshape(error, [tf.shape(error)[0], -1]), axis=1)


def discriminator_loss(loss_real, loss_fake, k):
    """L_D = L(x) - k·L(G(z)): reconstruct real images, and fake ones badly, to the degree k asks."""
    return _float(loss_real) - _float(k) * _float(loss_fake)


def equilibrium_update(k, loss_real, loss_fake, gamma, lambda_k):
    """k_{t+1} = clip(k_t + λ_k·(γ·L(x) - L(G(z))), 0, 1).

    k grows while the generator's samples are reconstructed better than γ times the real images (the discriminator
    should push them away harder) and shrinks in the opposite case.
    """
    balance = gamma * _float(loss_real) - _float(loss_fake)
    return tf.clip_by_value(_float(k) + lambda_k * balance, 0.0, 1.0)


def convergence_measure(loss_real, loss_fake, gamma):
    """M_global = L(x) + |γ·L(x) - L(G(z))|: falls as the real images are reconstructed well and the equilibrium
    holds."""
    loss_real = _float(loss_real)
    return loss_real + tf.abs(gamma * loss_real - _float(loss_fake))
