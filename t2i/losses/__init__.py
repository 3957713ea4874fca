"""Losses as pure functions: per-example values, reduced by the trainers over the global batch."""
from t2i.losses.adversarial import ADVERSARIAL_LOSSES, AdversarialLoss, get_adversarial_loss  # noqa: F401
from t2i.losses.matching import (interpolated_embeddings, kl_divergence,  # noqa: F401
                                 matching_aware_discriminator_loss, mismatched_indices)
from t2i.losses.penalties import gradient_penalty, interpolate  # noqa: F401
