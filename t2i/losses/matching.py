"""Losses of text-conditioned GANs: the Conditioning Augmentation KL term and the matching-aware discriminator.

GAN-CLS (Reed et al. 2016, §4.2) shows the discriminator three kinds of pairs — real image with its caption, real
image with a mismatched caption, fake image with its caption — so it must judge whether image and text match, not
only whether the image looks real. GAN-INT (§4.3) also trains the generator on interpolations of caption
embeddings, which need no image. StackGAN (Zhang et al. 2017) uses the same matching-aware discriminator.

Every function returning a loss returns per-example values, shape [batch], reduced by the trainer over the global
batch like `t2i.losses.adversarial`.
"""
import tensorflow as tf

from t2i.losses import adversarial

KL_REDUCTIONS = ("mean", "sum_over_dims")

# Per-side terms (L_real, L_fake) of each family in `adversarial.ADVERSARIAL_LOSSES`:
# family_discriminator_loss(r, f) = L_real(r) + L_fake(f) for all of them (checked in the tests).
_SIDE_TERMS = {
    "minimax": (lambda x: tf.nn.softplus(-x), tf.nn.softplus),
    "non_saturating": (lambda x: tf.nn.softplus(-x), tf.nn.softplus),
    "hinge": (lambda x: tf.nn.relu(1.0 - x), lambda x: tf.nn.relu(1.0 + x)),
    "wasserstein": (lambda x: -x, lambda x: x),
    "least_squares": (lambda x: 0.5 * tf.square(x - 1.0), lambda x: 0.5 * tf.square(x)),
}


def kl_divergence(mean, log_sigma, reduction="mean"):
    """KL(N(μ, σ²) ‖ N(0, I)) of the Conditioning Augmentation Gaussian, per example.

        KL_k = -log σ_k + (σ_k² + μ_k² - 1) / 2        for each dimension k

    reduction="mean" averages over the dimensions; the trainer's mean over the batch then gives the mean over all
    elements, exactly the value both official StackGAN implementations use (TF: `tf.reduce_mean` of the element
    terms; PyTorch: `torch.mean(...)`, written with log σ² instead of log σ). reduction="sum_over_dims" sums over the
    dimensions, the true KL of the diagonal Gaussian. StackGAN weights the term by λ = 2 (Zhang et al. 2017, §3.1).

    Args:
        mean, log_sigma: [B, units], as returned by `ConditioningAugmentation.statistics`.
        reduction: "mean" or "sum_over_dims".
    Returns: [B] float32.
    """
    if reduction not in KL_REDUCTIONS:
        raise ValueError(f"Unknown KL reduction; expected one of {KL_REDUCTIONS}. Received: reduction={reduction!r}")
    mean = tf.cast(mean, tf.float32)
    log_sigma = tf.cast(log_sigma, tf.float32)
    elements = -log_sigma + 0.5 * (tf.exp(2.0 * log_sigma) + tf.square(mean) - 1.0)
    elements = tf.reshape(elements, [tf.shape(elements)[0], -1])
    if reduction == "mean":
        return tf.reduce_mean(elements, axis=1)
    return tf.reduce_sum(elements, axis=1)


def _side_terms(loss):
    if loss not in _SIDE_TERMS:
        raise ValueError(f"Unknown adversarial loss for the matching-aware discriminator; expected one of "
                         f"{sorted(_SIDE_TERMS)}. Received: loss={loss!r}")
    return _SIDE_TERMS[loss]


def matching_aware_discriminator_loss(real_right_logits, real_wrong_logits, fake_right_logits, loss="minimax",
                                      wrong_mask=None):
    """GAN-CLS discriminator loss (Reed et al. 2016, Alg. 1; StackGAN's discriminator loss), per example.

        L_D = L_real(D(x, t)) + ½·[L_fake(D(x, t̂)) + L_fake(D(G(z, t), t))]

    with t the image's caption, t̂ a mismatched one, and (L_real, L_fake) the two terms of the chosen family's
    discriminator loss: minimax / non_saturating softplus(-l) / softplus(l) (sigmoid cross-entropy to 1 / 0),
    hinge relu(1 - l) / relu(1 + l), wasserstein -l / l, least_squares ½(l - 1)² / ½l².

    `wrong_mask` [B] (1 where row i has a valid mismatched partner, see `mismatched_indices`) removes the other rows
    from the real/wrong term: that term of row i is scaled by B·m_i / Σm, so the batch mean of the result holds
    the mean of L_fake(D(x, t̂)) over the valid rows only (zero when there are none). Under a `tf.distribute`
    strategy the count Σm is the replica's own.

    Args:
        real_right_logits, real_wrong_logits, fake_right_logits: D's logits, [B] or [B, ...] (averaged per example).
        loss: a family name of `t2i.losses.adversarial.ADVERSARIAL_LOSSES`.
        wrong_mask: optional [B] of 0/1 (or bool).
    Returns: [B] float32.
    """
    real_term, fake_term = _side_terms(loss)
    real_right = adversarial._per_example(real_term(adversarial._float(real_right_logits)))
    real_wrong = adversarial._per_example(fake_term(adversarial._float(real_wrong_logits)))
    fake_right = adversarial._per_example(fake_term(adversarial._float(fake_right_logits)))
    if wrong_mask is not None:
        mask = tf.cast(tf.reshape(wrong_mask, [-1]), tf.float32)
        batch = tf.cast(tf.size(mask), tf.float32)
        real_wrong = real_wrong * tf.math.divide_no_nan(batch * mask, tf.reduce_sum(mask))
    return real_right + 0.5 * (real_wrong + fake_right)


def interpolated_embeddings(first, second, beta=0.5):
    """GAN-INT: β·e₁ + (1 - β)·e₂ (Reed et al. 2016, §4.3, who fix β = 0.5).

    The generator is trained to fool the discriminator on images for these in-between embeddings, which fill the
    text manifold between training captions. `beta` is a scalar or anything broadcastable to the embeddings, e.g.
    [B, 1] for one β per example.
    """
    first = tf.convert_to_tensor(first)
    second = tf.cast(second, first.dtype)
    beta = tf.cast(beta, first.dtype)
    return beta * first + (1.0 - beta) * second


def mismatched_indices(class_ids, seed, batch_size=None):
    """A mismatched partner for every row of a batch, for the real-image/wrong-caption pairs of GAN-CLS.

    With class ids, row i gets a partner j ≠ i of another class, drawn uniformly among the batch's rows of other
    classes with stateless random ops from `seed`. A class id of -1 means unknown: such a row counts as differing
    from every other row. Rows with no partner in the batch (all rows of one class) get valid=False and the index
    (i + 1) mod B; mask them out of the loss (`matching_aware_discriminator_loss(..., wrong_mask=valid)`).

    Without class ids (None, or all -1) the partners are the shifted batch (i + 1) mod B, all valid when B ≥ 2.

    Pure TF ops: works eagerly, inside a `tf.function` and in a `tf.distribute` replica context.

    Args:
        class_ids: int [B], or None (then `batch_size` is required).
        seed: int [2], e.g. from `tf.random.experimental.stateless_split`; the same seed gives the same partners.
        batch_size: B when `class_ids` is None.
    Returns: (indices int32 [B], valid bool [B]).
    """
    if class_ids is None:
        if batch_size is None:
            raise ValueError("mismatched_indices needs batch_size when class_ids is None. Received: batch_size=None")
        size = tf.convert_to_tensor(batch_size, tf.int32)
        return _shifted(size), tf.fill([size], size >= 2)

    class_ids = tf.reshape(tf.cast(class_ids, tf.int32), [-1])
    size = tf.shape(class_ids)[0]
    known = class_ids >= 0
    same_class = tf.equal(class_ids[:, None], class_ids[None, :]) & known[:, None] & known[None, :]
    allowed = ~same_class & ~tf.eye(size, dtype=tf.bool)
    # A uniform choice among the allowed partners: the largest of i.i.d. uniform scores over the allowed entries.
    scores = tf.random.stateless_uniform([size, size], seed=seed, minval=1.0, maxval=2.0)
    scores = tf.where(allowed, scores, tf.zeros_like(scores))
    valid = tf.reduce_any(allowed, axis=1)
    chosen = tf.where(valid, tf.argmax(scores, axis=1, output_type=tf.int32), _shifted(size))

    no_classes = tf.reduce_all(~known)
    indices = tf.where(no_classes, _shifted(size), chosen)
    valid = tf.where(no_classes, tf.fill([size], size >= 2), valid)
    return indices, valid


def _shifted(size):
    return tf.math.floormod(tf.range(size) + 1, tf.maximum(size, 1))
