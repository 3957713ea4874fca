"""Pure TensorFlow image ops for the real-image input pipeline.

Everything here is graph-compatible (no Python-side shape logic that needs concrete
values), so the functions can be used inside ``tf.data.Dataset.map`` as well as eagerly.

Conventions used across t2i:

* images fed to / produced by the networks are float32 in ``[-1, 1]`` (tanh range);
* images on disk / in PNG grids are uint8 in ``[0, 255]``;
* float images coming from elsewhere (e.g. ``.npy`` heatmaps) are assumed in ``[0, 1]``.

The preprocessing follows StackGAN: centre crop to a square, resize to a slightly larger
"load" size (``76/64`` of the target), then random flip + random crop when training or a
centre crop when evaluating.
"""
from __future__ import annotations

import tensorflow as tf

__all__ = [
    "to_unit_range",
    "to_uint8",
    "center_crop_square",
    "stackgan_preprocess",
]


def to_unit_range(image) -> tf.Tensor:
    """Maps an image to float32 in ``[-1, 1]``.

    uint8 input in ``[0, 255]`` becomes ``x / 127.5 - 1`` (so 0 -> -1 and 255 -> 1 exactly);
    floating input is assumed in ``[0, 1]`` and becomes ``x * 2 - 1``. Other integer dtypes
    (uint16, int32, ...) are rescaled from their full positive range by
    ``tf.image.convert_image_dtype`` first.
    """
    image = tf.convert_to_tensor(image)
    if image.dtype == tf.uint8:
        return tf.cast(image, tf.float32) / 127.5 - 1.0
    if image.dtype.is_floating:
        return tf.cast(image, tf.float32) * 2.0 - 1.0
    if image.dtype.is_integer:
        return tf.image.convert_image_dtype(image, tf.float32) * 2.0 - 1.0
    raise TypeError(
        "to_unit_range expects a uint8, integer or floating image. "
        f"Received: image.dtype={image.dtype.name}"
    )


def to_uint8(image) -> tf.Tensor:
    """Maps a float image in ``[-1, 1]`` to uint8 ``[0, 255]`` (rounded, clipped).

    Clipping first matters: generator outputs can overshoot slightly and a plain cast
    would wrap around instead of saturating.
    """
    image = tf.cast(tf.convert_to_tensor(image), tf.float32)
    scaled = tf.clip_by_value((image + 1.0) * 127.5, 0.0, 255.0)
    return tf.cast(tf.round(scaled), tf.uint8)


def _check_rank3(image: tf.Tensor, fn_name: str) -> None:
    # Only the static rank is checked; an unknown rank (e.g. tf.numpy_function output)
    # is trusted and fails later in the slicing if it is wrong.
    rank = image.shape.rank
    if rank is not None and rank != 3:
        raise ValueError(
            f"{fn_name} expects a single image of shape [height, width, channels]. "
            f"Received: image.shape={image.shape}"
        )


def center_crop_square(image) -> tf.Tensor:
    """Crops the largest centred square out of an ``[H, W, C]`` image.

    Works for any channel count and for dynamic (unknown at trace time) heights/widths;
    when both are static the output shape is static too.
    """
    image = tf.convert_to_tensor(image)
    _check_rank3(image, "center_crop_square")
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    side = tf.minimum(height, width)
    top = (height - side) // 2
    left = (width - side) // 2
    cropped = image[top : top + side, left : left + side, :]

    static_h, static_w = image.shape[0], image.shape[1]
    if static_h is not None and static_w is not None:
        static_side = min(static_h, static_w)
        cropped.set_shape([static_side, static_side, image.shape[-1]])
    return cropped


def _as_stateless_seed(seed) -> tf.Tensor:
    """Turns an int or a shape-[2] integer tensor into a stateless-RNG seed."""
    if isinstance(seed, int):
        return tf.constant([seed, 0], dtype=tf.int64)
    seed = tf.convert_to_tensor(seed)
    if seed.shape.rank == 0:
        return tf.stack([tf.cast(seed, tf.int64), tf.constant(0, tf.int64)])
    return tf.cast(seed, tf.int64)


def stackgan_preprocess(
    image,
    image_size: int,
    training: bool = True,
    load_ratio: float = 76 / 64,
    seed=None,
) -> tf.Tensor:
    """StackGAN-style preprocessing of one ``[H, W, C]`` image to float32 ``[-1, 1]``.

    Steps: centre crop to a square; bilinear antialiased resize to
    ``int(image_size * load_ratio)``; then, when ``training``, a random horizontal flip and
    a random ``image_size`` crop, otherwise a centre ``image_size`` crop.

    Args:
      image: ``[H, W, C]`` uint8 in ``[0, 255]`` or float in ``[0, 1]``; any channel count
        (1, 3, 4, or N such as 18 pose heatmaps).
      image_size: output side length.
      training: random augmentation when True, deterministic centre crop when False.
      load_ratio: resize target relative to ``image_size``; must be ``>= 1``.
      seed: ``None`` uses stateful random ops (reproducible only via ``tf.random.set_seed``);
        an int or a shape-``[2]`` integer tensor uses stateless ops, so the same seed gives
        the same augmentation. Inside ``Dataset.map`` pass a per-element seed tensor,
        otherwise every element gets the same flip/crop.

    Returns:
      float32 tensor of static shape ``[image_size, image_size, C]`` (C static when known),
      values in ``[-1, 1]``.
    """
    image_size = int(image_size)
    if image_size < 1:
        raise ValueError(f"image_size must be a positive integer. Received: image_size={image_size}")
    if not load_ratio >= 1.0:
        # A load size below the output size would make the final crop impossible.
        raise ValueError(f"load_ratio must be >= 1. Received: load_ratio={load_ratio}")
    load_size = max(int(image_size * load_ratio), image_size)

    image = tf.convert_to_tensor(image)
    _check_rank3(image, "stackgan_preprocess")
    channels = image.shape[-1] if image.shape.rank is not None else None

    # Scale before resizing: resize is linear with weights summing to 1, so this equals
    # scaling afterwards, but it keeps uint8 inputs on the exact x / 127.5 - 1 grid.
    image = to_unit_range(image)
    image = center_crop_square(image)
    image = tf.image.resize(image, [load_size, load_size], method="bilinear", antialias=True)

    max_offset = load_size - image_size
    if training:
        if seed is None:
            offsets = tf.random.uniform([2], 0, max_offset + 1, dtype=tf.int32)
            flip = tf.random.uniform([]) < 0.5
        else:
            crop_seed, flip_seed = tf.unstack(
                tf.random.experimental.stateless_split(_as_stateless_seed(seed), 2)
            )
            offsets = tf.random.stateless_uniform(
                [2], crop_seed, minval=0, maxval=max_offset + 1, dtype=tf.int32
            )
            flip = tf.random.stateless_uniform([], flip_seed) < 0.5
        image = tf.cond(flip, lambda: tf.reverse(image, axis=[1]), lambda: image)
        top, left = offsets[0], offsets[1]
    else:
        top = left = max_offset // 2

    image = image[top : top + image_size, left : left + image_size, :]
    # The antialiased bilinear kernel has non-negative weights so it cannot overshoot, but
    # float rounding can land a hair outside; downstream code relies on the closed range.
    image = tf.clip_by_value(image, -1.0, 1.0)
    image.set_shape([image_size, image_size, channels])
    return image
