"""BEGAN losses and equilibrium controller against values computed by hand."""
import numpy as np
import pytest
import tensorflow as tf

from t2i.losses import began

# Per-example L(x) and L(G(z)) shared by the tests below.
LOSS_REAL = np.array([0.4, 0.2, 0.1], np.float32)
LOSS_FAKE = np.array([0.1, 0.3, 0.05], np.float32)


def test_reconstruction_loss_is_a_per_example_mean_absolute_error():
    images = np.array([[[[1.0], [-1.0]], [[0.5], [0.0]]],
                       [[[0.0], [0.0]], [[0.0], [0.0]]]], np.float32)  # [2, 2, 2, 1]
    reconstructions = np.array([[[[0.5], [-1.0]], [[-0.5], [0.25]]],
                                [[[0.0], [0.0]], [[0.0], [-2.0]]]], np.float32)
    loss = began.reconstruction_loss(images, reconstructions)
    # (|0.5| + |0| + |1| + |-0.25|) / 4 = 0.4375; (0 + 0 + 0 + 2) / 4 = 0.5
    np.testing.assert_allclose(loss.numpy(), [0.4375, 0.5], rtol=1e-6)


def test_reconstruction_loss_is_float32_for_half_precision_inputs():
    images = tf.constant(np.ones((2, 4, 4, 3)), tf.float16)
    loss = began.reconstruction_loss(images, tf.zeros_like(images))
    assert loss.dtype == tf.float32
    np.testing.assert_allclose(loss.numpy(), [1.0, 1.0])


def test_discriminator_loss_subtracts_k_times_the_fake_loss():
    loss = began.discriminator_loss(LOSS_REAL, LOSS_FAKE, k=0.5)
    # 0.4 - 0.5·0.1 = 0.35; 0.2 - 0.5·0.3 = 0.05; 0.1 - 0.5·0.05 = 0.075
    np.testing.assert_allclose(loss.numpy(), [0.35, 0.05, 0.075], rtol=1e-6)
    # k = 0 (the paper's k_0): D only learns to reconstruct real images.
    np.testing.assert_allclose(began.discriminator_loss(LOSS_REAL, LOSS_FAKE, k=0.0).numpy(), LOSS_REAL)


def test_equilibrium_update_steps_k_by_lambda_times_the_balance():
    # γ = 0.5: balance = 0.5·0.4 - 0.1 = 0.1 > 0 → k rises by λ_k·0.1 = 0.01.
    k = began.equilibrium_update(0.3, loss_real=0.4, loss_fake=0.1, gamma=0.5, lambda_k=0.1)
    assert float(k) == pytest.approx(0.31, abs=1e-7)
    # balance = 0.5·0.2 - 0.3 = -0.2 < 0 → k falls by 0.1·0.2 = 0.02.
    k = began.equilibrium_update(0.3, loss_real=0.2, loss_fake=0.3, gamma=0.5, lambda_k=0.1)
    assert float(k) == pytest.approx(0.28, abs=1e-7)
    # Elementwise over per-example values, λ_k = 1: balances 0.1, -0.2 and 0.5·0.1 - 0.05 = 0 (at equilibrium).
    k = began.equilibrium_update(0.5, LOSS_REAL, LOSS_FAKE, gamma=0.5, lambda_k=1.0)
    np.testing.assert_allclose(k.numpy(), [0.6, 0.3, 0.5], rtol=1e-6)


def test_equilibrium_update_clips_k_to_the_unit_interval():
    # 0.95 + 1·(1.0·0.4 - 0.1) = 1.25 → 1
    assert float(began.equilibrium_update(0.95, 0.4, 0.1, gamma=1.0, lambda_k=1.0)) == 1.0
    # 0.05 + 1·(0.5·0.2 - 0.3) = -0.15 → 0
    assert float(began.equilibrium_update(0.05, 0.2, 0.3, gamma=0.5, lambda_k=1.0)) == 0.0
    # Already at a bound and pushed further: stays there.
    assert float(began.equilibrium_update(1.0, 0.4, 0.0, gamma=1.0, lambda_k=0.001)) == 1.0
    assert float(began.equilibrium_update(0.0, 0.0, 0.4, gamma=1.0, lambda_k=0.001)) == 0.0


def test_equilibrium_update_accepts_a_variable():
    k = tf.Variable(0.2, trainable=False)
    k.assign(began.equilibrium_update(k, 0.4, 0.1, gamma=0.5, lambda_k=0.1))
    # 0.2 + 0.1·(0.2 - 0.1) = 0.21
    assert float(k.numpy()) == pytest.approx(0.21, abs=1e-7)


def test_convergence_measure():
    measure = began.convergence_measure(LOSS_REAL, LOSS_FAKE, gamma=0.5)
    # 0.4 + |0.2 - 0.1| = 0.5; 0.2 + |0.1 - 0.3| = 0.4; 0.1 + |0.05 - 0.05| = 0.1
    np.testing.assert_allclose(measure.numpy(), [0.5, 0.4, 0.1], rtol=1e-6)
