"""Differentiable augmentation of every image the discriminator sees (DiffAugment, Zhao et al. 2020).

The same random transformation family is applied to real images and to fakes — in the discriminator update and in
the generator update — and the fakes' transformation is differentiable, so the generator learns through it. The
discriminator never sees an unaugmented image and cannot memorise the training set pixel by pixel, while the
generator is still asked for unaugmented images (an augmentation that is not "leaky" only moves the distribution
both sides are compared in). Policies, with the paper's magnitudes, on images in [-1, 1]:

    color:       brightness x + (u₁ − 0.5); saturation (x − x̄_c)·2u₂ + x̄_c; contrast (x − x̄)·(u₃ + 0.5) + x̄
                 (x̄_c the per-pixel channel mean, x̄ the per-image mean, u ~ U[0, 1) per image)
    translation: shift by (dy, dx), each uniform in [−s, s], s = round(ratio · side) (ratio 1/8), zero-filled
    cutout:      zero a square of round(ratio · side) pixels (ratio 1/2) at a uniformly drawn centre, clipped at
                 the borders

Colour changes the colours a caption names and cutout can hide an object a label asks for, so conditional models
on `shapes` use translation alone (`stackgan_shapes`).

Randomness is stateless: every call takes a [2] int seed, so a step's transformations are a function of the step
(resumes replay them) and replicas fold in their id (`GANTrainer.augment`).
"""
import tensorflow as tf

POLICIES = ("color", "translation", "cutout")
TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def parse_policy(policy) -> tuple:
    """"translation,cutout" (or a sequence of names) → ("translation", "cutout"), in the order given; "" → ()."""
    if isinstance(policy, str):
        names = [name.strip() for name in policy.split(",") if name.strip()]
    else:
        names = [str(name) for name in policy]
    unknown = [name for name in names if name not in POLICIES]
    if unknown:
        raise ValueError(f"Unknown augmentation {unknown[0]!r}; expected a comma-separated subset of "
                         f"{', '.join(POLICIES)}. Received: policy={policy!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"An augmentation is listed twice. Received: policy={policy!r}")
    return tuple(names)


def color(images, brightness, saturation, contrast):
    """Brightness, saturation and contrast with the per-image draws `brightness`, `saturation`, `contrast` ([B] in
    [0, 1)), in that order (the module docstring's formulas)."""
    dtype = images.dtype
    shape = [-1, 1, 1, 1]
    images = images + tf.reshape(tf.cast(brightness, dtype) - 0.5, shape)
    channel_mean = tf.reduce_mean(images, axis=3, keepdims=True)
    images = (images - channel_mean) * tf.reshape(tf.cast(saturation, dtype) * 2.0, shape) + channel_mean
    image_mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    return (images - image_mean) * tf.reshape(tf.cast(contrast, dtype) + 0.5, shape) + image_mean


def translate(images, dy, dx):
    """Each image shifted down by dy[i] and right by dx[i] pixels ([B] ints), vacated pixels zero: output pixel
    (r, c) is input pixel (r − dy, c − dx) where that lies inside the image. Differentiable in `images` (one gather
    from the zero-padded batch; its gradient is one scatter-add)."""
    shape = tf.shape(images)
    batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
    dy, dx = tf.cast(dy, tf.int32), tf.cast(dx, tf.int32)
    pad = tf.maximum(tf.reduce_max(tf.abs(dy)), tf.reduce_max(tf.abs(dx)))
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    rows = tf.range(height)[None, :, None] + pad - dy[:, None, None]  # [B, H, 1] rows of the padded image
    cols = tf.range(width)[None, None, :] + pad - dx[:, None, None]  # [B, 1, W]
    index = (tf.range(batch)[:, None, None] * (height + 2 * pad) + rows) * (width + 2 * pad) + cols
    shifted = tf.gather(tf.reshape(padded, [-1, channels]), index)
    return tf.ensure_shape(shifted, images.shape)


def cutout(images, centre_y, centre_x, size):
    """Zeroes rows [cy − size//2, cy − size//2 + size) × the same in columns of each image (clipped at the border);
    `centre_y`, `centre_x` are [B] ints."""
    height, width = tf.shape(images)[1], tf.shape(images)[2]
    top = tf.cast(centre_y, tf.int32)[:, None] - size // 2
    left = tf.cast(centre_x, tf.int32)[:, None] - size // 2
    rows = tf.range(height)[None, :]
    cols = tf.range(width)[None, :]
    inside_rows = (rows >= top) & (rows < top + size)  # [B, H]
    inside_cols = (cols >= left) & (cols < left + size)  # [B, W]
    keep = tf.logical_not(inside_rows[:, :, None] & inside_cols[:, None, :])
    return images * tf.cast(keep, images.dtype)[:, :, :, None]


def diff_augment(images, policy, seed, translation_ratio=TRANSLATION_RATIO, cutout_ratio=CUTOUT_RATIO):
    """`images` [B, H, W, C] in [-1, 1] through each transformation of `policy` (a `parse_policy` tuple) in order,
    with per-image draws from the stateless [2] int `seed`."""
    if not policy:
        return images
    batch = tf.shape(images)[0]
    side = int(images.shape[1]) if images.shape[1] is not None else None
    num_seeds = 3 * len(policy)  # at most three draws per transformation
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=num_seeds)
    draws = iter(range(num_seeds))

    def uniform(maxval=None, minval=0):
        part = seeds[next(draws)]
        if maxval is None:
            return tf.random.stateless_uniform([batch], part)
        return tf.random.stateless_uniform([batch], part, minval=minval, maxval=maxval, dtype=tf.int32)

    for name in policy:
        if name == "color":
            images = color(images, uniform(), uniform(), uniform())
        elif name == "translation":
            shift = int(round(side * translation_ratio)) if side else 0
            if shift > 0:
                images = translate(images, uniform(shift + 1, -shift), uniform(shift + 1, -shift))
        elif name == "cutout":
            size = int(round(side * cutout_ratio)) if side else 0
            if size > 0:
                images = cutout(images, uniform(side), uniform(side), size)
    return images
