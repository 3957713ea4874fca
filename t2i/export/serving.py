"""`tf.Module`s that give exported generators named inputs and both uint8 and float outputs.

`keras.Model.export` names its inputs `keras_tensor`; TF Serving clients deserve `noise`, `labels`, `low_res`. The
signatures' inputs are the generator's own named inputs (float32, any batch size), or a `seed` in place of `noise`;
they return `images` (uint8 NHWC, ready to encode) and `images_float` (float32, nominally [-1, 1]).
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


def seed_states(generator):
    """The state variables of every `keras.random.SeedGenerator` in `generator` (Conditioning Augmentation's ε)."""
    return [getattr(seed_generator.state, "value", seed_generator.state)
            for layer in generator._flatten_layers() for seed_generator in getattr(layer, "_seed_generators", [])]


def reset_seed_states(states, seed):
    """Restarts each seed state from `seed` (int64 scalar), so the generator's own random draws repeat."""
    for i, state in enumerate(states):
        state.assign(tf.stack([seed, tf.constant(i + 1, tf.int64)]))


def noise_from_seeds(seeds, noise_dim, distribution="normal"):
    """[B, noise_dim] noise whose row i depends on seeds[i] alone (stateless draws), so a seed names one image
    whatever else is in the batch, including rows TF Serving's batching adds."""
    def row(seed):
        stateless_seed = tf.stack([seed, tf.constant(0, tf.int64)])
        if distribution == "uniform":
            return tf.random.stateless_uniform([noise_dim], stateless_seed, -1.0, 1.0)
        return tf.random.stateless_normal([noise_dim], stateless_seed)

    return tf.map_fn(row, tf.cast(seeds, tf.int64), fn_output_signature=tf.float32)


class GeneratorModule(tf.Module):
    """Signatures over a generator's own named inputs, each returning {images: uint8 [B, H, W, C], images_float}.

        serving_default(<generator inputs>): e.g. noise [B, Z] (+ labels [B, N] or embedding [B, D]); low_res for SRGAN.
        seeded(seed int64 [B], <the other inputs>): generators with a `noise` input only; noise is not sent but
            drawn per row from `seed` (row i from seed[i] alone). A generator with Conditioning Augmentation also
            restarts its ε state from seed[0], so a call is reproducible as a whole.
    """

    def __init__(self, generator, noise_distribution="normal", name="t2i_generator"):
        super().__init__(name=name)
        self.generator = generator
        track_variables(self, generator)
        specs = named_input_specs(generator)
        self.input_names = sorted(specs)
        self._takes_dict = isinstance(generator.input, dict)
        self.noise_distribution = noise_distribution
        self.seed_states = seed_states(generator)

        def serve(*tensors):
            return self._serve(dict(zip(self.input_names, tensors)))

        self.serving_default = tf.function(serve, input_signature=[specs[name] for name in self.input_names])
        self.signature_inputs = {"serving_default": list(self.input_names)}
        if "noise" in specs:
            self.noise_dim = int(specs["noise"].shape[-1])
            others = [name for name in self.input_names if name != "noise"]
            self.seeded_input_names = sorted(["seed", *others])

            def seeded(*tensors):
                inputs = dict(zip(self.seeded_input_names, tensors))
                seeds = inputs.pop("seed")
                if self.seed_states:
                    reset_seed_states(self.seed_states, tf.cast(seeds[0], tf.int64))
                inputs["noise"] = noise_from_seeds(seeds, self.noise_dim, self.noise_distribution)
                return self._serve(inputs)

            seed_spec = tf.TensorSpec([None], tf.int64, name="seed")
            self.seeded = tf.function(
                seeded, input_signature=[seed_spec if n == "seed" else specs[n] for n in self.seeded_input_names])
            self.signature_inputs["seeded"] = list(self.seeded_input_names)

    def signatures(self):
        """{signature name: concrete function} for `tf.saved_model.save`."""
        signatures = {"serving_default": self.serving_default}
        if hasattr(self, "seeded"):
            signatures["seeded"] = self.seeded
        return signatures

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
        self.seed_states = seed_states(generator)
        self.noise_dim = int(noise_dim)
        self.noise_distribution = noise_distribution
        self.input_names = ["text"]
        self.signature_inputs = {"serving_default": ["text"], "seeded": ["seed", "text"]}
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
            reset_seed_states(self.seed_states, seed)
        embedding = tf.cast(self.encoder(text), tf.float32)
        noise = self._noise(tf.shape(text)[0], seed)
        outputs = self.generator({"noise": noise, "embedding": embedding}, training=False)
        images = tf.cast(image_output(self.generator, outputs), tf.float32)
        return {"images": to_uint8(images), "images_float": images}
