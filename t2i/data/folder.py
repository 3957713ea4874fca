"""Image-folder datasets: every image file under a root directory, optionally labelled.

The dataset must never crash mid-training on a corrupt file, so by default every file is
decoded once at build time (in threads) with exactly the same decode function the
``tf.data`` pipeline uses; unreadable files are then skipped (and named in the log) or
reported as an error, before any training step runs.

Supported files are PNG, JPEG, BMP and GIF (first frame) images, plus ``.npy`` arrays of
shape ``[H, W, C]`` (or ``[H, W]`` for one channel), uint8 or float in ``[0, 1]``, for
N-channel data such as 18 pose heatmaps.
"""
from __future__ import annotations

import concurrent.futures
import os
import re

import numpy as np
import tensorflow as tf
from absl import logging

from t2i.data import images

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageFolderError",
    "list_image_files",
    "image_folder_classes",
    "validate_images",
    "image_folder_dataset",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".npy")

# Channel counts tf.io.decode_image can produce; other counts only come from .npy files.
_RASTER_CHANNELS = (1, 3, 4)
_ON_ERROR_CHOICES = ("skip", "fail")


class ImageFolderError(ValueError):
    """A problem with an image folder or one of its files; the message names the path."""


# ---------------------------------------------------------------------------------------
# Listing


def _is_hidden(name: str) -> bool:
    # Editor / notebook / OS droppings (.ipynb_checkpoints, .DS_Store, ._foo.jpg from macOS)
    # are never data; picking them up would create bogus classes or unreadable "images".
    return name.startswith(".")


def _has_image_extension(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _check_root(root) -> str:
    root = os.fspath(root)
    if not os.path.exists(root):
        raise ImageFolderError(f"{root}: image folder does not exist. Received: root={root!r}")
    if not os.path.isdir(root):
        raise ImageFolderError(f"{root}: image folder is not a directory. Received: root={root!r}")
    return root


def _walk_images(directory: str) -> list[str]:
    """All image files under ``directory``, recursively, following directory symlinks once."""
    found = []
    seen_dirs = set()
    for dirpath, dirnames, filenames in os.walk(directory, followlinks=True):
        # Datasets are often assembled with symlinked folders, so links are followed, but a
        # link pointing back up the tree must not recurse forever.
        real = os.path.realpath(dirpath)
        if real in seen_dirs:
            dirnames[:] = []
            continue
        seen_dirs.add(real)
        dirnames[:] = [d for d in dirnames if not _is_hidden(d)]
        for name in filenames:
            if not _is_hidden(name) and _has_image_extension(name):
                found.append(os.path.join(dirpath, name))
    return found


def image_folder_classes(root) -> list[str]:
    """Sorted names of the first-level sub-folders of ``root``; index = label id.

    Derived from the folder structure only (empty and all-corrupt class folders included),
    so label ids never shift when unreadable files are skipped.
    """
    root = _check_root(root)
    return sorted(
        entry.name
        for entry in os.scandir(root)
        if entry.is_dir() and not _is_hidden(entry.name)
    )


def list_image_files(
    root, class_subfolders: bool = False
) -> tuple[list[str], list[int] | None, list[str] | None]:
    """Lists image files under ``root`` recursively, in sorted (deterministic) order.

    Extensions are matched case-insensitively against ``IMAGE_EXTENSIONS``; hidden files
    and folders (names starting with ".") are ignored.

    Args:
      root: the image folder.
      class_subfolders: when True the class of a file is its first-level sub-folder under
        ``root`` (sorted folder names -> ids 0, 1, ...) and image files directly under
        ``root`` are an error.

    Returns:
      ``(paths, labels, class_names)``; ``labels`` and ``class_names`` are None unless
      ``class_subfolders``. Paths are ``os.path.join(root, relative_path)``.

    Raises:
      ImageFolderError: root missing / not a directory / without images, or (with
        ``class_subfolders``) an image directly under root.
    """
    root = _check_root(root)
    if not class_subfolders:
        paths = sorted(_walk_images(root))
        if not paths:
            raise ImageFolderError(_no_images_message(root))
        return paths, None, None

    loose = sorted(
        entry.path
        for entry in os.scandir(root)
        if entry.is_file() and not _is_hidden(entry.name) and _has_image_extension(entry.name)
    )
    if loose:
        raise ImageFolderError(
            f"{loose[0]}: image file directly under the root; with class sub-folders every "
            f"image must be inside a class folder ({len(loose)} such file(s) under {root}). "
            "Received: class_subfolders=True"
        )
    class_names = image_folder_classes(root)
    paths, labels = [], []
    for label, name in enumerate(class_names):
        class_paths = sorted(_walk_images(os.path.join(root, name)))
        paths.extend(class_paths)
        labels.extend([label] * len(class_paths))
    if not paths:
        raise ImageFolderError(_no_images_message(root))
    return paths, labels, class_names


def _no_images_message(root: str) -> str:
    return f"{root}: no image files found (looked for {', '.join(IMAGE_EXTENSIONS)}, recursively)"


# ---------------------------------------------------------------------------------------
# Decoding (shared by validation and the tf.data pipeline so that they agree exactly)


def _is_npy(path: str) -> bool:
    return path.lower().endswith(".npy")


def _decode_raster(contents: tf.Tensor, channels: int | None) -> tf.Tensor:
    """Decodes PNG/JPEG/BMP/GIF bytes to uint8 ``[H, W, channels]`` (first GIF frame).

    ``tf.io.decode_image`` cannot produce every channel count for every format: BMP and GIF
    refuse 1 channel, JPEG and GIF refuse 4. Those cases decode to RGB and convert, so a
    folder mixing formats still decodes uniformly.
    """
    if channels in (None, 0, 3):
        return tf.io.decode_image(contents, channels=channels or 0, expand_animations=False)
    header = tf.strings.substr(contents, 0, 4)
    is_gif = tf.equal(tf.strings.substr(header, 0, 3), b"GIF")
    if channels == 1:
        needs_rgb = tf.logical_or(is_gif, tf.equal(tf.strings.substr(header, 0, 2), b"BM"))

        def via_rgb():
            rgb = tf.io.decode_image(contents, channels=3, expand_animations=False)
            return tf.image.rgb_to_grayscale(rgb)

    elif channels == 4:
        needs_rgb = tf.logical_or(is_gif, tf.equal(tf.strings.substr(header, 0, 3), b"\xff\xd8\xff"))

        def via_rgb():
            # Formats without alpha are fully opaque.
            rgb = tf.io.decode_image(contents, channels=3, expand_animations=False)
            alpha = tf.fill(tf.concat([tf.shape(rgb)[:2], [1]], axis=0), tf.constant(255, tf.uint8))
            return tf.concat([rgb, alpha], axis=-1)

    else:
        raise ValueError(f"image files decode to 1, 3 or 4 channels. Received: channels={channels}")

    image = tf.cond(
        needs_rgb,
        via_rgb,
        lambda: tf.io.decode_image(contents, channels=channels, expand_animations=False),
    )
    image.set_shape([None, None, channels])
    return image


def _load_npy_array(path, channels: int | None = None) -> np.ndarray:
    """Loads a ``.npy`` image as float32 ``[H, W, C]`` in ``[0, 1]``; raises ValueError if unusable."""
    if isinstance(path, bytes):  # tf.numpy_function passes tf.string as bytes
        path = path.decode()
    # allow_pickle=False: a dataset file must never be able to run code.
    array = np.load(path, allow_pickle=False)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[0] == 0 or array.shape[1] == 0 or array.shape[2] == 0:
        raise ValueError(f"expected an [H, W, C] array, got shape {array.shape}")
    if channels is not None and array.shape[2] != channels:
        raise ValueError(f"expected {channels} channels, got {array.shape[2]}")
    if array.dtype == np.uint8:
        return array.astype(np.float32) / np.float32(255.0)
    if np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float32)
        if not np.all(np.isfinite(array)):
            raise ValueError("array contains NaN or infinity")
        low, high = float(array.min()), float(array.max())
        if low < 0.0 or high > 1.0:
            raise ValueError(f"float values must lie in [0, 1], got [{low:g}, {high:g}]")
        return array
    raise ValueError(f"unsupported dtype {array.dtype} (use uint8 or float in [0, 1])")


def _decode_npy(path: tf.Tensor, channels: int) -> tf.Tensor:
    image = tf.numpy_function(
        lambda p: _load_npy_array(p, channels), [path], tf.float32, stateful=False
    )
    image.set_shape([None, None, channels])
    return image


def _one_line(error: Exception) -> str:
    """A short one-line reason from a TF or Python exception."""
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    # Drop TF's op/device decorations ({{function_node ...}}, [Op:DecodeImage], [[node]]).
    message = re.sub(r"\{\{[^}]*\}\}|\[\[[^\]]*\]\]|\[Op:[^\]]*\]", "", message)
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


class _RasterChecker:
    """Decodes raster bytes eagerly with the pipeline's decode function.

    Plain eager calls, not a tf.function: decode_image is a single kernel, and measured
    per-call overhead of a tf.function was about twice the decode time of a small JPEG.
    """

    def __init__(self, channels: int | None):
        self._channels = channels

    def __call__(self, path: str) -> None:
        if self._channels is not None and self._channels not in _RASTER_CHANNELS:
            raise ValueError(
                f"image files decode to 1, 3 or 4 channels, not {self._channels}; "
                "store N-channel data as .npy"
            )
        with open(path, "rb") as f:
            contents = f.read()
        shape = tf.shape(_decode_raster(tf.constant(contents), self._channels)).numpy()
        if shape[0] == 0 or shape[1] == 0:
            raise ValueError(f"empty image of shape {tuple(shape)}")


def _check_on_error(on_error: str) -> None:
    if on_error not in _ON_ERROR_CHOICES:
        raise ValueError(f'on_error must be "skip" or "fail". Received: on_error={on_error!r}')


def _check_channels(channels, allow_none: bool) -> None:
    if channels is None and allow_none:
        return
    if isinstance(channels, bool) or not isinstance(channels, (int, np.integer)) or channels < 1:
        raise ValueError(f"channels must be an integer >= 1. Received: channels={channels!r}")


def validate_images(
    paths,
    channels: int | None,
    on_error: str = "skip",
    num_threads: int = 8,
    root: str | None = None,
) -> tuple[list[str], list[tuple[str, str]]]:
    """Decodes every file once, in threads, and sorts out the unreadable ones.

    Raster files go through the same decode function as the ``tf.data`` pipeline (so a file
    that passes here cannot fail there); ``.npy`` files go through ``np.load`` with the same
    shape/dtype/range checks, and a channel count other than ``channels`` (when given) makes
    a file bad.

    Args:
      paths: file paths.
      channels: target channel count, or None to accept any.
      on_error: "skip" logs each bad file (absl warning) plus a summary and returns them;
        "fail" raises at the first bad file in ``paths`` order.
      num_threads: decoding threads (TF decode ops release the GIL).
      root: folder named in the summary line; defaults to the common parent of ``paths``.

    Returns:
      ``(good_paths, bad)`` with ``bad`` a list of ``(path, reason)``, both in input order.

    Raises:
      ImageFolderError: with ``on_error="fail"``, ``"{path}: unreadable image ({reason})"``.
    """
    _check_on_error(on_error)
    _check_channels(channels, allow_none=True)
    paths = [os.fspath(p) for p in paths]
    if not paths:
        return [], []
    raster_check = _RasterChecker(channels)

    def check(path: str) -> str | None:
        try:
            if _is_npy(path):
                _load_npy_array(path, channels)
            else:
                raster_check(path)
        except Exception as error:  # noqa: BLE001 - any failure means "unreadable"
            return _one_line(error)
        return None

    good, bad = [], []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, int(num_threads))) as pool:
        try:
            # map() yields in input order, which makes "first bad file" deterministic.
            for path, reason in zip(paths, pool.map(check, paths)):
                if reason is None:
                    good.append(path)
                    continue
                if on_error == "fail":
                    raise ImageFolderError(f"{path}: unreadable image ({reason})")
                bad.append((path, reason))
        except ImageFolderError:
            pool.shutdown(wait=True, cancel_futures=True)
            raise

    if bad:
        for path, reason in bad:
            logging.warning("skipping unreadable image %s (%s)", path, reason)
        if root is None:
            root = os.path.commonpath([os.path.abspath(p) for p in paths])
            if not os.path.isdir(root):  # a single file (or one file listed repeatedly)
                root = os.path.dirname(root)
        logging.warning("skipped %d of %d unreadable images under %s", len(bad), len(paths), root)
    return good, bad


# ---------------------------------------------------------------------------------------
# Dataset


def image_folder_dataset(
    root,
    image_size: int = 64,
    channels: int = 3,
    class_subfolders: bool = False,
    training: bool = True,
    on_error: str = "skip",
    load_ratio: float = 76 / 64,
    validate: bool = True,
    seed=None,
) -> tf.data.Dataset:
    """An unbatched, unshuffled dataset of the images under ``root``.

    Elements are dicts ``{"image": float32 [S, S, C] in [-1, 1], "filename": tf.string}``
    plus ``"label": int32 scalar`` with ``class_subfolders`` (class names:
    :func:`image_folder_classes`). Images go through :func:`images.stackgan_preprocess`.

    Args:
      root: image folder, searched recursively.
      image_size: output side ``S``.
      channels: output channel count ``C``; 1, 3 or 4 for image files (grayscale is
        expanded / colour reduced as needed), any ``>= 1`` for ``.npy`` files.
      class_subfolders: label each file by its first-level sub-folder.
      training: random flip + crop when True, centre crop when False.
      on_error: "skip" or "fail" for unreadable files found by validation.
      load_ratio: StackGAN resize ratio before cropping.
      validate: decode every file once up front (threaded) so that iteration cannot fail
        on a corrupt file; turn off only for folders known to be clean.
      seed: None for unseeded augmentation; an int makes the augmentation sequence
        reproducible (a fresh sequence each time the dataset is iterated, e.g. per epoch).

    Raises:
      ValueError: bad ``on_error`` / ``channels`` / ``image_size`` / ``load_ratio``.
      ImageFolderError: see :func:`list_image_files` and :func:`validate_images`; also when
        no readable image is left.
    """
    _check_on_error(on_error)
    _check_channels(channels, allow_none=False)
    channels = int(channels)
    if int(image_size) < 1:
        raise ValueError(f"image_size must be a positive integer. Received: image_size={image_size}")
    if not load_ratio >= 1.0:
        raise ValueError(f"load_ratio must be >= 1. Received: load_ratio={load_ratio}")

    root = _check_root(root)
    paths, labels, _ = list_image_files(root, class_subfolders=class_subfolders)

    if validate:
        good, _ = validate_images(paths, channels, on_error=on_error, root=root)
        if labels is not None:
            keep = set(good)
            labels = [label for path, label in zip(paths, labels) if path in keep]
        paths = good
        if not paths:
            raise ImageFolderError(f"{root}: no readable images left after skipping unreadable files")
    elif channels not in _RASTER_CHANNELS:
        # Without validation an image file would only fail mid-iteration; this much is
        # known from the extension alone, so say it now.
        raster = next((p for p in paths if not _is_npy(p)), None)
        if raster is not None:
            raise ImageFolderError(
                f"{raster}: image files decode to 1, 3 or 4 channels; store N-channel data as "
                f".npy. Received: channels={channels}"
            )

    is_npy = [_is_npy(p) for p in paths]
    has_npy, has_raster = any(is_npy), not all(is_npy)

    def decode(path, npy_flag):
        if has_npy and not has_raster:
            return _decode_npy(path, channels)
        if has_raster and not has_npy:
            return _decode_raster(tf.io.read_file(path), channels)
        # Mixed folder: both branches must agree on dtype, so bring rasters to float [0, 1].
        return tf.cond(
            npy_flag,
            lambda: _decode_npy(path, channels),
            lambda: tf.cast(_decode_raster(tf.io.read_file(path), channels), tf.float32) / 255.0,
        )

    elements = {"filename": tf.constant(paths, tf.string), "is_npy": tf.constant(is_npy, tf.bool)}
    if labels is not None:
        elements["label"] = tf.constant(labels, tf.int32)
    dataset = tf.data.Dataset.from_tensor_slices(elements)

    use_seeds = training and seed is not None
    if use_seeds:
        # Per-element stateless seeds: reproducible for a given seed, yet a new sequence on
        # every iteration so that each epoch sees different flips and crops.
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        dataset = tf.data.Dataset.zip(dataset, seeds)

    def load(element, element_seed=None):
        image = decode(element["filename"], element["is_npy"])
        image = images.stackgan_preprocess(
            image,
            image_size,
            training=training,
            load_ratio=load_ratio,
            seed=element_seed,
        )
        out = {"image": image, "filename": element["filename"]}
        if "label" in element:
            out["label"] = element["label"]
        return out

    if use_seeds:
        return dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.map(lambda element: load(element), num_parallel_calls=tf.data.AUTOTUNE)
