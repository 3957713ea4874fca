"""NearestUpsampleConv2D: nearest ×2 + 3×3 "same" conv as one transposed conv, against the two-layer block."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from t2i.layers import resize_conv
from t2i.layers.resize_conv import NearestUpsampleConv2D


def _reference(x, kernel, bias):
    """numpy: repeat every pixel 2×2, zero-pad by one, correlate with the 3×3 kernel."""
    up = np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)
    padded = np.pad(up, ((0, 0), (1, 1), (1, 1), (0, 0)))
    height, width = up.shape[1:3]
    out = np.zeros(up.shape[:3] + (kernel.shape[-1],))
    for dy in range(3):
        for dx in range(3):
            out += padded[:, dy:dy + height, dx:dx + width, :] @ kernel[dy, dx]
    return out + bias


@pytest.mark.parametrize("size,channels_in,filters", [(4, 8, 5), (5, 3, 3), (1, 2, 4)])
def test_equals_upsampling_then_conv_values_and_gradients(size, channels_in, filters):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(3, size, size, channels_in)), tf.float32)
    fused = NearestUpsampleConv2D(filters, use_bias=True, bias_initializer="random_normal")
    fused.build(x.shape)
    upsample = keras.layers.UpSampling2D(2, interpolation="nearest")
    conv = keras.layers.Conv2D(filters, 3, padding="same")
    conv.build((None, 2 * size, 2 * size, channels_in))
    conv.set_weights(fused.get_weights())
    assert [w.shape for w in fused.weights] == [w.shape for w in conv.weights] == [(3, 3, channels_in, filters),
                                                                                      (filters,)]
    weights = tf.constant(rng.normal(size=(3, 2 * size, 2 * size, filters)), tf.float32)
    results = []
    for forward, variables in ((fused, fused.trainable_weights), (lambda t: conv(upsample(t)), conv.trainable_weights)):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = forward(x)
            loss = tf.reduce_sum(tf.sin(y) * weights)
        results.append((y, tape.gradient(loss, [x] + variables)))
    (y0, g0), (y1, g1) = results
    kernel, bias = fused.get_weights()
    np.testing.assert_allclose(y0.numpy(), _reference(x.numpy().astype(np.float64), kernel, bias), rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(y0.numpy(), y1.numpy(), rtol=1e-5, atol=1e-5)
    assert fused.compute_output_shape(x.shape) == tuple(y0.shape)
    for a, b in zip(g0, g1):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-4)


def test_fused_kernel_per_axis_taps():
    """Along one axis T = (W2, W1 + W2, W0 + W1, W0); in 2-D T[a, b] = Σ M[a, p] M[b, q] W[p, q]."""
    kernel = np.arange(9, dtype=np.float32).reshape(3, 3, 1, 1) + 1.0
    fused = np.asarray(resize_conv.fused_kernel(tf.constant(kernel)))[:, :, 0, 0]
    w = kernel[:, :, 0, 0]
    rows = np.stack([w[2], w[1] + w[2], w[0] + w[1], w[0]])
    expected = np.stack([rows[:, 2], rows[:, 1] + rows[:, 2], rows[:, 0] + rows[:, 1], rows[:, 0]], axis=1)
    np.testing.assert_array_equal(fused, expected)


def test_round_trips_through_a_keras_file(tmp_path):
    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, NearestUpsampleConv2D(5, use_bias=False, name="up")(inputs))
    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    assert type(reloaded.get_layer("up")) is NearestUpsampleConv2D
    assert reloaded.output_shape == (None, 8, 8, 5)
    x = np.random.default_rng(1).normal(size=(2, 4, 4, 3)).astype(np.float32)
    np.testing.assert_allclose(reloaded(x).numpy(), model(x).numpy(), rtol=1e-6)


@pytest.mark.parametrize("kwargs,flag", [(dict(kernel_size=5), "kernel_size"), (dict(strides=2), "strides"),
                                         (dict(padding="valid"), "padding")])
def test_other_convolutions_are_refused_by_name(kwargs, flag):
    kwargs = {"filters": 4, **kwargs}
    with pytest.raises(ValueError, match=flag):
        NearestUpsampleConv2D(**kwargs)
