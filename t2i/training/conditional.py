"""Trainers for label- (or embedding-) conditioned GANs: cGAN and AC-GAN with multi-hot conditions.

Fakes are generated for the conditions of the real batch they are compared with, so the discriminator learns what
each condition should look like (Mirza & Osindero 2014). AC-GAN adds an auxiliary head predicting the conditions;
both networks minimise its per-label cross-entropy (Odena et al. 2017).
"""
import keras
import numpy as np
import tensorflow as tf

from t2i.losses.auxiliary import multilabel_classification_loss
from t2i.training.gan import GANTrainer


def cycling_one_hot(num_samples, num_labels):
    """One label on per sample, cycling 0, 1, ..., N-1: a default set of conditions for progress grids."""
    return np.eye(num_labels, dtype="float32")[np.arange(num_samples) % num_labels]


@keras.saving.register_keras_serializable(package="t2i")
class ConditionalGANTrainer(GANTrainer):
    """A `GANTrainer` whose networks also receive `batch[label_key]`.

    Args:
        generator: a model taking {"noise", <condition_name>}.
        discriminator: a model taking {"image", <condition_name>}, or the image alone when it is unconditional
            (an AC-GAN variant may classify without seeing the condition).
        label_key: the batch key holding the condition vectors ("label"; "embedding" for text).
        sample_labels: [num_samples, N] conditions for progress grids (default: one label on, cycling).
        condition_name: the networks' condition input name (default: the generator's `condition_name`, "labels").
        **kwargs: `GANTrainer` arguments.
    """

    def __init__(self, generator, discriminator, label_key="label", sample_labels=None, condition_name=None,
                 **kwargs):
        super().__init__(generator, discriminator, **kwargs)
        self.label_key = label_key
        self.condition_name = condition_name or getattr(generator, "condition_name", "labels")
        self.num_labels = int(getattr(generator, "num_labels", 0) or generator.input[self.condition_name].shape[-1])
        if sample_labels is None:
            sample_labels = cycling_one_hot(self.num_samples, self.num_labels)
        sample_labels = np.asarray(sample_labels, dtype="float32")
        if sample_labels.shape != (self.num_samples, self.num_labels):
            raise ValueError(
                f"sample_labels must have shape (num_samples, num_labels) = ({self.num_samples}, {self.num_labels}). "
                f"Received: sample_labels.shape={sample_labels.shape}"
            )
        self.sample_labels = sample_labels
        self._discriminator_is_conditional = isinstance(discriminator.input, dict)

    def condition_keys(self):
        return (self.label_key,)

    def generator_inputs(self, batch, noise):
        return {"noise": noise, self.condition_name: batch[self.label_key]}

    def discriminate(self, images, batch, training=True):
        images = self.augment(images)
        if self._discriminator_is_conditional:
            return self.discriminator({"image": images, self.condition_name: batch[self.label_key]},
                                      training=training)
        return self.discriminator(images, training=training)

    def sample_inputs(self):
        return {"noise": self.fixed_noise(self.num_samples, self.sample_seed), self.condition_name: self.sample_labels}


@keras.saving.register_keras_serializable(package="t2i")
class ACGANTrainer(ConditionalGANTrainer):
    """AC-GAN: the discriminator returns {"logits", "aux_logits"}; `aux_weight` scales the auxiliary loss.

    D minimises adversarial + w·(BCE(labels, aux(real)) + w_fake·BCE(labels_fake, aux(fake)));
    G minimises adversarial + w·BCE(labels_fake, aux(G(z, labels_fake))).

    w_fake = `aux_fake_weight` is 1 in Odena et al.; with 0 the classifier learns from real images only, and the
    generator has to draw what real images of a label look like instead of agreeing a code with the classifier.
    """

    def __init__(self, generator, discriminator, aux_weight=1.0, aux_fake_weight=1.0, **kwargs):
        super().__init__(generator, discriminator, **kwargs)
        if not isinstance(discriminator.output, dict) or "aux_logits" not in discriminator.output:
            raise ValueError("ACGANTrainer needs a discriminator with an auxiliary head (outputs 'logits' and "
                             "'aux_logits'). Received: a discriminator without 'aux_logits'")
        self.aux_weight = float(aux_weight)
        self.aux_fake_weight = float(aux_fake_weight)
        self.d_aux_tracker = keras.metrics.Mean(name="d_aux_loss")
        self.g_aux_tracker = keras.metrics.Mean(name="g_aux_loss")

    @property
    def metrics(self):
        return super().metrics + [self.d_aux_tracker, self.g_aux_tracker]

    def discriminator_objective(self, batch, fake_batch, real_output, fake_output):
        adversarial, _ = super().discriminator_objective(batch, fake_batch, real_output, fake_output)
        aux = (multilabel_classification_loss(batch[self.label_key], real_output["aux_logits"])
               + self.aux_fake_weight
               * multilabel_classification_loss(fake_batch[self.label_key], fake_output["aux_logits"]))
        return adversarial + self.aux_weight * aux, {"d_aux_loss": tf.reduce_mean(aux)}

    def generator_objective(self, batch, fake_output):
        adversarial, _ = super().generator_objective(batch, fake_output)
        aux = multilabel_classification_loss(batch[self.label_key], fake_output["aux_logits"])
        return adversarial + self.aux_weight * aux, {"g_aux_loss": tf.reduce_mean(aux)}
