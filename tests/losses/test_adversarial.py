"""Each adversarial loss against values computed by hand from the TF-GAN test logits."""
import numpy as np
import pytest
import tensorflow as tf

from t2i.losses import adversarial

REAL = np.array([-5.0, 1.4, 12.5, 2.7], np.float32)
FAKE = np.array([10.0, 4.4, -5.5, 3.6], np.float32)

# softplus(x) = log(1 + e^x); e.g. minimax D for the first pair: softplus(5) + softplus(10) = 5.00672 + 10.00005.
EXPECTED_DISCRIMINATOR = {
    "minimax": [15.006760747388336, 4.632619994526147, 0.004082169916798844, 3.692000654784799],
    "non_saturating": [15.006760747388336, 4.632619994526147, 0.004082169916798844, 3.692000654784799],
    # max(0, 1 - r) + max(0, 1 + f): (6 + 11), (0 + 5.4), (0 + 0), (0 + 4.6)
    "hinge": [17.0, 5.4, 0.0, 4.6],
    # f - r
    "wasserstein": [15.0, 3.0, -18.0, 0.9],
    # ½(r - 1)² + ½f²: ½·36 + ½·100 = 68, ...
    "least_squares": [68.0, 9.76, 81.25, 7.925],
}
EXPECTED_GENERATOR = {
    "minimax": [-10.000045398899218, -4.412202584607696, -0.0040784432705707205, -3.6269570930082082],
    "non_saturating": [4.539889921686465e-05, 0.012202584607696094, 5.50407844327057, 0.026957093008208057],
    "hinge": [-10.0, -4.4, 5.5, -3.6],
    "wasserstein": [-10.0, -4.4, 5.5, -3.6],
    "least_squares": [40.5, 5.78, 21.125, 3.38],
}


@pytest.mark.parametrize("name", sorted(EXPECTED_DISCRIMINATOR))
def test_discriminator_loss_matches_hand_values(name):
    loss = adversarial.get_adversarial_loss(name).discriminator(REAL, FAKE)
    np.testing.assert_allclose(loss.numpy(), EXPECTED_DISCRIMINATOR[name], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(EXPECTED_GENERATOR))
def test_generator_loss_matches_hand_values(name):
    loss = adversarial.get_adversarial_loss(name).generator(FAKE)
    np.testing.assert_allclose(loss.numpy(), EXPECTED_GENERATOR[name], rtol=1e-5, atol=1e-6)


def test_one_sided_label_smoothing_only_moves_the_real_target():
    # (1 - s)·softplus(-r) + s·softplus(r) + softplus(f), s = 0.1
    expected = [14.506760747388336, 4.772619994526147, 1.254082169916799, 3.962000654784799]
    loss = adversarial.minimax_discriminator_loss(REAL, FAKE, label_smoothing=0.1)
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-5)
    # With all-fake inputs the smoothing changes nothing: the fake target stays 0.
    np.testing.assert_allclose(
        adversarial.minimax_discriminator_loss(np.full(4, -50.0), FAKE, label_smoothing=0.1).numpy()
        - adversarial.minimax_discriminator_loss(np.full(4, -50.0), FAKE).numpy(),
        np.full(4, -0.1 * 50.0),
        rtol=1e-4,
    )


def test_patch_logits_are_averaged_per_example():
    patches = tf.reshape(tf.constant(np.repeat(FAKE, 4)), [4, 2, 2, 1])
    np.testing.assert_allclose(
        adversarial.hinge_generator_loss(patches).numpy(), adversarial.hinge_generator_loss(FAKE).numpy()
    )


def test_unknown_loss_is_a_clear_error():
    with pytest.raises(ValueError, match="Received: loss='bogus'"):
        adversarial.get_adversarial_loss("bogus")
