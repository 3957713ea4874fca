"""Mixed precision: 16-bit compute with float32 weights and outputs, loss scaling for float16, float32 exports."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import tiny_config
from t2i import configs
from t2i.training import factory, gan, run

POLICIES = ("mixed_float16", "mixed_bfloat16")
WGAN_GP = dict(model="wgan_gp", loss="wasserstein", gp_weight=10.0, n_critic=2)


@pytest.fixture(autouse=True)
def float32_policy():
    """The dtype policy is process-wide: every test starts and must end with float32."""
    keras.mixed_precision.set_global_policy("float32")
    yield
    name = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy("float32")
    assert name == "float32", "a test left the global dtype policy changed"


def _values(variables):
    return [v.numpy().copy() for v in variables]


def _changed(before, variables):
    return {v.path: not np.array_equal(b, v.numpy()) for b, v in zip(before, variables)}


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("overrides", [dict(model="dcgan"), WGAN_GP], ids=["dcgan", "wgan_gp"])
def test_train_steps_under_each_policy_are_finite_and_move_every_weight(tmp_path, policy, overrides):
    keras.utils.set_random_seed(0)
    trainer = factory.build_trainer(tiny_config(tmp_path, mixed_precision=policy, **overrides), total_steps=3)
    assert keras.mixed_precision.global_policy().name == "float32"  # set only while the networks were built
    compute = policy.split("_")[1]
    for network in (trainer.generator, trainer.discriminator):
        assert {layer.compute_dtype for layer in network.layers[1:-1]} >= {compute}
        assert {v.dtype for v in network.variables} == {"float32"}
    uses_loss_scale = policy == "mixed_float16"
    for optimizer in (trainer.g_optimizer, trainer.d_optimizer):
        assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer) is uses_loss_scale

    g_vars, d_vars = trainer.generator.trainable_variables, trainer.discriminator.trainable_variables
    g_before, d_before = _values(g_vars), _values(d_vars)
    step = tf.function(trainer.train_step)
    batch = {"image": tf.random.stateless_uniform([4, 32, 32, 3], [1, 2], -1.0, 1.0)}
    # float16: several steps, as the loss scale starts at 2^15 and steps whose scaled gradients overflow are
    # skipped while the scale halves (measured: these networks settle at 2^13 or 2^12 within three steps).
    for _ in range(5 if uses_loss_scale else 1):
        logs = step(batch)
        assert all(np.isfinite(float(value)) for value in logs.values()), logs
    assert all(_changed(g_before, g_vars).values())
    d_changed = _changed(d_before, d_vars)
    if overrides["model"] == "wgan_gp":
        assert float(logs["gradient_penalty"]) > 0
        # The critic's output bias cancels in D(fake) - D(real) and the penalty ignores it (see test_gan_trainer).
        assert d_changed.pop("logit_conv/bias") is False
    assert all(d_changed.values()), d_changed
    if uses_loss_scale:
        for optimizer in (trainer.g_optimizer, trainer.d_optimizer):
            scale = float(optimizer.dynamic_scale.numpy())
            assert 1.0 <= scale <= 2.0 ** 15 and np.log2(scale).is_integer()


SCALE = 8.0
SEED = 0


class _NoiseFromBatch(gan.GANTrainer):
    def _generate_for(self, batch, batch_size):
        return self.generator(self.generator_inputs(batch, batch["noise"]), training=True), batch["noise"]


@pytest.mark.parametrize("overrides", [dict(model="dcgan"), WGAN_GP], ids=["dcgan", "wgan_gp"])
def test_loss_scaled_float16_step_moves_weights_as_the_float32_step(tmp_path, monkeypatch, overrides):
    """The loss scale is divided out again: one SGD step in mixed_float16 updates the weights like float32 does,
    gradient penalty included (within float16 rounding), not 2^k times as far."""
    penalty = gan.gradient_penalty
    alpha = tf.constant([0.1, 0.4, 0.6, 0.9], shape=[4, 1, 1, 1])
    monkeypatch.setattr(gan, "gradient_penalty", lambda critic, real, fake: penalty(critic, real, fake, alpha=alpha))
    keras.utils.set_random_seed(SEED)
    rng = np.random.default_rng(0)
    batch = {"image": tf.constant(rng.uniform(-1, 1, (4, 32, 32, 3)), tf.float32),
             "noise": tf.constant(rng.standard_normal((4, 100)), tf.float32)}
    updates, initial = {}, None
    for policy in ("", "mixed_float16"):
        config = tiny_config(tmp_path, mixed_precision=policy, **overrides)
        with factory.precision_policy(config):
            generator, discriminator = factory.build_networks(config)
        if initial is None:
            initial = (generator.get_weights(), discriminator.get_weights())
        generator.set_weights(initial[0])
        discriminator.set_weights(initial[1])
        trainer = _NoiseFromBatch(generator, discriminator, adversarial_loss=config.loss, n_critic=config.n_critic,
                                  gradient_penalty_weight=config.gp_weight, num_samples=4)
        optimizers = [keras.optimizers.SGD(1e-2), keras.optimizers.SGD(1e-2)]
        if policy:
            # A scale small enough not to overflow these networks' float16 gradients (the penalty's reach ~1e3),
            # so no update is skipped and the two steps stay comparable.
            optimizers = [keras.optimizers.LossScaleOptimizer(o, initial_scale=SCALE) for o in optimizers]
        trainer.compile(*optimizers)
        before = generator.get_weights() + discriminator.get_weights()
        trainer.train_step(batch)
        after = generator.get_weights() + discriminator.get_weights()
        updates[policy] = np.concatenate([(a - b).ravel() for a, b in zip(after, before)])
        if policy:
            for optimizer in (trainer.g_optimizer, trainer.d_optimizer):
                assert float(optimizer.dynamic_scale.numpy()) == SCALE  # no update was skipped
    full, mixed = updates[""], updates["mixed_float16"]
    assert np.linalg.norm(full) > 1e-3
    assert np.linalg.norm(mixed - full) < 0.05 * np.linalg.norm(full)
    assert float(np.dot(mixed, full)) / float(np.dot(full, full)) == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("overrides", [
    dict(model="dcgan"), dict(model="began"), dict(model="cgan", condition_dim=4), dict(model="acgan", condition_dim=4),
    dict(model="wgan_gp", conditional=True), dict(model="srgan", sr_scale=4, residual_blocks=1),
    dict(model="stackgan_stage1", image_size=16, embedding_dim=6, ca_dim=4, stackgan_variant="complex"),
    dict(model="hdgan", image_size=32, hdgan_scales="16,32", embedding_dim=6, ca_dim=4),
], ids=lambda o: o["model"])
def test_every_network_family_outputs_float32_under_mixed_float16(tmp_path, overrides):
    config = tiny_config(tmp_path, mixed_precision="mixed_float16", num_labels=5, **overrides)
    config = factory.resolve_num_labels(config) if config.uses_labels else config.replace(num_labels=0)
    with factory.precision_policy(config):
        generator, discriminator = factory.build_networks(config)
    rng = np.random.default_rng(0)

    def example(tensor):
        return rng.uniform(-1, 1, (2, *tensor.shape[1:])).astype("float32")

    fake = generator(tf.nest.map_structure(example, generator.input), training=False)
    assert {t.dtype for t in tf.nest.flatten(fake)} == {tf.float32}
    scores = discriminator(tf.nest.map_structure(example, discriminator.input), training=False)
    assert {t.dtype for t in tf.nest.flatten(scores)} == {tf.float32}
    assert generator.layers[len(generator.layers) // 2].compute_dtype == "float16"


def test_a_mixed_float16_run_exports_float32_and_resumes_in_float32(tmp_path):
    export_dir = tmp_path / "exports"
    config = tiny_config(tmp_path / "run", mixed_precision="mixed_float16", steps=2, export_dir=str(export_dir),
                         export_name="mixed")
    result = run.train(config, verbose=False)
    assert result.step == 2
    serve = tf.saved_model.load(result.export).signatures["serving_default"]
    outputs = serve(noise=tf.random.normal([3, 100]))
    assert outputs["images"].dtype == tf.uint8 and outputs["images_float"].dtype == tf.float32
    assert {spec.dtype for spec in serve.structured_outputs.values()} == {tf.uint8, tf.float32}
    assert keras.models.load_model(tmp_path / "run" / "generator.keras")(np.zeros((1, 100))).dtype == "float32"

    # The checkpoint holds the inner optimizers, so a float32 run resumes from it.
    resumed = run.train(config.replace(mixed_precision="", steps=3, export_dir="", export_name=""), verbose=False)
    assert (resumed.resumed_from, resumed.step) == (2, 3)


@pytest.mark.parametrize("overrides,message", [
    (dict(mixed_precision="float16"), "--mixed_precision: must be"),
    (dict(model="stackgan_stage2", fine_tune_stage1=True, mixed_precision="mixed_float16"),
     "--mixed_precision: mixed_float16 .* --fine_tune_stage1"),
])
def test_bad_mixed_precision_settings_name_the_flag(tmp_path, overrides, message):
    with pytest.raises(configs.ConfigError, match=message):
        configs.validate(tiny_config(tmp_path, **overrides))


def test_precision_policy_is_restored_when_building_fails(tmp_path):
    with pytest.raises(RuntimeError):
        with factory.precision_policy(tiny_config(tmp_path, mixed_precision="mixed_bfloat16")):
            assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
            raise RuntimeError("boom")
    assert keras.mixed_precision.global_policy().name == "float32"


def test_a_mixed_bfloat16_run_exports_a_float32_network_with_its_weights(tmp_path):
    """The .keras file and the SavedModel are the trained (EMA) weights in a float32 network: no bfloat16 op left
    for a CPU without bfloat16 to emulate, and the same images up to bfloat16's rounding."""
    export_dir = tmp_path / "exports"
    config = tiny_config(tmp_path / "run", mixed_precision="mixed_bfloat16", steps=2, ema_decay=0.9,
                         export_dir=str(export_dir), export_name="bf16")
    result = run.train(config, verbose=False)
    assert configs.load(tmp_path / "run").mixed_precision == "mixed_bfloat16"
    trained, _, _ = run.restore_generator(str(tmp_path / "run"))
    noise = np.random.default_rng(0).normal(size=(3, 100)).astype("float32")
    with factory.precision_policy(config):
        mixed = factory.build_generator(config)
    mixed.set_weights(trained.get_weights())
    assert {layer.dtype_policy.name for layer in mixed.layers if layer.weights} >= {"mixed_bfloat16"}
    from_mixed = keras.ops.convert_to_numpy(mixed(noise, training=False))

    loaded = keras.models.load_model(tmp_path / "run" / "generator.keras")
    assert {layer.dtype_policy.name for layer in loaded.layers} == {"float32"}
    serve = tf.saved_model.load(result.export).signatures["serving_default"]
    assert "DT_BFLOAT16" not in str(serve.graph.as_graph_def())
    from_keras = keras.ops.convert_to_numpy(loaded(noise, training=False))
    from_serving = serve(noise=tf.constant(noise))["images_float"].numpy()
    np.testing.assert_allclose(from_serving, from_keras, atol=1e-5)
    np.testing.assert_allclose(from_keras, keras.ops.convert_to_numpy(trained(noise, training=False)), atol=1e-5)
    # bfloat16 keeps 8 bits of mantissa: the mixed network's images agree to about 1e-2, not to float32's 1e-6.
    difference = np.abs(from_keras - from_mixed)
    assert 0 < difference.max() < 0.1 and difference.mean() < 0.02


def test_auto_precision_is_bfloat16_where_the_hardware_has_it(tmp_path, monkeypatch, capsys):
    from t2i.training import distribute

    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_tile amx_bf16\n\n"
                       "processor\t: 1\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_tile amx_bf16\n")
    assert distribute.native_bfloat16(str(cpuinfo)) == (True, "CPU with amx_bf16, avx512_bf16")
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    assert distribute.native_bfloat16(str(cpuinfo))[0] is False
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS")
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw\n")
    assert distribute.native_bfloat16(str(cpuinfo)) == (False, "CPU without AMX or AVX512-BF16")
    assert distribute.native_bfloat16(str(tmp_path / "missing"))[0] is False  # no /proc (macOS, Windows)

    gpus = ["GPU:0", "GPU:1"]
    details = {"GPU:0": {"compute_capability": (8, 6)}, "GPU:1": {"compute_capability": (7, 5)}}
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: gpus if kind == "GPU" else [])
    monkeypatch.setattr(tf.config.experimental, "get_device_details", lambda gpu: details[gpu])
    assert distribute.native_bfloat16(str(cpuinfo)) == (False, "GPU compute capability (7, 5) < 8.0")
    details["GPU:1"] = {"compute_capability": (9, 0)}
    assert distribute.native_bfloat16(str(cpuinfo)) == (True, "GPU compute capability (8, 6)")

    for native, expected in ((True, "mixed_bfloat16"), (False, "")):
        monkeypatch.setattr(distribute, "native_bfloat16", lambda native=native: (native, "why"))
        config = tiny_config(tmp_path, mixed_precision="auto")
        configs.validate(config)
        assert distribute.resolve_precision(config).mixed_precision == expected
        assert f"--mixed_precision=auto: {expected or 'float32'} (why)" in capsys.readouterr().out
        with factory.precision_policy(config):
            assert keras.mixed_precision.global_policy().name == (expected or "float32")
    fixed = tiny_config(tmp_path, mixed_precision="mixed_float16")
    assert distribute.resolve_precision(fixed) is fixed
