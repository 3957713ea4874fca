"""The base GAN trainer: a `keras.Model` whose `train_step` alternates discriminator and generator updates.

Networks, optimizers and losses come in from outside; the trainer only orders the updates. Subclasses for
conditional and text-conditioned GANs override the two hooks `generator_inputs` and `discriminate`.

Distribution: losses arrive per example and are reduced with `tf.nn.compute_average_loss`, i.e. summed and divided by
the *global* batch size, so that the gradients Keras sums across replicas equal the single-device gradients.
Metrics are `keras.metrics.Mean` trackers updated with each replica's local mean, which Keras aggregates over
replicas.
"""
import functools
import inspect

import keras
import numpy as np
import tensorflow as tf

from t2i.losses import adversarial
from t2i.losses.penalties import gradient_penalty

NOISE_DISTRIBUTIONS = ("normal", "uniform")


@keras.saving.register_keras_serializable(package="t2i")
class GANTrainer(keras.Model):
    """Trains `generator` against `discriminator`.

    Per batch: `n_critic` discriminator updates, then `n_gen` generator updates. The last discriminator update and
    the first generator update share one generator forward pass, as the reference DCGAN implementation does (the
    generator update sees the freshly updated discriminator); further updates draw fresh noise.

    Args:
        generator: a Keras model mapping noise (and conditions, in subclasses) to images in [-1, 1].
        discriminator: a Keras model mapping images to logits.
        adversarial_loss: an `AdversarialLoss` or its registry name ("non_saturating", "hinge", ...).
        n_critic: discriminator updates per batch.
        n_gen: generator updates per batch.
        label_smoothing: one-sided label smoothing for the minimax/non-saturating discriminator loss.
        gradient_penalty_weight: λ of the WGAN-GP penalty (0 disables it).
        noise_distribution: "normal" (N(0, I)) or "uniform" (U[-1, 1]).
        num_samples, sample_seed: the fixed noise used for progress grids, identical across resumes.
    """

    def __init__(self, generator, discriminator, adversarial_loss="non_saturating", n_critic=1, n_gen=1,
                 label_smoothing=0.0, gradient_penalty_weight=0.0, noise_distribution="normal", num_samples=64,
                 sample_seed=0, **kwargs):
        super().__init__(**kwargs)
        if n_critic < 1 or n_gen < 1:
            raise ValueError(f"n_critic and n_gen must be >= 1. Received: n_critic={n_critic}, n_gen={n_gen}")
        if noise_distribution not in NOISE_DISTRIBUTIONS:
            raise ValueError(
                f"noise_distribution must be one of {NOISE_DISTRIBUTIONS}. Received: "
                f"noise_distribution={noise_distribution!r}"
            )
        self.generator = generator
        self.discriminator = discriminator
        if isinstance(adversarial_loss, str):
            adversarial_loss = adversarial.get_adversarial_loss(adversarial_loss)
        self.adversarial_loss = adversarial_loss
        self._discriminator_loss = adversarial_loss.discriminator
        if label_smoothing:
            if "label_smoothing" not in inspect.signature(adversarial_loss.discriminator).parameters:
                raise ValueError(
                    f"label_smoothing applies to the minimax / non_saturating losses only. Received: "
                    f"label_smoothing={label_smoothing}, adversarial_loss={adversarial_loss.name!r}"
                )
            self._discriminator_loss = functools.partial(
                adversarial_loss.discriminator, label_smoothing=float(label_smoothing)
            )
        self.n_critic = int(n_critic)
        self.n_gen = int(n_gen)
        self.label_smoothing = float(label_smoothing)
        self.gradient_penalty_weight = float(gradient_penalty_weight)
        self.noise_distribution = noise_distribution
        self.noise_dim = generator.inputs[0].shape[-1]
        self.num_samples = int(num_samples)
        self.sample_seed = int(sample_seed)
        # Trackers must exist before the model is built (Keras refuses new state afterwards).
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.gp_tracker = keras.metrics.Mean(name="gradient_penalty")
        # Counts batches trained; checkpointed, so a resumed run continues at the right step.
        self.global_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step",
                                       aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

    # -- set-up ---------------------------------------------------------------------------------------------------
    def compile(self, g_optimizer, d_optimizer, **kwargs):
        super().compile(**kwargs)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        # Built up front: under MirroredStrategy, slot variables created lazily inside the replicated step fail
        # ("You must feed a value for placeholder tensor ...").
        g_optimizer.build(self.generator.trainable_variables)
        d_optimizer.build(self.discriminator.trainable_variables)

    def call(self, inputs, training=False):
        # fit() needs a forward pass to build the model; the generator is the model users sample from.
        return self.generator(inputs, training=training)

    def build(self, input_shape=None):
        self.built = True

    @property
    def metrics(self):
        tracked = [self.d_loss_tracker, self.g_loss_tracker]
        if self.gradient_penalty_weight > 0:
            tracked.append(self.gp_tracker)
        return tracked

    # -- hooks for conditional subclasses --------------------------------------------------------------------------
    def sample_noise(self, batch_size):
        shape = (batch_size, self.noise_dim)
        if self.noise_distribution == "uniform":
            return tf.random.uniform(shape, -1.0, 1.0)
        return tf.random.normal(shape)

    def sample_inputs(self):
        """The fixed generator inputs for progress grids: the same every call and in every process."""
        rng = np.random.default_rng(self.sample_seed)
        if self.noise_distribution == "uniform":
            noise = rng.uniform(-1.0, 1.0, (self.num_samples, self.noise_dim))
        else:
            noise = rng.standard_normal((self.num_samples, self.noise_dim))
        return noise.astype("float32")

    def generator_inputs(self, batch, noise):
        """What the generator is called on for this batch; conditional trainers add labels or text."""
        del batch
        return noise

    def discriminate(self, images, batch, training=True):
        """Discriminator logits for `images` paired with this batch's conditions (none here)."""
        del batch
        return self.discriminator(images, training=training)

    # -- updates ---------------------------------------------------------------------------------------------------
    def _discriminator_update(self, batch, fake):
        real = batch["image"]
        with tf.GradientTape() as tape:
            real_logits = self.discriminate(real, batch, training=True)
            fake_logits = self.discriminate(fake, batch, training=True)
            per_example = self._discriminator_loss(real_logits, fake_logits)
            loss = tf.nn.compute_average_loss(per_example)
            penalty = tf.zeros([], tf.float32)
            if self.gradient_penalty_weight > 0:
                per_example_gp = gradient_penalty(
                    lambda x: self.discriminate(x, batch, training=True), real, fake
                )
                loss += self.gradient_penalty_weight * tf.nn.compute_average_loss(per_example_gp)
                penalty = tf.reduce_mean(per_example_gp)
        variables = self.discriminator.trainable_variables
        self.d_optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return tf.reduce_mean(per_example), penalty

    def _generator_loss(self, batch, fake):
        per_example = self.adversarial_loss.generator(self.discriminate(fake, batch, training=True))
        return tf.nn.compute_average_loss(per_example), tf.reduce_mean(per_example)

    def train_step(self, batch):
        batch_size = tf.shape(batch["image"])[0]
        for _ in range(self.n_critic - 1):
            fake = self.generator(self.generator_inputs(batch, self.sample_noise(batch_size)), training=True)
            d_loss, penalty = self._discriminator_update(batch, fake)

        g_variables = self.generator.trainable_variables
        with tf.GradientTape() as g_tape:
            fake = self.generator(self.generator_inputs(batch, self.sample_noise(batch_size)), training=True)
            with g_tape.stop_recording():
                d_loss, penalty = self._discriminator_update(batch, tf.stop_gradient(fake))
            g_loss, g_loss_mean = self._generator_loss(batch, fake)
        self.g_optimizer.apply_gradients(zip(g_tape.gradient(g_loss, g_variables), g_variables))

        for _ in range(self.n_gen - 1):
            with tf.GradientTape() as g_tape:
                fake = self.generator(self.generator_inputs(batch, self.sample_noise(batch_size)), training=True)
                g_loss, g_loss_mean = self._generator_loss(batch, fake)
            self.g_optimizer.apply_gradients(zip(g_tape.gradient(g_loss, g_variables), g_variables))

        self.global_step.assign_add(1)
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss_mean)
        if self.gradient_penalty_weight > 0:
            self.gp_tracker.update_state(penalty)
        return {m.name: m.result() for m in self.metrics}

    def generate(self, inputs):
        """Images in [-1, 1] from the generator in inference mode."""
        return self.generator(inputs, training=False)
