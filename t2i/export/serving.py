"""`tf.Module`s that give exported generators named inputs and both uint8 and float outputs.

`keras.Model.export` names its inputs `keras_tensor`; TF Serving clients deserve `noise`, `labels`, `low_res`. The
signature's inputs are the generator's own named inputs (float32, any batch size); it returns `images` (uint8 NHWC,
ready to encode) and `images_float` (float32, nominally [-1, 1]).
"""
import tensorflow as tf

from t2i.data.images import to_uint8


def named_input_specs(generator):
    """{input name: TensorSpec with a free batch dimension} of a Keras generator."""
    structure = generator.input
    if isinstance(structure, dict):
        items = structure.items()
    else:
        items = [(tensor.name.split(":")[0], tensor) for tensor in tf.nest.flatten(structure)]
    return {name: tf.TensorSpec([None, *tensor.shape[1:]], tf.float32, name=name) for name, tensor in items}


class GeneratorModule(tf.Module):
    """serving_default(<generator inputs>) → {images: uint8 [B, H, W, C], images_float: float32}."""

    def __init__(self, generator, name="t2i_generator"):
        super().__init__(name=name)
        self.generator = generator
        specs = named_input_specs(generator)
        self.input_names = sorted(specs)
        self._takes_dict = isinstance(generator.input, dict)

        def serve(*tensors):
            return self._serve(dict(zip(self.input_names, tensors)))

        self.serving_default = tf.function(serve, input_signature=[specs[name] for name in self.input_names])

    def _serve(self, inputs):
        generator_inputs = inputs if self._takes_dict else inputs[self.input_names[0]]
        images = tf.cast(self.generator(generator_inputs, training=False), tf.float32)
        return {"images": to_uint8(images), "images_float": images}
