"""StackGAN's released data files, read through an unpickler that cannot run code.

StackGAN (hanzhanggit/StackGAN, Python 2) released its text embeddings and metadata as pickles, one folder per split::

    <data_dir>/train/char-CNN-RNN-embeddings.pickle   N x 10 x 1024 float32 (an array, or a list of N 10 x 1024 arrays)
    <data_dir>/train/filenames.pickle                 N str, e.g. "002.Laysan_Albatross/Laysan_Albatross_0002_1027"
    <data_dir>/train/class_info.pickle                N int, 1-based class ids (absent from the COCO release)
    <data_dir>/train/76images.pickle                  N uint8 76 x 76 x 3 images (list or array); 304images.pickle
    <data_dir>/test/...                               the same files for the test split

A pickle is a program: `pickle.load` calls whatever global the file names (``posix.system`` included). `safe_load`
therefore resolves globals from a fixed table instead of importing them: only what rebuilds numpy arrays, dtypes and
numpy scalars is admitted, and everything else stops the load before it is called, with `UnsafePickleError`. Lists,
tuples, dicts, str, bytes, int, float, bool and None are pickle opcodes of their own and need no global.

Python 2 pickles are read with ``encoding="latin1"``, the one encoding numpy's array unpickling supports (it maps each
byte of a py2 ``str`` to one character, so array data comes back byte for byte); py2 ``str`` filenames come back as str.
"""
from __future__ import annotations

import dataclasses
import os
import pickle

import numpy as np
import tensorflow as tf

from t2i.data import images as image_ops

try:  # numpy >= 2 moved the implementation modules to numpy._core; numpy.core is a shim that warns on import.
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray
    from numpy.core import numeric as _numeric

__all__ = [
    "EMBEDDINGS_FILE",
    "FILENAMES_FILE",
    "CLASS_INFO_FILE",
    "IMAGE_FILES",
    "UnsafePickleError",
    "StackGANDataError",
    "StackGANData",
    "safe_load",
    "load_stackgan_split",
    "stackgan_dataset",
]

EMBEDDINGS_FILE = "char-CNN-RNN-embeddings.pickle"
FILENAMES_FILE = "filenames.pickle"
CLASS_INFO_FILE = "class_info.pickle"
# The image pickles StackGAN's preprocessing writes: 76 px for Stage-I (64 px crops), 304 px for Stage-II (256 px).
IMAGE_FILES = ("76images.pickle", "304images.pickle")
SPLITS = ("train", "test")


class UnsafePickleError(ValueError):
    """A pickle names a global outside the numpy-array allowlist; nothing it names has been called."""


class StackGANDataError(ValueError):
    """A StackGAN pickle that loads but does not hold what the released layout promises; the message names the file."""


# ---------------------------------------------------------------------------------------
# The safe unpickler

_ALLOWED_MESSAGE = "only numpy arrays, lists, tuples, dicts, str, bytes, int and float are allowed"


def _empty_bytes(*args):
    # Protocols 0-2 write b"" (the data of an empty array) as a call to bytes() with no argument. Any argument would
    # only make bytes(n) allocate n zero bytes, which no array pickle needs.
    if args:
        raise UnsafePickleError(f"refusing bytes{args!r} in a pickle: only bytes() with no argument is allowed")
    return b""


def _latin1_encode(text, encoding="utf-8", errors="strict"):
    # Protocols 0-2 written by Python 3 store bytes (array data) as _codecs.encode(str, "latin1"). The codec name is
    # data from the file: a general codec lookup would let it pick zlib/bz2 (decompression bombs) or any codec that
    # happens to be registered, so this accepts latin1 alone.
    latin1 = isinstance(encoding, str) and encoding.lower().replace("_", "-") in ("latin1", "latin-1")
    if not isinstance(text, str) or not latin1 or errors != "strict":
        raise UnsafePickleError(
            f"refusing _codecs.encode with encoding={encoding!r}, errors={errors!r}: "
            "only latin1-encoded str → bytes is allowed"
        )
    return text.encode("latin1")


# (module, name) as written in the file → the object it stands for. Nothing is imported by name: the file cannot pick
# a module to import, only one of these entries. Both numpy spellings appear: numpy.core (numpy 1, py2 pickles) and
# numpy._core (pickles written by numpy 2).
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    # Arrays at protocols 0-4: _reconstruct(ndarray, (0,), b"b") makes an empty array, BUILD fills it from raw bytes.
    ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    # numpy scalars (np.int64(3), np.float32(0.5)), e.g. class ids taken out of an array.
    ("numpy.core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy._core.multiarray", "scalar"): _multiarray.scalar,
    # Contiguous arrays at protocol 5: frombuffer(bytearray, dtype).reshape(shape).
    ("numpy.core.numeric", "_frombuffer"): _numeric._frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _numeric._frombuffer,
    ("_codecs", "encode"): _latin1_encode,
    ("__builtin__", "bytes"): _empty_bytes,  # Python 3 writes builtins as __builtin__ at protocols < 3
    ("builtins", "bytes"): _empty_bytes,
}


class _SafeUnpickler(pickle.Unpickler):
    """Resolves globals from `_ALLOWED_GLOBALS` only; the module names are compared as written (no py2 renaming)."""

    def __init__(self, file, path: str):
        super().__init__(file, encoding="latin1")
        self._path = path

    def find_class(self, module, name):
        found = _ALLOWED_GLOBALS.get((module, name))
        if found is None:
            raise UnsafePickleError(
                f"{self._path}: refusing to unpickle global '{module}.{name}' — {_ALLOWED_MESSAGE}"
            )
        return found

    def persistent_load(self, pid):
        # The default also refuses, but with an UnpicklingError that does not name the file.
        raise UnsafePickleError(f"{self._path}: refusing a persistent id in the pickle — {_ALLOWED_MESSAGE}")


def safe_load(path):
    """Unpickles `path` admitting only numpy arrays, numpy scalars and plain containers (see the module docstring).

    Python 2 pickles are read with ``encoding="latin1"``: numpy array data and py2 ``str`` come back exact.

    Raises:
      FileNotFoundError: `path` does not exist.
      UnsafePickleError: the pickle names any other global (``posix.system``, ``builtins.eval``, ...); the message
        names the file and the global, and nothing the file names has been called.
      StackGANDataError: the file is not a readable pickle (truncated, not a pickle at all).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: pickle not found")
    with open(path, "rb") as f:
        try:
            return _SafeUnpickler(f, path).load()
        except UnsafePickleError as error:
            message = str(error)
            if not message.startswith(path):
                # Raised by a helper in the allowlist, which does not know the file.
                raise UnsafePickleError(f"{path}: {message}") from None
            raise
        except (pickle.UnpicklingError, EOFError, UnicodeDecodeError) as error:
            raise StackGANDataError(f"{path}: not a readable pickle ({type(error).__name__}: {error})") from None
        except (TypeError, ValueError) as error:
            # An allowed global called with arguments it rejects (a malformed or hand-edited array record).
            raise StackGANDataError(f"{path}: pickle holds a malformed numpy record ({error})") from None


# ---------------------------------------------------------------------------------------
# A split folder


@dataclasses.dataclass
class StackGANData:
    """One split of StackGAN's released data, in file order.

    Attributes:
      embeddings: float32 [N, C, D] text embeddings, C per image (10 captions for CUB and Oxford-102, D = 1024).
      filenames: N image keys, e.g. "002.Laysan_Albatross/Laysan_Albatross_0002_1027" (no extension).
      class_ids: int64 [N], 0-based (class_info.pickle holds 1-based ids); -1 everywhere when the split has no
        class_info.pickle (StackGAN's COCO release).
      images: uint8 [N, H, W, 3] from an image pickle, or None when none was asked for.
      path: the split folder the files were read from.
    """

    embeddings: np.ndarray
    filenames: list[str]
    class_ids: np.ndarray
    images: np.ndarray | None = None
    path: str = ""

    def __len__(self) -> int:
        return len(self.filenames)


def _require(split_dir: str, name: str) -> str:
    path = os.path.join(split_dir, name)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path}: not found; a StackGAN split folder holds {EMBEDDINGS_FILE}, {FILENAMES_FILE} and "
            f"{CLASS_INFO_FILE}. Received: data_dir={os.path.dirname(split_dir)!r}"
        )
    return path


def _stack_arrays(value, path: str, what: str) -> np.ndarray:
    """An array, or a list/tuple of equally shaped arrays, as one array (the list is emptied as it is copied)."""
    if isinstance(value, np.ndarray) and value.dtype != object:
        return value
    if isinstance(value, np.ndarray):  # an object array of arrays
        value = list(value)
    if not isinstance(value, (list, tuple)) or not value:
        raise StackGANDataError(
            f"{path}: expected {what} as a numpy array or a non-empty list of arrays. Received: {type(value).__name__}"
        )
    first = np.asarray(value[0])
    out = np.empty((len(value),) + first.shape, first.dtype)
    for i, item in enumerate(value):
        item = np.asarray(item)
        if item.shape != first.shape:
            raise StackGANDataError(
                f"{path}: every entry must have the shape of the first, {first.shape}. "
                f"Received: entry {i} of shape {item.shape}"
            )
        out[i] = item
        if isinstance(value, list):
            # The 304-px image pickles hold gigabytes; freeing each entry once copied keeps the peak near one copy.
            value[i] = None
    return out


def _read_embeddings(path: str) -> np.ndarray:
    embeddings = _stack_arrays(safe_load(path), path, "embeddings")
    if embeddings.ndim != 3:
        raise StackGANDataError(
            f"{path}: embeddings must have rank 3, [images, captions per image, dim]. "
            f"Received: shape={embeddings.shape}"
        )
    if not np.issubdtype(embeddings.dtype, np.floating):
        raise StackGANDataError(f"{path}: embeddings must be floating point. Received: dtype={embeddings.dtype}")
    return embeddings.astype(np.float32, copy=False)


def _read_filenames(path: str) -> list[str]:
    value = safe_load(path)
    if isinstance(value, np.ndarray) and value.ndim == 1:
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise StackGANDataError(f"{path}: expected a list of filenames. Received: {type(value).__name__}")
    filenames = []
    for i, name in enumerate(value):
        if isinstance(name, bytes):  # written by Python 3 as bytes rather than str
            try:
                name = name.decode("utf-8")
            except UnicodeDecodeError:
                raise StackGANDataError(f"{path}: filename {i} is not UTF-8. Received: {name!r}") from None
        if not isinstance(name, str):
            raise StackGANDataError(f"{path}: filename {i} is not a string. Received: {name!r}")
        filenames.append(name)
    return filenames


def _read_class_ids(path: str) -> np.ndarray:
    value = safe_load(path)
    try:
        ids = np.asarray(value)
    except ValueError:
        ids = None
    if ids is None or ids.ndim != 1 or not (np.issubdtype(ids.dtype, np.integer) or ids.size == 0):
        raise StackGANDataError(f"{path}: expected a list of integer class ids. Received: {type(value).__name__}")
    ids = ids.astype(np.int64)
    if ids.size and ids.min() < 1:
        raise StackGANDataError(
            f"{path}: class ids are 1-based in StackGAN's {CLASS_INFO_FILE}. "
            f"Received: min class id={ids.min()}"
        )
    return ids - 1


def _read_images(path: str) -> np.ndarray:
    images = _stack_arrays(safe_load(path), path, "images")
    if images.ndim != 4 or images.shape[-1] != 3:
        raise StackGANDataError(f"{path}: images must be [N, height, width, 3]. Received: shape={images.shape}")
    if images.dtype != np.uint8:
        raise StackGANDataError(f"{path}: images must be uint8. Received: dtype={images.dtype}")
    return images


def _check_count(count: int, expected: int, path: str, reference: str) -> None:
    if count != expected:
        raise StackGANDataError(
            f"{path} holds {count} entries but {reference} holds {expected}; the files of a split must list the same "
            f"images in the same order"
        )


def load_stackgan_split(data_dir, split: str = "train", image_file: str | None = None) -> StackGANData:
    """Reads `<data_dir>/<split>/` in StackGAN's released layout (module docstring), each pickle via `safe_load`.

    Args:
      data_dir: the folder holding `train/` and `test/`.
      split: "train" or "test".
      image_file: an image pickle to read too, e.g. "76images.pickle"; relative names are relative to the split
        folder. None reads no images (embeddings-only use, e.g. sampling from text).

    Returns:
      A `StackGANData`; `class_ids` are 0-based.

    Raises:
      FileNotFoundError: the embeddings, filenames or requested image pickle is missing (the message names the path).
      UnsafePickleError: a pickle names a global outside the allowlist.
      StackGANDataError: wrong rank or dtype, or files whose counts disagree (names both files and both counts).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}. Received: split={split!r}")
    split_dir = os.path.join(os.fspath(data_dir), split)
    embeddings_path = _require(split_dir, EMBEDDINGS_FILE)
    filenames_path = _require(split_dir, FILENAMES_FILE)

    embeddings = _read_embeddings(embeddings_path)
    filenames = _read_filenames(filenames_path)
    _check_count(len(filenames), len(embeddings), filenames_path, embeddings_path)

    class_path = os.path.join(split_dir, CLASS_INFO_FILE)
    if os.path.isfile(class_path):
        class_ids = _read_class_ids(class_path)
        _check_count(len(class_ids), len(embeddings), class_path, embeddings_path)
    else:
        # StackGAN's COCO release has no classes; its loader then uses no class information either.
        class_ids = np.full(len(embeddings), -1, np.int64)

    images = None
    if image_file is not None:
        image_path = os.path.join(split_dir, os.fspath(image_file))
        if not os.path.isfile(image_path):
            raise FileNotFoundError(
                f"{image_path}: image pickle not found (StackGAN's preprocessing writes {' or '.join(IMAGE_FILES)}). "
                f"Received: image_file={image_file!r}"
            )
        images = _read_images(image_path)
        _check_count(len(images), len(embeddings), image_path, embeddings_path)

    return StackGANData(embeddings=embeddings, filenames=filenames, class_ids=class_ids, images=images, path=split_dir)


# ---------------------------------------------------------------------------------------
# Dataset


def stackgan_dataset(
    data: StackGANData, image_size: int = 64, training: bool = False, seed: int = 0
) -> tf.data.Dataset:
    """An unbatched, unshuffled `tf.data.Dataset` over `data`, in file order.

    Yields ``{"image": float32 [S, S, 3] in [-1, 1], "embeddings": float32 [C, D], "class_id": int32,
    "filename": tf.string, "index": int64}``; "image" is left out when ``data.images`` is None. Images go through
    `t2i.data.images.stackgan_preprocess`: resized to ``S * 76 / 64`` (a no-op for 76-px images at S = 64), then a
    centre crop, or with ``training`` a random crop and flip seeded per element from `seed` (a new draw every pass).

    The images stay in numpy and are fetched per element, so a multi-gigabyte 304-px pickle is neither copied into a
    graph constant nor into a second tensor.
    """
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 1:
        raise ValueError(f"image_size must be a positive integer. Received: image_size={image_size!r}")
    count = len(data.embeddings)
    if len(data.filenames) != count or len(data.class_ids) != count:
        raise StackGANDataError(
            f"{data.path}: embeddings, filenames and class ids must have one entry per image. Received: "
            f"{count} embeddings, {len(data.filenames)} filenames, {len(data.class_ids)} class ids"
        )
    dataset = tf.data.Dataset.from_tensor_slices({
        "embeddings": np.asarray(data.embeddings, np.float32),
        "class_id": np.asarray(data.class_ids, np.int32),
        "filename": tf.constant(list(data.filenames), tf.string),
        "index": np.arange(count, dtype=np.int64),
    })
    if data.images is None:
        return dataset

    images = data.images
    if len(images) != count:
        raise StackGANDataError(f"{data.path}: {len(images)} images for {count} embeddings")
    image_shape = images.shape[1:]
    image_size = int(image_size)

    def fetch(index):
        image = tf.numpy_function(lambda i: images[i], [index], tf.uint8, stateful=False)
        image.set_shape(image_shape)
        return image

    if training:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)

        def load(example, element_seed):
            image = image_ops.stackgan_preprocess(fetch(example["index"]), image_size, training=True, seed=element_seed)
            return {"image": image, **example}

        dataset = tf.data.Dataset.zip(dataset, seeds)
    else:

        def load(example):
            return {"image": image_ops.stackgan_preprocess(fetch(example["index"]), image_size, training=False),
                    **example}

    return dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
