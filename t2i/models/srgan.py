"""SRGAN generator (SRResNet) and discriminator (Ledig et al. 2017, Fig. 4), optionally conditioned on labels.

The generator maps a low-resolution image in [-1, 1] to one `scale` times larger. With `num_labels > 0` both
networks also take a multi-hot `labels` vector, tiled to every pixel of their input and concatenated as extra
channels; their inputs are then a dict `{"low_res" | "image": ..., "labels": ...}`, otherwise a plain tensor.

The paper's 4× network for 96×96 crops is `SRGANGenerator(image_size=96, scale=4)` and
`SRGANDiscriminator(image_size=96)`: 64 filters, 16 residual blocks, two ×2 sub-pixel stages, PReLU in the
generator, LeakyReLU(0.2) and a 1024-unit dense layer in the discriminator.
"""
import math

import keras

from t2i.layers.normalization import FusedBatchNormalization
from t2i.layers.pixel_shuffle import PixelShuffle

# PyTorch BatchNorm defaults (Keras momentum 0.9 ≙ PyTorch 0.1), which SRGAN reimplementations train with.
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9
LEAKY_SLOPE = 0.2
# (width multiplier, stride) of the discriminator's conv-BN-LeakyReLU blocks after the first conv (Fig. 4).
DISCRIMINATOR_BLOCKS = ((1, 2), (2, 1), (2, 2), (4, 1), (4, 2), (8, 1), (8, 2))
# Small images stop halving here: trailing stride-2 blocks that would go below it are dropped.
MIN_FEATURE_SIZE = 4


def _conv(x, filters, kernel_size, name, strides=1, use_bias=False):
    # Convs followed by BatchNorm need no bias: BN's β replaces it.
    return keras.layers.Conv2D(filters, kernel_size, strides=strides, padding="same", use_bias=use_bias,
                               name=f"{name}_conv")(x)


def _batch_norm(x, name):
    return FusedBatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{name}_bn")(x)


def _prelu(x, name):
    # One slope per channel, shared over the spatial axes as in He et al. 2015, so any image size works.
    return keras.layers.PReLU(shared_axes=[1, 2], name=f"{name}_prelu")(x)


def _with_labels(x, labels, size, name):
    """Concatenates `labels` [B, L], repeated at each of the size×size pixels, to the channels of `x`."""
    tiled = keras.layers.Reshape((1, 1, labels.shape[-1]), name=f"{name}_labels_reshape")(labels)
    # Nearest-neighbour upsampling of a 1×1 map is an exact tile, and serialises without a Lambda.
    tiled = keras.layers.UpSampling2D(size, interpolation="nearest", name=f"{name}_labels_tile")(tiled)
    return keras.layers.Concatenate(name=f"{name}_with_labels")([x, tiled])


def _inputs(image_name, size, channels, num_labels):
    """(model inputs, image input, labels input or None): a dict of named inputs only when conditional."""
    image = keras.Input(shape=(size, size, channels), name=image_name)
    if num_labels <= 0:
        return image, image, None
    labels = keras.Input(shape=(num_labels,), name="labels")
    return {image_name: image, "labels": labels}, image, labels


def check_scale(image_size, scale):
    """Upsampling factors are powers of two (×2 sub-pixel stages); the low-res input must be at least 4×4."""
    if not isinstance(scale, int) or scale < 2 or scale & (scale - 1):
        raise ValueError(f"scale must be a power of two >= 2. Received: scale={scale!r}")
    if not isinstance(image_size, int) or image_size % scale or image_size // scale < 4:
        raise ValueError(
            f"image_size must be a multiple of scale with image_size / scale >= 4. "
            f"Received: image_size={image_size!r}, scale={scale!r}"
        )
    return int(math.log2(scale))


@keras.saving.register_keras_serializable(package="t2i")
class SRGANGenerator(keras.Model):
    """Low-res image [image_size/scale, image_size/scale, channels] in [-1, 1] → image [image_size, image_size,
    channels] in [-1, 1].

    9×9 conv → PReLU → `residual_blocks` × (conv-BN-PReLU-conv-BN + skip) → conv-BN + a long skip from the head →
    log2(scale) × (conv to 4·filters → PixelShuffle(2) → PReLU) → 9×9 conv → tanh (the paper's output is linear; tanh
    keeps images in [-1, 1] like every t2i generator).

    Args:
        image_size: side of the high-resolution output.
        scale: upsampling factor, a power of two ≥ 2.
        channels: image channels (input and output).
        filters: width of the trunk.
        residual_blocks: number of residual blocks (16 in the paper).
        num_labels: size of the multi-hot `labels` input; 0 for an unconditional network.
    """

    def __init__(self, image_size=64, scale=4, channels=3, filters=64, residual_blocks=16, num_labels=0, **kwargs):
        num_stages = check_scale(image_size, scale)
        low_size = image_size // scale
        inputs, low_res, labels = _inputs("low_res", low_size, channels, num_labels)
        x = low_res if labels is None else _with_labels(low_res, labels, low_size, name="head")

        x = _prelu(_conv(x, filters, 9, name="head", use_bias=True), name="head")
        head = x
        for i in range(residual_blocks):
            name = f"res{i}"
            y = _prelu(_batch_norm(_conv(x, filters, 3, name=f"{name}_a"), name=f"{name}_a"), name=f"{name}_a")
            y = _batch_norm(_conv(y, filters, 3, name=f"{name}_b"), name=f"{name}_b")
            x = keras.layers.Add(name=f"{name}_add")([x, y])
        x = _batch_norm(_conv(x, filters, 3, name="trunk"), name="trunk")
        x = keras.layers.Add(name="trunk_add")([head, x])
        for i in range(num_stages):
            x = _conv(x, 4 * filters, 3, name=f"up{i}", use_bias=True)
            x = PixelShuffle(2, name=f"up{i}_shuffle")(x)
            x = _prelu(x, name=f"up{i}")
        x = _conv(x, channels, 9, name="to_image", use_bias=True)
        image = keras.layers.Activation("tanh", dtype="float32", name="image")(x)
        super().__init__(inputs=inputs, outputs=image, **kwargs)

        self.image_size = image_size
        self.scale = scale
        self.channels = channels
        self.filters = filters
        self.residual_blocks = residual_blocks
        self.num_labels = num_labels

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "image_size": self.image_size,
            "scale": self.scale,
            "channels": self.channels,
            "filters": self.filters,
            "residual_blocks": self.residual_blocks,
            "num_labels": self.num_labels,
        }


def discriminator_blocks(image_size, filters):
    """[(filters, stride)] of the conv blocks after the first conv, for an image_size×image_size input.

    The paper's seven blocks halve 96 → 6; at small sizes the stride-2 blocks that would take the map below
    `MIN_FEATURE_SIZE` are dropped together with everything after them.
    """
    blocks, size = [], image_size
    for multiplier, stride in DISCRIMINATOR_BLOCKS:
        if stride == 2 and math.ceil(size / 2) < MIN_FEATURE_SIZE:
            break
        size = math.ceil(size / stride)
        blocks.append((multiplier * filters, stride))
    return blocks


@keras.saving.register_keras_serializable(package="t2i")
class SRGANDiscriminator(keras.Model):
    """Image [image_size, image_size, channels] in [-1, 1] → one real/fake logit per image, shape [batch, 1].

    3×3 conv → LeakyReLU(0.2) → conv-BN-LeakyReLU blocks with strides 2,1,2,1,2,1,2 and widths
    f,2f,2f,4f,4f,8f,8f (`discriminator_blocks`) → dense 16·f → LeakyReLU → dense 1.

    Args:
        image_size: side of the input image, ≥ 8.
        channels: image channels.
        filters: width f of the first conv.
        num_labels: size of the multi-hot `labels` input; 0 for an unconditional network.
    """

    def __init__(self, image_size=64, channels=3, filters=64, num_labels=0, **kwargs):
        if not isinstance(image_size, int) or image_size < 2 * MIN_FEATURE_SIZE:
            raise ValueError(
                f"image_size must be an integer >= {2 * MIN_FEATURE_SIZE}. Received: image_size={image_size!r}"
            )
        inputs, image, labels = _inputs("image", image_size, channels, num_labels)
        x = image if labels is None else _with_labels(image, labels, image_size, name="input")

        x = _conv(x, filters, 3, name="head", use_bias=True)
        x = keras.layers.LeakyReLU(LEAKY_SLOPE, name="head_lrelu")(x)
        for i, (block_filters, stride) in enumerate(discriminator_blocks(image_size, filters)):
            x = _batch_norm(_conv(x, block_filters, 3, strides=stride, name=f"block{i}"), name=f"block{i}")
            x = keras.layers.LeakyReLU(LEAKY_SLOPE, name=f"block{i}_lrelu")(x)
        x = keras.layers.Flatten(name="flatten")(x)
        x = keras.layers.Dense(16 * filters, name="dense")(x)
        x = keras.layers.LeakyReLU(LEAKY_SLOPE, name="dense_lrelu")(x)
        logits = keras.layers.Dense(1, dtype="float32", name="logits")(x)
        super().__init__(inputs=inputs, outputs=logits, **kwargs)

        self.image_size = image_size
        self.channels = channels
        self.filters = filters
        self.num_labels = num_labels

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "image_size": self.image_size,
            "channels": self.channels,
            "filters": self.filters,
            "num_labels": self.num_labels,
        }
