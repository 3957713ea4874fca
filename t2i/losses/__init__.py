"""Losses as pure functions: per-example values, reduced by the trainers over the global batch."""
from t2i.losses.adversarial import ADVERSARIAL_LOSSES, AdversarialLoss, get_adversarial_loss  # noqa: F401
from t2i.losses.penalties import gradient_penalty, interpolate  # noqa: F401
