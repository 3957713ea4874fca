"""Adversarial losses as pure functions of discriminator outputs.

Every function returns a per-example loss of shape [batch] (logits of any rank are averaged over their non-batch
axes, so patch discriminators work unchanged). Trainers reduce these with the *global* batch size so that gradients
summed across `tf.distribute` replicas equal the single-device gradients; keeping the reduction out of the loss is
what makes that possible.

Naming follows TF-GAN: `<family>_generator_loss(fake_logits)` and
`<family>_discriminator_loss(real_logits, fake_logits)`.
"""
import dataclasses
from typing import Callable

import tensorflow as tf


def _per_example(values):
    """Mean over all but the batch axis; [B] stays [B]."""
    values = tf.convert_to_tensor(values)
    if values.shape.rank is not None and values.shape.rank <= 1:
        return values
    return tf.reduce_mean(tf.reshape(values, [tf.shape(values)[0], -1]), axis=1)


def _float(logits):
    # Losses are computed in float32 even when the networks run in mixed precision.
    return tf.cast(logits, tf.float32)


def minimax_discriminator_loss(real_logits, fake_logits, label_smoothing=0.0):
    """Goodfellow et al. 2014, with one-sided label smoothing (Salimans et al. 2016).

    L_D = -[(1 - s) log σ(D(x)) + s log(1 - σ(D(x)))] - log(1 - σ(D(G(z))))
        = (1 - s)·softplus(-D(x)) + s·softplus(D(x)) + softplus(D(G(z)))
    Only the real target is smoothed (1 → 1 - s); smoothing fake targets rewards samples away from the data.
    """
    real, fake = _float(real_logits), _float(fake_logits)
    real_term = (1.0 - label_smoothing) * tf.nn.softplus(-real) + label_smoothing * tf.nn.softplus(real)
    return _per_example(real_term) + _per_example(tf.nn.softplus(fake))


def minimax_generator_loss(fake_logits):
    """The original saturating generator loss: L_G = log(1 - σ(D(G(z)))) = -softplus(D(G(z)))."""
    return _per_example(-tf.nn.softplus(_float(fake_logits)))


def non_saturating_generator_loss(fake_logits):
    """Goodfellow et al. 2014, §3: L_G = -log σ(D(G(z))) = softplus(-D(G(z)))."""
    return _per_example(tf.nn.softplus(-_float(fake_logits)))


# The non-saturating game trains D exactly like the minimax one.
non_saturating_discriminator_loss = minimax_discriminator_loss


def hinge_discriminator_loss(real_logits, fake_logits):
    """Lim & Ye 2017 / Miyato et al. 2018: L_D = max(0, 1 - D(x)) + max(0, 1 + D(G(z)))."""
    return _per_example(tf.nn.relu(1.0 - _float(real_logits))) + _per_example(tf.nn.relu(1.0 + _float(fake_logits)))


def hinge_generator_loss(fake_logits):
    """L_G = -D(G(z))."""
    return _per_example(-_float(fake_logits))


def wasserstein_discriminator_loss(real_logits, fake_logits):
    """Arjovsky et al. 2017 (critic): L_D = D(G(z)) - D(x). Pair it with a Lipschitz constraint (gradient penalty)."""
    return _per_example(_float(fake_logits)) - _per_example(_float(real_logits))


def wasserstein_generator_loss(fake_logits):
    """L_G = -D(G(z))."""
    return _per_example(-_float(fake_logits))


def least_squares_discriminator_loss(real_logits, fake_logits):
    """Mao et al. 2017 (a=0, b=1): L_D = ½(D(x) - 1)² + ½D(G(z))²."""
    real, fake = _float(real_logits), _float(fake_logits)
    return _per_example(0.5 * tf.square(real - 1.0)) + _per_example(0.5 * tf.square(fake))


def least_squares_generator_loss(fake_logits):
    """Mao et al. 2017 (c=1): L_G = ½(D(G(z)) - 1)²."""
    return _per_example(0.5 * tf.square(_float(fake_logits) - 1.0))


@dataclasses.dataclass(frozen=True)
class AdversarialLoss:
    """A generator/discriminator loss pair. `needs_lipschitz` marks critics that need a gradient penalty."""

    name: str
    generator: Callable
    discriminator: Callable
    needs_lipschitz: bool = False


ADVERSARIAL_LOSSES = {
    "minimax": AdversarialLoss("minimax", minimax_generator_loss, minimax_discriminator_loss),
    "non_saturating": AdversarialLoss(
        "non_saturating", non_saturating_generator_loss, non_saturating_discriminator_loss
    ),
    "hinge": AdversarialLoss("hinge", hinge_generator_loss, hinge_discriminator_loss),
    "wasserstein": AdversarialLoss(
        "wasserstein", wasserstein_generator_loss, wasserstein_discriminator_loss, needs_lipschitz=True
    ),
    "least_squares": AdversarialLoss("least_squares", least_squares_generator_loss, least_squares_discriminator_loss),
}


def get_adversarial_loss(name):
    """Looks up a loss pair by name; unknown names are a clear error."""
    if name not in ADVERSARIAL_LOSSES:
        raise ValueError(f"Unknown adversarial loss; expected one of {sorted(ADVERSARIAL_LOSSES)}. Received: loss={name!r}")
    return ADVERSARIAL_LOSSES[name]
