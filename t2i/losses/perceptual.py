"""Perceptual (feature-space) loss on a frozen network read from a local file; nothing is ever downloaded.

`load_feature_network` builds the network once; `perceptual_loss` is a pure function of its activations, so the loss
maths is tested without any pretrained weights.

SRGAN's VGG54 loss (Ledig et al. 2017, eq. 5) is `load_feature_network("vgg19_..._notop.h5")` (layer
`block5_conv4`, after its ReLU) with `perceptual_loss`. The paper rescales VGG features by 1/12.75, which divides this
mean squared difference by 12.75² ≈ 162.6: a perceptual weight of ≈ 6·10⁻³ on the unscaled features reproduces it.
"""
import dataclasses
import os
from typing import Callable

import keras
import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class FeatureArchitecture:
    """A `keras.applications` architecture: its constructor, its own input preprocessing and its default layer."""

    build: Callable
    preprocess_input: Callable
    default_layer: str


ARCHITECTURES = {
    # Johnson et al. 2016's relu2_2: low-level features, the usual choice for small images.
    "vgg16": FeatureArchitecture(keras.applications.VGG16, keras.applications.vgg16.preprocess_input,
                                 "block2_conv2"),
    # SRGAN's VGG54: φ_{5,4}, the 4th conv (after ReLU) before the 5th max-pool.
    "vgg19": FeatureArchitecture(keras.applications.VGG19, keras.applications.vgg19.preprocess_input,
                                 "block5_conv4"),
    "resnet50": FeatureArchitecture(keras.applications.ResNet50, keras.applications.resnet50.preprocess_input,
                                    "conv3_block4_out"),
}
# "keras": a whole saved `.keras` model, fed images as they are.
NETWORKS = ("auto", "keras", *ARCHITECTURES)


@keras.saving.register_keras_serializable(package="t2i")
class ImageNetPreprocessing(keras.layers.Layer):
    """Images in [-1, 1] → [0, 255] RGB → `network`'s own `preprocess_input` (e.g. BGR, ImageNet mean removed)."""

    def __init__(self, network, **kwargs):
        super().__init__(**kwargs)
        if network not in ARCHITECTURES:
            raise ValueError(f"network must be one of {sorted(ARCHITECTURES)}. Received: network={network!r}")
        self.network = network

    def call(self, images):
        return ARCHITECTURES[self.network].preprocess_input((tf.cast(images, self.compute_dtype) + 1.0) * 127.5)

    def get_config(self):
        config = super().get_config()
        config["network"] = self.network
        return config


def _resolve_network(path, network):
    if network not in NETWORKS:
        raise ValueError(f"--perceptual_network must be one of {NETWORKS}. Received: perceptual_network={network!r}")
    if network != "auto":
        return network
    name = os.path.basename(path).lower()
    if name.endswith(".keras"):
        return "keras"
    found = [arch for arch in ARCHITECTURES if arch in name]
    if len(found) != 1:
        raise ValueError(
            f"Cannot tell the architecture of --perceptual_weights from its file name; name one of "
            f"{sorted(ARCHITECTURES)} in it or pass --perceptual_network. Received: perceptual_weights={path!r}"
        )
    return found[0]


def _some_names(names, count=8):
    """Up to `count` names spread evenly over the network, so an error shows its early, middle and late layers."""
    if len(names) <= count:
        return names
    step = (len(names) - 1) / (count - 1)
    return [names[round(i * step)] for i in range(count)]


def _layer_output(model, layer, source):
    names = [item.name for item in model.layers if not isinstance(item, keras.layers.InputLayer)]
    if layer not in names:
        raise ValueError(
            f"Unknown --perceptual_layer for {source}; its layers include {', '.join(_some_names(names))}. "
            f"Received: perceptual_layer={layer!r}"
        )
    return model.get_layer(layer).output


def _keras_model_features(path, layer):
    model = keras.models.load_model(path, compile=False)
    if not layer:
        return model
    if not getattr(model, "inputs", None):
        raise ValueError(
            f"--perceptual_layer needs a functional or Sequential .keras model to cut at a layer. "
            f"Received: perceptual_weights={path!r}, perceptual_layer={layer!r}"
        )
    # A single input stays a tensor, not a one-element list, so callers pass images as they would to `model`.
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, _layer_output(model, layer, path), name=f"{model.name}_{layer}")


def _application_features(path, layer, network):
    architecture = ARCHITECTURES[network]
    layer = layer or architecture.default_layer
    backbone = architecture.build(weights=None, include_top=False, input_shape=(None, None, 3))
    try:
        backbone.load_weights(path)
    except (ValueError, OSError, KeyError) as error:
        # Keras's own message spans lines and variable dumps; its first 200 characters say what did not fit.
        reason = " ".join(str(error).split())[:200]
        raise ValueError(
            f"--perceptual_weights is not a {network} include_top=False weights file ({reason}). "
            f"Received: perceptual_weights={path!r}"
        ) from error
    trunk = keras.Model(backbone.input, _layer_output(backbone, layer, network), name=f"{network}_{layer}")
    images = keras.Input(shape=(None, None, 3), name="image")
    features = trunk(ImageNetPreprocessing(network, name="preprocess")(images))
    return keras.Model(images, features, name=f"{network}_features")


def load_feature_network(path, layer="", network="auto"):
    """A frozen `keras.Model` mapping images to a layer's activations, read from the local file `path`.

    Args:
        path: either a `keras.applications` weights file for `include_top=False` (e.g. Keras's
            `vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`, or the `*.weights.h5` that `save_weights` writes)
            — the model then takes RGB images in [-1, 1] and applies the architecture's own `preprocess_input` to
            (x + 1)·127.5 itself — or a saved `.keras` model, which is fed the images exactly as they are.
        layer: the layer whose output is the feature map. Empty: the architecture's default (vgg16 `block2_conv2`,
            vgg19 `block5_conv4`, resnet50 `conv3_block4_out`), or a `.keras` model's own output.
        network: "vgg16", "vgg19", "resnet50", "keras" (a `.keras` model), or "auto" to tell from the file name.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: unknown network or layer, or weights that do not fit the architecture.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"--perceptual_weights file not found (feature networks are read from local files, never downloaded). "
            f"Received: perceptual_weights={path!r}"
        )
    network = _resolve_network(path, network)
    if network == "keras":
        model = _keras_model_features(path, layer)
    else:
        model = _application_features(path, layer, network)
    model.trainable = False
    return model


def perceptual_loss(features_real, features_fake):
    """Per-example mean squared feature difference (Ledig et al. 2017, eq. 5, as a mean over W·H·C):

        L = 1/(W·H·C) Σ_{x,y,c} (φ(I_HR)_{x,y,c} - φ(G(I_LR))_{x,y,c})²

    Args:
        features_real, features_fake: activations φ of the real and generated images, [B, ...].
    """
    diff = tf.cast(features_real, tf.float32) - tf.cast(features_fake, tf.float32)
    return tf.reduce_mean(tf.reshape(tf.square(diff), [tf.shape(diff)[0], -1]), axis=1)
