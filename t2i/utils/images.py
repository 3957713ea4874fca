"""Image grids and PNG writing for samples and reports."""
import math

import numpy as np
import tensorflow as tf

from t2i.data import images as tf_images
from t2i.utils import files


def to_uint8(images):
    """[-1, 1] floats → uint8 numpy, the same mapping the pipeline and the exports use."""
    return tf_images.to_uint8(images).numpy()


def displayable(images):
    """uint8 NHWC with 1 or 3 channels: 2 channels show the first, >4 (heatmaps) their per-pixel maximum."""
    channels = images.shape[-1]
    if channels in (1, 3):
        return images
    if channels == 4:
        return images[..., :3]
    if channels == 2:
        return images[..., :1]
    return images.max(axis=-1, keepdims=True)


def display_scale(image_size, target=128):
    """Nearest-neighbour magnification that shows small images at about `target` pixels (32 px → 4×)."""
    return max(1, target // int(image_size))


def make_grid(images, columns=None, padding=2, pad_value=0, scale=1):
    """Tiles uint8 images [N, H, W, C] into one [rows·(sH+p)+p, cols·(sW+p)+p, C] image.

    `scale` repeats pixels (no interpolation), so a 32-px sample stays exactly what the generator produced.
    """
    images = displayable(np.asarray(images))
    if scale > 1:
        images = images.repeat(scale, axis=1).repeat(scale, axis=2)
    count, height, width, channels = images.shape
    columns = columns or int(math.ceil(math.sqrt(count)))
    rows = int(math.ceil(count / columns))
    grid = np.full(
        (rows * (height + padding) + padding, columns * (width + padding) + padding, channels), pad_value, np.uint8
    )
    for index in range(count):
        row, column = divmod(index, columns)
        top, left = padding + row * (height + padding), padding + column * (width + padding)
        grid[top:top + height, left:left + width] = images[index]
    return grid


def write_png(path, image):
    """Writes a uint8 HWC image atomically."""
    files.atomic_write_bytes(path, tf.io.encode_png(np.asarray(image, np.uint8)).numpy())


def save_grid(path, images, columns=None, scale=1):
    """[-1, 1] float images → PNG grid at `path`; returns the grid."""
    grid = make_grid(to_uint8(images), columns=columns, scale=scale)
    write_png(path, grid)
    return grid
