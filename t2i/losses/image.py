"""Image-space losses as pure per-example functions: shape [batch], reduced by the trainers over the global batch.

Both are computed in float32 whatever the networks' precision.
"""
import tensorflow as tf


def pixel_mse(targets, outputs):
    """Per-example pixel-wise MSE (Ledig et al. 2017, eq. 4): L = 1/(H·W·C) Σ_{i,j,c} (y_{i,j,c} - ŷ_{i,j,c})².

    Args:
        targets, outputs: images [B, H, W, C] (any rank ≥ 2 works: the mean is over all but the batch axis).
    """
    diff = tf.cast(targets, tf.float32) - tf.cast(outputs, tf.float32)
    return tf.reduce_mean(tf.reshape(tf.square(diff), [tf.shape(diff)[0], -1]), axis=1)


def total_variation(images):
    """Per-image anisotropic total variation, summed (not averaged) over pixels and channels:

        TV(x) = Σ_{i,j,c} |x_{i+1,j,c} - x_{i,j,c}| + Σ_{i,j,c} |x_{i,j+1,c} - x_{i,j,c}|

    This is exactly `tf.image.total_variation`. SRGAN's regulariser weight 2·10⁻⁸ applies to this sum, so its size
    grows with the image area; on t2i's [-1, 1] images the sum is twice what it would be on [0, 1] images.

    Args:
        images: [B, H, W, C].
    """
    return tf.image.total_variation(tf.cast(images, tf.float32))
