"""Distribution: one replicated step equals one single-device step; strategies, chief, BatchNorm sync, batch split.

Parity. Two logical CPU devices must be configured before TensorFlow initialises its devices, which pytest's process
has long done, so the replicated runs happen in a fresh interpreter running this file as a script (`_parity_main`);
the tests compare the weights it saves. Each case builds the networks once per run with the same initial weights,
feeds the same global batch of 4 and takes one `fit` step, once under the default strategy and once under
`MirroredStrategy` over the 2 devices (2 rows per replica).

What makes the two steps comparable:
- Randomness is tied to rows, not to replicas or call order: the noise comes with the batch, the WGAN-GP
  interpolation weight α and the Conditioning Augmentation ε are functions of their row's image / embedding, and the
  GAN-CLS mismatched image of each row comes with the batch. (Under a strategy each replica draws its own random
  numbers, so per-row randomness cannot otherwise match a single device.)
- BatchNorm is synchronised in the replicated run (`distribute.synchronize_batch_norm`, as `run.train` does), so it
  normalises over the global batch like the single device. `test_unsynchronised_batch_norm_breaks_parity` shows
  what happens without it.
- The optimizers are SGD, so the updated weights are w - lr·g: equal weights mean equal gradients. Adam's first step
  is ≈ lr·sign(g), which turns float rounding in near-zero gradient entries into lr-sized differences.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CASES = ("dcgan", "wgan_gp", "stackgan", "dcgan_unsynchronised_bn", "dcgan_ema")
LEARNING_RATE = 0.01
BATCH = 4
NOISE_DIM = 8
EMBEDDING_DIM = 6
CA_DIM = 4


# -- the replicated runs (in a fresh process) ----------------------------------------------------------------------
def _batch(case):
    rng = np.random.default_rng(0)
    size = 16 if case == "stackgan" else 32  # dcgan_ema: the dcgan batch
    batch = {"image": rng.uniform(-1, 1, (BATCH, size, size, 3)).astype("float32"),
             "noise": rng.standard_normal((BATCH, NOISE_DIM)).astype("float32")}
    if case == "stackgan":
        batch["embedding"] = rng.standard_normal((BATCH, EMBEDDING_DIM)).astype("float32")
        batch["wrong_image"] = np.roll(batch["image"], 1, axis=0)
    return batch


def _trainer_classes():
    import tensorflow as tf

    from t2i.training.gan import GANTrainer
    from t2i.training.text_gan import TextGANTrainer

    class NoiseFromBatch(GANTrainer):
        def _generate_for(self, batch, batch_size):
            return self.generator(self.generator_inputs(batch, batch["noise"]), training=True), batch["noise"]

    class TextNoiseFromBatch(TextGANTrainer):
        def _generate_for(self, batch, batch_size):
            return self.generator(self.generator_inputs(batch, batch["noise"]), training=True), batch["noise"]

        def wrong_images(self, batch):
            return batch["wrong_image"], tf.ones([tf.shape(batch["image"])[0]])

    return NoiseFromBatch, TextNoiseFromBatch


def _tie_randomness_to_rows():
    """Per-row α for the gradient penalty and per-row ε for Conditioning Augmentation, wherever a row is placed."""
    import tensorflow as tf
    from keras import ops

    from t2i.layers.conditioning import ConditioningAugmentation
    from t2i.training import gan

    penalty = gan.gradient_penalty

    def row_alpha_penalty(critic_fn, real, fake, **kwargs):
        alpha = 0.5 + 0.4 * tf.sin(7.0 * tf.reduce_sum(real, axis=[1, 2, 3], keepdims=True))
        return penalty(critic_fn, real, fake, alpha=alpha, **kwargs)

    gan.gradient_penalty = row_alpha_penalty
    projection = tf.constant(np.random.default_rng(1).standard_normal((EMBEDDING_DIM, CA_DIM)), tf.float32)

    def row_epsilon_call(self, embedding, training=None):
        mean, log_sigma = self.statistics(embedding)
        return mean + ops.exp(log_sigma) * tf.sin(tf.matmul(embedding, projection))

    ConditioningAugmentation.call = row_epsilon_call


def _build(case):
    import keras

    from t2i.models.dcgan import DCGANDiscriminator, DCGANGenerator
    from t2i.models.stackgan import StackGANStage1Discriminator, StackGANStage1Generator
    from t2i.models.wgan_gp import WGANGPCritic

    noise_from_batch, text_noise_from_batch = _trainer_classes()
    keras.utils.set_random_seed(0)
    if case == "stackgan":
        generator = StackGANStage1Generator(image_size=16, noise_dim=NOISE_DIM, embedding_dim=EMBEDDING_DIM,
                                            ef_dim=CA_DIM, gf_dim=4)
        discriminator = StackGANStage1Discriminator(image_size=16, embedding_dim=EMBEDDING_DIM, ef_dim=CA_DIM,
                                                    df_dim=4)
        trainer = text_noise_from_batch(generator, discriminator, kl_weight=2.0, matching_aware=True, num_samples=4)
    else:
        generator = DCGANGenerator(image_size=32, noise_dim=NOISE_DIM, base_filters=4, max_filters=16)
        if case == "wgan_gp":
            critic = WGANGPCritic(image_size=32, base_filters=4, max_filters=16)
            trainer = noise_from_batch(generator, critic, adversarial_loss="wasserstein", gradient_penalty_weight=10.0,
                                       n_critic=2, num_samples=4)
        else:
            discriminator = DCGANDiscriminator(image_size=32, base_filters=4, max_filters=16)
            ema = {}
            if case == "dcgan_ema":
                ema = dict(ema_generator=DCGANGenerator(image_size=32, noise_dim=NOISE_DIM, base_filters=4,
                                                        max_filters=16), ema_decay=0.9)
            trainer = noise_from_batch(generator, discriminator, num_samples=4, **ema)
    trainer.compile(keras.optimizers.SGD(LEARNING_RATE), keras.optimizers.SGD(LEARNING_RATE))
    return trainer


def _one_step(case, strategy, initial=None, synchronise=False):
    import tensorflow as tf

    from t2i.training import distribute

    with strategy.scope():
        trainer = _build(case)
    networks = (trainer.generator, trainer.discriminator)
    if trainer.ema_generator is not None:
        networks += (trainer.ema_generator,)
    if initial is not None:
        for network, weights in zip(networks, initial):
            network.set_weights(weights)
    if synchronise:
        distribute.synchronize_batch_norm(*networks)
    before = [network.get_weights() for network in networks]
    history = trainer.fit(tf.data.Dataset.from_tensors(_batch(case)), epochs=1, steps_per_epoch=1, verbose=0)
    logs = {name: float(values[-1]) for name, values in history.history.items()}
    return before, [network.get_weights() for network in networks], logs


def _overflow_on_one_replica(strategy):
    """One mixed_float16 step in which only replica 1's critic overflows (its images are beyond float16's range)."""
    import keras
    import tensorflow as tf

    from t2i.models.dcgan import DCGANGenerator
    from t2i.models.wgan_gp import WGANGPCritic

    noise_from_batch, _ = _trainer_classes()
    keras.mixed_precision.set_global_policy("mixed_float16")
    with strategy.scope():
        keras.utils.set_random_seed(0)
        generator = DCGANGenerator(image_size=32, noise_dim=NOISE_DIM, base_filters=4, max_filters=16)
        critic = WGANGPCritic(image_size=32, base_filters=4, max_filters=16)
        trainer = noise_from_batch(generator, critic, adversarial_loss="wasserstein", gradient_penalty_weight=10.0,
                                   num_samples=4)
        trainer.compile(*[keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(LEARNING_RATE), initial_scale=1.0)
                          for _ in range(2)])
    keras.mixed_precision.set_global_policy("float32")
    batch = _batch("dcgan")
    batch["image"][2:] = 1e5  # rows 2 and 3 go to replica 1
    critic_before, generator_before = critic.get_weights(), generator.get_weights()
    trainer.fit(tf.data.Dataset.from_tensors(batch), epochs=1, steps_per_epoch=1, verbose=0)
    critic_after, generator_after = critic.get_weights(), generator.get_weights()
    return {
        "critic_finite": all(bool(np.isfinite(w).all()) for w in critic_after),
        "critic_unchanged": all(np.array_equal(a, b) for a, b in zip(critic_before, critic_after)),
        "critic_scale": float(trainer.d_optimizer.dynamic_scale.numpy()),
        "generator_finite": all(bool(np.isfinite(w).all()) for w in generator_after),
        "generator_changed": not all(np.array_equal(a, b) for a, b in zip(generator_before, generator_after)),
    }


def _parity_main(output_dir):
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    _tie_randomness_to_rows()
    # One MirroredStrategy for all cases: a second one in the same process reuses collective instance keys.
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    logs = {"replicas": mirrored.num_replicas_in_sync}
    for case in CASES:
        model = case.replace("_unsynchronised_bn", "")
        synchronise = case != "dcgan_unsynchronised_bn"
        before, single, logs[f"{case}/single"] = _one_step(model, tf.distribute.get_strategy())
        _, replicated, logs[f"{case}/mirrored"] = _one_step(model, mirrored, initial=before,
                                                            synchronise=synchronise)
        arrays = {}
        for run, weights in (("before", before), ("single", single), ("mirrored", replicated)):
            for n, network in enumerate(weights):
                for i, value in enumerate(network):
                    arrays[f"{run}/{n}/{i}"] = value
        np.savez(os.path.join(output_dir, f"{case}.npz"), **arrays)
    logs["overflow"] = _overflow_on_one_replica(mirrored)
    with open(os.path.join(output_dir, "logs.json"), "w", encoding="utf-8") as f:
        json.dump(logs, f)


# -- the tests -----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def parity(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("parity")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO)
    out = subprocess.run([sys.executable, os.path.abspath(__file__), str(output_dir)], capture_output=True, text=True,
                         timeout=900, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    with open(output_dir / "logs.json", encoding="utf-8") as f:
        logs = json.load(f)
    assert logs["replicas"] == 2

    def load(case, by_network=False):
        """{run: flat list of the weights of every network} (or {run: [weights of network 0, 1, ...]}), logs."""
        arrays = np.load(output_dir / f"{case}.npz")
        runs = {}
        for key in arrays.files:
            run, network, index = key.split("/")
            runs.setdefault(run, {}).setdefault(int(network), []).append((int(index), arrays[key]))
        grouped = {run: [[value for _, value in sorted(networks[n], key=lambda item: item[0])]
                         for n in sorted(networks)] for run, networks in runs.items()}
        if not by_network:
            grouped = {run: [w for network in networks for w in network] for run, networks in grouped.items()}
        return grouped, {run: logs[f"{case}/{run}"] for run in ("single", "mirrored")}

    load.logs = logs
    return load


def _assert_same_update(weights):
    before, single, mirrored = weights["before"], weights["single"], weights["mirrored"]
    # The step moved the weights by far more than the tolerance, so agreement is not trivial.
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(before, single)) > 100 * 1e-5
    for i, (a, b) in enumerate(zip(single, mirrored)):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5, err_msg=f"weight {i}")


@pytest.mark.slow
@pytest.mark.parametrize("case", ["dcgan", "wgan_gp", "stackgan"])
def test_a_mirrored_step_over_two_devices_equals_a_single_device_step(parity, case):
    weights, logs = parity(case)
    _assert_same_update(weights)
    # Reported metrics are over the global batch, not one replica's half.
    assert logs["mirrored"].keys() == logs["single"].keys()
    # One device runs BatchNorm on TensorFlow's fused kernel, two replicas on Keras' synchronised BatchNorm (ε 1e-5,
    # which the fused kernel raises to 1.001e-5): the same maths in other kernels, so losses agree to 1e-4, not 1e-5.
    for name, value in logs["single"].items():
        assert logs["mirrored"][name] == pytest.approx(value, rel=1e-4, abs=1e-6), name
    expected = {"dcgan": {"d_loss", "g_loss"}, "wgan_gp": {"d_loss", "g_loss", "gradient_penalty"},
                "stackgan": {"d_loss", "g_loss", "kl", "d_wrong"}}[case]
    assert set(logs["single"]) == expected


@pytest.mark.slow
def test_the_generator_ema_is_updated_alike_on_every_replica(parity):
    weights, _ = parity("dcgan_ema")
    _assert_same_update(weights)
    networks, _ = parity("dcgan_ema", by_network=True)
    (g0, _, ema0), (g1, _, ema1) = networks["before"], networks["single"]
    # One step at t = 0: d = min(0.9, 1/10), so every averaged weight is 0.1·before + 0.9·new; BatchNorm moving
    # statistics are copied (= new). The EMA started as a copy of the generator.
    averaged = 0
    for i, (start, before, average, new) in enumerate(zip(g0, ema0, ema1, g1)):
        np.testing.assert_array_equal(start, before)
        if np.allclose(average, new, rtol=1e-6, atol=1e-7):
            continue
        np.testing.assert_allclose(average, 0.1 * before + 0.9 * new, rtol=1e-5, atol=1e-6, err_msg=f"weight {i}")
        averaged += 1
    assert averaged >= len(g1) // 2


@pytest.mark.slow
def test_unsynchronised_batch_norm_breaks_parity(parity):
    """Without synchronisation each replica normalises its own half batch: the update differs by a whole step."""
    weights, logs = parity("dcgan_unsynchronised_bn")
    largest = max(float(np.max(np.abs(a - b))) for a, b in zip(weights["single"], weights["mirrored"]))
    assert largest > 1e-3
    assert logs["mirrored"]["d_loss"] != pytest.approx(logs["single"]["d_loss"], rel=1e-4)


@pytest.mark.slow
def test_a_float16_overflow_on_one_replica_skips_the_update_on_all(parity):
    """Keras' LossScaleOptimizer checks one replica's gradients; the trainer makes every replica agree first."""
    overflow = parity.logs["overflow"]
    assert overflow["critic_finite"] and overflow["critic_unchanged"]
    assert overflow["critic_scale"] == 0.5  # halved from 1 after the skipped step
    # The generator's step saw finite gradients on both replicas and went ahead.
    assert overflow["generator_finite"] and overflow["generator_changed"]


def test_strategies_by_name():
    import tensorflow as tf

    from t2i.training import distribute

    assert distribute.get_strategy("default") is tf.distribute.get_strategy()
    with pytest.raises(ValueError, match=r"Received: strategy='tpu'"):
        distribute.get_strategy("tpu")


@pytest.mark.parametrize("tf_config,chief", [
    (None, True),
    ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}, True),
    ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}, False),
    ({"cluster": {"chief": ["a:1"], "worker": ["b:2"]}, "task": {"type": "worker", "index": 0}}, False),
    ({"cluster": {"chief": ["a:1"], "worker": ["b:2"]}, "task": {"type": "chief", "index": 0}}, True),
])
def test_chief_and_checkpoint_directories_follow_tf_config(monkeypatch, tmp_path, tf_config, chief):
    from t2i.training import distribute

    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
    assert distribute.is_chief() is chief
    chief_dir = str(tmp_path / "run" / "checkpoints")
    own = distribute.checkpoint_directory(chief_dir)
    if chief:
        assert own == chief_dir
    else:
        # A scratch folder outside the chief's run directory, removed afterwards.
        assert os.path.isdir(own) and not os.path.abspath(own).startswith(str(tmp_path))
        distribute.remove_worker_directory(own, chief_dir)
        assert not os.path.exists(own)


def test_synchronize_batch_norm_flags_every_batch_norm_and_changes_nothing_on_one_device(tmp_path):
    import keras

    from t2i.models.dcgan import DCGANGenerator
    from t2i.models.stackgan import StackGANStage1Generator
    from t2i.training import distribute

    dcgan = DCGANGenerator(image_size=32, noise_dim=4, base_filters=4, max_filters=8)
    stackgan = StackGANStage1Generator(image_size=16, noise_dim=4, embedding_dim=3, ef_dim=2, gf_dim=2,
                                       variant="complex")
    # DCGAN-32: the projection and two upsampling stages; StackGAN "complex" adds residual blocks.
    assert distribute.synchronize_batch_norm(dcgan) == 3
    assert distribute.synchronize_batch_norm(stackgan) == len(distribute.batch_norm_layers(stackgan)) > 4
    assert all(layer.synchronized for layer in distribute.batch_norm_layers(dcgan, stackgan))
    # Outside a multi-replica strategy synchronised BatchNorm is plain BatchNorm: same outputs after reloading.
    path = str(tmp_path / "g.keras")
    dcgan.save(path)
    reloaded = keras.models.load_model(path)
    noise = np.random.default_rng(0).standard_normal((4, 4)).astype("float32")
    np.testing.assert_allclose(reloaded(noise, training=True), dcgan(noise, training=True), atol=1e-6)


def test_batch_size_must_split_evenly_across_replicas():
    from t2i import configs
    from t2i.training import distribute

    class FourReplicas:
        num_replicas_in_sync = 4

    distribute.check_batch_size(8, FourReplicas())
    with pytest.raises(configs.ConfigError, match=r"--batch_size.*4 replicas.*Received: batch_size=6"):
        distribute.check_batch_size(6, FourReplicas())


def test_train_runs_under_the_mirrored_strategy(tmp_path):
    from conftest import tiny_config
    from t2i.training import run

    result = run.train(tiny_config(tmp_path / "run", strategy="mirrored", steps=2), verbose=False)
    assert result.step == 2 and result.checkpoint.endswith("ckpt-2")
    assert (tmp_path / "run" / "samples.png").exists()


if __name__ == "__main__":
    _parity_main(sys.argv[1])
