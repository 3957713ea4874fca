"""BEGANTrainer: trains both networks, steers k in the right direction by the right amount, and checkpoints k."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import run_python
from t2i.losses import began
from t2i.models.began import BEGANDiscriminator, BEGANGenerator
from t2i.training.began import BEGANTrainer

TRACKERS = ["d_loss", "g_loss", "k", "m_global", "loss_real", "loss_fake"]


def _trainer(**kwargs):
    keras.utils.set_random_seed(0)
    generator = BEGANGenerator(image_size=32, noise_dim=8, hidden_dim=8)
    discriminator = BEGANDiscriminator(image_size=32, noise_dim=8, hidden_dim=8)
    trainer = BEGANTrainer(generator, discriminator, num_samples=4, **kwargs)
    trainer.compile(g_optimizer=keras.optimizers.Adam(1e-3), d_optimizer=keras.optimizers.Adam(1e-3))
    return trainer


def _noise_images():
    """Real images far from anything an untrained autoencoder reconstructs: L(x) ≈ 0.5, L(G(z)) ≈ 0.05."""
    return tf.random.stateless_uniform([4, 32, 32, 3], seed=[1, 2], minval=-1, maxval=1)


def _zero_images():
    """Real images an untrained autoencoder reconstructs exactly (zero biases, ELU(0) = 0): L(x) = 0."""
    return tf.zeros([4, 32, 32, 3])


def _snapshot(model):
    return [v.numpy().copy() for v in model.trainable_variables]


def _changed(before, model):
    return [not np.allclose(a, b.numpy()) for a, b in zip(before, model.trainable_variables)]


def _floats(logs):
    return {name: float(value) for name, value in logs.items()}


def test_fit_changes_every_weight_and_keeps_k_in_the_unit_interval():
    trainer = _trainer(lambda_k=0.1)
    g_before, d_before = _snapshot(trainer.generator), _snapshot(trainer.discriminator)
    dataset = tf.data.Dataset.from_tensors({"image": _noise_images()}).repeat()
    history = trainer.fit(dataset, steps_per_epoch=2, epochs=1, verbose=0).history
    assert all(_changed(g_before, trainer.generator))
    assert all(_changed(d_before, trainer.discriminator))
    assert sorted(history) == sorted(TRACKERS)
    assert [m.name for m in trainer.metrics] == TRACKERS
    for name in TRACKERS:
        assert np.isfinite(history[name]).all(), name
    assert int(trainer.global_step.numpy()) == 2
    assert int(trainer.d_optimizer.iterations.numpy()) == 2 and int(trainer.g_optimizer.iterations.numpy()) == 2
    assert 0.0 < float(trainer.k.numpy()) <= 1.0  # k_0 = 0 and L(x) ≫ L(G(z)): it has moved up


def test_noise_is_uniform_by_default():
    trainer = _trainer()
    assert trainer.noise_distribution == "uniform"
    noise = trainer.sample_noise(256).numpy()
    assert noise.shape == (256, 8) and noise.min() >= -1.0 and noise.max() <= 1.0 and noise.min() < -0.9


def test_k_rises_when_fakes_are_reconstructed_better_than_gamma_times_real():
    trainer = _trainer(gamma=1.0, lambda_k=0.1, k_init=0.5)
    logs = _floats(trainer.train_step({"image": _noise_images()}))
    assert logs["loss_real"] > 0.4 and logs["loss_fake"] < 0.2  # the situation: γ·L(x) - L(G(z)) > 0
    k = float(trainer.k.numpy())
    assert k > 0.5
    # 0.5 + 0.1·(1.0·L(x) - L(G(z))), with the L(x), L(G(z)) the step reports.
    expected = 0.5 + 0.1 * (1.0 * logs["loss_real"] - logs["loss_fake"])
    assert k == pytest.approx(expected, abs=1e-6)
    assert k == pytest.approx(float(began.equilibrium_update(0.5, logs["loss_real"], logs["loss_fake"], 1.0, 0.1)),
                              abs=1e-7)
    assert logs["k"] == pytest.approx(k, abs=1e-7)  # the tracker reports k after the update


def test_k_falls_when_fakes_are_reconstructed_worse_than_gamma_times_real():
    trainer = _trainer(gamma=0.5, lambda_k=0.1, k_init=0.5)
    logs = _floats(trainer.train_step({"image": _zero_images()}))
    assert logs["loss_real"] == 0.0 and logs["loss_fake"] > 0.0  # the situation: γ·L(x) - L(G(z)) < 0
    k = float(trainer.k.numpy())
    assert k < 0.5
    # 0.5 + 0.1·(0.5·0 - L(G(z)))
    assert k == pytest.approx(0.5 - 0.1 * logs["loss_fake"], abs=1e-6)
    assert k == pytest.approx(float(began.equilibrium_update(0.5, logs["loss_real"], logs["loss_fake"], 0.5, 0.1)),
                              abs=1e-7)


@pytest.mark.parametrize("k_init,images,expected", [(1.0, _noise_images, 1.0), (0.0, _zero_images, 0.0)])
def test_k_is_clipped_to_the_unit_interval(k_init, images, expected):
    trainer = _trainer(gamma=1.0, lambda_k=10.0, k_init=k_init)
    trainer.train_step({"image": images()})
    assert float(trainer.k.numpy()) == expected


def test_step_losses_are_measured_before_the_update_and_use_the_old_k():
    trainer = _trainer(gamma=0.5, lambda_k=0.1, k_init=0.25)
    images = _noise_images()
    loss_real_before = float(tf.reduce_mean(began.reconstruction_loss(images, trainer.discriminator(images))))
    logs = _floats(trainer.train_step({"image": images}))
    assert logs["loss_real"] == pytest.approx(loss_real_before, rel=1e-5)
    assert logs["g_loss"] == logs["loss_fake"]
    # L_D = L(x) - k_0·L(G(z)) with k_0 = 0.25, not the updated k.
    assert logs["d_loss"] == pytest.approx(logs["loss_real"] - 0.25 * logs["loss_fake"], rel=1e-5)
    # M_global = L(x) + |0.5·L(x) - L(G(z))|
    expected_measure = logs["loss_real"] + abs(0.5 * logs["loss_real"] - logs["loss_fake"])
    assert logs["m_global"] == pytest.approx(expected_measure, rel=1e-5)
    # The step did train the discriminator: the same images are now reconstructed differently.
    assert float(tf.reduce_mean(began.reconstruction_loss(images, trainer.discriminator(images)))) != pytest.approx(
        loss_real_before, rel=1e-4)


def test_k_survives_a_checkpoint_round_trip(tmp_path):
    trainer = _trainer(gamma=1.0, lambda_k=0.1, k_init=0.5)
    assert set(trainer.extra_state()) == {"began_k"}
    trainer.train_step({"image": _noise_images()})
    trained_k = float(trainer.k.numpy())
    path = tf.train.Checkpoint(**trainer.extra_state()).write(str(tmp_path / "ckpt"))

    resumed = _trainer(k_init=0.0)
    assert float(resumed.k.numpy()) == 0.0
    tf.train.Checkpoint(**resumed.extra_state()).read(path).assert_consumed()
    assert float(resumed.k.numpy()) == trained_k != 0.5


@pytest.mark.parametrize("kwargs,message", [
    (dict(gamma=1.5), "gamma must be in \\[0, 1\\]. Received: gamma=1.5"),
    (dict(lambda_k=-0.1), "lambda_k must be >= 0. Received: lambda_k=-0.1"),
    (dict(k_init=2.0), "k_init must be in \\[0, 1\\]. Received: k_init=2.0"),
])
def test_bad_arguments_are_clear_errors(kwargs, message):
    generator = BEGANGenerator(image_size=32, noise_dim=8, hidden_dim=8)
    discriminator = BEGANDiscriminator(image_size=32, noise_dim=8, hidden_dim=8)
    with pytest.raises(ValueError, match=message):
        BEGANTrainer(generator, discriminator, **kwargs)


@pytest.mark.slow
def test_k_follows_the_global_batch_under_mirrored_strategy():
    """Two CPU replicas see different halves of the batch; every replica must update k from the global means.

    Replica 0 gets zeros (L(x) = 0 at initialisation), replica 1 noise, so an update from replica 0's own means
    would give a different k than one from the means over both replicas.
    """
    code = """
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from t2i.models.began import BEGANDiscriminator, BEGANGenerator
from t2i.training.began import BEGANTrainer

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    keras.utils.set_random_seed(0)
    trainer = BEGANTrainer(BEGANGenerator(image_size=32, noise_dim=8, hidden_dim=8),
                           BEGANDiscriminator(image_size=32, noise_dim=8, hidden_dim=8),
                           gamma=1.0, lambda_k=0.1, k_init=0.5, num_samples=4)
    trainer.compile(g_optimizer=keras.optimizers.Adam(1e-3), d_optimizer=keras.optimizers.Adam(1e-3))
noise = tf.random.stateless_uniform([2, 32, 32, 3], seed=[1, 2], minval=-1, maxval=1)
images = tf.concat([tf.zeros_like(noise), noise], 0)
batch = next(iter(strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors({"image": images}))))
# Eager strategy.run: the same replica-context code path as fit, without minutes of tracing on 2 cores.
logs = strategy.run(trainer.train_step, args=(batch,))
local = [[float(v) for v in strategy.experimental_local_results(logs[name])] for name in ("loss_real", "loss_fake")]
print("RESULT", strategy.num_replicas_in_sync, *local[0], *local[1], float(trainer.k.numpy()),
      int(trainer.global_step.numpy()))
"""
    out = run_python(code)
    assert out.returncode == 0, out.stderr[-2000:]
    replicas, real0, real1, fake0, fake1, k, step = map(float, out.stdout.split("RESULT")[-1].split())
    assert replicas == 2 and step == 1
    assert real0 == 0.0 and real1 > 0.4  # each replica tracks the L(x) of its own half
    global_real, global_fake = (real0 + real1) / 2, (fake0 + fake1) / 2
    # 0.5 + 0.1·(1.0·mean L(x) - mean L(G(z))) over both replicas, not replica 0's 0.5 + 0.1·(0 - L(G(z))).
    assert k == pytest.approx(0.5 + 0.1 * (global_real - global_fake), abs=1e-6)
    assert k != pytest.approx(0.5 + 0.1 * (real0 - fake0), abs=1e-3)
