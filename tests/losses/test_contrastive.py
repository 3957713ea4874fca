"""The symmetric text–image contrastive loss against hand values and a numpy reference."""
import numpy as np
import pytest
import tensorflow as tf

from t2i.losses.contrastive import symmetric_contrastive_loss


def _reference(text, image, scale, groups):
    text = text / np.linalg.norm(text, axis=1, keepdims=True)
    image = image / np.linalg.norm(image, axis=1, keepdims=True)
    logits = scale * text @ image.T
    matches = (groups[:, None] == groups[None, :]).astype(np.float64)

    def cross_entropy(logits, targets):
        log_softmax = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True)) \
            - logits.max(1, keepdims=True)
        return -(targets / targets.sum(1, keepdims=True) * log_softmax).sum(1).mean()

    return 0.5 * (cross_entropy(logits, matches) + cross_entropy(logits.T, matches.T))


def test_orthogonal_pairs_at_unit_scale():
    # cos = 1 on the diagonal, 0 off it: each row is -log(e / (e + 1)) = log(1 + 1/e) in both directions.
    eye = tf.eye(2)
    value = float(symmetric_contrastive_loss(eye, 3.0 * eye, 1.0))
    assert value == pytest.approx(np.log(1 + np.exp(-1.0)), rel=1e-6)


def test_matches_the_numpy_reference_with_shared_images():
    rng = np.random.default_rng(0)
    text, image = rng.standard_normal((6, 5)), rng.standard_normal((6, 5))
    groups = np.array([0, 1, 1, 2, 3, 3])  # rows 1, 2 (and 4, 5) are captions of one image
    value = float(symmetric_contrastive_loss(text.astype(np.float32), image.astype(np.float32), 7.0, groups))
    assert value == pytest.approx(_reference(text, image, 7.0, groups), rel=1e-5)
    # Without groups only the diagonal matches.
    diagonal = float(symmetric_contrastive_loss(text.astype(np.float32), image.astype(np.float32), 7.0))
    assert diagonal == pytest.approx(_reference(text, image, 7.0, np.arange(6)), rel=1e-5)


def test_captions_of_one_image_share_the_target_and_sit_at_its_optimum():
    # Two captions of image 0 (rows 0, 1) and a caption of image 1: the targets of rows 0 and 1 are ½, ½ over the two
    # copies of image 0, so at a large scale each costs log 2 (the targets' own entropy, the floor) and row 2 nothing.
    text = tf.constant([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    image = tf.constant([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    grouped = float(symmetric_contrastive_loss(text, image, 50.0, groups=tf.constant([0, 0, 1])))
    assert grouped == pytest.approx(2 * np.log(2.0) / 3, abs=1e-4)
    with tf.GradientTape() as tape:
        tape.watch(text)
        loss = symmetric_contrastive_loss(text, image, 50.0, groups=tf.constant([0, 0, 1]))
    assert np.allclose(tape.gradient(loss, text).numpy(), 0.0, atol=1e-6)
