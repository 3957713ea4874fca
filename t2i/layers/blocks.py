"""Building blocks shared by the networks: initialisers and up/down-sampling blocks.

They are functions that add layers to a functional graph, so the networks stay plain functional models; the only
t2i layers among them are `FusedBatchNormalization`, `FusedLayerNormalization` and `NearestUpsampleConv2D`
(registered, so `.keras` files load after `import t2i`).
"""
import math

import keras

from t2i.layers.normalization import FusedBatchNormalization, FusedLayerNormalization
from t2i.layers.resize_conv import NearestUpsampleConv2D

UPSAMPLING_MODES = ("transposed", "nearest", "nearest_fused")


def dcgan_init():
    """N(0, 0.02) for every conv/dense kernel (Radford et al. 2016, §4)."""
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.02)


def batch_norm(x, epsilon, momentum, name):
    """BatchNorm with γ ~ N(1, 0.02), as the DCGAN reference initialises it (on TensorFlow's fused kernel:
    `t2i.layers.normalization.FusedBatchNormalization`)."""
    return FusedBatchNormalization(
        epsilon=epsilon,
        momentum=momentum,
        gamma_initializer=keras.initializers.RandomNormal(mean=1.0, stddev=0.02),
        name=name,
    )(x)


NORMALIZATIONS = ("batch", "layer", "instance", "none")


def normalize(x, mode, epsilon, momentum, name):
    """Per-layer normalisation by name.

    "layer" normalises each example over (H, W, C) — the WGAN-GP critic's choice, since BatchNorm couples the
    examples of a batch and so breaks the per-example gradient penalty (`FusedLayerNormalization`: Keras' layer
    with a closed-form gradient); "instance" is GroupNorm with one group per
    channel (tensorflow-addons' InstanceNormalization no longer imports).
    """
    if mode == "batch":
        return batch_norm(x, epsilon, momentum, name)
    if mode == "layer":
        return FusedLayerNormalization(axis=(1, 2, 3), epsilon=epsilon, name=name)(x)
    if mode == "instance":
        return keras.layers.GroupNormalization(groups=-1, epsilon=epsilon, name=name)(x)
    if mode == "none":
        return x
    raise ValueError(f"Unknown normalization; expected one of {NORMALIZATIONS}. Received: normalization={mode!r}")


def upsample(x, filters, mode, name, kernel_size=4, use_bias=False):
    """Doubles the spatial size: a stride-2 transposed conv, or nearest-neighbour resize + 3×3 conv.

    The resize-conv variant avoids the checkerboard artefacts of transposed convs (Odena et al. 2016). "nearest"
    builds it as two layers (UpSampling2D, Conv2D); "nearest_fused" is the same function and weights in one
    `NearestUpsampleConv2D` layer, 2.25× fewer multiply-adds (its checkpoints are not interchangeable with
    "nearest" ones: the networks have one layer fewer per upsampling).
    """
    if mode == "transposed":
        return keras.layers.Conv2DTranspose(
            filters, kernel_size, strides=2, padding="same", use_bias=use_bias,
            kernel_initializer=dcgan_init(), name=f"{name}_deconv",
        )(x)
    if mode == "nearest":
        x = keras.layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_upsample")(x)
        return keras.layers.Conv2D(
            filters, 3, padding="same", use_bias=use_bias, kernel_initializer=dcgan_init(), name=f"{name}_conv"
        )(x)
    if mode == "nearest_fused":
        return NearestUpsampleConv2D(
            filters, 3, padding="same", use_bias=use_bias, kernel_initializer=dcgan_init(), name=f"{name}_conv"
        )(x)
    raise ValueError(f"Unknown upsampling mode; expected one of {UPSAMPLING_MODES}. Received: upsampling={mode!r}")


def downsample(x, filters, name, kernel_size=4, use_bias=False):
    """Halves the spatial size with a stride-2 conv."""
    return keras.layers.Conv2D(
        filters, kernel_size, strides=2, padding="same", use_bias=use_bias,
        kernel_initializer=dcgan_init(), name=f"{name}_conv",
    )(x)


def check_image_size(image_size, minimum=32, maximum=256):
    """Power-of-two sizes only: every stage halves or doubles the resolution."""
    if (
        not isinstance(image_size, int)
        or image_size < minimum
        or image_size > maximum
        or image_size & (image_size - 1)
    ):
        raise ValueError(
            f"image_size must be a power of two in [{minimum}, {maximum}]. Received: image_size={image_size!r}"
        )
    return int(math.log2(image_size))


def auxiliary_head(features, num_labels):
    """Features → one float32 logit per label (flatten + dense): AC-GAN's / TAC-GAN's auxiliary classifier."""
    flat = keras.layers.Flatten(name="aux_flatten")(features)
    return keras.layers.Dense(num_labels, kernel_initializer=dcgan_init(), dtype="float32", name="aux_logits")(flat)


def channel_table(num_stages, base_filters, max_filters, widening=True):
    """Filters per stage: base·2^i capped at max_filters (discriminator order; reverse it for a generator)."""
    table = [min(base_filters * 2**i, max_filters) for i in range(num_stages)]
    return table if widening else table[::-1]
