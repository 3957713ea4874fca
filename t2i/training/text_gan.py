"""Trainers for text-conditioned GANs: StackGAN Stage-I/II and HDGAN, with GAN-CLS, GAN-INT and the CA KL term.

The networks take {"noise", "embedding"}; the batch holds "image", "embedding" (a caption embedding, or the mean of a
few, drawn per image per step by `t2i.data.embeddings.embedding_pipeline`) and optionally "class_id".

Discriminator (GAN-CLS, Reed et al. 2016): real image + right text is "real"; real image + wrong text and fake image +
right text are "fake", the two fake terms averaged:  L_D = L_real(D(x, e)) + (L_fake(D(x̂, e)) + L_fake(D(G(z, e), e)))/2,
where x̂ is another image of the batch — of a different class when the batch has classes. Rows without such a
partner drop out of that term rather than teach D that a matching pair is wrong.

Generator: L_G = L_adv(D(G(z, e), e)) + kl_weight · KL(N(μ(e), σ(e)²) ‖ N(0, I))  (Conditioning Augmentation, Zhang et al.
2017) + interpolation_weight · L_adv(D(G(z, ē), ē)) with ē = β e + (1 − β) e' the embedding of another caption of the
batch (GAN-INT): D has never seen ē, so G learns to fill the gaps between training captions.
"""
import keras
import numpy as np
import tensorflow as tf

from t2i.losses import matching
from t2i.losses.auxiliary import multilabel_classification_loss
from t2i.training.conditional import ConditionalGANTrainer


@keras.saving.register_keras_serializable(package="t2i")
class TextGANTrainer(ConditionalGANTrainer):
    """StackGAN-style trainer (see the module docstring).

    Args:
        generator: takes {"noise", "embedding"}; when it has Conditioning Augmentation it exposes
            `ca_statistics(embedding) -> (mean, log_sigma)` and the KL term is added.
        discriminator: takes {"image", "embedding"} → logits.
        kl_weight: weight of the CA KL term (StackGAN: 2.0; 0 disables it).
        matching_aware: GAN-CLS discriminator loss with mismatched (wrong image, text) pairs.
        interpolation_weight: weight of the GAN-INT generator term (0 disables it).
        interpolation_beta: β of the interpolation (Reed et al.: 0.5).
        class_key: batch key of the class ids used to pick wrong images ("class_id"; None: shifted batch).
        stage1_learning_rate_scale: for a Stage-II generator whose Stage-I is trainable (fine-tuning), Stage-I's
            variables get their own Adam at this fraction of the generator's learning rate (StackGAN: 0.1).
        aux_weight: > 0 with a discriminator that also returns "aux_logits" (TAC-GAN, Dash et al. 2017): D adds
            w·BCE(labels, aux(real)) — learnt from real images only, so the generator cannot agree a code with it —
            and G adds w·BCE(labels, aux(fake)), the labels being those of the image the caption describes.
        aux_label_key: batch key of those per-image (multi-hot) labels.
        sample_embeddings: [num_samples, D] text embeddings for progress grids.
        **kwargs: `GANTrainer` arguments (adversarial_loss, n_critic, gradient_penalty_weight, replay_buffer, ...).
    """

    def __init__(self, generator, discriminator, kl_weight=2.0, matching_aware=True, interpolation_weight=0.0,
                 interpolation_beta=0.5, class_key="class_id", stage1_learning_rate_scale=0.1,
                 sample_embeddings=None, aux_weight=0.0, aux_label_key="label", **kwargs):
        self.embedding_dim = int(generator.input["embedding"].shape[-1])
        if sample_embeddings is None:
            sample_embeddings = np.zeros((kwargs.get("num_samples", 64), self.embedding_dim), "float32")
        super().__init__(generator, discriminator, label_key="embedding", sample_labels=sample_embeddings,
                         condition_name="embedding", **kwargs)
        if kl_weight < 0 or interpolation_weight < 0:
            raise ValueError(f"kl_weight and interpolation_weight must be >= 0. Received: kl_weight={kl_weight}, "
                             f"interpolation_weight={interpolation_weight}")
        if not 0.0 <= interpolation_beta <= 1.0:
            raise ValueError(f"interpolation_beta must be in [0, 1]. Received: interpolation_beta={interpolation_beta}")
        self.kl_weight = float(kl_weight) if hasattr(generator, "ca_statistics") else 0.0
        self.matching_aware = bool(matching_aware)
        self.interpolation_weight = float(interpolation_weight)
        self.interpolation_beta = float(interpolation_beta)
        self.class_key = class_key
        self.stage1_learning_rate_scale = float(stage1_learning_rate_scale)
        self.aux_weight = float(aux_weight)
        self.aux_label_key = aux_label_key
        if self.aux_weight < 0:
            raise ValueError(f"aux_weight must be >= 0. Received: aux_weight={aux_weight}")
        if self.aux_weight > 0 and not (isinstance(discriminator.output, dict)
                                        and "aux_logits" in discriminator.output):
            raise ValueError("aux_weight > 0 needs a discriminator with an auxiliary head (outputs 'logits' and "
                             "'aux_logits'). Received: a discriminator without 'aux_logits'")
        self.d_aux_tracker = keras.metrics.Mean(name="d_aux_loss")
        self.g_aux_tracker = keras.metrics.Mean(name="g_aux_loss")
        stage1 = getattr(generator, "stage1", None)
        self._fine_tune_stage1 = stage1 is not None and stage1.trainable and len(stage1.trainable_variables) > 0
        self.stage1_optimizer = None
        self.kl_tracker = keras.metrics.Mean(name="kl")
        self.wrong_tracker = keras.metrics.Mean(name="d_wrong")
        self.interpolation_tracker = keras.metrics.Mean(name="g_interp")

    @property
    def metrics(self):
        tracked = super().metrics
        if self.kl_weight > 0:
            tracked.append(self.kl_tracker)
        if self.matching_aware:
            tracked.append(self.wrong_tracker)
        if self.interpolation_weight > 0:
            tracked.append(self.interpolation_tracker)
        if self.aux_weight > 0:
            tracked += [self.d_aux_tracker, self.g_aux_tracker]
        return tracked

    def compile(self, g_optimizer, d_optimizer, **kwargs):
        super().compile(g_optimizer, d_optimizer, **kwargs)
        if self._fine_tune_stage1:
            if isinstance(g_optimizer, keras.optimizers.LossScaleOptimizer):
                raise ValueError("Fine-tuning Stage-I needs its own optimizer, which cannot share the generator "
                                 "optimizer's loss scale: use mixed_bfloat16 or float32. Received: "
                                 "g_optimizer=LossScaleOptimizer")
            # Adam is invariant to gradient scale, so "0.1x the learning rate" needs an optimizer of its own.
            config = g_optimizer.get_config()
            learning_rate = g_optimizer.learning_rate
            config["learning_rate"] = float(keras.ops.convert_to_numpy(learning_rate)) * self.stage1_learning_rate_scale
            self.stage1_optimizer = g_optimizer.__class__.from_config(config)
            self.stage1_optimizer.build(self.generator.stage1.trainable_variables)

    def extra_state(self):
        state = super().extra_state()
        if self.stage1_optimizer is not None:
            state["stage1_optimizer"] = self.stage1_optimizer
        return state

    # -- conditions ------------------------------------------------------------------------------------------------
    def _class_ids(self, batch):
        if self.class_key and self.class_key in batch:
            return batch[self.class_key]
        return None

    def _step_seed(self):
        return tf.stack([tf.constant(self.sample_seed, tf.int64), tf.cast(self.global_step, tf.int64)])

    def wrong_images(self, batch):
        """(images of the batch re-paired with other rows' text, [B] float mask of rows that have a partner)."""
        indices, valid = matching.mismatched_indices(self._class_ids(batch), self._step_seed(),
                                                     batch_size=tf.shape(batch["image"])[0])
        return tf.gather(batch["image"], indices), tf.cast(valid, tf.float32)

    def interpolated_embeddings(self, batch):
        """β e + (1 − β) e' with e' the next row's embedding (another caption, usually of another image)."""
        embedding = batch[self.label_key]
        return matching.interpolated_embeddings(embedding, tf.roll(embedding, 1, axis=0), self.interpolation_beta)

    # -- objectives ------------------------------------------------------------------------------------------------
    def discriminator_objective(self, batch, fake_batch, real_output, fake_output):
        if not self.matching_aware:
            per_example, extras = super().discriminator_objective(batch, fake_batch, real_output, fake_output)
        else:
            wrong, mask = self.wrong_images(batch)
            wrong_output = self.discriminate(wrong, batch, training=True)
            per_example = matching.matching_aware_discriminator_loss(
                self.critic_logits(real_output), self.critic_logits(wrong_output), self.critic_logits(fake_output),
                loss=self.adversarial_loss.name, wrong_mask=mask,
            )
            wrong_logits = tf.reduce_mean(tf.reshape(self.critic_logits(wrong_output), [tf.shape(mask)[0], -1]), 1)
            extras = {"d_wrong": tf.reduce_mean(wrong_logits)}
        if self.aux_weight > 0:
            aux = multilabel_classification_loss(batch[self.aux_label_key], real_output["aux_logits"])
            per_example += self.aux_weight * aux
            extras["d_aux_loss"] = tf.reduce_mean(aux)
        return per_example, extras

    def generator_objective(self, batch, fake_output):
        per_example, extras = super().generator_objective(batch, fake_output)
        if self.aux_weight > 0:
            aux = multilabel_classification_loss(batch[self.aux_label_key], fake_output["aux_logits"])
            per_example += self.aux_weight * aux
            extras["g_aux_loss"] = tf.reduce_mean(aux)
        return self.add_text_terms(
            per_example, extras, batch, lambda output: self.adversarial_loss.generator(self.critic_logits(output))
        )

    def add_text_terms(self, per_example, extras, batch, interpolation_loss):
        """Adds the CA KL term and the GAN-INT term (`interpolation_loss` scores the discriminator's output for
        fakes made from interpolated embeddings) to a per-example generator loss."""
        if self.kl_weight > 0:
            mean, log_sigma = self.generator.ca_statistics(batch[self.label_key])
            kl = matching.kl_divergence(mean, log_sigma)
            per_example += self.kl_weight * kl
            extras["kl"] = tf.reduce_mean(kl)
        if self.interpolation_weight > 0:
            embedding = self.interpolated_embeddings(batch)
            interpolated_batch = dict(batch, **{self.label_key: embedding})
            noise = self.sample_noise(tf.shape(embedding)[0])
            fake = self.generator(self.generator_inputs(interpolated_batch, noise), training=True)
            interpolation = interpolation_loss(self.discriminate(fake, interpolated_batch, training=True))
            per_example += self.interpolation_weight * interpolation
            extras["g_interp"] = tf.reduce_mean(interpolation)
        return per_example, extras

    def apply_generator_gradients(self, tape, loss, variables):
        if self.stage1_optimizer is None:
            return super().apply_generator_gradients(tape, loss, variables)
        gradients = self.gradients(tape, loss, variables, self.g_optimizer)
        stage1_ids = {id(v) for v in self.generator.stage1.trainable_variables}
        own = [(g, v) for g, v in zip(gradients, variables) if id(v) not in stage1_ids]
        stage1 = [(g, v) for g, v in zip(gradients, variables) if id(v) in stage1_ids]
        self.g_optimizer.apply_gradients(own)
        self.stage1_optimizer.apply_gradients(stage1)


def image_pyramid(images, scales):
    """{f"image_{s}": images resized to s×s} for each scale (area averaging when shrinking, as HDGAN's data did)."""
    pyramid = {}
    size = images.shape[1]
    for scale in scales:
        pyramid[f"image_{scale}"] = images if scale == size else tf.image.resize(images, (scale, scale), "area")
    return pyramid


@keras.saving.register_keras_serializable(package="t2i")
class HDGANTrainer(TextGANTrainer):
    """HDGAN: one generator with side outputs {"image_<s>"}, one discriminator per scale.

    Per scale s the discriminator returns "pair_logits" (does the image match the text?) and "patch_logits" (is each
    local patch real?); the losses are the GAN-CLS pair loss on "pair_logits" plus the plain adversarial loss on
    "patch_logits", summed over scales (Zhang et al. 2018, §3.2). Real images enter at the largest scale and are
    area-resized to the smaller ones.
    """

    def __init__(self, generator, discriminator, **kwargs):
        super().__init__(generator, discriminator, **kwargs)
        if self.gradient_penalty_weight > 0 or self.replay_buffer is not None or self.diff_augment:
            raise ValueError("HDGAN trains with the pair + patch losses only: gradient_penalty_weight must be 0, "
                             "replay_size 0 and diff_augment empty. Received: gradient_penalty_weight="
                             f"{self.gradient_penalty_weight}, replay_buffer={self.replay_buffer is not None}, "
                             f"diff_augment={','.join(self.diff_augment)!r}")
        self.scales = tuple(sorted(generator.output_scales))
        self.image_key = generator.largest_output_key

    def discriminate(self, images, batch, training=True):
        if not isinstance(images, dict):
            images = image_pyramid(images, self.scales)
        return self.discriminator({"images": images, "embedding": batch[self.label_key]}, training=training)

    def _sum_over_scales(self, fn, *outputs):
        return tf.add_n([fn(*(output[f"image_{s}"] for output in outputs)) for s in self.scales])

    def discriminator_objective(self, batch, fake_batch, real_output, fake_output):
        loss_name = self.adversarial_loss.name
        patch = self._sum_over_scales(
            lambda real, fake: self._discriminator_loss(real["patch_logits"], fake["patch_logits"]),
            real_output, fake_output,
        )
        if self.matching_aware:
            wrong, mask = self.wrong_images(batch)
            wrong_output = self.discriminate(wrong, batch, training=True)
            pair = self._sum_over_scales(
                lambda real, wrong_, fake: matching.matching_aware_discriminator_loss(
                    real["pair_logits"], wrong_["pair_logits"], fake["pair_logits"], loss=loss_name, wrong_mask=mask
                ),
                real_output, wrong_output, fake_output,
            )
            extras = {"d_wrong": tf.add_n([tf.reduce_mean(wrong_output[f"image_{s}"]["pair_logits"])
                                           for s in self.scales]) / len(self.scales)}
        else:
            pair = self._sum_over_scales(
                lambda real, fake: self._discriminator_loss(real["pair_logits"], fake["pair_logits"]),
                real_output, fake_output,
            )
            extras = {}
        return pair + patch, extras

    def generator_objective(self, batch, fake_output):
        generator_loss = self.adversarial_loss.generator
        per_example = self._sum_over_scales(
            lambda fake: generator_loss(fake["pair_logits"]) + generator_loss(fake["patch_logits"]), fake_output
        )
        return self.add_text_terms(
            per_example, {}, batch,
            lambda output: self._sum_over_scales(lambda out: generator_loss(out["pair_logits"]), output),
        )

    def generate(self, inputs):
        """The largest side output (the image the model is judged by)."""
        return self.sampling_generator(inputs, training=False)[self.image_key]
