"""`tf.Module`s that give exported generators named inputs and both uint8 and float outputs.

`keras.Model.export` names its inputs `keras_tensor`; TF Serving clients deserve `noise`. The signature returns
`images` (uint8 NHWC, ready to encode) and `images_float` (float32 in [-1, 1]).
"""
import tensorflow as tf

from t2i.data.images import to_uint8


class NoiseGeneratorModule(tf.Module):
    """serving_default(noise: float32 [batch, noise_dim]) → {images: uint8, images_float: float32}."""

    def __init__(self, generator, name="t2i_generator"):
        super().__init__(name=name)
        self.generator = generator
        noise_dim = int(generator.inputs[0].shape[-1])
        self.serving_default = tf.function(
            self._serve, input_signature=[tf.TensorSpec([None, noise_dim], tf.float32, name="noise")]
        )

    def _serve(self, noise):
        images = tf.cast(self.generator(noise, training=False), tf.float32)
        return {"images": to_uint8(images), "images_float": images}
