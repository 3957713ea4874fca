"""SRGAN training (Ledig et al. 2017): a generator upsamples bicubic-downscaled real images, a discriminator tells its
output from the originals.

Generator loss per example: pixel_weight·MSE + adversarial_weight·L_adv + perceptual_weight·L_φ + tv_weight·TV.
The paper's SRGAN-VGG54 is pixel_weight=0, perceptual_weight≈6e-3 (see `t2i.losses.perceptual`) and
adversarial_weight=1e-3; the defaults (MSE + 1e-3 adversarial) are its SRGAN-MSE variant, which needs no
pretrained network. Every term is per example and reduced with `tf.nn.compute_average_loss`, as in `GANTrainer`.
"""
import keras
import numpy as np
import tensorflow as tf

from t2i.losses import adversarial
from t2i.losses.image import pixel_mse, total_variation
from t2i.losses.perceptual import perceptual_loss
from t2i.training.gan import BaseTrainer


def low_resolution(images, scale):
    """The low-resolution input for `images` [B, H, W, C] in [-1, 1]: bicubic downscaling by `scale` with
    antialiasing (`tf.image.resize`), clipped to [-1, 1] because the cubic kernel overshoots at sharp edges.

    Runs in float32. Training, sampling and export share it so that the generator always sees the same degradation.
    Its `ScaleAndTranslate` op has no XLA kernel, so a step that calls it cannot be jit-compiled.
    """
    images = tf.cast(images, tf.float32)
    height, width = images.shape[1], images.shape[2]
    if height is not None and width is not None:
        size = [height // scale, width // scale]  # Static, so the generator's input shape stays known.
    else:
        size = tf.shape(images)[1:3] // scale
    small = tf.image.resize(images, size, method="bicubic", antialias=True)
    return tf.clip_by_value(small, -1.0, 1.0)


@keras.saving.register_keras_serializable(package="t2i")
class SRGANTrainer(BaseTrainer):
    """Trains an `SRGANGenerator` against an `SRGANDiscriminator` on batches {"image": HR images in [-1, 1], ...}.

    Per batch: one generator forward pass on `low_resolution(image)`; one discriminator update on the real images
    against that output; one generator update scored by the freshly updated discriminator (as `GANTrainer` does).

    Args:
        generator: maps low-res images (and `labels`) to images `scale` times larger, in [-1, 1].
        discriminator: maps images (and `labels`) to logits.
        scale: the downscaling factor that makes the generator's input; must match `generator.scale` if it has one.
        adversarial_loss: an `AdversarialLoss` or its registry name.
        adversarial_weight, pixel_weight, perceptual_weight, tv_weight: weights of the generator loss terms.
        feature_network: the frozen network of the perceptual loss (`load_feature_network`); required when
            perceptual_weight > 0.
        label_key: batch key of the labels fed to both networks as `labels` (None: unconditional). Multi-hot vectors
            are used as they are; integer class ids [B] are one-hot encoded to `generator.num_labels`.
        sample_images: high-resolution images whose low-res versions (the first `num_samples`) are the progress-grid
            inputs; sample_labels: their labels, required with `label_key`.
        **kwargs: `BaseTrainer` arguments (num_samples, sample_seed).
    """

    def __init__(self, generator, discriminator, scale=4, adversarial_loss="non_saturating", adversarial_weight=1e-3,
                 pixel_weight=1.0, perceptual_weight=0.0, tv_weight=2e-8, feature_network=None, label_key=None,
                 sample_images=None, sample_labels=None, **kwargs):
        super().__init__(generator, discriminator, **kwargs)
        generator_scale = getattr(generator, "scale", scale)
        if generator_scale != scale:
            raise ValueError(
                f"scale must match the generator's upsampling factor {generator_scale}. Received: scale={scale!r}"
            )
        if perceptual_weight > 0 and feature_network is None:
            raise ValueError(
                f"perceptual_weight > 0 needs a feature_network (see t2i.losses.perceptual.load_feature_network). "
                f"Received: perceptual_weight={perceptual_weight}, feature_network=None"
            )
        if label_key is not None and sample_images is not None and sample_labels is None:
            raise ValueError(f"label_key needs sample_labels for the progress grid. Received: label_key={label_key!r}")
        if isinstance(adversarial_loss, str):
            adversarial_loss = adversarial.get_adversarial_loss(adversarial_loss)
        self.scale = int(scale)
        self.adversarial_loss = adversarial_loss
        self.adversarial_weight = float(adversarial_weight)
        self.pixel_weight = float(pixel_weight)
        self.perceptual_weight = float(perceptual_weight)
        self.tv_weight = float(tv_weight)
        self.feature_network = feature_network
        if feature_network is not None:
            feature_network.trainable = False
        self.label_key = label_key
        self.num_labels = getattr(generator, "num_labels", 0)
        self._sample_inputs = self._fixed_inputs(sample_images, sample_labels)
        # Trackers must exist before the model is built (Keras refuses new state afterwards).
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.pixel_tracker = keras.metrics.Mean(name="pixel_loss")
        self.adversarial_tracker = keras.metrics.Mean(name="adversarial_loss")
        self.perceptual_tracker = keras.metrics.Mean(name="perceptual_loss")
        self.tv_tracker = keras.metrics.Mean(name="tv_loss")

    @property
    def metrics(self):
        tracked = [self.d_loss_tracker, self.g_loss_tracker, self.pixel_tracker, self.adversarial_tracker,
                   self.tv_tracker]
        if self.perceptual_weight > 0:
            tracked.append(self.perceptual_tracker)
        return tracked

    def compile(self, g_optimizer, d_optimizer, jit_compile="auto", **kwargs):
        # "auto" would turn XLA on with a GPU, and low_resolution's ScaleAndTranslate op has no XLA kernel.
        if jit_compile is True:
            raise ValueError(
                "SRGANTrainer cannot be jit-compiled: low_resolution's antialiased bicubic resize has no XLA kernel. "
                "Received: jit_compile=True"
            )
        super().compile(g_optimizer, d_optimizer, jit_compile=False, **kwargs)

    # -- inputs ----------------------------------------------------------------------------------------------------
    def label_vectors(self, labels):
        """Float label vectors [B, num_labels]: multi-hot as given, integer class ids [B] one-hot encoded."""
        labels = tf.convert_to_tensor(labels)
        if labels.shape.rank == 1:
            return tf.one_hot(tf.cast(labels, tf.int32), self.num_labels, dtype=tf.float32)
        return tf.cast(labels, tf.float32)

    def _fixed_inputs(self, sample_images, sample_labels):
        if sample_images is None:
            return None
        low_res = low_resolution(np.asarray(sample_images)[: self.num_samples], self.scale).numpy()
        if self.label_key is None:
            return low_res
        labels = self.label_vectors(np.asarray(sample_labels)[: self.num_samples]).numpy()
        return {"low_res": low_res, "labels": labels}

    def sample_inputs(self):
        """The generator inputs for progress grids: low-res `sample_images` (and labels), the same every call."""
        if self._sample_inputs is None:
            raise ValueError("SRGANTrainer draws its progress grids from sample_images. Received: sample_images=None")
        if isinstance(self._sample_inputs, dict):
            return {key: value.copy() for key, value in self._sample_inputs.items()}
        return self._sample_inputs.copy()

    def batch_inputs(self, batch):
        """(HR images, label vectors or None, generator inputs) of a training batch."""
        high_res = tf.cast(batch["image"], tf.float32)
        labels = self.label_vectors(batch[self.label_key]) if self.label_key is not None else None
        low_res = low_resolution(high_res, self.scale)
        return high_res, labels, (low_res if labels is None else {"low_res": low_res, "labels": labels})

    def call(self, inputs, training=False):
        # Under a distribution strategy Keras builds the trainer by calling it on a training batch: a batch
        # {"image": ...} gives its super-resolved images; generator inputs are passed through.
        if isinstance(inputs, dict) and "image" in inputs:
            inputs = self.batch_inputs(inputs)[2]
        return self.generator(inputs, training=training)

    # -- updates ---------------------------------------------------------------------------------------------------
    def _discriminate(self, images, labels):
        inputs = images if labels is None else {"image": images, "labels": labels}
        return self.discriminator(inputs, training=True)

    def generator_terms(self, high_res, super_res, fake_logits):
        """{term name: per-example value} of the generator loss, before weighting."""
        terms = {
            "pixel_loss": pixel_mse(high_res, super_res),
            "adversarial_loss": self.adversarial_loss.generator(fake_logits),
            "tv_loss": total_variation(super_res),
        }
        if self.perceptual_weight > 0:
            # The real images' features are a fixed target; only the generated side carries gradients.
            real_features = tf.stop_gradient(self.feature_network(high_res, training=False))
            terms["perceptual_loss"] = perceptual_loss(real_features, self.feature_network(super_res, training=False))
        return terms

    def weighted_sum(self, terms):
        weights = {"pixel_loss": self.pixel_weight, "adversarial_loss": self.adversarial_weight,
                   "perceptual_loss": self.perceptual_weight, "tv_loss": self.tv_weight}
        return tf.add_n([weights[name] * value for name, value in terms.items()])

    def _discriminator_update(self, high_res, super_res, labels):
        with tf.GradientTape() as tape:
            real_logits = self._discriminate(high_res, labels)
            fake_logits = self._discriminate(super_res, labels)
            per_example = self.adversarial_loss.discriminator(real_logits, fake_logits)
            loss = tf.nn.compute_average_loss(per_example)
        variables = self.discriminator.trainable_variables
        self.d_optimizer.apply_gradients(zip(self.gradients(tape, loss, variables, self.d_optimizer), variables))
        return tf.reduce_mean(per_example)

    def train_step(self, batch):
        high_res, labels, generator_inputs = self.batch_inputs(batch)

        g_variables = self.generator.trainable_variables
        with tf.GradientTape() as g_tape:
            super_res = tf.cast(self.generator(generator_inputs, training=True), tf.float32)
            with g_tape.stop_recording():
                d_loss = self._discriminator_update(high_res, tf.stop_gradient(super_res), labels)
            terms = self.generator_terms(high_res, super_res, self._discriminate(super_res, labels))
            per_example = self.weighted_sum(terms)
            g_loss = tf.nn.compute_average_loss(per_example)
        self.g_optimizer.apply_gradients(zip(self.gradients(g_tape, g_loss, g_variables, self.g_optimizer),
                                             g_variables))

        self.update_ema()
        self.global_step.assign_add(1)
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(tf.reduce_mean(per_example))
        trackers = {m.name: m for m in self.metrics}
        for name, value in terms.items():
            trackers[name].update_state(tf.reduce_mean(value))
        return self.metric_logs()
