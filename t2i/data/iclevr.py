"""iCLEVR: CLEVR-style renders labelled with the set of objects they show (multi-hot conditions).

The released layout, read as is::

    <data_dir>/objects.json   {"gray cube": 0, "red cube": 1, ...}      object name -> label index (24 in the real set)
    <data_dir>/train.json     {"CLEVR_train_000000_0.png": ["gray cube", "red sphere"], ...}
    <data_dir>/test.json      [["gray cube"], ["red cube", "blue cylinder"], ...]   conditions without images
    <data_dir>/images/*.png   (or <data_dir>/iclevr/*.png, the name of the released folder)

The real images are 320x240 RGBA PNGs. The alpha channel is dropped and the whole image is resized to S x S
(bilinear, antialiased) without cropping, as the released cGAN code does: a crop could cut away a listed object
and make its label false.

``data_prep/export_shapes.py --format=iclevr`` writes the embedded ``shapes`` dataset in this layout.
"""
from __future__ import annotations

import json
import os
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from t2i.data import folder, images

__all__ = [
    "OBJECTS_FILE",
    "TRAIN_FILE",
    "TEST_FILE",
    "IMAGE_DIRS",
    "IclevrData",
    "read_objects",
    "read_train",
    "read_test",
    "multi_hot",
    "condition_labels",
    "find_image_dir",
    "iclevr_dataset",
]

OBJECTS_FILE = "objects.json"
TRAIN_FILE = "train.json"
TEST_FILE = "test.json"
# Looked up in this order when no image_dir is given; "iclevr" is the folder name of the released archive.
IMAGE_DIRS = ("images", "iclevr")
SPLITS = ("train", "test")
# Decoding goes through folder's raster decoder, which validation also uses, so these are the counts it supports.
_CHANNELS = (1, 3, 4)


class IclevrData(NamedTuple):
    """What :func:`iclevr_dataset` returns; unpacks as ``dataset, num_examples, num_objects``."""

    dataset: tf.data.Dataset
    num_examples: int
    num_objects: int


# ---------------------------------------------------------------------------------------
# The json files


def _read_json(data_dir, name: str):
    path = os.path.join(os.fspath(data_dir), name)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path}: not found; an iCLEVR folder holds {OBJECTS_FILE}, {TRAIN_FILE}, {TEST_FILE} and "
            f"{IMAGE_DIRS[0]}/. Received: data_dir={os.fspath(data_dir)!r}"
        )
    try:
        with open(path, encoding="utf-8") as f:
            return path, json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def read_objects(data_dir) -> dict[str, int]:
    """``objects.json`` as ``{name: index}``; the indices must be exactly ``0..N-1``, each used once.

    Raises:
      FileNotFoundError: no ``objects.json`` in ``data_dir`` (the message names the path).
      ValueError: not a non-empty object of name -> integer, or indices not ``0..N-1`` (names the path).
    """
    path, objects = _read_json(data_dir, OBJECTS_FILE)
    if not isinstance(objects, dict) or not objects:
        raise ValueError(f"{path}: expected a non-empty JSON object of object name -> label index")
    bad = next((name for name, index in objects.items() if not _is_int(index)), None)
    if bad is not None:
        raise ValueError(f"{path}: label index of {bad!r} must be an integer. Received: {objects[bad]!r}")
    indices = sorted(objects.values())
    if indices != list(range(len(objects))):
        duplicated = sorted({i for i in indices if indices.count(i) > 1})
        missing = sorted(set(range(len(objects))) - set(indices))
        raise ValueError(
            f"{path}: label indices must be 0..{len(objects) - 1}, each used once "
            f"(duplicated: {duplicated}, missing: {missing}). Received: {objects}"
        )
    return dict(objects)


def _check_names(names, source: str, item: str) -> list:
    where = f" for {item}" if item else ""
    if not isinstance(names, (list, tuple)) or not all(isinstance(name, str) for name in names):
        raise ValueError(f"{source}: expected a list of object names{where}. Received: {names!r}")
    return list(names)


def multi_hot(names, objects: dict[str, int], source: str = OBJECTS_FILE, item: str = "") -> np.ndarray:
    """The float32 ``[N]`` label vector with a 1 at the index of every name in ``names``.

    Args:
      names: object names, e.g. ``["gray cube", "red sphere"]``; a repeated name still gives a single 1.
      objects: ``{name: index}`` from :func:`read_objects`; ``N = len(objects)``.
      source: the file the names came from, named in errors.
      item: what in ``source`` the names belong to (``"image CLEVR_train_001.png"``), named in errors.

    Raises:
      ValueError: a name that is not in ``objects``, or ``names`` not a list of strings.
    """
    names = _check_names(names, source, item)
    vector = np.zeros(len(objects), np.float32)
    for name in names:
        if name not in objects:
            where = f" for {item}" if item else ""
            raise ValueError(
                f"{source}: unknown object {name!r}{where}; known objects are in {OBJECTS_FILE} "
                f"({len(objects)} names, e.g. {sorted(objects)[:3]})"
            )
        vector[objects[name]] = 1.0
    return vector


def read_train(data_dir) -> tuple[str, list[tuple[str, list[str]]]]:
    """``(path of train.json, [(image filename, object names), ...])`` sorted by filename."""
    path, entries = _read_json(data_dir, TRAIN_FILE)
    if not isinstance(entries, dict) or not entries:
        raise ValueError(f"{path}: expected a non-empty JSON object of image filename -> list of object names")
    # Sorted like folder listings, so the order does not depend on how the file was written.
    return path, [(name, _check_names(entries[name], path, f"image {name}")) for name in sorted(entries)]


def read_test(data_dir, filename: str = TEST_FILE) -> tuple[str, list[list[str]]]:
    """``(path, conditions)`` from ``test.json`` (or ``new_test.json``): a list of lists of object names, in order."""
    path, conditions = _read_json(data_dir, filename)
    if not isinstance(conditions, list) or not conditions:
        raise ValueError(f"{path}: expected a non-empty JSON list of lists of object names")
    return path, [_check_names(names, path, f"condition {i}") for i, names in enumerate(conditions)]


def condition_labels(data_dir, objects: dict[str, int] | None = None, filename: str = TEST_FILE) -> np.ndarray:
    """The evaluation conditions of ``test.json`` as float32 ``[M, N]`` multi-hot rows, in file order."""
    objects = read_objects(data_dir) if objects is None else objects
    path, conditions = read_test(data_dir, filename)
    return np.stack([multi_hot(names, objects, path, f"condition {i}") for i, names in enumerate(conditions)])


def find_image_dir(data_dir, image_dir: str = "") -> str:
    """The folder holding the images: ``image_dir`` when given (relative paths are relative to ``data_dir``),
    else the first of ``IMAGE_DIRS`` that exists under ``data_dir``.

    Raises:
      FileNotFoundError: the folder does not exist (the message names every path tried).
    """
    data_dir = os.fspath(data_dir)
    candidates = [os.path.join(data_dir, os.fspath(image_dir))] if image_dir else [
        os.path.join(data_dir, name) for name in IMAGE_DIRS
    ]
    for candidate in candidates:
        if os.path.isdir(candidate):
            return candidate
    raise FileNotFoundError(
        f"{' or '.join(candidates)}: iCLEVR image folder not found. "
        f"Received: data_dir={data_dir!r}, image_dir={image_dir!r}"
    )


# ---------------------------------------------------------------------------------------
# Dataset


def _resize_whole(image, image_size: int, channels: int) -> tf.Tensor:
    """[H, W, C] uint8 -> float32 [S, S, C] in [-1, 1]: the whole frame squeezed to a square, nothing cropped."""
    image = images.to_unit_range(image)
    image = tf.image.resize(image, [image_size, image_size], method="bilinear", antialias=True)
    # The kernel cannot overshoot but float rounding can land a hair outside; the networks rely on [-1, 1].
    image = tf.clip_by_value(image, -1.0, 1.0)
    image.set_shape([image_size, image_size, channels])
    return image


def _check_arguments(image_size, split, channels, on_error):
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 1:
        raise ValueError(f"image_size must be a positive integer. Received: image_size={image_size!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}. Received: split={split!r}")
    if isinstance(channels, bool) or channels not in _CHANNELS:
        raise ValueError(f"iCLEVR images decode to 1, 3 or 4 channels. Received: channels={channels!r}")
    folder._check_on_error(on_error)


def _train_dataset(data_dir, image_size, channels, on_error, image_dir, training, seed, random_flip):
    objects = read_objects(data_dir)
    train_path, entries = read_train(data_dir)
    # Labels first: a typo in train.json is reported before any image is decoded.
    labels = {name: multi_hot(names, objects, train_path, f"image {name}") for name, names in entries}
    root = find_image_dir(data_dir, image_dir)
    paths = [os.path.join(root, name) for name, _ in entries]
    if on_error == "fail":
        # A stat per file is cheap; decoding thousands of images only to stop at a missing one is not.
        missing = next((path for path in paths if not os.path.isfile(path)), None)
        if missing is not None:
            raise FileNotFoundError(f"{missing}: image listed in {train_path} not found")
    # Missing and corrupt files alike: skipped with one summary line, or the first one raised.
    good, _ = folder.validate_images(paths, channels, on_error=on_error, root=root)
    if not good:
        raise folder.ImageFolderError(f"{root}: no readable images left of the {len(paths)} listed in {train_path}")
    by_path = dict(zip(paths, (name for name, _ in entries)))
    label_rows = np.stack([labels[by_path[path]] for path in good])

    dataset = tf.data.Dataset.from_tensor_slices({"filename": tf.constant(good, tf.string), "label": label_rows})
    flip = training and random_flip
    if flip:
        # Object sets do not depend on left/right, so a flip keeps the label true. Per-element stateless seeds:
        # reproducible for a seed, a new sequence on every pass over the data.
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        dataset = tf.data.Dataset.zip(dataset, seeds)

    def load(element, element_seed=None):
        image = folder._decode_raster(tf.io.read_file(element["filename"]), channels)
        image = _resize_whole(image, image_size, channels)
        if element_seed is not None:
            image = tf.image.stateless_random_flip_left_right(image, element_seed)
        return {"image": image, "label": element["label"], "filename": element["filename"]}

    mapped = dataset.map(load if flip else (lambda element: load(element)), num_parallel_calls=tf.data.AUTOTUNE)
    return IclevrData(mapped, len(good), len(objects))


def iclevr_dataset(
    data_dir,
    image_size: int,
    split: str = "train",
    channels: int = 3,
    on_error: str = "skip",
    image_dir: str = "",
    training: bool = True,
    seed: int = 0,
    random_flip: bool = False,
) -> IclevrData:
    """An unbatched, unshuffled iCLEVR split, with its size and label width.

    ``split="train"`` yields ``{"image": float32 [S, S, channels] in [-1, 1], "label": float32 [N] multi-hot,
    "filename": tf.string path}`` for every image of ``train.json`` (sorted by filename) that decodes;
    ``split="test"`` yields ``{"label": float32 [N]}`` for every condition of ``test.json``, in file order.

    Args:
      data_dir: folder with ``objects.json``, ``train.json``, ``test.json`` and the image folder.
      image_size: output side ``S``; the whole image is resized (no crop), see the module docstring.
      split: "train" or "test".
      channels: 3 drops the alpha channel of the RGBA renders; 1 (grey) and 4 (RGBA) are also accepted.
      on_error: listed-but-missing and corrupt images are skipped with one summary log line ("skip"), or the
        first one raises naming its path ("fail"). Every image is decoded once up front, so iteration cannot
        fail mid-training.
      image_dir: the image folder; relative paths are relative to ``data_dir``. Default: ``images/`` or
        ``iclevr/`` under ``data_dir``.
      training: random horizontal flips are applied only when True and ``random_flip``.
      seed: seeds the flips.
      random_flip: off by default; object sets do not change under a flip, so it is safe to turn on.

    Returns:
      ``IclevrData(dataset, num_examples, num_objects)``.

    Raises:
      FileNotFoundError: a missing json file, image folder, or (``on_error="fail"``) listed image.
      ValueError: bad arguments, malformed json, an object name not in ``objects.json``.
      folder.ImageFolderError (a ValueError): a corrupt image with ``on_error="fail"``, or none readable.
    """
    _check_arguments(image_size, split, channels, on_error)
    if split == "test":
        objects = read_objects(data_dir)
        labels = condition_labels(data_dir, objects)
        return IclevrData(tf.data.Dataset.from_tensor_slices({"label": labels}), len(labels), len(objects))
    return _train_dataset(data_dir, int(image_size), channels, on_error, image_dir, training, seed, random_flip)
