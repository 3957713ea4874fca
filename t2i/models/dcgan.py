"""DCGAN generator and discriminator (Radford et al. 2016) for any power-of-two size 32–256 and channel count.

The classic 64×64 networks are `DCGANGenerator()` (100 → 4×4×512 → 256 → 128 → 64 → 3) and its mirror
`DCGANDiscriminator()` (3 → 64 → 128 → 256 → 512 → 1), 4×4 kernels. Widths come from a per-resolution channel
table, so other sizes keep the same shape of network: 64 filters at the finest resolution, doubling per stage up to
`max_filters`.
"""
import keras

from t2i.layers import blocks


@keras.saving.register_keras_serializable(package="t2i")
class DCGANGenerator(keras.Model):
    """z ~ N(0, I) of size `noise_dim` → image in [-1, 1] of shape [image_size, image_size, channels].

    Args:
        image_size: output side, a power of two in [32, 256].
        channels: output channels (3 for RGB, 1 for grey, N for heatmaps).
        noise_dim: size of z.
        base_filters: filters of the last hidden stage (at image_size / 2).
        max_filters: cap on the filters of the coarsest stages.
        upsampling: "transposed" (stride-2 4×4 transposed convs), "nearest" (resize + 3×3 conv) or "nearest_fused"
            (the same function in one layer, 2.25× fewer multiply-adds: `t2i.layers.resize_conv`).
        bn_epsilon, bn_momentum: BatchNorm settings (Keras momentum: 0.9 ≙ PyTorch momentum 0.1).
    """

    def __init__(self, image_size=64, channels=3, noise_dim=100, base_filters=64, max_filters=512,
                 upsampling="transposed", bn_epsilon=1e-5, bn_momentum=0.9, **kwargs):
        noise = keras.Input(shape=(noise_dim,), name="noise")
        image = generator_body(noise, image_size, channels, base_filters, max_filters, upsampling, bn_epsilon,
                               bn_momentum)
        super().__init__(inputs=noise, outputs=image, **kwargs)

        self.image_size = image_size
        self.channels = channels
        self.noise_dim = noise_dim
        self.base_filters = base_filters
        self.max_filters = max_filters
        self.upsampling = upsampling
        self.bn_epsilon = bn_epsilon
        self.bn_momentum = bn_momentum

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "image_size": self.image_size,
            "channels": self.channels,
            "noise_dim": self.noise_dim,
            "base_filters": self.base_filters,
            "max_filters": self.max_filters,
            "upsampling": self.upsampling,
            "bn_epsilon": self.bn_epsilon,
            "bn_momentum": self.bn_momentum,
        }


@keras.saving.register_keras_serializable(package="t2i")
class DCGANDiscriminator(keras.Model):
    """Image in [-1, 1] → one real/fake logit per image, shape [batch, 1].

    Stride-2 4×4 convs halve the image down to 4×4 (no BatchNorm on the first, LeakyReLU 0.2 throughout), then a
    4×4 valid conv gives the logit, as in the reference implementation.
    """

    def __init__(self, image_size=64, channels=3, base_filters=64, max_filters=512, bn_epsilon=1e-5,
                 bn_momentum=0.9, leaky_slope=0.2, **kwargs):
        image = keras.Input(shape=(image_size, image_size, channels), name="image")
        features = discriminator_body(image, image_size, base_filters, max_filters, "batch", bn_epsilon,
                                      bn_momentum, leaky_slope)
        logits = logit_head(features)
        super().__init__(inputs=image, outputs=logits, **kwargs)

        self.image_size = image_size
        self.channels = channels
        self.base_filters = base_filters
        self.max_filters = max_filters
        self.bn_epsilon = bn_epsilon
        self.bn_momentum = bn_momentum
        self.leaky_slope = leaky_slope

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "image_size": self.image_size,
            "channels": self.channels,
            "base_filters": self.base_filters,
            "max_filters": self.max_filters,
            "bn_epsilon": self.bn_epsilon,
            "bn_momentum": self.bn_momentum,
            "leaky_slope": self.leaky_slope,
        }


def generator_body(x, image_size, channels, base_filters, max_filters, upsampling, bn_epsilon, bn_momentum,
                   norm=None):
    """A flat input vector → image in [-1, 1]: dense projection to 4×4, then BN-ReLU upsampling stages.

    Stages run at 4, 8, ..., image_size / 2, widest first; the last upsampling produces the image. `norm(x, name)`
    replaces the BatchNorm layers (e.g. a conditional BatchNorm); by default `blocks.batch_norm`.
    """
    if norm is None:
        def norm(x, name):
            return blocks.batch_norm(x, bn_epsilon, bn_momentum, name=name)
    log_size = blocks.check_image_size(image_size)
    table = blocks.channel_table(log_size - 2, base_filters, max_filters, widening=False)
    x = keras.layers.Dense(4 * 4 * table[0], use_bias=False, kernel_initializer=blocks.dcgan_init(),
                           name="project")(x)
    x = keras.layers.Reshape((4, 4, table[0]), name="project_reshape")(x)
    x = norm(x, "project_bn")
    x = keras.layers.ReLU(name="project_relu")(x)
    for i, filters in enumerate(table[1:], start=1):
        x = blocks.upsample(x, filters, upsampling, name=f"up{i}")
        x = norm(x, f"up{i}_bn")
        x = keras.layers.ReLU(name=f"up{i}_relu")(x)
    x = blocks.upsample(x, channels, upsampling, name="to_image", use_bias=True)
    return keras.layers.Activation("tanh", dtype="float32", name="image")(x)


def discriminator_body(x, image_size, base_filters, max_filters, normalization, bn_epsilon, bn_momentum,
                       leaky_slope):
    """Image-sized input → 4×4 features: stride-2 4×4 convs, normalisation on all but the first, LeakyReLU."""
    log_size = blocks.check_image_size(image_size)
    table = blocks.channel_table(log_size - 2, base_filters, max_filters)
    for i, filters in enumerate(table):
        # Without BatchNorm the convs need their bias (a following normaliser's offset would replace it).
        x = blocks.downsample(x, filters, name=f"down{i}", use_bias=normalization == "none")
        if i > 0:
            suffix = "bn" if normalization == "batch" else normalization
            x = blocks.normalize(x, normalization, bn_epsilon, bn_momentum, name=f"down{i}_{suffix}")
        x = keras.layers.LeakyReLU(leaky_slope, name=f"down{i}_lrelu")(x)
    return x


def logit_head(features):
    """4×4 features → one logit per image via a 4×4 valid conv, as in the reference implementation."""
    x = keras.layers.Conv2D(1, 4, padding="valid", kernel_initializer=blocks.dcgan_init(),
                            name="logit_conv")(features)
    return keras.layers.Flatten(dtype="float32", name="logits")(x)
