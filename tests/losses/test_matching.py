"""Text-GAN losses: CA's KL term, the matching-aware discriminator loss, GAN-INT mixing and mismatched partners."""
import math

import numpy as np
import pytest
import tensorflow as tf

from t2i.losses import adversarial
from t2i.losses.matching import (interpolated_embeddings, kl_divergence, matching_aware_discriminator_loss,
                                 mismatched_indices)

# The TF-GAN test logits for the real/right and fake/right pairs, and real/wrong logits of our own.
REAL = np.array([-5.0, 1.4, 12.5, 2.7], np.float32)
FAKE = np.array([10.0, 4.4, -5.5, 3.6], np.float32)
WRONG = np.array([3.0, -2.0, 0.5, -8.0], np.float32)

# L_real(r) + ½(L_fake(w) + L_fake(f)); e.g. minimax row 0: softplus(5) + ½(softplus(3) + softplus(10))
# = 5.0067153 + ½(3.0485874 + 10.0000454).
EXPECTED = {
    "minimax": [11.531031723725597, 2.4899827077437853, 0.4890814403715668, 1.8786898114671426],
    # relu(1 - r) + ½(relu(1 + w) + relu(1 + f)): 6 + ½(4 + 11), 0 + ½(0 + 5.4), 0 + ½(1.5 + 0), 0 + ½(0 + 4.6)
    "hinge": [13.5, 2.7, 0.75, 2.3],
    # -r + ½(w + f): 5 + ½·13, -1.4 + ½·2.4, -12.5 + ½·(-5), -2.7 + ½·(-4.4)
    "wasserstein": [11.5, -0.2, -15.0, -4.9],
    # ½(r - 1)² + ½(½w² + ½f²): 18 + ¼(9 + 100), ...
    "least_squares": [45.25, 5.92, 73.75, 20.685],
}


def test_kl_divergence_matches_hand_values():
    # -log σ + (σ² + μ² - 1)/2 per element:
    # (μ=0, σ=1) → 0; (μ=1, σ=2) → -ln 2 + 2; (μ=½, σ=½) → ln 2 - ¼; (μ=-1, σ=1) → ½.
    mean = np.array([[0.0, 1.0], [0.5, -1.0]], np.float32)
    log_sigma = np.array([[0.0, math.log(2.0)], [-math.log(2.0), 0.0]], np.float32)
    ln2 = math.log(2.0)
    np.testing.assert_allclose(kl_divergence(mean, log_sigma, reduction="sum_over_dims").numpy(),
                               [2.0 - ln2, ln2 + 0.25], rtol=1e-6)
    per_example = kl_divergence(mean, log_sigma).numpy()
    np.testing.assert_allclose(per_example, [(2.0 - ln2) / 2, (ln2 + 0.25) / 2], rtol=1e-6)
    # The batch mean (what the trainer takes) is the mean over all elements, as in both official StackGANs:
    # (0 + 2 - ln 2 + ln 2 - ¼ + ½) / 4.
    assert per_example.mean() == pytest.approx(2.25 / 4, rel=1e-6)


def test_kl_divergence_agrees_with_numerical_integration():
    # KL(q ‖ p) = ∫ q log(q / p) for one dimension, on a fine grid: an independent check of the closed form.
    mu, sigma = 0.7, 0.4
    x = np.linspace(-10, 10, 400001)
    log_q = -0.5 * ((x - mu) / sigma) ** 2 - np.log(sigma * np.sqrt(2 * np.pi))
    log_p = -0.5 * x**2 - np.log(np.sqrt(2 * np.pi))
    numeric = np.sum(np.exp(log_q) * (log_q - log_p)) * (x[1] - x[0])
    closed = kl_divergence([[mu]], [[math.log(sigma)]]).numpy()[0]
    assert closed == pytest.approx(numeric, rel=1e-5)


def test_kl_divergence_rejects_unknown_reductions():
    with pytest.raises(ValueError, match="Received: reduction='sum'"):
        kl_divergence([[0.0]], [[0.0]], reduction="sum")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_matching_aware_loss_matches_hand_values(name):
    loss = matching_aware_discriminator_loss(REAL, WRONG, FAKE, loss=name)
    np.testing.assert_allclose(loss.numpy(), EXPECTED[name], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(adversarial.ADVERSARIAL_LOSSES))
def test_matching_aware_loss_reduces_to_the_plain_loss_when_wrong_equals_fake(name):
    # With D(x, t̂) = D(G(z), t) the ½ + ½ split collapses to L_real + L_fake, the family's own D loss.
    expected = adversarial.get_adversarial_loss(name).discriminator(REAL, FAKE)
    loss = matching_aware_discriminator_loss(REAL, FAKE, FAKE, loss=name)
    np.testing.assert_allclose(loss.numpy(), expected.numpy(), rtol=1e-6, atol=1e-6)


def test_wrong_mask_excludes_rows_from_the_real_wrong_mean():
    mask = np.array([1, 1, 0, 1], np.float32)
    loss = matching_aware_discriminator_loss(REAL, WRONG, FAKE, loss="hinge", wrong_mask=mask).numpy()
    # relu(1 + w) = [4, 0, 1.5, 0]; row 2 is dropped and the rest scaled by 4/3 so their mean is the valid mean.
    np.testing.assert_allclose(loss, [6 + 0.5 * (16 / 3 + 11), 2.7, 0.0, 2.3], rtol=1e-6)
    # Batch mean = mean L_real + ½(mean of L_fake(w) over valid rows + mean L_fake(f)) = 1.5 + ½(4/3 + 5.25).
    assert loss.mean() == pytest.approx(1.5 + 0.5 * (4 / 3 + 5.25), rel=1e-6)
    # A masked row's wrong logit no longer matters.
    changed = WRONG.copy()
    changed[2] = 100.0
    again = matching_aware_discriminator_loss(REAL, changed, FAKE, loss="hinge", wrong_mask=mask.astype(bool))
    np.testing.assert_allclose(again.numpy(), loss, rtol=1e-6)


def test_all_rows_masked_drops_the_wrong_term():
    loss = matching_aware_discriminator_loss(REAL, WRONG, FAKE, loss="wasserstein", wrong_mask=np.zeros(4))
    np.testing.assert_allclose(loss.numpy(), -REAL + 0.5 * FAKE, rtol=1e-6)


def test_matching_aware_loss_rejects_unknown_families():
    with pytest.raises(ValueError, match="Received: loss='bogus'"):
        matching_aware_discriminator_loss(REAL, WRONG, FAKE, loss="bogus")


def test_interpolated_embeddings():
    first = np.array([[1.0, 2.0], [0.0, 4.0]], np.float32)
    second = np.array([[3.0, -2.0], [2.0, 0.0]], np.float32)
    np.testing.assert_allclose(interpolated_embeddings(first, second).numpy(), [[2.0, 0.0], [1.0, 2.0]])
    np.testing.assert_allclose(interpolated_embeddings(first, second, beta=0.25).numpy(),
                               [[2.5, -1.0], [1.5, 1.0]])
    # One β per example.
    np.testing.assert_allclose(interpolated_embeddings(first, second, beta=[[1.0], [0.0]]).numpy(),
                               [[1.0, 2.0], [2.0, 0.0]])


def _check_partners(class_ids, indices, valid):
    size = len(class_ids)
    for i in range(size):
        has_partner = any(j != i and (class_ids[i] < 0 or class_ids[j] < 0 or class_ids[j] != class_ids[i])
                          for j in range(size))
        assert valid[i] == has_partner, (class_ids, i)
        if valid[i]:
            j = indices[i]
            assert j != i and (class_ids[i] < 0 or class_ids[j] < 0 or class_ids[j] != class_ids[i]), (class_ids, i)
        else:
            assert indices[i] == (i + 1) % size


def test_mismatched_partners_never_share_a_class():
    rng = np.random.default_rng(0)
    find = tf.function(mismatched_indices)
    for step in range(60):
        # Few classes, so same-class rows and rows with no partner both occur.
        class_ids = rng.integers(0, 3 if step % 3 else 1, size=int(rng.integers(2, 9))).astype(np.int32)
        if step % 5 == 0:
            class_ids[rng.integers(len(class_ids))] = -1
        indices, valid = find(class_ids, tf.constant([step, 7]))
        assert indices.dtype == tf.int32 and valid.dtype == tf.bool
        _check_partners(class_ids, indices.numpy(), valid.numpy())


def test_mismatched_partners_are_drawn_among_all_candidates():
    class_ids = np.array([0, 0, 1, 1, 2], np.int32)
    seen = {mismatched_indices(class_ids, tf.constant([seed, 0]))[0].numpy()[0] for seed in range(40)}
    assert seen == {2, 3, 4}
    same = [mismatched_indices(class_ids, tf.constant([3, 1]))[0].numpy() for _ in range(2)]
    np.testing.assert_array_equal(same[0], same[1])


def test_a_single_class_batch_has_no_valid_partner():
    indices, valid = mismatched_indices(np.full(4, 5), tf.constant([1, 2]))
    np.testing.assert_array_equal(indices.numpy(), [1, 2, 3, 0])
    assert not valid.numpy().any()


def test_without_classes_partners_are_the_shifted_batch():
    for indices, valid in (mismatched_indices(None, tf.constant([1, 2]), batch_size=4),
                           mismatched_indices(np.full(4, -1), tf.constant([1, 2]))):
        np.testing.assert_array_equal(indices.numpy(), [1, 2, 3, 0])
        assert valid.numpy().all()
    indices, valid = mismatched_indices(None, tf.constant([1, 2]), batch_size=1)
    assert indices.numpy().tolist() == [0] and not valid.numpy().any()
    with pytest.raises(ValueError, match="Received: batch_size=None"):
        mismatched_indices(None, tf.constant([1, 2]))


def test_mismatched_indices_in_a_graph_and_a_replica_context():
    class_ids = np.array([0, 1, 1, 2, 0, 2], np.int32)
    seed = tf.constant([11, 3])
    eager = mismatched_indices(class_ids, seed)
    graph = tf.function(mismatched_indices, input_signature=[tf.TensorSpec([None], tf.int32),
                                                             tf.TensorSpec([2], tf.int32)])
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    replica = strategy.run(tf.function(mismatched_indices), args=(tf.constant(class_ids), seed))
    for indices, valid in (graph(class_ids, seed), replica):
        np.testing.assert_array_equal(indices.numpy(), eager[0].numpy())
        np.testing.assert_array_equal(valid.numpy(), eager[1].numpy())
