"""Text–image matching loss for training sentence encoders against images (a joint embedding).

Reed et al. (2016) trained the char-CNN-RNN text encoder that StackGAN and GAN-CLS condition on with a structured
joint embedding of captions and images; AttnGAN's DAMSM and CLIP train theirs with the batch-contrastive form used
here. For a batch of B captions and B images, with cosine similarities scaled by s,

    S_ij = s · cos(t_i, v_j),      L = ½ [ CE(softmax_j S_ij, T_i·) + CE(softmax_i S_ij, T_·j) ],

where T is the matching matrix normalised per row (or column): T_ij ∝ [caption i and image j are of the same
image], so captions of one image — or copies of one image — in a batch are all positives of each other, never
negatives. Pure function; the trainer owns the encoders and the scale.
"""
import tensorflow as tf


def symmetric_contrastive_loss(text, image, logit_scale, groups=None):
    """Scalar symmetric cross-entropy of matching B captions with B images (see the module docstring).

    Args:
        text: [B, D] caption vectors; image: [B, D] image vectors (normalised here).
        logit_scale: s > 0, the inverse temperature.
        groups: int [B], the image each row comes from (rows with equal ids match each other); default: row i
            matches only column i.
    """
    text = tf.math.l2_normalize(tf.cast(text, tf.float32), axis=-1)
    image = tf.math.l2_normalize(tf.cast(image, tf.float32), axis=-1)
    logits = tf.cast(logit_scale, tf.float32) * tf.matmul(text, image, transpose_b=True)
    if groups is None:
        matches = tf.eye(tf.shape(logits)[0])
    else:
        groups = tf.reshape(groups, [-1])
        matches = tf.cast(tf.equal(groups[:, None], groups[None, :]), tf.float32)
    rows = tf.nn.softmax_cross_entropy_with_logits(matches / tf.reduce_sum(matches, 1, keepdims=True), logits)
    columns = tf.nn.softmax_cross_entropy_with_logits(
        tf.transpose(matches) / tf.reduce_sum(matches, 0)[:, None], tf.transpose(logits))
    return 0.5 * (tf.reduce_mean(rows) + tf.reduce_mean(columns))
