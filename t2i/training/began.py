"""BEGAN trainer (Berthelot et al. 2017): an autoencoder discriminator and a proportional controller k_t.

Per batch, as in the reference implementation (carpedm20/BEGAN-tensorflow): one forward pass of G and of D (on the
real and fake images together), from which both networks take a gradient step, D on L_D = L(x) - k_t·L(G(z)), G on
L(G(z)); then k_{t+1} = clip(k_t + λ_k·(γ·L(x) - L(G(z))), 0, 1) with the losses of that forward pass, i.e. from
before the updates. The formulas live in `t2i.losses.began`.

Distribution: gradients use per-example losses reduced with `tf.nn.compute_average_loss` (global-batch scaling).
k is a single value shared by all replicas: it is updated from the batch means of L(x) and L(G(z)) averaged over
replicas, so every replica computes the same k_{t+1} and the first replica's assignment is the global one.
"""
import keras
import tensorflow as tf

from t2i.losses import began
from t2i.training.gan import BaseTrainer


@keras.saving.register_keras_serializable(package="t2i")
class BEGANTrainer(BaseTrainer):
    """Trains a generator against an autoencoder discriminator with BEGAN's equilibrium control.

    Args:
        generator: a Keras model mapping noise to images (e.g. `BEGANGenerator`).
        discriminator: a Keras model mapping images to reconstructions of the same shape (e.g. `BEGANDiscriminator`).
        gamma: γ = E[L(G(z))] / E[L(x)], the diversity ratio the controller aims for (0.5 in the reference; lower
            values trade diversity for image quality).
        lambda_k: λ_k, the controller's gain (0.001 in the paper).
        k_init: k_0, the initial weight of the fake term in L_D (0 in the paper).
        noise_distribution: z ~ U[-1, 1] ("uniform") as in the paper, or "normal".
        **kwargs: further `BaseTrainer` arguments (num_samples, sample_seed).

    Trackers: d_loss, g_loss, k (after the step's update), m_global, loss_real (L(x)), loss_fake (L(G(z))).
    """

    def __init__(self, generator, discriminator, gamma=0.5, lambda_k=0.001, k_init=0.0, noise_distribution="uniform",
                 **kwargs):
        super().__init__(generator, discriminator, noise_distribution=noise_distribution, **kwargs)
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1]. Received: gamma={gamma}")
        if lambda_k < 0.0:
            raise ValueError(f"lambda_k must be >= 0. Received: lambda_k={lambda_k}")
        if not 0.0 <= k_init <= 1.0:
            raise ValueError(f"k_init must be in [0, 1]. Received: k_init={k_init}")
        self.gamma = float(gamma)
        self.lambda_k = float(lambda_k)
        self.k_init = float(k_init)
        # Training state, not a weight: checkpointed through extra_state() so a resumed run keeps its equilibrium.
        # Every replica assigns the same value (see train_step), so the first replica's write is the one kept.
        self.k = tf.Variable(self.k_init, dtype=tf.float32, trainable=False, name="k",
                             aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        # Trackers must exist before the model is built (Keras refuses new state afterwards).
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.k_tracker = keras.metrics.Mean(name="k")
        self.m_global_tracker = keras.metrics.Mean(name="m_global")
        self.loss_real_tracker = keras.metrics.Mean(name="loss_real")
        self.loss_fake_tracker = keras.metrics.Mean(name="loss_fake")

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker, self.k_tracker, self.m_global_tracker,
                self.loss_real_tracker, self.loss_fake_tracker]

    def extra_state(self):
        return dict(super().extra_state(), began_k=self.k)

    def train_step(self, batch):
        real = tf.cast(batch["image"], tf.float32)
        batch_size = tf.shape(real)[0]
        noise = self.sample_noise(batch_size)
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            fake = self.generator(noise, training=True)
            # One discriminator call on both halves, as the reference does; D has no batch statistics, so this
            # equals two separate calls.
            reconstructions = self.discriminator(tf.concat([real, tf.cast(fake, real.dtype)], axis=0), training=True)
            real_reconstruction, fake_reconstruction = tf.split(reconstructions, 2, axis=0)
            loss_real = began.reconstruction_loss(real, real_reconstruction)
            loss_fake = began.reconstruction_loss(fake, fake_reconstruction)
            per_example_d_loss = began.discriminator_loss(loss_real, loss_fake, self.k)
            d_loss = tf.nn.compute_average_loss(per_example_d_loss)
            g_loss = tf.nn.compute_average_loss(loss_fake)
        d_variables = self.discriminator.trainable_variables
        g_variables = self.generator.trainable_variables
        # Both gradients come from the same forward pass, before either network moves.
        d_gradients = self.gradients(d_tape, d_loss, d_variables, self.d_optimizer)
        g_gradients = self.gradients(g_tape, g_loss, g_variables, self.g_optimizer)
        self.d_optimizer.apply_gradients(zip(d_gradients, d_variables))
        self.g_optimizer.apply_gradients(zip(g_gradients, g_variables))

        mean_real, mean_fake = tf.reduce_mean(loss_real), tf.reduce_mean(loss_fake)
        # The controller and M_global see the global batch: the same values on every replica.
        global_real, global_fake = tf.distribute.get_replica_context().all_reduce("mean", [mean_real, mean_fake])
        new_k = began.equilibrium_update(self.k, global_real, global_fake, self.gamma, self.lambda_k)
        self.k.assign(new_k)
        self.update_ema()
        self.global_step.assign_add(1)

        self.d_loss_tracker.update_state(tf.reduce_mean(per_example_d_loss))
        self.g_loss_tracker.update_state(mean_fake)
        self.k_tracker.update_state(new_k)
        self.m_global_tracker.update_state(began.convergence_measure(global_real, global_fake, self.gamma))
        self.loss_real_tracker.update_state(mean_real)
        self.loss_fake_tracker.update_state(mean_fake)
        return self.metric_logs()
