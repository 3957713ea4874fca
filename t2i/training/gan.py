"""The base GAN trainer: a `keras.Model` whose `train_step` alternates discriminator and generator updates.

Networks, optimizers and losses come in from outside; the trainer only orders the updates. Subclasses for
conditional and text-conditioned GANs override the two hooks `generator_inputs` and `discriminate`.

Distribution: losses arrive per example and are reduced with `tf.nn.compute_average_loss`, i.e. summed and divided by
the *global* batch size, so that the gradients Keras sums across replicas equal the single-device gradients.
Metrics are `keras.metrics.Mean` trackers updated with each replica's local mean, which Keras averages over
replicas (equal shares of the batch, so the average is the global mean). BatchNorm layers see only their replica's
share of the batch unless synchronised; `t2i.training.distribute.synchronize_batch_norm` does that for replicated
runs.

Mixed precision: under mixed_float16 the optimizers are `keras.optimizers.LossScaleOptimizer`s. `gradients` seeds
the backward pass with the loss scale (the same as differentiating the scaled loss) and the optimizer divides it out
again, skipping the update and halving the scale when a gradient overflowed. The WGAN-GP penalty's inner gradient
∂D/∂x̂ is taken on the unscaled float32 critic output: WGAN-GP drives its norm towards 1, far from float16's
underflow, while the outer backward pass through it — second-order terms included — carries the loss scale like
every other term.
"""
import functools
import inspect

import keras
import numpy as np
import tensorflow as tf

from t2i.losses import adversarial
from t2i.losses.diversity import mode_seeking_loss
from t2i.losses.penalties import gradient_penalty
from t2i.training import augment as augment_lib

NOISE_DISTRIBUTIONS = ("normal", "uniform")


@keras.saving.register_keras_serializable(package="t2i")
class BaseTrainer(keras.Model):
    """What every t2i trainer shares: two networks, two optimizers, a global step, fixed sample inputs.

    Subclasses implement `train_step` and call `update_ema()` after their generator updates; `t2i.training.run`
    relies only on what is defined here: `generator`, `discriminator`, `g_optimizer`, `d_optimizer`, `global_step`,
    `metrics`, `sample_inputs()`, `generate(inputs)`, `sampling_generator` and `extra_state()` (further trackables
    to checkpoint, e.g. BEGAN's k).

    Generator EMA: with `ema_generator` (a second instance of the generator's architecture) the trainer keeps an
    exponential moving average of the generator's weights, θ_ema ← d·θ_ema + (1 − d)·θ after every generator step,
    with d = min(ema_decay, (1 + t) / (10 + t)) at step t so that the average is not dominated by the initial
    weights (the schedule of `tf.train.ExponentialMovingAverage` with num_updates). BatchNorm moving statistics and
    other non-trainable state are copied, not averaged. Averaged weights sample better than the last iterate of the
    adversarial game (Yazıcı et al. 2019, "The Unusual Effectiveness of Averaging in GAN Training"; Karras et al.
    2018); the EMA generator is what grids, exports and `generator.keras` use.

    Args:
        generator: a Keras model producing images in [-1, 1].
        discriminator: a Keras model scoring images.
        noise_distribution: "normal" (N(0, I)) or "uniform" (U[-1, 1]).
        num_samples, sample_seed: the fixed inputs used for progress grids, identical across resumes.
        ema_generator: None, or a model of the generator's architecture to hold the averaged weights; it starts as
            a copy of the generator.
        ema_decay: d, in (0, 1); used with `ema_generator`.
    """

    def __init__(self, generator, discriminator, noise_distribution="normal", num_samples=64, sample_seed=0,
                 ema_generator=None, ema_decay=0.999, **kwargs):
        super().__init__(**kwargs)
        if noise_distribution not in NOISE_DISTRIBUTIONS:
            raise ValueError(
                f"noise_distribution must be one of {NOISE_DISTRIBUTIONS}. Received: "
                f"noise_distribution={noise_distribution!r}"
            )
        self.generator = generator
        self.discriminator = discriminator
        self.noise_distribution = noise_distribution
        self.noise_dim = getattr(generator, "noise_dim", None) or generator.inputs[0].shape[-1]
        self.num_samples = int(num_samples)
        self.sample_seed = int(sample_seed)
        self.ema_generator = ema_generator
        self.ema_decay = float(ema_decay)
        self._ema_pairs = []
        if ema_generator is not None:
            if not 0.0 < self.ema_decay < 1.0:
                raise ValueError(f"ema_decay must be in (0, 1). Received: ema_decay={ema_decay}")
            if [tuple(v.shape) for v in ema_generator.weights] != [tuple(v.shape) for v in generator.weights]:
                raise ValueError("ema_generator must have the generator's architecture (the same weights in the same "
                                 "order). Received: an ema_generator with other weights")
            ema_generator.set_weights(generator.get_weights())
            self._ema_pairs = list(zip(ema_generator.weights, generator.weights))
        # Counts batches trained; checkpointed, so a resumed run continues at the right step.
        self.global_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step",
                                       aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        # The step the run ends at (`t2i.training.run` sets it to --steps, or to what fits --time_budget); a linear
        # learning-rate schedule built on it decays to its minimum there. Checkpointed with the step.
        self.step_horizon = tf.Variable(0, dtype=tf.int64, trainable=False, name="step_horizon",
                                        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

    def compile(self, g_optimizer, d_optimizer, **kwargs):
        super().compile(**kwargs)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        # Built up front: under MirroredStrategy, slot variables created lazily inside the replicated step fail
        # ("You must feed a value for placeholder tensor ...").
        g_optimizer.build(self.generator.trainable_variables)
        d_optimizer.build(self.discriminator.trainable_variables)

    def call(self, inputs, training=False):
        # fit() needs a forward pass to build the model (under a strategy it passes a training batch); the
        # generator is the model users sample from.
        if isinstance(inputs, dict) and "image" in inputs:
            inputs = self.inputs_from_batch(inputs)
        return self.generator(inputs, training=training)

    def inputs_from_batch(self, batch):
        """Generator inputs for a training batch: fresh noise plus the batch's conditions."""
        return self.generator_inputs(batch, self.sample_noise(tf.shape(batch["image"])[0]))

    def generator_inputs(self, batch, noise):
        """What the generator is called on for this batch; conditional trainers add labels or text."""
        del batch
        return noise

    def build(self, input_shape=None):
        self.built = True

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras 3.15's fit() under a strategy first averages one distributed batch as a whole structure, which
        # MultiWorkerMirroredStrategy refuses for dict batches ("Attempt to convert a value ({'image': PerReplica
        # ...}) ... to a Tensor"). The build it prepares has nothing to do once the networks are built (compile()
        # built the optimizers; the trackers exist from __init__), so it is skipped then.
        if all(layer.built for layer in self._flatten_layers(include_self=False)):
            self.build()
            return None
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def extra_state(self):
        """Trackables besides networks, optimizers and the step that a checkpoint must hold (name → object)."""
        return {"ema_generator": self.ema_generator} if self.ema_generator is not None else {}

    @property
    def sampling_generator(self):
        """The generator to sample from: the EMA generator when there is one."""
        return self.ema_generator if self.ema_generator is not None else self.generator

    def update_ema(self):
        """One EMA step of `ema_generator` towards the generator's current weights (nothing without one)."""
        if not self._ema_pairs:
            return
        step = tf.cast(self.global_step, tf.float32)
        decay = tf.minimum(self.ema_decay, (1.0 + step) / (10.0 + step))
        for average, weight in self._ema_pairs:
            if weight.trainable:
                average.assign(decay * average + (1.0 - decay) * tf.cast(weight, average.dtype))
            else:
                average.assign(weight)

    def sample_noise(self, batch_size):
        shape = (batch_size, self.noise_dim)
        if self.noise_distribution == "uniform":
            return tf.random.uniform(shape, -1.0, 1.0)
        return tf.random.normal(shape)

    def fixed_noise(self, num_samples, seed):
        """Noise from a numpy generator: the same for the same seed in every process."""
        rng = np.random.default_rng(seed)
        if self.noise_distribution == "uniform":
            noise = rng.uniform(-1.0, 1.0, (num_samples, self.noise_dim))
        else:
            noise = rng.standard_normal((num_samples, self.noise_dim))
        return noise.astype("float32")

    def sample_inputs(self):
        """The fixed generator inputs for progress grids: the same every call and in every process."""
        return self.fixed_noise(self.num_samples, self.sample_seed)

    def generate(self, inputs):
        """Images in [-1, 1] from the sampling generator (the EMA one when kept) in inference mode."""
        return self.sampling_generator(inputs, training=False)

    def metric_logs(self):
        """What `train_step` returns: {tracker name: result}, which Keras averages over the replicas.

        Keras 3.15 averages them across multi-worker replicas with `strategy.reduce("MEAN", value, axis=0)`, which
        fails on scalars ("Invalid reduction dimension 0 for input with 0 dimensions", tensorflow#72388); there
        each result gets a leading axis of 1, so the reduction yields the scalar mean over all replicas.
        """
        logs = {m.name: m.result() for m in self.metrics}
        strategy = tf.distribute.get_strategy()
        # The condition under which Keras takes that code path (keras.src.backend.tensorflow.trainer).
        if (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
                and strategy.extended._in_multi_worker_mode()):
            logs = {name: tf.reshape(value, [1]) for name, value in logs.items()}
        return logs

    @staticmethod
    def gradients(tape, loss, variables, optimizer):
        """∂loss/∂variables for `optimizer`: scaled by its loss scale when it is a `LossScaleOptimizer`.

        Seeding the backward pass with the scale equals differentiating `scale · loss`, without re-recording the
        loss; `optimizer.apply_gradients` unscales. Every trainer computes its gradients through here.
        """
        if not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            return tape.gradient(loss, variables)
        gradients = tape.gradient(loss, variables, output_gradients=optimizer.scale_loss(tf.ones_like(loss)))
        context = tf.distribute.get_replica_context()
        if context is None or context.num_replicas_in_sync == 1:
            return gradients
        # Keras 3.15's LossScaleOptimizer decides "finite?" on the first replica's gradients before they are
        # all-reduced, so an overflow on another replica would reach the weights as inf/NaN. Agree first: if any
        # replica overflowed, every replica's gradients become NaN and all of them skip the step.
        local = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in gradients if g is not None])
        overflowed = context.all_reduce(tf.distribute.ReduceOp.SUM, 1.0 - tf.cast(local, tf.float32))
        everywhere = tf.equal(overflowed, 0.0)
        return [None if g is None else tf.where(everywhere, g, tf.constant(float("nan"), g.dtype))
                for g in gradients]


@keras.saving.register_keras_serializable(package="t2i")
class GANTrainer(BaseTrainer):
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
        replay_buffer: an optional `ReplayBuffer` of earlier fakes; part of every fake batch the discriminator
            sees is drawn from it.
        mode_seeking_weight: λ of the mode-seeking term (MSGAN, `t2i.losses.diversity`) added to the generator
            loss; 0 disables it. With it, fakes are made for the first half of the batch's conditions twice
            (`fake_condition_batch`), so rows i and i + B/2 share a condition and differ only in their noise.
        diff_augment: DiffAugment policy (`t2i.training.augment`, e.g. "translation" or "color,translation,cutout")
            applied to every image the discriminator sees, real or fake, in both updates; "" disables it.
        translation_ratio: the translation policy's largest shift, as a fraction of the image side.
        **kwargs: `BaseTrainer` arguments (noise_distribution, num_samples, sample_seed).
    """

    def __init__(self, generator, discriminator, adversarial_loss="non_saturating", n_critic=1, n_gen=1,
                 label_smoothing=0.0, gradient_penalty_weight=0.0, replay_buffer=None, mode_seeking_weight=0.0,
                 diff_augment="", translation_ratio=augment_lib.TRANSLATION_RATIO, **kwargs):
        super().__init__(generator, discriminator, **kwargs)
        self.diff_augment = augment_lib.parse_policy(diff_augment)
        if not 0.0 < translation_ratio < 1.0:
            raise ValueError(f"translation_ratio must be in (0, 1). Received: translation_ratio={translation_ratio}")
        self.translation_ratio = float(translation_ratio)
        self._augment_calls = 0
        if n_critic < 1 or n_gen < 1:
            raise ValueError(f"n_critic and n_gen must be >= 1. Received: n_critic={n_critic}, n_gen={n_gen}")
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
        self.replay_buffer = replay_buffer
        if mode_seeking_weight < 0:
            raise ValueError(f"mode_seeking_weight must be >= 0. Received: mode_seeking_weight={mode_seeking_weight}")
        self.mode_seeking_weight = float(mode_seeking_weight)
        # Trackers must exist before the model is built (Keras refuses new state afterwards).
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.gp_tracker = keras.metrics.Mean(name="gradient_penalty")
        self.mode_seeking_tracker = keras.metrics.Mean(name="mode_seeking")

    @property
    def metrics(self):
        tracked = [self.d_loss_tracker, self.g_loss_tracker]
        if self.gradient_penalty_weight > 0:
            tracked.append(self.gp_tracker)
        if self.mode_seeking_weight > 0:
            tracked.append(self.mode_seeking_tracker)
        return tracked

    def extra_state(self):
        state = super().extra_state()
        if self.replay_buffer is not None:
            state["replay_buffer"] = self.replay_buffer
        return state

    def augment(self, images):
        """`images` through the DiffAugment policy (unchanged without one); every `discriminate` starts here.

        Each call site of a step draws its own transformations, seeded by (sample_seed, global step, call site —
        numbered from 0 in each `train_step`) and the replica id: reproducible across resumes, different for real
        and fake batches and per replica.
        """
        if not self.diff_augment:
            return images
        call = self._augment_calls
        self._augment_calls += 1
        seed = tf.stack([tf.constant(self.sample_seed, tf.int64), tf.cast(self.global_step, tf.int64)])
        seed = tf.random.experimental.stateless_fold_in(seed, call)
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            seed = tf.random.experimental.stateless_fold_in(seed, context.replica_id_in_sync_group)
        return augment_lib.diff_augment(images, self.diff_augment, seed, translation_ratio=self.translation_ratio)

    # -- hooks for conditional subclasses --------------------------------------------------------------------------
    def discriminate(self, images, batch, training=True):
        """Discriminator output for `images` (augmented, see `augment`) paired with this batch's conditions (none
        here)."""
        del batch
        return self.discriminator(self.augment(images), training=training)

    def discriminator_objective(self, batch, fake_batch, real_output, fake_output):
        """(per-example discriminator loss, {tracker name: value}); AC-GAN adds its auxiliary term here.

        `batch` holds the real images' conditions, `fake_batch` those the fakes were generated for (they differ
        when some fakes come from the replay buffer).
        """
        del batch, fake_batch
        return self._discriminator_loss(self.critic_logits(real_output), self.critic_logits(fake_output)), {}

    def generator_objective(self, batch, fake_output):
        """(per-example generator loss, {tracker name: value})."""
        del batch
        return self.adversarial_loss.generator(self.critic_logits(fake_output)), {}

    @staticmethod
    def critic_logits(output):
        """The real/fake logits inside a discriminator output (a tensor, or a dict with "logits")."""
        return output["logits"] if isinstance(output, dict) else output

    # -- updates ---------------------------------------------------------------------------------------------------
    def condition_keys(self):
        """Batch keys that condition the networks; replayed fakes carry their own values for them."""
        return ()

    def fake_condition_batch(self, batch):
        """The batch whose conditions this step's fakes are made for: `batch` itself, or with mode seeking its first
        half twice — every key but "image" gathered at rows [0, ..., h − 1, 0, ..., B − h − 1], h = B // 2 — so the
        fakes of rows i and i + h (i < h) share a condition (labels, text embedding, class) and differ in z only."""
        if self.mode_seeking_weight <= 0:
            return batch
        size = tf.shape(batch["image"])[0]
        half = size // 2
        rows = tf.concat([tf.range(half), tf.range(size - half)], axis=0)
        return {key: value if key == "image" else tf.gather(value, rows) for key, value in batch.items()}

    def mode_seeking_term(self, fake, noise):
        """L_ms over the pairs (i, i + B/2) of `fake_condition_batch`; averaged over the outputs of a multi-scale
        generator."""
        half = tf.shape(noise)[0] // 2
        losses = [mode_seeking_loss(images[:half], images[half:2 * half], noise[:half], noise[half:2 * half])
                  for images in tf.nest.flatten(fake)]
        return tf.add_n(losses) / len(losses)

    def _fake_batch(self, batch, fake):
        """(fake images, batch whose conditions belong to them): fresh fakes, or part of them from the replay."""
        if self.replay_buffer is None:
            return fake, batch, None
        conditions = {key: batch[key] for key in self.condition_keys()}
        mixed, mixed_conditions, num_replayed = self.replay_buffer.mix(fake, conditions)
        return mixed, dict(batch, **mixed_conditions), num_replayed

    def _discriminator_update(self, batch, fake, fake_batch=None):
        """One discriminator step on the real `batch` and `fake`, made for the conditions of `fake_batch`."""
        real, fresh_fake = batch["image"], fake
        fake, fake_batch, num_replayed = self._fake_batch(batch if fake_batch is None else fake_batch, fresh_fake)
        with tf.GradientTape() as tape:
            real_output = self.discriminate(real, batch, training=True)
            fake_output = self.discriminate(fake, fake_batch, training=True)
            per_example, extras = self.discriminator_objective(batch, fake_batch, real_output, fake_output)
            loss = tf.nn.compute_average_loss(per_example)
            penalty = tf.zeros([], tf.float32)
            if self.gradient_penalty_weight > 0:
                # Interpolates pair each real image with a fake of the same conditions (the real batch's).
                per_example_gp = gradient_penalty(
                    lambda x: self.critic_logits(self.discriminate(x, batch, training=True)), real, fresh_fake
                )
                loss += self.gradient_penalty_weight * tf.nn.compute_average_loss(per_example_gp)
                penalty = tf.reduce_mean(per_example_gp)
        variables = self.discriminator.trainable_variables
        self.d_optimizer.apply_gradients(zip(self.gradients(tape, loss, variables, self.d_optimizer), variables))
        if self.replay_buffer is not None:
            scores = tf.reshape(self.critic_logits(fake_output), [tf.shape(fake)[0], -1])
            fresh = slice(num_replayed, None)
            self.replay_buffer.add(
                fake[fresh], {key: fake_batch[key][fresh] for key in self.condition_keys()},
                tf.reduce_mean(scores, axis=1)[fresh],
            )
        return tf.reduce_mean(per_example), penalty, extras

    def _generator_loss(self, batch, fake, noise):
        """(loss to differentiate, mean per-example loss, extras) for `fake` made from `noise` for `batch`'s
        conditions; the mode-seeking term, a batch-level scalar, is divided among the replicas."""
        per_example, extras = self.generator_objective(batch, self.discriminate(fake, batch, training=True))
        loss = tf.nn.compute_average_loss(per_example)
        if self.mode_seeking_weight > 0:
            mode_seeking = self.mode_seeking_term(fake, noise)
            replicas = tf.distribute.get_replica_context().num_replicas_in_sync
            loss += self.mode_seeking_weight * mode_seeking / replicas
            extras = dict(extras, mode_seeking=mode_seeking)
        return loss, tf.reduce_mean(per_example), extras

    def _generate_for(self, batch, batch_size):
        """(fakes for `batch`'s conditions, the noise they came from)."""
        noise = self.sample_noise(batch_size)
        return self.generator(self.generator_inputs(batch, noise), training=True), noise

    def train_step(self, batch):
        self._augment_calls = 0  # call sites numbered per trace: the same draws in every process (resumes too)
        batch_size = tf.shape(batch["image"])[0]
        fake_batch = self.fake_condition_batch(batch)
        for _ in range(self.n_critic - 1):
            self._discriminator_update(batch, self._generate_for(fake_batch, batch_size)[0], fake_batch)

        g_variables = self.generator.trainable_variables
        with tf.GradientTape() as g_tape:
            fake, noise = self._generate_for(fake_batch, batch_size)
            with g_tape.stop_recording():
                d_loss, penalty, d_extras = self._discriminator_update(
                    batch, tf.nest.map_structure(tf.stop_gradient, fake), fake_batch
                )
            g_loss, g_loss_mean, g_extras = self._generator_loss(fake_batch, fake, noise)
        self.apply_generator_gradients(g_tape, g_loss, g_variables)

        for _ in range(self.n_gen - 1):
            with tf.GradientTape() as g_tape:
                fake, noise = self._generate_for(fake_batch, batch_size)
                g_loss, g_loss_mean, g_extras = self._generator_loss(fake_batch, fake, noise)
            self.apply_generator_gradients(g_tape, g_loss, g_variables)

        self.update_ema()
        self.global_step.assign_add(1)
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss_mean)
        if self.gradient_penalty_weight > 0:
            self.gp_tracker.update_state(penalty)
        self.update_extra_trackers({**d_extras, **g_extras})
        return self.metric_logs()

    def apply_generator_gradients(self, tape, loss, variables):
        """One generator update; StackGAN-II overrides it to give a fine-tuned Stage-I its own optimizer."""
        self.g_optimizer.apply_gradients(zip(self.gradients(tape, loss, variables, self.g_optimizer), variables))

    def update_extra_trackers(self, values):
        """Subclasses that return extras from their objectives own matching trackers (created in __init__)."""
        trackers = {m.name: m for m in self.metrics}
        for name, value in values.items():
            trackers[name].update_state(value)
