"""`tf.Module`s that give exported generators named inputs and both uint8 and float outputs.

`keras.Model.export` names its inputs `keras_tensor`; TF Serving clients deserve `noise`, `labels`, `low_res`. The
signature's inputs are the generator's own named inputs (float32, any batch size); it returns `images` (uint8 NHWC,
ready to encode) and `images_float` (float32, nominally [-1, 1]).
"""
import tensorflow as tf

from t2i.data.images import to_uint8


def image_output(generator, outputs):
    """The image tensor of a generator's outputs: HDGAN-style generators return {"image_<s>": ...}; the largest."""
    if isinstance(outputs, dict):
        key = getattr(generator, "largest_output_key", None) or max(outputs, key=lambda k: int(k.split("_")[-1]))
        return outputs[key]
    return outputs


def named_input_specs(generator):
    """{input name: TensorSpec with a free batch dimension} of a Keras generator."""
    structure = generator.input
    if isinstance(structure, dict):
        items = structure.items()
    else:
        items = [(tensor.name.split(":")[0], tensor) for tensor in tf.nest.flatten(structure)]
    return {name: tf.TensorSpec([None, *tensor.shape[1:]], tf.float32, name=name) for name, tensor in items}


def track_variables(module, *models):
    """Attaches every variable of `models` to `module`.

    Keras tracks its random-seed state (`keras.random.SeedGenerator`, used by Conditioning Augmentation) outside TF's
    object graph; a SavedModel whose function reads it would refuse to save ("untracked resource").
    """
    module.keras_variables = [getattr(v, "value", v) for model in models for v in model.variables]


class GeneratorModule(tf.Module):
    """serving_default(<generator inputs>) → {images: uint8 [B, H, W, C], images_float: float32}."""

    def __init__(self, generator, name="t2i_generator"):
        super().__init__(name=name)
        self.generator = generator
        track_variables(self, generator)
        specs = named_input_specs(generator)
        self.input_names = sorted(specs)
        self._takes_dict = isinstance(generator.input, dict)

        def serve(*tensors):
            return self._serve(dict(zip(self.input_names, tensors)))

        self.serving_default = tf.function(serve, input_signature=[specs[name] for name in self.input_names])

    def _serve(self, inputs):
        generator_inputs = inputs if self._takes_dict else inputs[self.input_names[0]]
        images = tf.cast(image_output(self.generator, self.generator(generator_inputs, training=False)), tf.float32)
        return {"images": to_uint8(images), "images_float": images}


class TextGeneratorModule(tf.Module):
    """Captions in, images out: tokenizer + text encoder + generator in one SavedModel.

    Signatures:
        serving_default(text: string [B]) → {images: uint8 [B, H, W, C], images_float}; fresh noise per call.
        seeded(text: string [B], seed: int64 scalar) → the same, reproducibly: z is drawn from `seed` and the
            Conditioning Augmentation noise restarts from it too (StackGAN samples ε at test time as well).
    """

    def __init__(self, encoder, generator, noise_dim, noise_distribution="normal", name="t2i_text_generator"):
        super().__init__(name=name)
        self.encoder = encoder
        self.generator = generator
        track_variables(self, encoder, generator)
        # State of every keras.random.SeedGenerator in the generator (Conditioning Augmentation's ε).
        self.seed_states = [
            getattr(generator_seed.state, "value", generator_seed.state)
            for layer in generator._flatten_layers() for generator_seed in getattr(layer, "_seed_generators", [])
        ]
        self.noise_dim = int(noise_dim)
        self.noise_distribution = noise_distribution
        self.input_names = ["text"]
        self.serving_default = tf.function(
            lambda text: self._serve(text, None), input_signature=[tf.TensorSpec([None], tf.string, name="text")]
        )
        self.seeded = tf.function(
            self._serve,
            input_signature=[tf.TensorSpec([None], tf.string, name="text"), tf.TensorSpec([], tf.int64, name="seed")],
        )

    def _noise(self, batch_size, seed):
        shape = tf.stack([batch_size, self.noise_dim])
        if seed is None:
            if self.noise_distribution == "uniform":
                return tf.random.uniform(shape, -1.0, 1.0)
            return tf.random.normal(shape)
        stateless_seed = tf.stack([seed, tf.constant(0, tf.int64)])
        if self.noise_distribution == "uniform":
            return tf.random.stateless_uniform(shape, stateless_seed, -1.0, 1.0)
        return tf.random.stateless_normal(shape, stateless_seed)

    def _serve(self, text, seed):
        if seed is not None:
            for i, state in enumerate(self.seed_states):
                state.assign(tf.stack([seed, tf.constant(i + 1, tf.int64)]))
        embedding = tf.cast(self.encoder(text), tf.float32)
        noise = self._noise(tf.shape(text)[0], seed)
        outputs = self.generator({"noise": noise, "embedding": embedding}, training=False)
        images = tf.cast(image_output(self.generator, outputs), tf.float32)
        return {"images": to_uint8(images), "images_float": images}
