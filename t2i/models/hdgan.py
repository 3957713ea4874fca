"""HDGAN-style networks (Zhang, Xie & Yang, CVPR 2018, "Photographic Text-to-Image Synthesis with a
Hierarchically-nested Adversarial Network"): one generator with side outputs at several scales, and one
discriminator per scale with an image–text pair loss and a local patch-level image loss.

Generator: Conditioning Augmentation (layer "ca") turns the sentence embedding into a code c; concat(c, z) → dense
to 4×4 → BN-ReLU → stages of [nearest ×2 + 3×3 conv + BN + ReLU, then `num_residual` residual blocks] up to the
largest scale. At every requested scale s a side branch `to_rgb_{s}` (3×3 conv → 3 channels) + tanh gives the
output `image_{s}`. Widths come from a per-resolution table: `gf_dim` at the largest scale, doubling per halving
of the resolution up to `max_filters` (never below 8), so (64, 128, 256) with gf_dim 64 has 512 channels at
4…32, then 256, 128 and 64 — close to the reference code.

Discriminators: stride-2 4×4 convs (BN on all but the first, LeakyReLU 0.2) take the image down to 4×4. Their
widths depend on the resolution only — `df_dim` at 32×32 (the first layer of the 64-px discriminator), doubling per
halving up to `max_filters`, halving per doubling down to 8 — so every scale's network has the same width at the
same resolution, which is what lets scales share a trunk. Two heads:
- "pair_logits" [B, 1], image–text matching: the 4×4 features concatenated with the compressed text (dense
  `ef_dim` + LeakyReLU, tiled to 4×4) → 1×1 conv + BN + LeakyReLU → 4×4 valid conv → one logit.
- "patch_logits" [B, p, p, 1], unconditional local realism: a 1×1 conv on the p×p feature map. The reference code
  reads small maps off its 4×4 features (1×1 at 64 and 128 px, 4×4 at 256 px); here p defaults to
  max(4, scale / 8): from scale 32 on, the features three stride-2 4×4 convs in, each logit judging a 22×22-pixel
  patch, 8 pixels apart. Any power of two in [4, scale / 2] can be chosen.
With `embedding_dim=0` the discriminators are unconditional: their input dict holds only "image" and the global head
is an image-only "logits" [B, 1] (4×4 valid conv on the 4×4 features) instead of "pair_logits".

`HDGANDiscriminators` puts the discriminators of all scales into one functional model. With `shared_trunk=True`
each scale keeps its own stem down to the smallest scale's s/2 (where all stems meet at the same width) and the
rest — trunk to 4×4, text compression and both heads — is shared. The shared BatchNorm layers then keep one set of
moving statistics blended over the scales; discriminators run in training mode during GAN training, so only
inference-mode use sees the blend.
"""
import keras

from t2i.layers import blocks
from t2i.layers.conditioning import ConditioningAugmentation
from t2i.layers.normalization import FusedBatchNormalization

# PyTorch BatchNorm defaults (Keras momentum 0.9 ≙ PyTorch 0.1), as in the reference implementation.
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9
LEAKY_SLOPE = 0.2
MIN_SCALE = 16
MIN_FILTERS = 8
# Resolution at which a discriminator has `df_dim` filters.
DISCRIMINATOR_REFERENCE_RESOLUTION = 32
# Every network starts (generator) or ends (discriminators) at 4×4.
BASE_RESOLUTION = 4


def _is_scale(value):
    return (isinstance(value, int) and not isinstance(value, bool) and value >= MIN_SCALE
            and not value & (value - 1))


def check_scales(scales, name="output_scales"):
    """Distinct powers of two ≥ 16 (each is reached by doubling from 4) → sorted tuple; else a ValueError naming
    `name`."""
    values = tuple(scales) if isinstance(scales, (list, tuple)) else ()
    if not values or not all(_is_scale(s) for s in values) or len(set(values)) != len(values):
        raise ValueError(f"{name} must be a non-empty sequence of distinct powers of two >= {MIN_SCALE}. "
                         f"Received: {name}={scales!r}")
    return tuple(sorted(values))


def check_patch_size(patch_size, smallest_scale):
    """None (the per-scale default) or a power of two in [4, smallest_scale / 2]; returns it unchanged."""
    if patch_size is None:
        return None
    if (not isinstance(patch_size, int) or isinstance(patch_size, bool) or patch_size < BASE_RESOLUTION
            or patch_size > smallest_scale // 2 or patch_size & (patch_size - 1)):
        raise ValueError(f"patch_size must be None or a power of two in [{BASE_RESOLUTION}, "
                         f"{smallest_scale // 2}] (half the smallest scale). Received: patch_size={patch_size!r}")
    return patch_size


def default_patch_size(scale):
    """Side of the patch-logit map: the features at scale / 8, never below 4×4."""
    return max(BASE_RESOLUTION, scale // 8)


def generator_filters(resolution, largest_scale, gf_dim, max_filters):
    """Generator width at `resolution`: gf_dim at the largest scale, ×2 per halving, capped, floored at 8."""
    return max(MIN_FILTERS, min(max_filters, gf_dim * (largest_scale // resolution)))


def discriminator_filters(resolution, df_dim, max_filters):
    """Discriminator width at `resolution`: df_dim at 32×32, ×2 per halving, capped, floored at 8."""
    return max(MIN_FILTERS, min(max_filters, df_dim * DISCRIMINATOR_REFERENCE_RESOLUTION // resolution))


def _check_positive(value, name):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")


def _check_embedding_dims(embedding_dim, ef_dim, df_dim, max_filters):
    if not isinstance(embedding_dim, int) or isinstance(embedding_dim, bool) or embedding_dim < 0:
        raise ValueError(f"embedding_dim must be a non-negative integer (0: unconditional). "
                         f"Received: embedding_dim={embedding_dim!r}")
    for value, arg in ((ef_dim, "ef_dim"), (df_dim, "df_dim"), (max_filters, "max_filters")):
        _check_positive(value, arg)


def _residual_block(x, filters, name):
    """conv-BN-ReLU-conv-BN plus the identity, no activation after the sum (the reference ResnetBlock)."""
    y = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer=blocks.dcgan_init(),
                            name=f"{name}_a_conv")(x)
    y = blocks.batch_norm(y, BN_EPSILON, BN_MOMENTUM, name=f"{name}_a_bn")
    y = keras.layers.ReLU(name=f"{name}_a_relu")(y)
    y = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer=blocks.dcgan_init(),
                            name=f"{name}_b_conv")(y)
    y = blocks.batch_norm(y, BN_EPSILON, BN_MOMENTUM, name=f"{name}_b_bn")
    return keras.layers.Add(name=f"{name}_add")([x, y])


@keras.saving.register_keras_serializable(package="t2i")
class HDGANGenerator(keras.Model):
    """{"noise": [B, noise_dim], "embedding": [B, embedding_dim]} → {f"image_{s}": [B, s, s, 3] in [-1, 1]} for
    every s in `output_scales`.

    The KL term of Conditioning Augmentation needs (μ, log σ): `ca_statistics(embedding)`. The code c is sampled at
    inference too, as in StackGAN, so one caption gives varied images.

    Args:
        output_scales: sides of the side outputs, distinct powers of two ≥ 16 (sorted ascending here).
        noise_dim: size of z.
        embedding_dim: size of the sentence embedding (1024 for char-CNN-RNN).
        ef_dim: size of the conditioning code c.
        gf_dim: width at the largest scale; ×2 per halving of the resolution.
        max_filters: cap on the widths of the coarse stages.
        num_residual: residual blocks after each upsampling stage.
    """

    def __init__(self, output_scales=(64, 128, 256), noise_dim=100, embedding_dim=1024, ef_dim=128, gf_dim=64,
                 max_filters=512, num_residual=1, **kwargs):
        scales = check_scales(output_scales, "output_scales")
        for value, arg in ((noise_dim, "noise_dim"), (embedding_dim, "embedding_dim"), (ef_dim, "ef_dim"),
                           (gf_dim, "gf_dim"), (max_filters, "max_filters")):
            _check_positive(value, arg)
        if not isinstance(num_residual, int) or isinstance(num_residual, bool) or num_residual < 0:
            raise ValueError(f"num_residual must be a non-negative integer. Received: num_residual={num_residual!r}")
        largest = scales[-1]

        def width(resolution):
            return generator_filters(resolution, largest, gf_dim, max_filters)

        noise = keras.Input(shape=(noise_dim,), name="noise")
        embedding = keras.Input(shape=(embedding_dim,), name="embedding")
        code = ConditioningAugmentation(ef_dim, name="ca")(embedding)
        x = keras.layers.Concatenate(name="code_noise")([code, noise])
        x = keras.layers.Dense(BASE_RESOLUTION * BASE_RESOLUTION * width(BASE_RESOLUTION), use_bias=False,
                               kernel_initializer=blocks.dcgan_init(), name="project")(x)
        x = keras.layers.Reshape((BASE_RESOLUTION, BASE_RESOLUTION, width(BASE_RESOLUTION)),
                                 name="project_reshape")(x)
        x = blocks.batch_norm(x, BN_EPSILON, BN_MOMENTUM, name="project_bn")
        x = keras.layers.ReLU(name="project_relu")(x)
        images = {}
        resolution = BASE_RESOLUTION
        while resolution < largest:
            resolution *= 2
            x = blocks.upsample(x, width(resolution), "nearest", name=f"up{resolution}")
            x = blocks.batch_norm(x, BN_EPSILON, BN_MOMENTUM, name=f"up{resolution}_bn")
            x = keras.layers.ReLU(name=f"up{resolution}_relu")(x)
            for i in range(num_residual):
                x = _residual_block(x, width(resolution), name=f"res{resolution}_{i}")
            if resolution in scales:
                rgb = keras.layers.Conv2D(3, 3, padding="same", kernel_initializer=blocks.dcgan_init(),
                                          name=f"to_rgb_{resolution}")(x)
                images[f"image_{resolution}"] = keras.layers.Activation(
                    "tanh", dtype="float32", name=f"image_{resolution}")(rgb)
        super().__init__(inputs={"noise": noise, "embedding": embedding}, outputs=images, **kwargs)

        self.output_scales = scales
        self.noise_dim = noise_dim
        self.embedding_dim = embedding_dim
        self.ef_dim = ef_dim
        self.gf_dim = gf_dim
        self.max_filters = max_filters
        self.num_residual = num_residual

    @property
    def largest_output_key(self):
        """Key of the finest side output, e.g. "image_256": the image to sample, export and evaluate."""
        return f"image_{self.output_scales[-1]}"

    def ca_statistics(self, embedding):
        """(μ, log σ), each [B, ef_dim], of the conditioning Gaussian for `embedding`: for the KL loss."""
        return self.get_layer("ca").statistics(embedding)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "output_scales": list(self.output_scales),
            "noise_dim": self.noise_dim,
            "embedding_dim": self.embedding_dim,
            "ef_dim": self.ef_dim,
            "gf_dim": self.gf_dim,
            "max_filters": self.max_filters,
            "num_residual": self.num_residual,
        }


class _Ladder:
    """Stride-2 conv stages from `start` down to `stop` resolution, created once and applicable to several inputs
    (which is how scales share a trunk in one functional graph).

    `from_rgb=True` makes the first stage an image stem: conv with bias, no BatchNorm (DCGAN's first layer).
    """

    def __init__(self, start, stop, df_dim, max_filters, prefix, from_rgb=False):
        self.stages = []
        resolution = start
        while resolution > stop:
            resolution //= 2
            name = f"{prefix}down{resolution}"
            first = from_rgb and not self.stages
            conv = keras.layers.Conv2D(discriminator_filters(resolution, df_dim, max_filters), 4, strides=2,
                                       padding="same", use_bias=first, kernel_initializer=blocks.dcgan_init(),
                                       name=f"{name}_conv")
            norm = None if first else FusedBatchNormalization(
                epsilon=BN_EPSILON, momentum=BN_MOMENTUM,
                gamma_initializer=keras.initializers.RandomNormal(mean=1.0, stddev=0.02), name=f"{name}_bn")
            activation = keras.layers.LeakyReLU(LEAKY_SLOPE, name=f"{name}_lrelu")
            self.stages.append((resolution, conv, norm, activation))

    def __call__(self, x):
        """Features at every resolution the ladder produces: {resolution: tensor}."""
        features = {}
        for resolution, conv, norm, activation in self.stages:
            x = conv(x)
            if norm is not None:
                x = norm(x)
            x = activation(x)
            features[resolution] = x
        return features


class _Heads:
    """Patch head on the p×p features, and the pair head (or the unconditional global head) on the 4×4 ones."""

    def __init__(self, embedding_dim, ef_dim, df_dim, max_filters, prefix):
        init = blocks.dcgan_init()
        self.conditional = embedding_dim > 0
        self.patch = keras.layers.Conv2D(1, 1, kernel_initializer=init, dtype="float32",
                                         name=f"{prefix}patch_logits")
        if self.conditional:
            self.text = [
                keras.layers.Dense(ef_dim, kernel_initializer=init, name=f"{prefix}text_dense"),
                keras.layers.LeakyReLU(LEAKY_SLOPE, name=f"{prefix}text_lrelu"),
                keras.layers.Reshape((1, 1, ef_dim), name=f"{prefix}text_reshape"),
                # Nearest upsampling of a 1×1 map is an exact tile and serialises without a Lambda.
                keras.layers.UpSampling2D(BASE_RESOLUTION, interpolation="nearest", name=f"{prefix}text_tile"),
            ]
            self.join = keras.layers.Concatenate(name=f"{prefix}image_text")
            self.pair = [
                keras.layers.Conv2D(discriminator_filters(BASE_RESOLUTION, df_dim, max_filters), 1, use_bias=False,
                                    kernel_initializer=init, name=f"{prefix}pair_conv"),
                FusedBatchNormalization(
                    epsilon=BN_EPSILON, momentum=BN_MOMENTUM,
                    gamma_initializer=keras.initializers.RandomNormal(mean=1.0, stddev=0.02), name=f"{prefix}pair_bn"),
                keras.layers.LeakyReLU(LEAKY_SLOPE, name=f"{prefix}pair_lrelu"),
                keras.layers.Conv2D(1, BASE_RESOLUTION, padding="valid", kernel_initializer=init,
                                    name=f"{prefix}pair_logit_conv"),
                keras.layers.Flatten(dtype="float32", name=f"{prefix}pair_logits"),
            ]
        else:
            self.pair = [
                keras.layers.Conv2D(1, BASE_RESOLUTION, padding="valid", kernel_initializer=init,
                                    name=f"{prefix}logit_conv"),
                keras.layers.Flatten(dtype="float32", name=f"{prefix}logits"),
            ]

    def __call__(self, features, patch_size, embedding):
        outputs = {}
        x = features[BASE_RESOLUTION]
        if self.conditional:
            text = embedding
            for layer in self.text:
                text = layer(text)
            x = self.join([x, text])
        for layer in self.pair:
            x = layer(x)
        outputs["pair_logits" if self.conditional else "logits"] = x
        outputs["patch_logits"] = self.patch(features[patch_size])
        return outputs


def _discriminator_inputs(scale, embedding_dim, image_name):
    image = keras.Input(shape=(scale, scale, 3), name=image_name)
    embedding = keras.Input(shape=(embedding_dim,), name="embedding") if embedding_dim > 0 else None
    return image, embedding


@keras.saving.register_keras_serializable(package="t2i")
class HDGANDiscriminator(keras.Model):
    """{"image": [B, s, s, 3], "embedding": [B, embedding_dim]} → {"pair_logits": [B, 1], "patch_logits":
    [B, p, p, 1]}; with `embedding_dim=0`, {"image"} → {"logits": [B, 1], "patch_logits": [B, p, p, 1]}.

    Args:
        scale: side of the input image, a power of two ≥ 16.
        embedding_dim: size of the sentence embedding; 0 for an unconditional discriminator.
        ef_dim: size of the compressed text tiled next to the 4×4 image features.
        df_dim: width at 32×32; ×2 per halving of the resolution, ÷2 per doubling.
        max_filters: cap on the widths.
        patch_size: side p of the patch-logit map, a power of two in [4, scale / 2]; None for max(4, scale / 8).
    """

    def __init__(self, scale=64, embedding_dim=1024, ef_dim=128, df_dim=64, max_filters=512, patch_size=None,
                 **kwargs):
        if not _is_scale(scale):
            raise ValueError(f"scale must be a power of two >= {MIN_SCALE}. Received: scale={scale!r}")
        check_patch_size(patch_size, scale)
        _check_embedding_dims(embedding_dim, ef_dim, df_dim, max_filters)
        image, embedding = _discriminator_inputs(scale, embedding_dim, "image")
        features = _Ladder(scale, BASE_RESOLUTION, df_dim, max_filters, prefix="", from_rgb=True)(image)
        heads = _Heads(embedding_dim, ef_dim, df_dim, max_filters, prefix="")
        outputs = heads(features, patch_size or default_patch_size(scale), embedding)
        inputs = {"image": image} if embedding is None else {"image": image, "embedding": embedding}
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        self.scale = scale
        self.embedding_dim = embedding_dim
        self.ef_dim = ef_dim
        self.df_dim = df_dim
        self.max_filters = max_filters
        self.patch_size = patch_size

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "scale": self.scale,
            "embedding_dim": self.embedding_dim,
            "ef_dim": self.ef_dim,
            "df_dim": self.df_dim,
            "max_filters": self.max_filters,
            "patch_size": self.patch_size,
        }


@keras.saving.register_keras_serializable(package="t2i")
class HDGANDiscriminators(keras.Model):
    """The discriminators of all scales in one model:
    {"images": {f"image_{s}": [B, s, s, 3]}, "embedding": [B, D]} → {f"image_{s}": {"pair_logits", "patch_logits"}}
    (without "embedding", and "logits" for "pair_logits", when `embedding_dim=0`). Feed it the generator's output
    dict as "images".

    Without a shared trunk each scale's network is laid out as `HDGANDiscriminator(scale)`, its layers prefixed
    `d{s}_`. With `shared_trunk=True` the layers from the smallest scale's s/2 down to 4×4 and the heads are shared
    (prefix `shared_`); only the stems (`d{s}_`, image → smallest/2) belong to one scale, and the patch map of
    every scale has the smallest scale's side, since one shared head reads one trunk resolution.

    Args:
        scales: the generator's output scales, distinct powers of two ≥ 16.
        shared_trunk: share the deeper layers and the heads between scales.
        patch_size: side of every patch map (a power of two in [4, smallest / 2]); None for max(4, s / 8) per
            scale, or the smallest scale's value with a shared trunk.
        Other arguments as `HDGANDiscriminator`.
    """

    def __init__(self, scales=(64, 128, 256), shared_trunk=False, embedding_dim=1024, ef_dim=128, df_dim=64,
                 max_filters=512, patch_size=None, **kwargs):
        sorted_scales = check_scales(scales, "scales")
        smallest = sorted_scales[0]
        check_patch_size(patch_size, smallest)
        _check_embedding_dims(embedding_dim, ef_dim, df_dim, max_filters)
        embedding = keras.Input(shape=(embedding_dim,), name="embedding") if embedding_dim > 0 else None
        images, outputs = {}, {}
        if shared_trunk:
            trunk = _Ladder(smallest // 2, BASE_RESOLUTION, df_dim, max_filters, prefix="shared_")
            heads = _Heads(embedding_dim, ef_dim, df_dim, max_filters, prefix="shared_")
        for scale in sorted_scales:
            key = f"image_{scale}"
            images[key] = keras.Input(shape=(scale, scale, 3), name=key)
            prefix = f"d{scale}_"
            if shared_trunk:
                stem = _Ladder(scale, smallest // 2, df_dim, max_filters, prefix=prefix, from_rgb=True)(images[key])
                features = {**stem, **trunk(stem[smallest // 2])}
                outputs[key] = heads(features, patch_size or default_patch_size(smallest), embedding)
            else:
                features = _Ladder(scale, BASE_RESOLUTION, df_dim, max_filters, prefix=prefix,
                                   from_rgb=True)(images[key])
                scale_heads = _Heads(embedding_dim, ef_dim, df_dim, max_filters, prefix=prefix)
                outputs[key] = scale_heads(features, patch_size or default_patch_size(scale), embedding)
        inputs = {"images": images} if embedding is None else {"images": images, "embedding": embedding}
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        self.scales = sorted_scales
        self.shared_trunk = shared_trunk
        self.embedding_dim = embedding_dim
        self.ef_dim = ef_dim
        self.df_dim = df_dim
        self.max_filters = max_filters
        self.patch_size = patch_size

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "scales": list(self.scales),
            "shared_trunk": self.shared_trunk,
            "embedding_dim": self.embedding_dim,
            "ef_dim": self.ef_dim,
            "df_dim": self.df_dim,
            "max_filters": self.max_filters,
            "patch_size": self.patch_size,
        }
