"""BatchNormalization on TensorFlow's fused kernel.

Keras 3's `BatchNormalization` computes its training-mode statistics and normalisation from separate ops (moments,
then `tf.nn.batch_normalization`), so a forward and backward pass is a chain of a dozen elementwise and reduction
kernels over the activation. TensorFlow has one fused kernel each way for NHWC tensors (`FusedBatchNormV3` and its
gradient; oneDNN's when `TF_ENABLE_ONEDNN_OPTS` is on), which is what `tf.keras` 2 used. `FusedBatchNormalization`
is Keras' layer — same arguments, weights, checkpoints and saved configs — whose training-mode call on a rank-4,
last-axis input goes through that kernel; everything else (other ranks or axes, masks, renorm, synchronised
statistics under a multi-replica strategy, inference) is the Keras implementation.

The results are Keras' up to float rounding: the same biased batch variance normalises the batch and feeds the
moving variance (the kernel reports the unbiased one, which is rescaled), and ε is the layer's (TensorFlow's kernel
raises any ε below 1.001e-5 to that, a relative change of 1e-3 in ε).
"""
import keras
import tensorflow as tf

# The smallest epsilon FusedBatchNormV3 accepts; smaller values are raised to it by tf.nn.fused_batch_norm.
FUSED_MIN_EPSILON = 1.001e-5


@keras.saving.register_keras_serializable(package="t2i")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` whose NHWC training step runs TensorFlow's fused kernel (module docstring)."""

    def _fusable(self, inputs, training, mask):
        axis = self.axis if isinstance(self.axis, int) else None
        return (bool(training) and self.trainable and mask is None and not self.renorm and not self.synchronized
                and keras.backend.backend() == "tensorflow" and len(inputs.shape) == 4
                and axis in (-1, 3))

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        x = tf.cast(inputs, tf.float32)
        channels = x.shape[-1]
        scale = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones([channels], tf.float32)
        offset = tf.cast(self.beta, tf.float32) if self.center else tf.zeros([channels], tf.float32)
        y, mean, unbiased_variance = tf.compat.v1.nn.fused_batch_norm(
            x, scale, offset, epsilon=max(float(self.epsilon), FUSED_MIN_EPSILON), data_format="NHWC",
            is_training=True)
        # The kernel reports Bessel-corrected variance; Keras averages the biased one into moving_variance.
        count = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), tf.float32)
        variance = unbiased_variance * (count - 1.0) / tf.maximum(count, 1.0)
        self.moving_mean.assign(self.moving_mean * self.momentum + tf.cast(mean, self.moving_mean.dtype)
                                * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum
                                    + tf.cast(variance, self.moving_variance.dtype) * (1.0 - self.momentum))
        return tf.cast(y, self.compute_dtype)


@keras.saving.register_keras_serializable(package="t2i")
class FusedLayerNormalization(keras.layers.LayerNormalization):
    """`keras.layers.LayerNormalization` with a hand-written gradient on TensorFlow.

    Keras normalises as x·(γ·rsqrt(σ² + ε)) + (β − μ·γ·rsqrt(σ² + ε)) and lets autodiff differentiate that, which
    builds several full-size products per layer each way. Here the forward pass is x̂ = (x − μ)·r, y = γ·x̂ + β with
    r = rsqrt(σ² + ε), and the backward pass is the closed form

        ∂L/∂x = r · (g − mean(g) − x̂ · mean(g·x̂)),   g = γ·∂L/∂y,   means over the normalised axes,
        ∂L/∂γ = Σ_batch ∂L/∂y · x̂,   ∂L/∂β = Σ_batch ∂L/∂y,

    fewer and larger kernels for the same values up to float rounding. The closed form is itself differentiable, so a
    gradient penalty's second derivatives are exact (Keras' are about 1e-3 off: `tf.nn.moments` stops the gradient
    through the mean inside the variance). Same arguments, config fields and weights as Keras' layer, so checkpoints
    of either restore into the other; RMS scaling, other backends and layers without γ or β use Keras' implementation.
    """

    def _fusable(self):
        return (keras.backend.backend() == "tensorflow" and not self.rms_scaling and self.scale and self.center)

    def call(self, inputs):
        if not self._fusable():
            return super().call(inputs)
        x = tf.cast(inputs, tf.float32)
        rank = len(x.shape)
        axes = sorted(a % rank for a in (self.axis if isinstance(self.axis, (list, tuple)) else [self.axis]))
        batch_axes = [a for a in range(rank) if a not in axes]
        shape = [x.shape[a] if a in axes else 1 for a in range(rank)]
        gamma = tf.reshape(tf.cast(self.gamma, tf.float32), shape)
        beta = tf.reshape(tf.cast(self.beta, tf.float32), shape)
        epsilon = float(self.epsilon)

        @tf.custom_gradient
        def normalize(x, gamma, beta):
            mean, variance = tf.nn.moments(x, axes, keepdims=True)
            rstd = tf.math.rsqrt(variance + epsilon)
            x_hat = (x - mean) * rstd
            y = x_hat * gamma + beta

            def grad(dy):
                g = dy * gamma
                dx = rstd * (g - tf.reduce_mean(g, axes, keepdims=True)
                             - x_hat * tf.reduce_mean(g * x_hat, axes, keepdims=True))
                return (dx, tf.reduce_sum(dy * x_hat, batch_axes, keepdims=True),
                        tf.reduce_sum(dy, batch_axes, keepdims=True))

            return y, grad

        return tf.cast(normalize(x, gamma, beta), self.compute_dtype)
