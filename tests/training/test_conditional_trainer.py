"""cGAN / AC-GAN / conditional WGAN-GP trainers: conditions reach both networks, the auxiliary loss is exact."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from t2i.losses.auxiliary import multilabel_classification_loss
from t2i.models.acgan import ConditionalDiscriminator, ConditionalGenerator
from t2i.models.wgan_gp import WGANGPCritic
from t2i.training.conditional import ACGANTrainer, ConditionalGANTrainer

SMALL = dict(image_size=32, base_filters=4, max_filters=16)


def _labels(batch=4, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.zeros((batch, 24), "float32")
    for row in labels:
        row[rng.choice(24, rng.integers(1, 4), replace=False)] = 1.0
    return labels


def _batch():
    images = tf.random.stateless_uniform([4, 32, 32, 3], seed=[1, 2], minval=-1, maxval=1)
    return {"image": images, "label": tf.constant(_labels())}


def _generator():
    return ConditionalGenerator(noise_dim=8, condition_dim=8, **SMALL)


def _build(cls, discriminator, **kwargs):
    keras.utils.set_random_seed(0)
    trainer = cls(_generator(), discriminator, num_samples=4, **kwargs)
    trainer.compile(keras.optimizers.Adam(1e-3, beta_1=0.5), keras.optimizers.Adam(1e-3, beta_1=0.5))
    return trainer


def _snapshot(model):
    return [v.numpy().copy() for v in model.trainable_variables]


def _all_changed(before, model, except_paths=()):
    return all(not np.allclose(a, b.numpy()) for a, b in zip(before, model.trainable_variables)
               if b.path not in except_paths)


@pytest.mark.parametrize("kind", ["cgan", "acgan", "wgan_gp"])
def test_one_step_changes_both_networks_with_finite_losses(kind):
    if kind == "wgan_gp":
        trainer = _build(ConditionalGANTrainer, WGANGPCritic(num_labels=24, **SMALL), adversarial_loss="wasserstein",
                         gradient_penalty_weight=10.0)
    else:
        trainer = _build(ACGANTrainer if kind == "acgan" else ConditionalGANTrainer,
                         ConditionalDiscriminator(auxiliary=kind == "acgan", **SMALL), label_smoothing=0.1)
    g_before, d_before = _snapshot(trainer.generator), _snapshot(trainer.discriminator)
    logs = trainer.train_step(_batch())
    assert _all_changed(g_before, trainer.generator)
    # The Wasserstein loss is a difference of mean scores: the critic's output bias cancels and gets no gradient.
    constant = ("logit_conv/bias",) if kind == "wgan_gp" else ()
    assert _all_changed(d_before, trainer.discriminator, except_paths=constant)
    assert all(np.isfinite(float(value)) for value in logs.values())
    if kind == "acgan":
        assert {"d_aux_loss", "g_aux_loss"} <= set(logs)
    if kind == "wgan_gp":
        assert float(logs["gradient_penalty"]) > 0


def test_the_generator_is_called_with_the_batch_labels():
    trainer = _build(ConditionalGANTrainer, ConditionalDiscriminator(**SMALL))
    batch = _batch()
    inputs = trainer.generator_inputs(batch, tf.zeros([4, 8]))
    np.testing.assert_array_equal(inputs["labels"].numpy(), batch["label"].numpy())
    assert set(inputs) == {"noise", "labels"}


def test_mode_seeking_pairs_fakes_of_one_condition():
    trainer = _build(ACGANTrainer, ConditionalDiscriminator(auxiliary=True, **SMALL), mode_seeking_weight=1.0)
    batch = dict(_batch(), class_id=tf.constant([7, 8, 9, 10]))
    paired = trainer.fake_condition_batch(batch)
    # Rows 0, 1 then 0, 1 again: fakes i and i + 2 share labels (and every other condition), the images stay real.
    np.testing.assert_array_equal(paired["label"].numpy(), batch["label"].numpy()[[0, 1, 0, 1]])
    np.testing.assert_array_equal(paired["class_id"].numpy(), [7, 8, 7, 8])
    assert paired["image"] is batch["image"]
    odd = trainer.fake_condition_batch({"image": tf.zeros([5, 32, 32, 3]), "label": tf.constant(_labels(5))})
    np.testing.assert_array_equal(odd["label"].numpy(), _labels(5)[[0, 1, 0, 1, 2]])
    # Without the term the batch is used as it is.
    plain = _build(ACGANTrainer, ConditionalDiscriminator(auxiliary=True, **SMALL))
    assert plain.fake_condition_batch(batch) is batch and "mode_seeking" not in plain.train_step(_batch())


def test_mode_seeking_term_is_added_to_the_generator_loss_with_its_weight():
    for weight in (0.0, 5.0):
        trainer = _build(ACGANTrainer, ConditionalDiscriminator(auxiliary=True, **SMALL), mode_seeking_weight=weight)
        batch = trainer.fake_condition_batch(_batch())
        noise = tf.random.stateless_normal([4, 8], seed=[3, 4])
        fake = trainer.generator(trainer.generator_inputs(batch, noise), training=True)
        expected = 1.0 / (np.mean(np.abs(fake[:2] - fake[2:])) / np.mean(np.abs(noise[:2] - noise[2:])) + 1e-5)
        assert float(trainer.mode_seeking_term(fake, noise)) == pytest.approx(expected, rel=1e-5)
        loss, mean_per_example, extras = trainer._generator_loss(batch, fake, noise)
        assert float(loss) == pytest.approx(float(mean_per_example) + weight * expected, rel=1e-5)
        assert ("mode_seeking" in extras) == (weight > 0)
        logs = trainer.train_step(_batch())
        assert ("mode_seeking" in logs) == (weight > 0)
        if weight:
            assert 0 < float(logs["mode_seeking"]) < 1 / 1e-5


@pytest.mark.parametrize("aux_fake_weight", [1.0, 0.0])
def test_acgan_first_step_losses_match_a_manual_computation(aux_fake_weight):
    """d_loss = BCE adversarial + w·(aux BCE on real + w_fake·aux BCE on fake), from the same weights and noise; the
    AC-GAN discriminator sees the image alone."""
    discriminator = ConditionalDiscriminator(auxiliary=True, condition_input=False, **SMALL)
    trainer = _build(ACGANTrainer, discriminator, aux_weight=2.0, aux_fake_weight=aux_fake_weight)
    batch = _batch()
    tf.random.set_seed(7)
    noise = trainer.sample_noise(4)
    fake = trainer.generator({"noise": noise, "labels": batch["label"]}, training=True)
    real_out = trainer.discriminator(batch["image"], training=True)
    fake_out = trainer.discriminator(fake, training=True)
    sp = lambda x: np.log1p(np.exp(x))  # noqa: E731 — softplus, for -log σ(x) = softplus(-x)
    adversarial = np.mean(sp(-real_out["logits"].numpy()) + sp(fake_out["logits"].numpy()))
    labels = batch["label"].numpy()
    sigmoid = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    bce = lambda logits: -np.mean(labels * np.log(sigmoid(logits)) + (1 - labels) * np.log(1 - sigmoid(logits)),
                                  axis=-1)  # noqa: E731
    aux_real, aux_fake = bce(real_out["aux_logits"].numpy()), bce(fake_out["aux_logits"].numpy())
    expected_d = adversarial + 2.0 * np.mean(aux_real + aux_fake_weight * aux_fake)

    assert trainer.discriminate(batch["image"], batch)["aux_logits"].shape == (4, 24)
    per_example, extras = trainer.discriminator_objective(batch, batch, real_out, fake_out)
    assert float(tf.reduce_mean(per_example)) == pytest.approx(expected_d, rel=1e-5)
    assert float(extras["d_aux_loss"]) == pytest.approx(np.mean(aux_real + aux_fake_weight * aux_fake), rel=1e-5)
    g_per_example, g_extras = trainer.generator_objective(batch, fake_out)
    expected_g = np.mean(sp(-fake_out["logits"].numpy())) + 2.0 * np.mean(aux_fake)  # G always uses its fakes
    assert float(tf.reduce_mean(g_per_example)) == pytest.approx(expected_g, rel=1e-5)
    assert float(g_extras["g_aux_loss"]) == pytest.approx(np.mean(aux_fake), rel=1e-5)


def test_acgan_needs_an_auxiliary_head():
    with pytest.raises(ValueError, match="aux_logits"):
        ACGANTrainer(_generator(), ConditionalDiscriminator(**SMALL))


def test_sample_inputs_hold_the_given_labels_and_fixed_noise():
    labels = _labels(4, seed=3)
    trainer = ConditionalGANTrainer(_generator(), ConditionalDiscriminator(**SMALL), num_samples=4,
                                    sample_labels=labels, sample_seed=5)
    first, second = trainer.sample_inputs(), trainer.sample_inputs()
    np.testing.assert_array_equal(first["labels"], labels)
    np.testing.assert_array_equal(first["noise"], second["noise"])
    with pytest.raises(ValueError, match="sample_labels must have shape"):
        ConditionalGANTrainer(_generator(), ConditionalDiscriminator(**SMALL), num_samples=4,
                              sample_labels=labels[:2])
