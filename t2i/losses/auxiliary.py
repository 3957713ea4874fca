"""Auxiliary objectives added to the adversarial game: the AC-GAN multi-label classification loss."""
import tensorflow as tf


def multilabel_classification_loss(labels, aux_logits):
    """Per-example mean over labels of the sigmoid binary cross-entropy (AC-GAN with multi-hot conditions).

        L(y, l) = (1/N) Σ_j [ -y_j·log σ(l_j) - (1 - y_j)·log(1 - σ(l_j)) ]

    Odena et al. 2017 train both networks to make the auxiliary head predict the conditioning labels, on real images
    (discriminator) and on generated ones (both). With 1–3 labels on among 24 a softmax would not fit; each label is
    its own binary decision. Returns shape [batch].
    """
    labels = tf.cast(labels, tf.float32)
    aux_logits = tf.cast(aux_logits, tf.float32)
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=aux_logits), axis=-1)
