"""StackGAN Stage-I and Stage-II networks (Zhang et al. 2017), following the original TensorFlow implementation.

Stage-I draws a coarse S×S image (S = 64 in the paper) from z and a Conditioning Augmentation code c of the caption
embedding; Stage-II re-reads that image together with its own CA code and paints a 4S×4S one (256). Both
discriminators are matching-aware: the image is encoded down to S/16 (Stage-I) or 4×4 (Stage-II), the embedding is
compressed to `ef_dim`, tiled over the feature map and joined by a 1×1 conv before the logit conv.

Sizes are data: the `*_STAGES` tables give per-resolution width multipliers (of `gf_dim` / `df_dim`) and the
residual bottlenecks, for the two variants of the original code: "simple" (`generator_simple`, transposed convs,
no residual blocks) and "complex" (`generator`, nearest-neighbour resize + 3×3 convs with residual blocks).

With `embedding_dim=0` every network is unconditional: no CA, no text branch, and the input is the noise (or image)
tensor alone rather than a dict — the house convention of the other unconditional networks.
"""
import math

import keras

from t2i.layers import blocks
from t2i.layers.conditioning import (ConditioningAugmentation, EmbeddingStandardization, ProjectionLogit,
                                    conditional_batch_norm)

VARIANTS = ("simple", "complex")
LEAKY_SLOPE = 0.2

# Stage-I generator, one row per resolution s/16, s/8, s/4, s/2: (width multiplier of gf_dim, residual bottleneck
# multipliers (1×1, 3×3) or None). The image itself comes from one more upsampling to 3 channels.
STAGE1_GENERATOR_STAGES = {
    "simple": ((8, None), (4, None), (2, None), (1, None)),
    "complex": ((8, (2, 2)), (4, (1, 1)), (2, None), (1, None)),
}
STAGE1_GENERATOR_UPSAMPLING = {"simple": "transposed", "complex": "nearest"}

# Stage-I discriminator: widths of the four stride-2 4×4 convs (× df_dim), and the residual bottleneck on the last
# (1×1, 3×3 multipliers) for the complex variant.
STAGE1_DISCRIMINATOR_WIDTHS = (1, 2, 4, 8)
STAGE1_DISCRIMINATOR_RESIDUAL = {"simple": None, "complex": (2, 2)}

# Stage-II generator: its encoder's widths cap at gf_dim·4, the residual blocks run at gf_dim·4, and the upsampling
# stages halve from gf_dim·2 with this floor (gf_dim·2, gf_dim, gf_dim/2, gf_dim/4 for the paper's 16 → 256).
STAGE2_MAX_MULTIPLIER = 4
STAGE2_MIN_UPSAMPLING_FILTERS = 8

# Stage-II discriminator: stride-2 convs down to this side, then 3×3 convs halving the width back to df_dim·8.
STAGE2_DISCRIMINATOR_FEATURE_SIZE = 4
JOINT_MULTIPLIER = 8


def check_variant(variant):
    if variant not in VARIANTS:
        raise ValueError(f"Unknown StackGAN variant; expected one of {VARIANTS}. Received: variant={variant!r}")


def _conv(x, filters, kernel_size, name, strides=1, use_bias=False, padding="same"):
    # Convs followed by BatchNorm need no bias: BN's β replaces it.
    return keras.layers.Conv2D(filters, kernel_size, strides=strides, padding=padding, use_bias=use_bias,
                               kernel_initializer=blocks.dcgan_init(), name=f"{name}_conv")(x)


def _activate(x, activation, name):
    if activation == "relu":
        return keras.layers.ReLU(name=f"{name}_relu")(x)
    return keras.layers.LeakyReLU(LEAKY_SLOPE, name=f"{name}_lrelu")(x)


def _conv_bn(x, filters, kernel_size, name, bn, activation=None, strides=1):
    """conv → normalisation (→ activation when given).

    `bn` is (epsilon, momentum) for BatchNorm, or (epsilon, momentum, normalization) with any of
    `blocks.NORMALIZATIONS`; BatchNorm layers keep the "<name>_bn" names of the original networks.
    """
    epsilon, momentum = bn[:2]
    normalization = bn[2] if len(bn) > 2 else "batch"
    x = _conv(x, filters, kernel_size, name, strides=strides, use_bias=normalization == "none")
    suffix = "bn" if normalization == "batch" else normalization
    x = blocks.normalize(x, normalization, epsilon, momentum, name=f"{name}_{suffix}")
    return x if activation is None else _activate(x, activation, name)


def _residual_block(x, convs, activation, bn, name):
    """x + F(x) → activation, F = [conv-BN-activation]* conv-BN over `convs` ((kernel, filters), ...)."""
    h = x
    for i, (kernel_size, filters) in enumerate(convs):
        last = i == len(convs) - 1
        h = _conv_bn(h, filters, kernel_size, f"{name}_{i}", bn, activation=None if last else activation)
    x = keras.layers.Add(name=f"{name}_add")([x, h])
    return _activate(x, activation, f"{name}_out")


def _tile(code, size, name):
    """[B, D] → [B, size, size, D]; an UpSampling2D of a 1×1 map is an exact tile and serialises without a Lambda."""
    code = keras.layers.Reshape((1, 1, code.shape[-1]), name=f"{name}_reshape")(code)
    if size == 1:
        return code
    return keras.layers.UpSampling2D(size, interpolation="nearest", name=f"{name}_tile")(code)


def _text_logits(features, embedding, ef_dim, df_dim, bn):
    """Matching-aware head: [B, s, s, C] features (+ embedding) → logits [B, 1].

    The embedding is compressed (dense ef_dim + LeakyReLU), tiled over the s×s map and concatenated; a 1×1 conv
    (df_dim·8, BN, LeakyReLU) joins image and text, and an s×s valid conv gives one logit. Without an embedding the
    joint conv sees the image features alone.
    """
    size = features.shape[1]
    x = features
    if embedding is not None:
        text = keras.layers.Dense(ef_dim, kernel_initializer=blocks.dcgan_init(), name="text_dense")(embedding)
        text = keras.layers.LeakyReLU(LEAKY_SLOPE, name="text_lrelu")(text)
        x = keras.layers.Concatenate(name="image_text")([features, _tile(text, size, "text")])
    x = _conv_bn(x, df_dim * JOINT_MULTIPLIER, 1, "joint", bn, activation="leaky_relu")
    x = _conv(x, 1, size, "logit", padding="valid", use_bias=True)
    return keras.layers.Flatten(dtype="float32", name="logits")(x)


def _discriminator_inputs(image_size, embedding_dim):
    """(model inputs, image, embedding or None): a dict only when conditional."""
    image = keras.Input(shape=(image_size, image_size, 3), name="image")
    if embedding_dim <= 0:
        return image, image, None
    embedding = keras.Input(shape=(embedding_dim,), name="embedding")
    return {"image": image, "embedding": embedding}, image, embedding


STANDARDIZATION_LAYER = "embedding_standardization"


def _standardized(embedding, standardize):
    """The embedding input, through an `EmbeddingStandardization` layer when `standardize` (its statistics are set
    from the training embeddings by `t2i.training.factory` and saved with the weights)."""
    if not standardize:
        return embedding
    return EmbeddingStandardization(name=STANDARDIZATION_LAYER)(embedding)


def _check_normalization(normalization):
    if normalization not in blocks.NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {blocks.NORMALIZATIONS}. "
                         f"Received: normalization={normalization!r}")


def stage1_depth(image_size, base_size):
    """Number of ×2 stages between Stage-I's smallest feature map (`base_size`; None: image_size/16, the paper's 4×4
    at 64×64) and the image: 4 in the paper, 2–4 allowed (the networks drop their last stages when shallower)."""
    if base_size is None:
        return len(STAGE1_DISCRIMINATOR_WIDTHS)
    if (isinstance(base_size, bool) or not isinstance(base_size, int) or base_size <= 0
            or image_size % base_size or (image_size // base_size) not in (4, 8, 16)):
        raise ValueError(f"base_size must divide image_size into 4, 8 or 16 (2 to 4 stages of ×2). Received: "
                         f"base_size={base_size!r}, image_size={image_size}")
    return int(math.log2(image_size // base_size))


def _check_embedding_dim(embedding_dim):
    if not isinstance(embedding_dim, int) or embedding_dim < 0:
        raise ValueError(f"embedding_dim must be a non-negative integer (0: unconditional). "
                         f"Received: embedding_dim={embedding_dim!r}")


@keras.saving.register_keras_serializable(package="t2i")
class StackGANStage1Generator(keras.Model):
    """{"noise": [B, noise_dim], "embedding": [B, embedding_dim]} → image in [-1, 1], [B, S, S, 3].

    c = CA(embedding) (layer "ca") is concatenated with z and projected by a dense layer to S/16 × S/16 × gf_dim·8;
    four ×2 upsamplings follow (gf_dim·4, ·2, ·1, then 3 channels and tanh). "simple" uses 4×4 stride-2 transposed
    convs with BN-ReLU between; "complex" (the paper's network) uses nearest ×2 + 3×3 conv with a residual block
    after the s/16 and s/8 stages.

    Args:
        image_size: S, a power of two in [16, 256] (64 in the paper).
        noise_dim: size of z (100).
        embedding_dim: size of the caption embedding (1024 for char-CNN-RNN); 0 → unconditional, input = noise.
        ef_dim: size of the CA code c (128).
        gf_dim: base width (128): the first stage has gf_dim·8 channels.
        variant: "simple" or "complex".
        ca_activation: "leaky_relu" (original TF StackGAN) or "relu" (PyTorch StackGAN).
        ca_hidden: width of a hidden layer in front of CA's dense layer (0: none, as in the paper); lets the code
            read what is not linear in the embedding (`ConditioningAugmentation.hidden_units`).
        ca_seed: seed of the CA noise (None: random).
        bn_epsilon, bn_momentum: BatchNorm settings.
        upsampling: "transposed" (4×4 stride-2 transposed convs), "nearest" (nearest ×2 + 3×3 conv, no
            checkerboard) or "nearest_fused" (the same in one layer, 2.25× fewer multiply-adds:
            `t2i.layers.resize_conv`); None takes the variant's own (simple: transposed, complex: nearest).
        standardize_embedding: standardise the embedding per dimension before CA (layer
            "embedding_standardization", `EmbeddingStandardization`), so that the text signal starts as strong as
            CA's unit noise whatever the encoder's scale.
        base_size: side of the dense layer's map; None → S/16 (the paper's 4×4 at 64×64). A larger one (S/8, S/4)
            drops the last stages (gf_dim·1, then gf_dim·2): at 32×32, base 4 keeps the paper's 4×4 start instead
            of a 2×2 one.
        conditional_bn: the CA code c also sets the scale and offset of the dense map's and every upsampling
            stage's BatchNorm (γ = 1 + c·W_γ, β = c·W_β; the complex variant's residual blocks keep plain BN), so the
            text steers every resolution, not only the dense projection.
    """

    def __init__(self, image_size=64, noise_dim=100, embedding_dim=1024, ef_dim=128, gf_dim=128, variant="simple",
                 ca_activation="leaky_relu", ca_seed=None, bn_epsilon=1e-5, bn_momentum=0.9,
                 standardize_embedding=False, upsampling=None, base_size=None, conditional_bn=False, ca_hidden=0,
                 **kwargs):
        blocks.check_image_size(image_size, minimum=16)
        check_variant(variant)
        depth = stage1_depth(image_size, base_size)
        upsampling = upsampling or STAGE1_GENERATOR_UPSAMPLING[variant]
        if upsampling not in blocks.UPSAMPLING_MODES:
            raise ValueError(f"upsampling must be one of {blocks.UPSAMPLING_MODES}. Received: upsampling={upsampling!r}")
        _check_embedding_dim(embedding_dim)
        bn = (bn_epsilon, bn_momentum)
        if conditional_bn and embedding_dim <= 0:
            raise ValueError("conditional_bn needs a text input (embedding_dim > 0). Received: embedding_dim=0")
        noise = keras.Input(shape=(noise_dim,), name="noise")
        if embedding_dim > 0:
            embedding = keras.Input(shape=(embedding_dim,), name="embedding")
            code = ConditioningAugmentation(ef_dim, activation=ca_activation, seed=ca_seed, hidden_units=ca_hidden,
                                            name="ca")(_standardized(embedding, standardize_embedding))
            x = keras.layers.Concatenate(name="code_noise")([code, noise])
            inputs = {"noise": noise, "embedding": embedding}
        else:
            x, inputs = noise, noise
        if conditional_bn:
            norm = conditional_batch_norm(code, bn_epsilon, bn_momentum)
        else:
            def norm(x, name):
                return blocks.batch_norm(x, *bn, name=name)

        stages = STAGE1_GENERATOR_STAGES[variant][:depth]
        size = image_size // 2**depth
        for i, (multiplier, residual) in enumerate(stages):
            filters = gf_dim * multiplier
            name = f"stage{i}"
            if i == 0:
                x = keras.layers.Dense(size * size * filters, use_bias=False, kernel_initializer=blocks.dcgan_init(),
                                       name="project")(x)
                if variant == "complex":
                    # The original normalises the dense output per feature before the reshape.
                    x = norm(x, "project_bn")
                    x = keras.layers.Reshape((size, size, filters), name="project_reshape")(x)
                else:
                    x = keras.layers.Reshape((size, size, filters), name="project_reshape")(x)
                    x = norm(x, "project_bn")
            else:
                x = blocks.upsample(x, filters, upsampling, name=name)
                x = norm(x, f"{name}_bn")
            if residual is None:
                x = keras.layers.ReLU(name=f"{name}_relu")(x)
            else:
                convs = ((1, gf_dim * residual[0]), (3, gf_dim * residual[1]), (3, filters))
                x = _residual_block(x, convs, "relu", bn, name=f"{name}_residual")
        x = blocks.upsample(x, 3, upsampling, name="to_image", use_bias=True)
        image = keras.layers.Activation("tanh", dtype="float32", name="image")(x)
        super().__init__(inputs=inputs, outputs=image, **kwargs)

        self.image_size = image_size
        self.noise_dim = noise_dim
        self.embedding_dim = embedding_dim
        self.ef_dim = ef_dim
        self.gf_dim = gf_dim
        self.variant = variant
        self.ca_activation = ca_activation
        self.ca_seed = ca_seed
        self.bn_epsilon = bn_epsilon
        self.bn_momentum = bn_momentum
        self.standardize_embedding = bool(standardize_embedding and embedding_dim > 0)
        self.upsampling = upsampling
        self.base_size = base_size
        self.conditional_bn = bool(conditional_bn)
        self.ca_hidden = ca_hidden

    def ca_statistics(self, embedding):
        """(μ, log σ) of the Conditioning Augmentation Gaussian for `embedding` [B, embedding_dim]."""
        return _ca_statistics(self, embedding)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "image_size": self.image_size,
            "noise_dim": self.noise_dim,
            "embedding_dim": self.embedding_dim,
            "ef_dim": self.ef_dim,
            "gf_dim": self.gf_dim,
            "variant": self.variant,
            "ca_activation": self.ca_activation,
            "ca_seed": self.ca_seed,
            "bn_epsilon": self.bn_epsilon,
            "bn_momentum": self.bn_momentum,
            "standardize_embedding": self.standardize_embedding,
            "upsampling": self.upsampling,
            "base_size": self.base_size,
            "conditional_bn": self.conditional_bn,
            "ca_hidden": self.ca_hidden,
        }


def _ca_statistics(model, embedding):
    if model.embedding_dim <= 0:
        raise ValueError(f"An unconditional {type(model).__name__} has no Conditioning Augmentation. "
                         f"Received: embedding_dim={model.embedding_dim}")
    if model.standardize_embedding:
        embedding = model.get_layer(STANDARDIZATION_LAYER)(embedding)
    return model.get_layer("ca").statistics(embedding)


@keras.saving.register_keras_serializable(package="t2i")
class StackGANStage1Discriminator(keras.Model):
    """{"image": [B, S, S, 3], "embedding": [B, embedding_dim]} → logits [B, 1] (image alone when unconditional);
    with `num_labels` > 0, {"logits", "aux_logits": [B, num_labels]}.

    Four stride-2 4×4 convs (df_dim ×1, 2, 4, 8; no BN on the first, LeakyReLU 0.2) encode the image to
    S/16 × S/16; "complex" adds the original's residual block (1×1 df_dim·2, 3×3 df_dim·2, 3×3 df_dim·8) there.
    The matching-aware head joins the compressed, tiled embedding and gives one logit.

    Args:
        image_size: S, a power of two in [16, 256].
        embedding_dim: caption embedding size; 0 → unconditional (input: the image tensor).
        ef_dim: size the embedding is compressed to (128).
        df_dim: base width (64).
        variant: "simple" or "complex".
        bn_epsilon, bn_momentum: BatchNorm settings.
        num_labels: > 0 adds a TAC-GAN auxiliary head (Dash et al. 2017): per-label logits from the image features
            alone, before the text joins them, so it has to find the labels in the pixels.
        normalization: of every conv after the first, "batch" (the original) or "layer" / "instance" / "none".
            BatchNorm normalises the real, mismatched and fake batches each with its own statistics, so a feature
            (and the auxiliary head reading it) means something different on fakes than on real images;
            per-example normalisation scores every image on its own.
        standardize_embedding: standardise the embedding before the text branch (as the generator's).
        projection: the text joins as a projection term (Miyato & Koyama 2018): the head scores the image features
            alone and adds ⟨e·V, Σ_hw φ(x)⟩, instead of concatenating the tiled, compressed embedding.
        base_size: side of the last feature map; None → S/16 (4×4 at 64×64). A larger one drops the last
            downsamplings (df_dim·8, then df_dim·4), as the generator's `base_size`.
    """

    def __init__(self, image_size=64, embedding_dim=1024, ef_dim=128, df_dim=64, variant="simple", bn_epsilon=1e-5,
                 bn_momentum=0.9, num_labels=0, normalization="batch", standardize_embedding=False, projection=False,
                 base_size=None, **kwargs):
        if not isinstance(num_labels, int) or isinstance(num_labels, bool) or num_labels < 0:
            raise ValueError(f"num_labels must be a non-negative integer. Received: num_labels={num_labels!r}")
        blocks.check_image_size(image_size, minimum=16)
        check_variant(variant)
        _check_embedding_dim(embedding_dim)
        _check_normalization(normalization)
        bn = (bn_epsilon, bn_momentum, normalization)
        inputs, x, embedding = _discriminator_inputs(image_size, embedding_dim)
        residual = STAGE1_DISCRIMINATOR_RESIDUAL[variant]
        widths = STAGE1_DISCRIMINATOR_WIDTHS[:stage1_depth(image_size, base_size)]
        last = len(widths) - 1
        for i, multiplier in enumerate(widths):
            name = f"down{i}"
            if i == 0:
                x = _conv(x, df_dim * multiplier, 4, name, strides=2, use_bias=True)
                x = _activate(x, "leaky_relu", name)
            elif i == last and residual is not None:
                x = _conv_bn(x, df_dim * multiplier, 4, name, bn, strides=2)
                convs = ((1, df_dim * residual[0]), (3, df_dim * residual[1]), (3, df_dim * multiplier))
                x = _residual_block(x, convs, "leaky_relu", bn, name=f"{name}_residual")
            else:
                x = _conv_bn(x, df_dim * multiplier, 4, name, bn, activation="leaky_relu", strides=2)
        if projection and embedding is None:
            raise ValueError("projection needs a text input (embedding_dim > 0). Received: embedding_dim=0")
        if embedding is not None:
            embedding = _standardized(embedding, standardize_embedding)
        if projection:
            logits = _text_logits(x, None, ef_dim, df_dim, bn)
            logits = ProjectionLogit(dtype="float32", name="projection")([logits, x, embedding])
        else:
            logits = _text_logits(x, embedding, ef_dim, df_dim, bn)
        outputs = logits
        if num_labels:
            outputs = {"logits": logits, "aux_logits": blocks.auxiliary_head(x, num_labels)}
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        self.image_size = image_size
        self.embedding_dim = embedding_dim
        self.ef_dim = ef_dim
        self.df_dim = df_dim
        self.variant = variant
        self.bn_epsilon = bn_epsilon
        self.bn_momentum = bn_momentum
        self.num_labels = num_labels
        self.normalization = normalization
        self.standardize_embedding = bool(standardize_embedding and embedding_dim > 0)
        self.projection = bool(projection)
        self.base_size = base_size

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "image_size": self.image_size,
            "embedding_dim": self.embedding_dim,
            "ef_dim": self.ef_dim,
            "df_dim": self.df_dim,
            "variant": self.variant,
            "bn_epsilon": self.bn_epsilon,
            "bn_momentum": self.bn_momentum,
            "num_labels": self.num_labels,
            "normalization": self.normalization,
            "standardize_embedding": self.standardize_embedding,
            "projection": self.projection,
            "base_size": self.base_size,
        }


def stage2_encoder_widths(image_size, encoded_size, gf_dim):
    """Widths of the Stage-II encoder's stride-2 convs: gf_dim·2, ·4, ... capped at ·4, down to `encoded_size`.

    At least one downsampling, so an `encoded_size` ≥ image_size encodes to image_size / 2.
    """
    steps = int(math.log2(image_size // encoded_size)) if encoded_size < image_size else 1
    return [gf_dim * min(2 ** (i + 1), STAGE2_MAX_MULTIPLIER) for i in range(steps)]


def stage2_upsampling_widths(encoded_size, output_size, gf_dim):
    """Widths of the Stage-II upsampling stages: gf_dim·2 halving per stage, floored at 8, up to `output_size`."""
    steps = int(math.log2(output_size // encoded_size))
    return [max(gf_dim * 2 // 2**i, STAGE2_MIN_UPSAMPLING_FILTERS) for i in range(steps)]


@keras.saving.register_keras_serializable(package="t2i")
class StackGANStage2Generator(keras.Model):
    """{"noise", "embedding"} (as the Stage-I generator) → image in [-1, 1], [B, 4S, 4S, 3].

    The Stage-I generator runs inside as a sub-model (`stage1`); whether it trains with Stage-II is its `trainable`
    flag (StackGAN freezes it). Stage-II uses no noise of its own — z reaches it only through the Stage-I image.
    The S×S Stage-I image is encoded (3×3 conv gf_dim + ReLU, then stride-2 4×4 convs with BN-ReLU, widths capped
    at gf_dim·4) down to `encoded_size`, joined with Stage-II's own CA code (layer "ca") tiled over the map (3×3 conv
    gf_dim·4, BN, ReLU), refined by `num_residual` residual blocks, and upsampled (nearest ×2 + 3×3 conv, BN, ReLU;
    gf_dim·2 halving, floored at 8) to 4S, then a 3×3 conv to 3 channels and tanh. For the paper's 64 → 256:
    64 → 16 (gf_dim·2, ·4) → 4 residual blocks → 32, 64, 128, 256 (gf_dim·2, ·1, ½, ¼).

    With an unconditional Stage-I generator (embedding_dim = 0) Stage-II has no CA either: it refines the Stage-I
    image from the image features alone, and its input is the noise tensor.

    Args:
        stage1_generator: a `StackGANStage1Generator`; its image_size, noise_dim and embedding_dim set Stage-II's.
        gf_dim: base width (128).
        ef_dim: size of Stage-II's CA code; None → the Stage-I generator's ef_dim.
        encoded_size: side of the encoded Stage-I image (16), a power of two.
        num_residual: number of residual blocks (4).
        ca_activation, ca_seed, ca_hidden, bn_epsilon, bn_momentum, standardize_embedding: as
            `StackGANStage1Generator` (for Stage-II's own CA; its Stage-I keeps its own setting).
    """

    def __init__(self, stage1_generator, gf_dim=128, ef_dim=None, encoded_size=16, num_residual=4,
                 ca_activation="leaky_relu", ca_seed=None, bn_epsilon=1e-5, bn_momentum=0.9,
                 standardize_embedding=False, ca_hidden=0, **kwargs):
        if not isinstance(stage1_generator, StackGANStage1Generator):
            raise ValueError(f"StackGANStage2Generator needs a StackGANStage1Generator. "
                             f"Received: stage1_generator={type(stage1_generator).__name__}")
        if not isinstance(encoded_size, int) or encoded_size < 1 or encoded_size & (encoded_size - 1):
            raise ValueError(f"encoded_size must be a power of two. Received: encoded_size={encoded_size!r}")
        if not isinstance(num_residual, int) or num_residual < 0:
            raise ValueError(f"num_residual must be a non-negative integer. Received: num_residual={num_residual!r}")
        ef_dim = stage1_generator.ef_dim if ef_dim is None else ef_dim
        bn = (bn_epsilon, bn_momentum)
        stage1_size = stage1_generator.image_size
        embedding_dim = stage1_generator.embedding_dim

        noise = keras.Input(shape=(stage1_generator.noise_dim,), name="noise")
        if embedding_dim > 0:
            embedding = keras.Input(shape=(embedding_dim,), name="embedding")
            inputs = {"noise": noise, "embedding": embedding}
        else:
            embedding, inputs = None, noise
        x = stage1_generator(inputs)

        x = _conv(x, gf_dim, 3, "encode", use_bias=True)
        x = keras.layers.ReLU(name="encode_relu")(x)
        for i, filters in enumerate(stage2_encoder_widths(stage1_size, encoded_size, gf_dim)):
            x = _conv_bn(x, filters, 4, f"encode{i}", bn, activation="relu", strides=2)
        size = x.shape[1]
        if embedding is not None:
            code = ConditioningAugmentation(ef_dim, activation=ca_activation, seed=ca_seed, hidden_units=ca_hidden,
                                            name="ca")(_standardized(embedding, standardize_embedding))
            x = keras.layers.Concatenate(name="image_code")([x, _tile(code, size, "code")])
        width = gf_dim * STAGE2_MAX_MULTIPLIER
        x = _conv_bn(x, width, 3, "joint", bn, activation="relu")
        for i in range(num_residual):
            x = _residual_block(x, ((3, width), (3, width)), "relu", bn, name=f"residual{i}")
        for i, filters in enumerate(stage2_upsampling_widths(size, 4 * stage1_size, gf_dim)):
            x = blocks.upsample(x, filters, "nearest", name=f"up{i}")
            x = blocks.batch_norm(x, *bn, name=f"up{i}_bn")
            x = keras.layers.ReLU(name=f"up{i}_relu")(x)
        x = _conv(x, 3, 3, "to_image", use_bias=True)
        image = keras.layers.Activation("tanh", dtype="float32", name="image")(x)
        super().__init__(inputs=inputs, outputs=image, **kwargs)

        self.stage1_generator = stage1_generator
        self.image_size = 4 * stage1_size
        self.noise_dim = stage1_generator.noise_dim
        self.embedding_dim = embedding_dim
        self.gf_dim = gf_dim
        self.ef_dim = ef_dim
        self.encoded_size = encoded_size
        self.num_residual = num_residual
        self.ca_activation = ca_activation
        self.ca_seed = ca_seed
        self.bn_epsilon = bn_epsilon
        self.bn_momentum = bn_momentum
        self.standardize_embedding = bool(standardize_embedding and embedding_dim > 0)
        self.ca_hidden = ca_hidden

    @property
    def stage1(self):
        """The Stage-I generator inside."""
        return self.stage1_generator

    def ca_statistics(self, embedding):
        """(μ, log σ) of Stage-II's own Conditioning Augmentation (`stage1.ca_statistics` gives Stage-I's)."""
        return _ca_statistics(self, embedding)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "stage1_generator": keras.saving.serialize_keras_object(self.stage1_generator),
            "gf_dim": self.gf_dim,
            "ef_dim": self.ef_dim,
            "encoded_size": self.encoded_size,
            "num_residual": self.num_residual,
            "ca_activation": self.ca_activation,
            "ca_seed": self.ca_seed,
            "bn_epsilon": self.bn_epsilon,
            "bn_momentum": self.bn_momentum,
            "standardize_embedding": self.standardize_embedding,
            "ca_hidden": self.ca_hidden,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["stage1_generator"] = keras.saving.deserialize_keras_object(config["stage1_generator"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="t2i")
class StackGANStage2Discriminator(keras.Model):
    """{"image": [B, 4S, 4S, 3], "embedding"} → logits [B, 1] (image alone when unconditional).

    Stride-2 4×4 convs (df_dim ×1, 2, 4, ...; no BN on the first) encode the image down to 4×4, 3×3 convs with
    BN-LeakyReLU halve the width back to df_dim·8 (for 256 px: df_dim·32 → ·16 → ·8, as the PyTorch StackGAN), and
    the matching-aware head of Stage-I gives the logit.

    Args:
        image_size: the Stage-II image side (4·S; 256 in the paper), a power of two in [64, 1024].
        embedding_dim, ef_dim, df_dim, bn_epsilon, bn_momentum, normalization, standardize_embedding: as
            `StackGANStage1Discriminator`.
    """

    def __init__(self, image_size=256, embedding_dim=1024, ef_dim=128, df_dim=64, bn_epsilon=1e-5, bn_momentum=0.9,
                 normalization="batch", standardize_embedding=False, **kwargs):
        blocks.check_image_size(image_size, minimum=64, maximum=1024)
        _check_embedding_dim(embedding_dim)
        _check_normalization(normalization)
        bn = (bn_epsilon, bn_momentum, normalization)
        inputs, x, embedding = _discriminator_inputs(image_size, embedding_dim)
        downsamplings = int(math.log2(image_size // STAGE2_DISCRIMINATOR_FEATURE_SIZE))
        for i in range(downsamplings):
            name = f"down{i}"
            if i == 0:
                x = _conv(x, df_dim, 4, name, strides=2, use_bias=True)
                x = _activate(x, "leaky_relu", name)
            else:
                x = _conv_bn(x, df_dim * 2**i, 4, name, bn, activation="leaky_relu", strides=2)
        multiplier = 2 ** (downsamplings - 1)
        i = 0
        while multiplier > JOINT_MULTIPLIER:
            multiplier //= 2
            x = _conv_bn(x, df_dim * multiplier, 3, f"reduce{i}", bn, activation="leaky_relu")
            i += 1
        if embedding is not None:
            embedding = _standardized(embedding, standardize_embedding)
        logits = _text_logits(x, embedding, ef_dim, df_dim, bn)
        super().__init__(inputs=inputs, outputs=logits, **kwargs)

        self.image_size = image_size
        self.embedding_dim = embedding_dim
        self.ef_dim = ef_dim
        self.df_dim = df_dim
        self.bn_epsilon = bn_epsilon
        self.bn_momentum = bn_momentum
        self.normalization = normalization
        self.standardize_embedding = bool(standardize_embedding and embedding_dim > 0)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "image_size": self.image_size,
            "embedding_dim": self.embedding_dim,
            "ef_dim": self.ef_dim,
            "df_dim": self.df_dim,
            "bn_epsilon": self.bn_epsilon,
            "bn_momentum": self.bn_momentum,
            "normalization": self.normalization,
            "standardize_embedding": self.standardize_embedding,
        }
