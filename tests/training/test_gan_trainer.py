"""GANTrainer: updates both networks, keeps losses finite, honours n_critic / n_gen and the gradient penalty."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from t2i.models.dcgan import DCGANDiscriminator, DCGANGenerator
from t2i.training.gan import GANTrainer


def _trainer(**kwargs):
    keras.utils.set_random_seed(0)
    generator = DCGANGenerator(image_size=32, noise_dim=8, base_filters=4, max_filters=16)
    discriminator = DCGANDiscriminator(image_size=32, base_filters=4, max_filters=16)
    trainer = GANTrainer(generator, discriminator, num_samples=4, **kwargs)
    trainer.compile(keras.optimizers.Adam(1e-3, beta_1=0.5), keras.optimizers.Adam(1e-3, beta_1=0.5))
    return trainer


def _batches():
    images = tf.random.stateless_uniform([4, 32, 32, 3], seed=[1, 2], minval=-1, maxval=1)
    return tf.data.Dataset.from_tensors({"image": images}).repeat()


def _snapshot(model):
    return [v.numpy().copy() for v in model.trainable_variables]


def _changed(before, model):
    return [not np.allclose(a, b.numpy()) for a, b in zip(before, model.trainable_variables)]


def test_steps_change_every_weight_and_keep_losses_finite():
    trainer = _trainer()
    g_before, d_before = _snapshot(trainer.generator), _snapshot(trainer.discriminator)
    history = trainer.fit(_batches(), epochs=1, steps_per_epoch=3, verbose=0)
    assert all(_changed(g_before, trainer.generator))
    assert all(_changed(d_before, trainer.discriminator))
    for name in ("d_loss", "g_loss"):
        assert np.isfinite(history.history[name]).all()
    assert int(trainer.global_step.numpy()) == 3


def test_updates_per_batch_follow_n_critic_and_n_gen():
    trainer = _trainer(n_critic=3, n_gen=2)
    trainer.fit(_batches(), epochs=1, steps_per_epoch=2, verbose=0)
    assert int(trainer.d_optimizer.iterations.numpy()) == 6
    assert int(trainer.g_optimizer.iterations.numpy()) == 4
    assert int(trainer.global_step.numpy()) == 2


def test_first_step_losses_match_a_manual_computation():
    """The logged losses are the loss functions applied to the networks, reduced over the batch."""
    trainer = _trainer(adversarial_loss="least_squares")
    batch = next(iter(_batches()))
    tf.random.set_seed(5)
    noise = trainer.sample_noise(4)
    fake = trainer.generator(noise, training=True)
    expected_d = np.mean(
        0.5 * (trainer.discriminator(batch["image"], training=True).numpy() - 1) ** 2
        + 0.5 * trainer.discriminator(fake, training=True).numpy() ** 2
    )
    assert expected_d > 0
    # The trainer draws its own noise; least-squares D loss on (nearly) untrained nets stays near ½·(1 + 0).
    logs = trainer.train_step(batch)
    assert abs(float(logs["d_loss"]) - expected_d) < 0.25
    assert np.isfinite(float(logs["g_loss"]))


def test_gradient_penalty_is_tracked_and_trains():
    trainer = _trainer(adversarial_loss="wasserstein", gradient_penalty_weight=10.0, n_critic=2)
    d_before = _snapshot(trainer.discriminator)
    history = trainer.fit(_batches(), epochs=1, steps_per_epoch=2, verbose=0)
    assert history.history["gradient_penalty"][-1] > 0
    changed = dict(zip([v.path for v in trainer.discriminator.trainable_variables],
                       _changed(d_before, trainer.discriminator)))
    # The critic's output bias cancels in D(fake) - D(real) and the penalty ignores it: it alone stays put.
    assert changed.pop("logit_conv/bias") is False
    assert all(changed.values()), changed


def test_label_smoothing_rejects_losses_without_it():
    generator = DCGANGenerator(image_size=32, noise_dim=8, base_filters=4, max_filters=16)
    discriminator = DCGANDiscriminator(image_size=32, base_filters=4, max_filters=16)
    with pytest.raises(ValueError, match="label_smoothing applies"):
        GANTrainer(generator, discriminator, adversarial_loss="hinge", label_smoothing=0.1)


def test_sample_inputs_are_fixed_by_seed():
    a, b = _trainer(sample_seed=3), _trainer(sample_seed=3)
    np.testing.assert_array_equal(a.sample_inputs(), b.sample_inputs())
    assert not np.array_equal(a.sample_inputs(), _trainer(sample_seed=4).sample_inputs())


def _ema_trainer(decay=0.999):
    keras.utils.set_random_seed(0)
    small = dict(image_size=32, base_filters=4, max_filters=16)
    trainer = GANTrainer(DCGANGenerator(noise_dim=8, **small), DCGANDiscriminator(**small), num_samples=4,
                         ema_generator=DCGANGenerator(noise_dim=8, **small), ema_decay=decay)
    trainer.compile(keras.optimizers.Adam(1e-3, beta_1=0.5), keras.optimizers.Adam(1e-3, beta_1=0.5))
    return trainer


def test_ema_generator_averages_trainable_weights_and_copies_statistics():
    trainer = _ema_trainer(decay=0.999)
    ema = trainer.ema_generator
    for a, b in zip(ema.weights, trainer.generator.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())  # starts as a copy
    batch = {"image": tf.random.stateless_uniform([4, 32, 32, 3], seed=[1, 2], minval=-1, maxval=1)}
    for step in range(3):
        before = [v.numpy().copy() for v in ema.weights]
        trainer.train_step(batch)
        # d = min(0.999, (1 + t) / (10 + t)) at step t: 0.1, 2/11, 0.25.
        decay = min(0.999, (1 + step) / (10 + step))
        for old, average, weight in zip(before, ema.weights, trainer.generator.weights):
            expected = decay * old + (1 - decay) * weight.numpy() if weight.trainable else weight.numpy()
            np.testing.assert_allclose(average.numpy(), expected, rtol=1e-5, atol=1e-7)
    # The average lags the raw weights, and grids come from it.
    assert any(not np.allclose(a.numpy(), b.numpy())
               for a, b in zip(ema.weights, trainer.generator.weights) if b.trainable)
    inputs = trainer.sample_inputs()
    np.testing.assert_allclose(trainer.generate(inputs).numpy(), ema(inputs, training=False).numpy(), atol=1e-6)
    assert trainer.sampling_generator is ema and "ema_generator" in trainer.extra_state()


def test_ema_generator_must_match_and_decay_must_be_a_fraction():
    small = dict(image_size=32, base_filters=4, max_filters=16)
    with pytest.raises(ValueError, match="ema_decay"):
        GANTrainer(DCGANGenerator(noise_dim=8, **small), DCGANDiscriminator(**small),
                   ema_generator=DCGANGenerator(noise_dim=8, **small), ema_decay=1.0)
    with pytest.raises(ValueError, match="architecture"):
        GANTrainer(DCGANGenerator(noise_dim=8, **small), DCGANDiscriminator(**small),
                   ema_generator=DCGANGenerator(noise_dim=9, **small))
