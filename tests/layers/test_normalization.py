"""FusedBatchNormalization: Keras' BatchNormalization, on TensorFlow's fused kernel in training.
FusedLayerNormalization: Keras' LayerNormalization with a closed-form gradient."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from t2i.layers.normalization import FusedBatchNormalization, FusedLayerNormalization


def _pair(**kwargs):
    layers = []
    for cls in (keras.layers.BatchNormalization, FusedBatchNormalization):
        keras.utils.set_random_seed(0)
        layer = cls(gamma_initializer=keras.initializers.RandomNormal(1.0, 0.1),
                    beta_initializer=keras.initializers.RandomNormal(0.0, 0.1), **kwargs)
        layer.build((None, 5, 6, 7))
        layers.append(layer)
    return layers


@pytest.mark.parametrize("kwargs", [dict(epsilon=1e-3, momentum=0.9), dict(epsilon=1e-5, momentum=0.99),
                                    dict(center=False, scale=False, epsilon=1e-3)],
                         ids=["default-eps", "small-eps", "no-affine"])
def test_training_step_matches_keras_values_gradients_and_moving_statistics(kwargs):
    x = tf.constant(np.random.default_rng(1).normal(2.0, 3.0, (4, 5, 6, 7)), tf.float32)
    weights = tf.constant(np.random.default_rng(2).normal(size=(4, 5, 6, 7)), tf.float32)
    results = []
    for layer in _pair(**kwargs):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * weights)
        gradients = tape.gradient(loss, [x] + layer.trainable_weights)
        results.append((y, gradients, layer.moving_mean.numpy(), layer.moving_variance.numpy(),
                        layer(x, training=False)))
    (y0, g0, m0, v0, i0), (y1, g1, m1, v1, i1) = results
    # ε 1e-5 is raised to 1.001e-5 by the kernel: a 1e-3 relative change of ε, far below these tolerances.
    np.testing.assert_allclose(y1.numpy(), y0.numpy(), rtol=1e-4, atol=1e-5)
    for a, b in zip(g0, g1):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(m1, m0, rtol=1e-6)
    np.testing.assert_allclose(v1, v0, rtol=1e-5)  # the biased batch variance, as Keras keeps
    np.testing.assert_allclose(i1.numpy(), i0.numpy(), rtol=1e-5, atol=1e-5)


def test_the_fused_kernel_runs_in_training_and_keras_elsewhere():
    layer = FusedBatchNormalization()
    layer.build((None, 5, 6, 7))
    graph = tf.function(lambda x: layer(x, training=True)).get_concrete_function(
        tf.TensorSpec([2, 5, 6, 7])).graph
    assert any(op.type.startswith("FusedBatchNorm") for op in graph.get_operations())
    dense = FusedBatchNormalization()
    dense.build((None, 7))
    graph = tf.function(lambda x: dense(x, training=True)).get_concrete_function(tf.TensorSpec([2, 7])).graph
    assert not any(op.type.startswith("FusedBatchNorm") for op in graph.get_operations())
    layer.synchronized = True  # what t2i.training.distribute sets under a multi-replica strategy
    graph = tf.function(lambda x: layer(x, training=True)).get_concrete_function(
        tf.TensorSpec([2, 5, 6, 7])).graph
    assert not any(op.type.startswith("FusedBatchNorm") for op in graph.get_operations())


def test_round_trips_through_a_keras_file(tmp_path):
    inputs = keras.Input((5, 6, 7))
    model = keras.Model(inputs, FusedBatchNormalization(momentum=0.8, epsilon=1e-4, name="bn")(inputs))
    model.get_layer("bn").moving_mean.assign(np.arange(7, dtype=np.float32))
    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    assert type(reloaded.get_layer("bn")) is FusedBatchNormalization
    assert reloaded.get_layer("bn").get_config() == model.get_layer("bn").get_config()
    x = np.random.default_rng(0).normal(size=(2, 5, 6, 7)).astype(np.float32)
    np.testing.assert_allclose(reloaded(x).numpy(), model(x).numpy(), rtol=1e-6)


def test_one_value_per_channel_keeps_the_moving_variance_finite():
    layer = FusedBatchNormalization(momentum=0.5)
    x = tf.constant(np.arange(3, dtype=np.float32).reshape(1, 1, 1, 3))
    y = layer(x, training=True)
    np.testing.assert_allclose(y.numpy(), 0.0, atol=1e-6)  # (x - mean) is 0 for a batch of one value
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.5 * np.arange(3), rtol=1e-6)
    np.testing.assert_allclose(layer.moving_variance.numpy(), 0.5 * np.ones(3), rtol=1e-6)  # biased variance 0


def _layer_norm_pair(shape, **kwargs):
    fused = FusedLayerNormalization(gamma_initializer=keras.initializers.RandomNormal(1.0, 0.3),
                                    beta_initializer=keras.initializers.RandomNormal(0.0, 0.3), **kwargs)
    fused.build(shape)
    plain = keras.layers.LayerNormalization(**kwargs)
    plain.build(shape)
    plain.set_weights(fused.get_weights())
    return plain, fused


def _numpy_layer_norm(x, gamma, beta, axes, epsilon):
    mean = x.mean(axis=axes, keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(variance + epsilon) * gamma + beta


@pytest.mark.parametrize("shape,axis", [((4, 5, 6, 7), (1, 2, 3)), ((3, 9), -1), ((2, 4, 4, 5), -1)],
                         ids=["per-example", "dense", "per-pixel"])
def test_layer_norm_matches_keras_and_numpy_values_and_gradients(shape, axis):
    x = tf.constant(np.random.default_rng(1).normal(2.0, 3.0, shape), tf.float32)
    weights = tf.constant(np.random.default_rng(2).normal(size=shape), tf.float32)
    plain, fused = _layer_norm_pair(shape, axis=axis, epsilon=1e-3)
    results = []
    for layer in (plain, fused):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(tf.sin(y) * weights)
        results.append((y, tape.gradient(loss, [x] + layer.trainable_weights)))
    (y0, g0), (y1, g1) = results
    axes = tuple(a % len(shape) for a in (axis if isinstance(axis, tuple) else (axis,)))
    broadcast = [shape[a] if a in axes else 1 for a in range(len(shape))]
    gamma, beta = (w.reshape(broadcast) for w in fused.get_weights())
    np.testing.assert_allclose(y1.numpy(), _numpy_layer_norm(x.numpy().astype(np.float64), gamma, beta, axes, 1e-3),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(y1.numpy(), y0.numpy(), rtol=1e-5, atol=1e-5)
    for a, b in zip(g0, g1):
        assert a.shape == b.shape
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4, atol=1e-5)


def test_layer_norm_second_order_gradients_are_exact():
    """A gradient penalty differentiates the input gradient again, through the layer and what feeds it. Reference:
    autodiff of the plain formula in float64 (Keras' layer is not one: `tf.nn.moments` stops the gradient through the
    mean inside the variance, harmless to first order, about 1e-3 off at second order)."""
    shape = (4, 5, 5, 6)
    rng = np.random.default_rng(3)
    x, weights = rng.normal(size=shape), rng.normal(size=shape)
    scale = rng.normal(1.0, 0.5, shape[1:])
    fused = FusedLayerNormalization(axis=(1, 2, 3), epsilon=1e-3,
                                    gamma_initializer=keras.initializers.RandomNormal(1.0, 0.3),
                                    beta_initializer=keras.initializers.RandomNormal(0.0, 0.3))
    fused.build(shape)
    gamma, beta = fused.get_weights()

    def reference(t, g, b):
        mean = tf.reduce_mean(t, axis=(1, 2, 3), keepdims=True)
        variance = tf.reduce_mean(tf.square(t - mean), axis=(1, 2, 3), keepdims=True)
        return (t - mean) / tf.sqrt(variance + 1e-3) * g + b

    results = []
    for dtype, layer in ((tf.float32, lambda t, g, b: fused(t)), (tf.float64, reference)):
        variables = [tf.Variable(scale, dtype=dtype)]
        variables += fused.trainable_weights if dtype == tf.float32 else [tf.Variable(gamma, dtype=dtype),
                                                                          tf.Variable(beta, dtype=dtype)]
        inputs, w = tf.constant(x, dtype), tf.constant(weights, dtype)
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                inner.watch(inputs)
                out = tf.reduce_sum(tf.sin(layer(inputs * variables[0], variables[1], variables[2])) * w)
            penalty = tf.reduce_sum(tf.square(inner.gradient(out, inputs)))
        results.append([penalty] + outer.gradient(penalty, variables))
    for a, b in zip(*results):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=2e-4, atol=1e-4)


def test_layer_norm_round_trips_through_a_keras_file_and_loads_keras_weights(tmp_path):
    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, FusedLayerNormalization(axis=(1, 2, 3), epsilon=1e-4, name="ln")(inputs))
    model.get_layer("ln").gamma.assign(np.random.default_rng(0).normal(size=(4, 4, 3)).astype(np.float32))
    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    assert type(reloaded.get_layer("ln")) is FusedLayerNormalization
    x = np.random.default_rng(1).normal(size=(2, 4, 4, 3)).astype(np.float32)
    np.testing.assert_allclose(reloaded(x).numpy(), model(x).numpy(), rtol=1e-6)
    # Same variables as Keras' layer, so a checkpoint of either restores into the other.
    plain = keras.layers.LayerNormalization(axis=(1, 2, 3), epsilon=1e-4)
    plain.build((None, 4, 4, 3))
    path = tf.train.Checkpoint(layer=model.get_layer("ln")).save(str(tmp_path / "ckpt"))
    tf.train.Checkpoint(layer=plain).restore(path).assert_existing_objects_matched()
    np.testing.assert_allclose(plain(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-6)
