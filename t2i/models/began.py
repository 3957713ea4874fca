"""BEGAN generator and autoencoder discriminator (Berthelot et al. 2017) for any power-of-two size 32–256.

Both follow the reference implementation (carpedm20/BEGAN-tensorflow): every stage is two 3×3 convs with ELU, the
decoder grows an 8×8×hidden_dim map by nearest-neighbour upsampling, and the encoder shrinks the image with stride-2
3×3 convs while its width grows linearly (hidden_dim·1, ·2, ·3, ...). A network for `image_size` has
`repeat_num = log2(image_size) - 2` stages, so `repeat_num - 1` resolution changes between 8×8 and the image.

The generator and the discriminator's decoder share one architecture; the discriminator's reconstruction error
L(x) = mean |x - D(x)| is what the BEGAN losses are built from (`t2i.losses.began`).

Departures from the reference, all towards the paper: slim's layers default to a ReLU, which the reference leaves
on its dense layers, stride-2 convs and output conv; here the projection, the embedding and the output conv are
linear and every other conv is followed by ELU only (the paper's "exponential linear units at their outputs").
"""
import keras

from t2i.layers import blocks

# The decoder always starts from (and the encoder always ends at) an 8×8 map.
BASE_RESOLUTION = 8


def _init():
    # Glorot-uniform weights and zero biases: what slim.conv2d / slim.fully_connected use in the reference.
    return keras.initializers.GlorotUniform()


def _conv(x, filters, name, strides=1, activation="elu"):
    return keras.layers.Conv2D(
        filters, 3, strides=strides, padding="same", activation=activation, kernel_initializer=_init(), name=name
    )(x)


def num_stages(image_size):
    """repeat_num of the reference: stages at 8, 16, ..., image_size."""
    return blocks.check_image_size(image_size) - 2


def encoder_widths(hidden_dim, repeat_num):
    """Encoder width per stage: hidden_dim·(i + 1), from the image resolution down to 8×8."""
    return [hidden_dim * (i + 1) for i in range(repeat_num)]


def _decoder(code, hidden_dim, channels, repeat_num, prefix):
    """code → 8×8×hidden_dim → `repeat_num` stages of two ELU convs, upsampling between them → linear image."""
    x = keras.layers.Dense(BASE_RESOLUTION * BASE_RESOLUTION * hidden_dim, kernel_initializer=_init(),
                           name=f"{prefix}project")(code)
    x = keras.layers.Reshape((BASE_RESOLUTION, BASE_RESOLUTION, hidden_dim), name=f"{prefix}project_reshape")(x)
    for idx in range(repeat_num):
        x = _conv(x, hidden_dim, name=f"{prefix}stage{idx}_conv1")
        x = _conv(x, hidden_dim, name=f"{prefix}stage{idx}_conv2")
        if idx < repeat_num - 1:
            x = keras.layers.UpSampling2D(2, interpolation="nearest", name=f"{prefix}stage{idx}_upsample")(x)
    return _conv(x, channels, name=f"{prefix}to_image", activation=None)


@keras.saving.register_keras_serializable(package="t2i")
class BEGANGenerator(keras.Model):
    """z ~ U[-1, 1] of size `noise_dim` → image of shape [image_size, image_size, channels].

    The output is linear, as in the reference: it is trained towards [-1, 1] by the discriminator's reconstruction
    loss, but not clipped to it.

    Args:
        image_size: output side, a power of two in [32, 256].
        channels: output channels (3 for RGB, 1 for grey).
        noise_dim: size of z (the paper's N_z; 64 in the reference).
        hidden_dim: width of every conv (the paper's n; 128 in the reference).
    """

    def __init__(self, image_size=64, channels=3, noise_dim=64, hidden_dim=128, **kwargs):
        repeat_num = num_stages(image_size)
        noise = keras.Input(shape=(noise_dim,), name="noise")
        x = _decoder(noise, hidden_dim, channels, repeat_num, prefix="")
        # Float32 output even under a mixed-precision policy: the L1 losses compare it with float32 images.
        image = keras.layers.Activation("linear", dtype="float32", name="image")(x)
        super().__init__(inputs=noise, outputs=image, **kwargs)

        self.image_size = image_size
        self.channels = channels
        self.noise_dim = noise_dim
        self.hidden_dim = hidden_dim

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "image_size": self.image_size,
            "channels": self.channels,
            "noise_dim": self.noise_dim,
            "hidden_dim": self.hidden_dim,
        }


@keras.saving.register_keras_serializable(package="t2i")
class BEGANDiscriminator(keras.Model):
    """Image → its reconstruction by an autoencoder, same shape as the input.

    Encoder: a 3×3 ELU conv to hidden_dim, then per stage two ELU convs of width hidden_dim·(i + 1) and, between
    stages, a stride-2 ELU conv; the 8×8 map is flattened into a linear embedding of size `noise_dim` (layer
    "embedding"). Decoder: the generator's architecture, from the embedding.

    Args:
        image_size: input side, a power of two in [32, 256].
        channels: input channels.
        noise_dim: size of the embedding (the paper uses the generator's N_z).
        hidden_dim: base width n.
    """

    def __init__(self, image_size=64, channels=3, noise_dim=64, hidden_dim=128, **kwargs):
        repeat_num = num_stages(image_size)
        widths = encoder_widths(hidden_dim, repeat_num)

        image = keras.Input(shape=(image_size, image_size, channels), name="image")
        x = _conv(image, hidden_dim, name="encoder_from_image")
        for idx, width in enumerate(widths):
            x = _conv(x, width, name=f"encoder_stage{idx}_conv1")
            x = _conv(x, width, name=f"encoder_stage{idx}_conv2")
            if idx < repeat_num - 1:
                x = _conv(x, width, strides=2, name=f"encoder_stage{idx}_downsample")
        x = keras.layers.Flatten(name="encoder_flatten")(x)
        embedding = keras.layers.Dense(noise_dim, kernel_initializer=_init(), name="embedding")(x)
        x = _decoder(embedding, hidden_dim, channels, repeat_num, prefix="decoder_")
        reconstruction = keras.layers.Activation("linear", dtype="float32", name="reconstruction")(x)
        super().__init__(inputs=image, outputs=reconstruction, **kwargs)

        self.image_size = image_size
        self.channels = channels
        self.noise_dim = noise_dim
        self.hidden_dim = hidden_dim

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "image_size": self.image_size,
            "channels": self.channels,
            "noise_dim": self.noise_dim,
            "hidden_dim": self.hidden_dim,
        }
