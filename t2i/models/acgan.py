"""Label-conditioned DCGAN networks for cGAN and AC-GAN with multi-hot conditions (iCLEVR-style: 24 labels, 1–3 on).

Generator: the condition is expanded (dense → `condition_dim`, ReLU) and concatenated with z; the rest is the DCGAN
generator (transposed-conv or nearest-upsample variant). cGAN discriminator: the condition becomes one extra
image-sized channel (dense → H·W) next to the image. AC-GAN discriminator (Odena et al. 2017): the image alone goes in
and an auxiliary multi-label head on the 4×4 features predicts the condition, trained with per-label binary
cross-entropy. It must not also see the condition: a head that can read the labels off its input scores ~0 loss on
every fake and gives the generator no reason to draw them. With `num_labels=0` the discriminator is unconditional,
which is how the WGAN-GP critic reuses it. `projection=True` (Miyato & Koyama 2018) brings the condition in at the end
instead: the adversarial logit gains ⟨V·y, Σ_hw φ(x)⟩, the inner product of a learnt label embedding (for multi-hot
y, the sum of its labels' embeddings) with the spatially summed features; the auxiliary head of an AC-GAN with a
projection still reads φ(x), computed from the image alone.
"""
import keras

from t2i.layers import blocks
# ConditionalScaleOffset and ProjectionLogit live with the other conditioning layers; importable from here too.
from t2i.layers.conditioning import ConditionalScaleOffset, ProjectionLogit, conditional_batch_norm  # noqa: F401
from t2i.models import dcgan


@keras.saving.register_keras_serializable(package="t2i")
class ConditionalGenerator(keras.Model):
    """{"noise": [B, noise_dim], "labels": [B, num_labels]} → image in [-1, 1], [B, S, S, channels].

    Args:
        num_labels: size of the (multi-hot) condition vector, e.g. 24 for iCLEVR and `shapes`; the input can also
            be any real-valued condition such as a text embedding.
        condition_dim: width of the expanded condition concatenated with z (256 in the iCLEVR cGAN).
        condition_name: the condition input's name ("labels", or "embedding" for text vectors).
        conditional_bn: also modulate every BatchNorm by the condition (conditional BatchNorm, as in the
            projection-discriminator and BigGAN generators): γ = 1 + y·W_γ, β = y·W_β per channel, so the labels
            steer every resolution, not only the 4×4 projection.
        Other arguments as `DCGANGenerator`.
    """

    def __init__(self, num_labels=24, image_size=64, channels=3, noise_dim=100, condition_dim=256, base_filters=64,
                 max_filters=512, upsampling="transposed", bn_epsilon=1e-5, bn_momentum=0.9,
                 condition_name="labels", conditional_bn=False, **kwargs):
        if num_labels <= 0:
            raise ValueError(f"ConditionalGenerator needs num_labels > 0. Received: num_labels={num_labels}")
        noise = keras.Input(shape=(noise_dim,), name="noise")
        condition = keras.Input(shape=(num_labels,), name=condition_name)
        expanded = keras.layers.Dense(condition_dim, kernel_initializer=blocks.dcgan_init(),
                                      name="condition_dense")(condition)
        expanded = keras.layers.ReLU(name="condition_relu")(expanded)
        x = keras.layers.Concatenate(name="noise_condition")([noise, expanded])
        norm = conditional_batch_norm(condition, bn_epsilon, bn_momentum) if conditional_bn else None
        image = dcgan.generator_body(x, image_size, channels, base_filters, max_filters, upsampling, bn_epsilon,
                                     bn_momentum, norm=norm)
        super().__init__(inputs={"noise": noise, condition_name: condition}, outputs=image, **kwargs)

        self.num_labels = num_labels
        self.image_size = image_size
        self.channels = channels
        self.noise_dim = noise_dim
        self.condition_dim = condition_dim
        self.base_filters = base_filters
        self.max_filters = max_filters
        self.upsampling = upsampling
        self.bn_epsilon = bn_epsilon
        self.bn_momentum = bn_momentum
        self.condition_name = condition_name
        self.conditional_bn = bool(conditional_bn)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "conditional_bn": self.conditional_bn,
            "num_labels": self.num_labels,
            "image_size": self.image_size,
            "channels": self.channels,
            "noise_dim": self.noise_dim,
            "condition_dim": self.condition_dim,
            "base_filters": self.base_filters,
            "max_filters": self.max_filters,
            "upsampling": self.upsampling,
            "bn_epsilon": self.bn_epsilon,
            "bn_momentum": self.bn_momentum,
            "condition_name": self.condition_name,
        }


@keras.saving.register_keras_serializable(package="t2i")
class ConditionalDiscriminator(keras.Model):
    """{"image": [B, S, S, C], "labels": [B, N]} → logits [B, 1], or {"logits", "aux_logits" [B, N]} for AC-GAN
    (whose input is the image alone).

    Args:
        num_labels: condition size; 0 makes the network unconditional (input: the image tensor alone).
        auxiliary: add the AC-GAN multi-label head (`aux_logits`, one logit per label).
        condition_input: take the condition as an input (cGAN). AC-GAN sets it False: the image is the only input and
            the auxiliary head has to find the labels in the pixels.
        projection: with `condition_input`, the condition joins as a projection term on the final features
            instead of an extra image channel.
        normalization: "batch" (DCGAN), "layer" (the WGAN-GP critic), "instance" or "none".
        condition_name: the condition input's name ("labels" or "embedding").
        Other arguments as `DCGANDiscriminator`.
    """

    def __init__(self, num_labels=24, image_size=64, channels=3, base_filters=64, max_filters=512, auxiliary=False,
                 normalization="batch", bn_epsilon=1e-5, bn_momentum=0.9, leaky_slope=0.2,
                 condition_name="labels", condition_input=True, projection=False, **kwargs):
        if auxiliary and num_labels <= 0:
            raise ValueError(f"The auxiliary classifier needs num_labels > 0. Received: num_labels={num_labels}")
        if normalization not in blocks.NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {blocks.NORMALIZATIONS}. "
                             f"Received: normalization={normalization!r}")
        image = keras.Input(shape=(image_size, image_size, channels), name="image")
        x = image
        if projection and not (condition_input and num_labels > 0):
            raise ValueError("projection needs the condition as an input (condition_input=True, num_labels > 0). "
                             f"Received: condition_input={condition_input}, num_labels={num_labels}")
        condition = None
        if num_labels > 0 and condition_input:
            condition = keras.Input(shape=(num_labels,), name=condition_name)
            inputs = {"image": image, condition_name: condition}
            if not projection:
                plane = keras.layers.Dense(image_size * image_size, kernel_initializer=blocks.dcgan_init(),
                                           name="condition_dense")(condition)
                plane = keras.layers.Reshape((image_size, image_size, 1), name="condition_plane")(plane)
                x = keras.layers.Concatenate(name="image_condition")([image, plane])
        else:
            inputs = image
        features = dcgan.discriminator_body(x, image_size, base_filters, max_filters, normalization, bn_epsilon,
                                            bn_momentum, leaky_slope)
        logits = dcgan.logit_head(features)
        if projection:
            logits = ProjectionLogit(dtype="float32", name="projection")([logits, features, condition])
        outputs = logits
        if auxiliary:
            outputs = {"logits": logits, "aux_logits": blocks.auxiliary_head(features, num_labels)}
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        self.num_labels = num_labels
        self.image_size = image_size
        self.channels = channels
        self.base_filters = base_filters
        self.max_filters = max_filters
        self.auxiliary = auxiliary
        self.normalization = normalization
        self.bn_epsilon = bn_epsilon
        self.bn_momentum = bn_momentum
        self.leaky_slope = leaky_slope
        self.condition_name = condition_name
        self.condition_input = bool(condition_input and num_labels > 0)
        self.projection = bool(projection)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "num_labels": self.num_labels,
            "image_size": self.image_size,
            "channels": self.channels,
            "base_filters": self.base_filters,
            "max_filters": self.max_filters,
            "auxiliary": self.auxiliary,
            "normalization": self.normalization,
            "bn_epsilon": self.bn_epsilon,
            "bn_momentum": self.bn_momentum,
            "leaky_slope": self.leaky_slope,
            "condition_name": self.condition_name,
            "condition_input": self.condition_input,
            "projection": self.projection,
        }
