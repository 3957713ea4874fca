"""Conditioning Augmentation: (μ, log σ) against numpy, the sampled codes' statistics, seeds, replicas, config."""
import json

import keras
import numpy as np
import pytest

from t2i.layers.conditioning import ConditioningAugmentation
from t2i.losses.matching import kl_divergence
from conftest import run_python


def _numpy_statistics(layer, embedding, slope):
    hidden = embedding @ layer.dense.kernel.numpy() + layer.dense.bias.numpy()
    hidden = np.where(hidden > 0, hidden, slope * hidden)
    return hidden[:, :layer.units], hidden[:, layer.units:]


@pytest.mark.parametrize("activation,slope", [("leaky_relu", 0.2), ("relu", 0.0)])
def test_statistics_are_one_dense_layer_split_in_halves(activation, slope):
    layer = ConditioningAugmentation(3, activation=activation, seed=1)
    embedding = np.random.default_rng(0).standard_normal((4, 5)).astype("float32")
    layer.build(embedding.shape)
    assert layer.dense.kernel.shape == (5, 6)
    # Spread the N(0, 0.02) weights so both signs of the activation are exercised with visible values.
    layer.dense.kernel.assign(np.random.default_rng(1).standard_normal((5, 6)).astype("float32"))
    mean, log_sigma = layer.statistics(embedding)
    expected_mean, expected_log_sigma = _numpy_statistics(layer, embedding, slope)
    np.testing.assert_allclose(np.asarray(mean), expected_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(log_sigma), expected_log_sigma, rtol=1e-5, atol=1e-6)
    pre_activation = embedding @ layer.dense.kernel.numpy()
    assert (pre_activation < 0).any() and (pre_activation > 0).any()
    # The KL term of these statistics, element by element: -log σ + (σ² + μ² - 1)/2.
    elements = -expected_log_sigma + 0.5 * (np.exp(2 * expected_log_sigma) + expected_mean**2 - 1)
    np.testing.assert_allclose(kl_divergence(mean, log_sigma).numpy(), elements.mean(axis=1), rtol=1e-5)


def test_a_hidden_layer_reads_the_embedding_before_the_split():
    layer = ConditioningAugmentation(3, hidden_units=7, seed=1)
    embedding = np.random.default_rng(0).standard_normal((4, 5)).astype("float32")
    layer.build(embedding.shape)
    assert layer.hidden.kernel.shape == (5, 7) and layer.dense.kernel.shape == (7, 6)
    rng = np.random.default_rng(2)
    for dense in (layer.hidden, layer.dense):
        dense.kernel.assign(rng.standard_normal(dense.kernel.shape).astype("float32"))
        dense.bias.assign(rng.standard_normal(dense.bias.shape).astype("float32"))

    def leaky(x):
        return np.where(x > 0, x, 0.2 * x)

    hidden = leaky(embedding @ layer.hidden.kernel.numpy() + layer.hidden.bias.numpy())
    expected = leaky(hidden @ layer.dense.kernel.numpy() + layer.dense.bias.numpy())
    mean, log_sigma = layer.statistics(embedding)
    np.testing.assert_allclose(np.asarray(mean), expected[:, :3], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(log_sigma), expected[:, 3:], rtol=1e-5, atol=1e-5)
    assert layer.compute_output_shape((None, 5)) == (None, 3)
    assert np.asarray(layer(embedding)).shape == (4, 3)


def test_codes_are_samples_of_the_conditioning_gaussian():
    layer = ConditioningAugmentation(2, seed=3)
    layer.build((None, 4))
    # A zero kernel makes (μ, log σ) the activated bias for every row: μ = (0.5, 2), log σ = (ln 0.5, 0.2·(-1)).
    layer.dense.kernel.assign(np.zeros((4, 4), "float32"))
    layer.dense.bias.assign(np.array([0.5, 2.0, np.log(0.5) / 0.2, -1.0], "float32"))
    mean, sigma = np.array([0.5, 2.0]), np.exp([np.log(0.5), -0.2])
    codes = np.asarray(layer(np.ones((20000, 4), "float32")), "float64")
    # Standard errors: σ/√N ≈ 0.006 for the mean, σ/√(2N) ≈ 0.004 for the std.
    np.testing.assert_allclose(codes.mean(axis=0), mean, atol=0.03)
    np.testing.assert_allclose(codes.std(axis=0), sigma, rtol=0.03)
    # Each row draws its own ε: standardised codes are uncorrelated across rows and dimensions.
    epsilon = (codes - mean) / sigma
    assert abs(np.corrcoef(epsilon[:, 0], epsilon[:, 1])[0, 1]) < 0.05
    assert abs(np.corrcoef(epsilon[:-1, 0], epsilon[1:, 0])[0, 1]) < 0.05


def test_every_call_samples_anew_even_at_inference():
    layer = ConditioningAugmentation(4, seed=5)
    embedding = np.ones((2, 3), "float32")
    first = np.asarray(layer(embedding, training=False))
    second = np.asarray(layer(embedding, training=False))
    assert np.abs(first - second).min() > 0
    mean, _ = layer.statistics(embedding)
    assert np.abs(first - np.asarray(mean)).max() > 0.1


def test_a_fixed_seed_gives_the_same_sequence_of_codes():
    embedding = np.random.default_rng(0).standard_normal((3, 6)).astype("float32")
    layers = [ConditioningAugmentation(4, seed=seed) for seed in (7, 7, 8)]
    for layer in layers:
        layer.build(embedding.shape)
        layer.set_weights(layers[0].get_weights())
    codes = [[np.asarray(layer(embedding)) for _ in range(2)] for layer in layers]
    np.testing.assert_array_equal(codes[0][0], codes[1][0])
    np.testing.assert_array_equal(codes[0][1], codes[1][1])
    assert np.abs(codes[0][0] - codes[2][0]).max() > 0.1


def test_config_round_trip_and_errors():
    layer = ConditioningAugmentation(16, activation="relu", leaky_slope=0.1, seed=4, name="ca")
    restored = ConditioningAugmentation.from_config(json.loads(json.dumps(layer.get_config())))
    assert (restored.units, restored.activation, restored.leaky_slope, restored.seed, restored.name) == (
        16, "relu", 0.1, 4, "ca")
    assert restored.hidden_units == 0 and restored.hidden is None
    hidden = ConditioningAugmentation.from_config(ConditioningAugmentation(4, hidden_units=9).get_config())
    assert hidden.hidden_units == 9
    assert keras.saving.get_registered_name(ConditioningAugmentation) == "t2i>ConditioningAugmentation"
    with pytest.raises(ValueError, match="Received: activation='tanh'"):
        ConditioningAugmentation(4, activation="tanh")
    with pytest.raises(ValueError, match="Received: units=0"):
        ConditioningAugmentation(0)
    with pytest.raises(ValueError, match="Received: hidden_units=-1"):
        ConditioningAugmentation(4, hidden_units=-1)


@pytest.mark.slow
def test_replicas_draw_different_noise():
    # Two logical CPUs must be configured before TensorFlow starts, hence a fresh interpreter.
    code = """
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from t2i.layers.conditioning import ConditioningAugmentation
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    layer = ConditioningAugmentation(8, seed=1)
    layer.build((None, 4))
step = tf.function(lambda x: strategy.run(layer, (x,)))
out = [strategy.experimental_local_results(step(tf.ones([3, 4]))) for _ in range(2)]
print(np.abs(out[0][0].numpy() - out[0][1].numpy()).min(), np.abs(out[0][0].numpy() - out[1][0].numpy()).min())
"""
    result = run_python(code)
    assert result.returncode == 0, result.stderr[-3000:]
    across_replicas, across_steps = map(float, result.stdout.split()[-2:])
    assert across_replicas > 0 and across_steps > 0


def test_embedding_standardization_is_exact_and_saved_with_the_model(tmp_path):
    from t2i.layers.conditioning import EmbeddingStandardization

    inputs = keras.Input((3,), name="embedding")
    layer = EmbeddingStandardization(name="standardize")
    model = keras.Model(inputs, layer(inputs))
    x = np.array([[1.0, 2.0, 3.0], [-1.0, 0.0, 5.0]], np.float32)
    np.testing.assert_array_equal(model(x).numpy(), x)  # the identity until statistics are set
    layer.set_statistics([1.0, 0.0, -2.0], [2.0, 0.5, 4.0])
    np.testing.assert_allclose(model(x).numpy(), [[0.0, 4.0, 1.25], [-1.0, 0.0, 1.75]], rtol=1e-6)
    model.save(tmp_path / "m.keras")
    np.testing.assert_allclose(keras.models.load_model(tmp_path / "m.keras")(x).numpy(), model(x).numpy())
    with pytest.raises(ValueError, match="positive std of shape"):
        layer.set_statistics([0.0, 0.0, 0.0], [1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="Received: mean.shape=\\(2,\\)"):
        layer.set_statistics([0.0, 0.0], [1.0, 1.0])
