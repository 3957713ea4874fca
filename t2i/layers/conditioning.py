"""Conditioning Augmentation (Zhang et al. 2017, StackGAN §3.1).

A sentence embedding φ_t (1024-d char-CNN-RNN in the paper) is too high-dimensional and too sparse — a few thousand
captions — for the generator to cover smoothly. CA maps it to a Gaussian N(μ(φ_t), Σ(φ_t)) with diagonal Σ and feeds
the generator a sample c = μ + σ ⊙ ε, ε ~ N(0, I). The sampling makes small perturbations of a caption produce
plausible images too; a KL term towards N(0, I) (`t2i.losses.matching.kl_divergence`) keeps the conditioning
manifold smooth.

Also the discriminators' conditioning: `EmbeddingStandardization` (caption embeddings to zero mean, unit variance)
and `ProjectionLogit` (the projection discriminator's ⟨condition · V, Σ φ(x)⟩ term, for labels or embeddings); and
the generators' conditional BatchNorm (`conditional_batch_norm`, `ConditionalScaleOffset`).
"""
import keras
import tensorflow as tf
from keras import ops

from t2i.layers import blocks
from t2i.layers.normalization import FusedBatchNormalization

CA_ACTIVATIONS = ("leaky_relu", "relu")


@keras.saving.register_keras_serializable(package="t2i")
class ConditioningAugmentation(keras.layers.Layer):
    """Embedding [B, D] → conditioning code c = μ + exp(log σ) ⊙ ε of shape [B, units], ε ~ N(0, I) per sample.

    One dense layer to 2·units, an activation, then the first half is μ and the second log σ — as in both official
    StackGAN implementations. ε is drawn at inference too (StackGAN samples its conditioning code when generating),
    so one caption gives varied images; `statistics` returns (μ, log σ) for the KL loss or for a deterministic code.

    The noise comes from the layer's own `keras.random.SeedGenerator`, so a fixed `seed` gives a reproducible
    sequence of codes; under a `tf.distribute` strategy each replica folds its id into the seed. The generator's
    state is not part of the saved weights: a reloaded layer restarts the sequence from `seed`.

    With `hidden_units` > 0 a hidden layer (dense + the same activation) reads the embedding first. One dense layer
    only passes on what is linear in the embedding, and sentence vectors need not be: on `shapes` a linear probe from
    the seq2seq vectors to the 24 object labels scores 0.90 top-k accuracy on held-out captions, one hidden layer of
    256 units 0.98.

    Args:
        units: size of c (the paper's N_g / ef_dim, 128).
        hidden_units: width of the optional hidden layer (0: none, the original single dense layer).
        activation: applied to the dense output before the split. "leaky_relu" (slope `leaky_slope`) follows the
            original TensorFlow StackGAN; "relu" the PyTorch one.
        leaky_slope: negative slope of "leaky_relu".
        seed: integer seed of the noise, or None for a random one.
    """

    def __init__(self, units=128, activation="leaky_relu", leaky_slope=0.2, seed=None, hidden_units=0, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(units, int) or isinstance(units, bool) or units < 1:
            raise ValueError(f"ConditioningAugmentation units must be a positive integer. Received: units={units!r}")
        if not isinstance(hidden_units, int) or isinstance(hidden_units, bool) or hidden_units < 0:
            raise ValueError(f"ConditioningAugmentation hidden_units must be a non-negative integer (0: none). "
                             f"Received: hidden_units={hidden_units!r}")
        if activation not in CA_ACTIVATIONS:
            raise ValueError(f"Unknown ConditioningAugmentation activation; expected one of {CA_ACTIVATIONS}. "
                             f"Received: activation={activation!r}")
        self.units = units
        self.activation = activation
        self.leaky_slope = leaky_slope
        self.seed = seed
        self.hidden_units = hidden_units
        self.hidden = None
        if hidden_units:
            self.hidden = keras.layers.Dense(hidden_units, kernel_initializer=blocks.dcgan_init(),
                                             dtype=self.dtype_policy, name="hidden")
        self.dense = keras.layers.Dense(2 * units, kernel_initializer=blocks.dcgan_init(), dtype=self.dtype_policy,
                                        name="dense")
        self.seed_generator = keras.random.SeedGenerator(seed, name="seed_generator")

    def build(self, input_shape):
        if self.hidden is not None:
            self.hidden.build(input_shape)
            input_shape = (*input_shape[:-1], self.hidden_units)
        self.dense.build(input_shape)
        self.built = True

    def _activate(self, x):
        if self.activation == "leaky_relu":
            return ops.leaky_relu(x, negative_slope=self.leaky_slope)
        return ops.relu(x)

    def statistics(self, embedding):
        """(μ, log σ), each [B, units]: the parameters of the conditioning Gaussian for `embedding` [B, D]."""
        if self.hidden is not None:
            embedding = self._activate(self.hidden(embedding))
        hidden = self._activate(self.dense(embedding))
        return hidden[:, :self.units], hidden[:, self.units:]

    def call(self, embedding, training=None):
        # `training` is accepted and ignored on purpose: StackGAN samples c at inference as well.
        del training
        mean, log_sigma = self.statistics(embedding)
        return mean + ops.exp(log_sigma) * self._epsilon(ops.shape(mean), mean.dtype)

    def _epsilon(self, shape, dtype):
        """ε ~ N(0, I) from the next seed of the layer's generator, distinct per `tf.distribute` replica."""
        seed = self.seed_generator.next()
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            # Every replica holds the same generator state; without its id folded in, all replicas would draw the
            # same ε for their rows.
            seed = tf.random.experimental.stateless_fold_in(seed, context.replica_id_in_sync_group)
        return tf.random.stateless_normal(shape, seed, dtype=dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.units)

    def get_config(self):
        config = super().get_config()
        config.update({
            "units": self.units,
            "activation": self.activation,
            "leaky_slope": self.leaky_slope,
            "seed": self.seed,
            "hidden_units": self.hidden_units,
        })
        return config


@keras.saving.register_keras_serializable(package="t2i")
class EmbeddingStandardization(keras.layers.Layer):
    """Embedding [B, D] → (embedding − m) / s per dimension, with m and s the training embeddings' mean and
    standard deviation (non-trainable weights, set once by `set_statistics` and saved with the model).

    Sentence encoders differ in scale by orders of magnitude (skip-thought's L2-normalised 4800-d halves have
    per-dimension spreads near 0.01, a seq2seq state about 0.3). Behind an N(0, 0.02)-initialised dense layer that
    scale is the strength of the text signal: Conditioning Augmentation adds unit-variance noise to μ(embedding),
    and with a small-scale encoder μ starts two orders of magnitude below the noise, so the generator learns to
    ignore the text before it can learn to read it. Standardising makes the text path's starting strength the same
    for every encoder.

    Starts as the identity (m = 0, s = 1).
    """

    def build(self, input_shape):
        dim = int(input_shape[-1])
        self.mean = self.add_weight(name="mean", shape=(dim,), initializer="zeros", trainable=False)
        self.std = self.add_weight(name="std", shape=(dim,), initializer="ones", trainable=False)

    def set_statistics(self, mean, std):
        """Sets m and s ([D] each; s > 0)."""
        import numpy as np

        mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
        if mean.shape != tuple(self.mean.shape) or std.shape != tuple(self.std.shape) or not np.all(std > 0):
            raise ValueError(f"EmbeddingStandardization needs a mean and a positive std of shape "
                             f"{tuple(self.mean.shape)}. Received: mean.shape={mean.shape}, std.shape={std.shape}, "
                             f"min std={float(std.min()) if std.size else None}")
        self.mean.assign(mean)
        self.std.assign(std)

    def call(self, embedding):
        embedding = ops.cast(embedding, self.compute_dtype)
        return (embedding - ops.cast(self.mean, self.compute_dtype)) / ops.cast(self.std, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="t2i")
class ProjectionLogit(keras.layers.Layer):
    """[logits [B, 1], features [B, H, W, F], condition [B, N]] → logits + ⟨condition · V, Σ_hw features⟩.

    V [N, F] is one learnt embedding per label (N(0, 0.02)); a multi-hot condition sums its labels' embeddings.
    Computed in float32 (the logits' dtype).
    """

    def build(self, input_shape):
        _, features_shape, condition_shape = input_shape
        self.embedding = self.add_weight(name="embedding", shape=(int(condition_shape[-1]), int(features_shape[-1])),
                                         initializer=blocks.dcgan_init(), dtype="float32")

    def call(self, inputs):
        logits, features, condition = inputs
        pooled = keras.ops.sum(keras.ops.cast(features, "float32"), axis=(1, 2))
        embedded = keras.ops.matmul(keras.ops.cast(condition, "float32"), self.embedding)
        return keras.ops.cast(logits, "float32") + keras.ops.sum(pooled * embedded, axis=-1, keepdims=True)

    def compute_output_shape(self, input_shape):
        return input_shape[0]


def conditional_batch_norm(condition, bn_epsilon, bn_momentum):
    """A `norm(x, name)` for generator bodies: BatchNorm without its own γ/β (layer `name`), then scale and offset
    from `condition` [B, N] (layer `<name>_modulation`)."""
    def norm(x, name):
        x = FusedBatchNormalization(epsilon=bn_epsilon, momentum=bn_momentum, center=False, scale=False,
                                    name=name)(x)
        return ConditionalScaleOffset(name=f"{name}_modulation")([x, condition])
    return norm


@keras.saving.register_keras_serializable(package="t2i")
class ConditionalScaleOffset(keras.layers.Layer):
    """[x [B, ..., C], condition [B, N]] → x·(1 + y·W_γ) + y·W_β: the affine part of a conditional BatchNorm.

    W_γ ~ N(0, 0.02) and W_β = 0 at the start, so it begins as the plain BatchNorm with γ ≈ 1, β = 0; a multi-hot
    condition adds up its labels' scales and offsets.
    """

    def build(self, input_shape):
        x_shape, condition_shape = input_shape
        shape = (int(condition_shape[-1]), int(x_shape[-1]))
        self.gamma = self.add_weight(name="gamma", shape=shape, initializer=blocks.dcgan_init())
        self.beta = self.add_weight(name="beta", shape=shape, initializer="zeros")

    def call(self, inputs):
        x, condition = inputs
        condition = keras.ops.cast(condition, x.dtype)
        gamma = keras.ops.matmul(condition, keras.ops.cast(self.gamma, x.dtype))
        beta = keras.ops.matmul(condition, keras.ops.cast(self.beta, x.dtype))
        broadcast = (-1,) + (1,) * (len(x.shape) - 2) + (int(x.shape[-1]),)  # [B, C] over any middle axes
        return x * (1.0 + keras.ops.reshape(gamma, broadcast)) + keras.ops.reshape(beta, broadcast)

    def compute_output_shape(self, input_shape):
        return input_shape[0]
