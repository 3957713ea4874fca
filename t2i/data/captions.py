"""Caption corpora: images paired with their sentences, in the layouts the text-to-image literature released.

A `CaptionCorpus` is an ordered, sized sequence of `CaptionRecord`s (one per image) plus the corpus' name, its
captions-per-image count and class names. Readers only touch metadata (text files, index files), never pixels, so
listing CUB's 11,788 images costs a second; `caption_dataset` turns a corpus into a `tf.data.Dataset` of dicts that
decodes the images.

The record's `filename` is the image's key everywhere downstream (HDF5 embeddings, StackGAN pickles, sample sheets):
the path relative to the image root without extension, e.g. "001.Black_footed_Albatross/Black_Footed_Albatross_0046_18"
for CUB, "image_06734" for Oxford-102, "train_000012" for shapes (the same stem `data_prep.export_shapes` writes).

Layouts read as released (Reed et al. 2016 captions, `text_c10`, 10 sentences per image, one per line):

    CUB-200-2011  <data_dir>/images.txt               "<image_id> <class_dir>/<image>.jpg", one line per image
                  <data_dir>/image_class_labels.txt   "<image_id> <class_id>", 1-based
                  <data_dir>/train_test_split.txt     "<image_id> <1 = train, 0 = test>"
                  <data_dir>/classes.txt              "<class_id> <class_dir>" (optional; else the image folders)
                  <data_dir>/bounding_boxes.txt       "<image_id> <x> <y> <width> <height>" (optional)
                  <data_dir>/images/<class_dir>/<image>.jpg
                  <text_dir>/<class_dir>/<image>.txt  text_dir defaults to <data_dir>/text_c10
    Oxford-102    <data_dir>/jpg/image_06734.jpg
                  <text_dir>/class_00001/image_06734.txt   the class folder gives the class (class_00001 -> 0)
                  trainvalclasses.txt, testclasses.txt, valclasses.txt, trainclasses.txt: one class folder name a
                  line, in text_dir's parent or in data_dir (Reed's zero-shot class split, also StackGAN's)

Text files are read as utf-8 with errors="replace": a stray byte in one of CUB's 117,880 sentences becomes U+FFFD in
that sentence instead of stopping the run. Lines are stripped and blank ones ignored; a caption file must hold at
least `captions_per_image` sentences and only the first `captions_per_image` are kept. Problems with single records
(a short or missing caption file, a listed image missing on disk) raise `CaptionDataError` naming the file
(`on_error="fail"`) or drop the record with one warning that counts them (`on_error="skip"`); a missing index file or
folder always raises.
"""
import dataclasses
import os
import re
from typing import Sequence

import numpy as np
import tensorflow as tf
from absl import logging

from t2i.data import folder, images, shapes

CUB_SPLITS = ("train", "test", "all")
# Split name -> Reed's class-list file. "train" is trainval (Reed's train + val classes), the classes StackGAN trains
# on; "train_without_val" leaves Reed's validation classes out.
OXFORD_SPLIT_FILES = {
    "train": "trainvalclasses.txt",
    "test": "testclasses.txt",
    "val": "valclasses.txt",
    "train_without_val": "trainclasses.txt",
}
OXFORD_SPLITS = (*OXFORD_SPLIT_FILES, "all")
TEXT_DIR = "text_c10"
DATASETS = ("shapes", "cub", "oxford")
ON_ERROR = ("fail", "skip")
# Paths named in the one warning line of a skip.
_LOGGED_PATHS = 3
# Channel counts the raster decoder (shared with t2i.data.folder and its validation) can produce.
_FILE_CHANNELS = (1, 3, 4)



class CaptionDataError(ValueError):
    """A caption corpus that cannot be read as its layout says; the message names the file."""


class CaptionFileNotFoundError(CaptionDataError, FileNotFoundError):
    """A file or folder the layout requires is missing; caught by `except ValueError` and `except OSError` alike."""


@dataclasses.dataclass(frozen=True)
class CaptionRecord:
    """One image and its captions.

    Attributes:
        filename: the image's key (see the module docstring).
        captions: its sentences, exactly `corpus.captions_per_image` of them.
        class_id: 0-based class index, or -1 when the corpus has no classes.
        image_path: the image file, or None when the corpus renders images itself (shapes).
        bbox: (x, y, width, height) in pixels of the object to crop to (CUB's bounding_boxes.txt), or None.
        index: position of the example in its source (shapes' render index; the line order otherwise).
    """

    filename: str
    captions: tuple[str, ...]
    class_id: int = -1
    image_path: str | None = None
    bbox: tuple[float, float, float, float] | None = None
    index: int = 0


@dataclasses.dataclass(frozen=True)
class CaptionCorpus:
    """A named, ordered collection of `CaptionRecord`s (see the module docstring)."""

    name: str
    records: Sequence[CaptionRecord]
    captions_per_image: int
    class_names: tuple[str, ...] = ()
    # Extra keyword arguments the image side needs (shapes: seed, split) — kept here so a corpus is self-describing.
    options: dict = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self):
        return iter(self.records)

    def __getitem__(self, i: int) -> CaptionRecord:
        return self.records[i]


class _ShapesRecords(Sequence):
    """Records of the embedded dataset, computed on access (captions need no pixels)."""

    def __init__(self, num_examples: int, seed: int, split: str):
        self._n, self._seed, self._split = num_examples, seed, split

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._n))]
        if not -self._n <= i < self._n:
            raise IndexError(f"shapes record index out of range. Received: {i}")
        i %= self._n
        return CaptionRecord(
            filename=f"{self._split}_{i:06d}",
            captions=tuple(shapes.example_captions(i, seed=self._seed, split=self._split)),
            index=i,
        )


def shapes_corpus(num_examples: int = 10000, seed: int = 0, split: str = "train") -> CaptionCorpus:
    """The embedded dataset's captions: 10 per image, no classes (labels are multi-hot, see `shapes`)."""
    if isinstance(num_examples, bool) or not isinstance(num_examples, int) or num_examples <= 0:
        raise ValueError(f"shapes: num_examples must be a positive integer. Received: num_examples={num_examples!r}")
    # Checked here, not on first access: a bad split would otherwise surface deep inside a tf.data pipeline.
    shapes._check_split(split)
    return CaptionCorpus(
        name="shapes", records=_ShapesRecords(num_examples, seed, split),
        captions_per_image=shapes.CAPTIONS_PER_IMAGE, options={"seed": seed, "split": split},
    )


# ---------------------------------------------------------------------------------------
# Argument checks and small readers


def _check_on_error(on_error) -> None:
    if on_error not in ON_ERROR:
        raise ValueError(f'on_error must be "fail" or "skip". Received: on_error={on_error!r}')


def _check_corpus_arguments(dataset: str, split, splits, captions_per_image, on_error) -> None:
    if split not in splits:
        raise ValueError(f"{dataset}: split must be one of {splits}. Received: split={split!r}")
    if isinstance(captions_per_image, bool) or not isinstance(captions_per_image, int) or captions_per_image < 1:
        raise ValueError(
            f"captions_per_image must be a positive integer. Received: captions_per_image={captions_per_image!r}"
        )
    _check_on_error(on_error)


def _require_dir(path: str, what: str, **received) -> str:
    if not os.path.isdir(path):
        raise CaptionFileNotFoundError(f"{path}: {what} not found. Received: {_received(received)}")
    return path


def _received(values: dict) -> str:
    return ", ".join(f"{name}={value!r}" for name, value in values.items())


def _numbered_lines(path: str) -> list[tuple[int, str]]:
    """(1-based line number, stripped line) of every non-blank line; see the module docstring for the encoding."""
    with open(path, encoding="utf-8", errors="replace") as f:
        return [(number, line.strip()) for number, line in enumerate(f, start=1) if line.strip()]


def _read_index(path: str, fields: str, parse, data_dir: str, key: str = "image_id") -> dict[int, object]:
    """A CUB index file `<key> <fields>` as {key: parse(rest)}, in file order.

    Args:
      path: the file.
      fields: how the rest of the line looks, for error messages ("<x> <y> <width> <height>").
      parse: rest of the line (str) -> value; raises ValueError on a malformed rest.
      data_dir: named in the error when the file is missing.
      key: what the first column is, for error messages.
    """
    if not os.path.isfile(path):
        raise CaptionFileNotFoundError(f"{path}: CUB index file not found. Received: data_dir={data_dir!r}")
    table = {}
    for number, line in _numbered_lines(path):
        parts = line.split(maxsplit=1)
        try:
            image_id = int(parts[0])
            value = parse(parts[1])
        except (ValueError, IndexError):
            raise CaptionDataError(
                f"{path}:{number}: expected '<{key}> {fields}'. Received: {line!r}"
            ) from None
        if image_id in table:
            raise CaptionDataError(f"{path}:{number}: {key} {image_id} is listed twice. Received: {line!r}")
        table[image_id] = value
    return table


def _parse_int(rest: str) -> int:
    (value,) = rest.split()  # ValueError when there is more than one field
    return int(value)


def _parse_bbox(rest: str) -> tuple[float, float, float, float]:
    x, y, width, height = (float(value) for value in rest.split())
    return x, y, width, height


def _parse_train_flag(rest: str) -> bool:
    value = _parse_int(rest)
    if value not in (0, 1):
        raise ValueError(value)
    return value == 1


def _lookup(table: dict, image_id: int, path: str):
    if image_id not in table:
        raise CaptionDataError(f"{path}: no line for image id {image_id}, which images.txt lists")
    return table[image_id]


def read_caption_file(path: str, captions_per_image: int = 10) -> tuple[str, ...]:
    """The first `captions_per_image` non-blank, stripped lines of a Reed caption file.

    Raises:
      CaptionFileNotFoundError: no such file.
      CaptionDataError: fewer non-blank lines than `captions_per_image` (the message gives both counts).
    """
    if not os.path.isfile(path):
        raise CaptionFileNotFoundError(f"{path}: caption file not found")
    lines = [line for _, line in _numbered_lines(path)]
    if len(lines) < captions_per_image:
        raise CaptionDataError(
            f"{path}: {len(lines)} non-empty caption lines, fewer than captions_per_image. "
            f"Received: captions_per_image={captions_per_image}"
        )
    return tuple(lines[:captions_per_image])


@dataclasses.dataclass(frozen=True)
class _Candidate:
    """A listed image before its caption file and image file are checked."""

    filename: str
    caption_path: str
    image_path: str
    class_id: int
    index: int
    bbox: tuple[float, float, float, float] | None = None


def _build_records(name: str, split: str, candidates, captions_per_image: int, on_error: str) -> list[CaptionRecord]:
    """Reads every candidate's captions and checks its image exists, failing or skipping as `on_error` says."""
    records, skipped = [], []
    for candidate in candidates:
        try:
            problem = candidate.caption_path
            captions = read_caption_file(candidate.caption_path, captions_per_image)
            problem = candidate.image_path
            if not os.path.isfile(candidate.image_path):
                raise CaptionFileNotFoundError(f"{candidate.image_path}: image listed for {name} not found")
        except CaptionDataError:
            if on_error == "fail":
                raise
            skipped.append(problem)
            continue
        records.append(CaptionRecord(
            filename=candidate.filename, captions=captions, class_id=candidate.class_id,
            image_path=candidate.image_path, bbox=candidate.bbox, index=candidate.index,
        ))
    if skipped:
        first = ", ".join(skipped[:_LOGGED_PATHS]) + (", ..." if len(skipped) > _LOGGED_PATHS else "")
        logging.warning(
            "%s: skipped %d of %d %s records with a missing or short caption file or a missing image: %s",
            name, len(skipped), len(skipped) + len(records), split, first,
        )
    if not records:
        raise CaptionDataError(
            f"{name}: no records left in split {split!r}"
            + (f" after skipping {len(skipped)}" if skipped else "")
            + f". Received: split={split!r}"
        )
    return records


# ---------------------------------------------------------------------------------------
# CUB-200-2011


def cub_corpus(data_dir, text_dir=None, split: str = "train", captions_per_image: int = 10,
               on_error: str = "fail") -> CaptionCorpus:
    """CUB-200-2011 with Reed's captions (layout in the module docstring), in `images.txt` order.

    Args:
      data_dir: the CUB_200_2011 folder (index files and `images/`).
      text_dir: the `text_c10` folder of Reed's captions; default `<data_dir>/text_c10`.
      split: "train" or "test" (`train_test_split.txt`), or "all".
      captions_per_image: sentences kept per image (the first ones of each file).
      on_error: "fail" raises at the first record with a missing or short caption file or a missing image;
        "skip" drops such records and logs one warning with their count and the first few paths.

    Returns:
      A `CaptionCorpus` named "cub": `class_id` is 0-based, `bbox` comes from `bounding_boxes.txt` (None without the
      file), `index` is the image's line position in `images.txt`, `class_names` come from `classes.txt` or, without
      it, from the image folders; `options` holds the split.

    Raises:
      CaptionFileNotFoundError: a required index file, `images/` or `text_dir` is missing; a record's file is
        missing (`on_error="fail"`).
      CaptionDataError: a malformed index line, an image id without a label or split, a short caption file
        (`on_error="fail"`), or no record left.
    """
    _check_corpus_arguments("cub", split, CUB_SPLITS, captions_per_image, on_error)
    data_dir = os.fspath(data_dir)
    text_dir = os.fspath(text_dir) if text_dir else os.path.join(data_dir, TEXT_DIR)
    images_path = os.path.join(data_dir, "images.txt")
    labels_path = os.path.join(data_dir, "image_class_labels.txt")
    split_path = os.path.join(data_dir, "train_test_split.txt")
    bbox_path = os.path.join(data_dir, "bounding_boxes.txt")
    classes_path = os.path.join(data_dir, "classes.txt")

    image_files = _read_index(images_path, "<class_dir>/<image file>", str.strip, data_dir)
    labels = _read_index(labels_path, "<class_id>", _parse_int, data_dir)
    is_train = _read_index(split_path, "<1 or 0>", _parse_train_flag, data_dir) if split != "all" else None
    bboxes = _read_index(bbox_path, "<x> <y> <width> <height>", _parse_bbox, data_dir) if os.path.isfile(
        bbox_path) else None
    image_root = _require_dir(os.path.join(data_dir, "images"), "CUB image folder", data_dir=data_dir)
    _require_dir(text_dir, "caption folder (Reed's text_c10)", text_dir=text_dir)

    names = {}
    if os.path.isfile(classes_path):
        names = {class_id - 1: name for class_id, name in
                 _read_index(classes_path, "<class_name>", str.strip, data_dir, key="class_id").items()}
    candidates = []
    for position, (image_id, rel_path) in enumerate(image_files.items()):
        class_id = _lookup(labels, image_id, labels_path) - 1
        if class_id < 0:
            raise CaptionDataError(f"{labels_path}: class ids are 1-based. Received: class_id={class_id + 1}")
        names.setdefault(class_id, os.path.dirname(rel_path))
        if is_train is not None and _lookup(is_train, image_id, split_path) != (split == "train"):
            continue
        key = os.path.splitext(rel_path)[0]
        candidates.append(_Candidate(
            filename=key,
            caption_path=os.path.join(text_dir, key + ".txt"),
            image_path=os.path.join(image_root, rel_path),
            class_id=class_id,
            index=position,
            bbox=_lookup(bboxes, image_id, bbox_path) if bboxes is not None else None,
        ))
    records = _build_records("cub", split, candidates, captions_per_image, on_error)
    class_names = tuple(names.get(i, f"class_{i + 1:03d}") for i in range(max(names) + 1)) if names else ()
    return CaptionCorpus(name="cub", records=records, captions_per_image=captions_per_image,
                         class_names=class_names, options={"split": split})


# ---------------------------------------------------------------------------------------
# Oxford-102 flowers

_OXFORD_CLASS_DIR = re.compile(r"class_(\d+)")


def _find_split_file(split: str, data_dir: str, text_dir: str) -> str:
    name = OXFORD_SPLIT_FILES[split]
    # Reed's archive keeps the class lists next to text_c10; a user may also have put them in data_dir.
    folders = []
    for directory in (os.path.dirname(os.path.normpath(text_dir)), data_dir):
        if os.path.realpath(directory) not in {os.path.realpath(d) for d in folders}:
            folders.append(directory)
    paths = [os.path.join(directory, name) for directory in folders]
    for path in paths:
        if os.path.isfile(path):
            return path
    raise CaptionFileNotFoundError(
        f"{' or '.join(paths)}: Oxford-102 split file not found ({name} lists the {split!r} classes; split='all' "
        f"reads every class without it). Received: split={split!r}"
    )


def oxford_corpus(data_dir, text_dir=None, split: str = "train", captions_per_image: int = 10,
                  on_error: str = "fail") -> CaptionCorpus:
    """Oxford-102 flowers with Reed's captions (layout in the module docstring), by class folder then file name.

    Args:
      data_dir: the folder holding `jpg/`.
      text_dir: the `text_c10` folder of Reed's captions (`class_00001/image_06734.txt`...); default
        `<data_dir>/text_c10`.
      split: "train" (Reed's trainval classes, StackGAN's training set), "test", "val", "train_without_val"
        (see `OXFORD_SPLIT_FILES`), or "all"; the class-list files are looked up in text_dir's parent, then data_dir.
      captions_per_image: sentences kept per image (the first ones of each file).
      on_error: "fail" or "skip" for records with a missing or short caption file or a missing image (see
        `cub_corpus`).

    Returns:
      A `CaptionCorpus` named "oxford": `class_id` from the caption folder (class_00001 -> 0), `filename`
      "image_06734", no bbox, `index` the position among all caption files in this order, `class_names`
      ("class_00001", ...) for ids 0..max; `options` holds the split.

    Raises:
      CaptionFileNotFoundError: `text_dir`, `jpg/` or the split file is missing; a record's file is missing
        (`on_error="fail"`).
      CaptionDataError: no class folders, a split file naming a class without a folder, a short caption file
        (`on_error="fail"`), or no record left.
    """
    _check_corpus_arguments("oxford", split, OXFORD_SPLITS, captions_per_image, on_error)
    data_dir = os.fspath(data_dir)
    text_dir = os.fspath(text_dir) if text_dir else os.path.join(data_dir, TEXT_DIR)
    _require_dir(text_dir, "caption folder (Reed's text_c10)", text_dir=text_dir)
    class_ids = {}
    for entry in sorted(os.listdir(text_dir)):
        match = _OXFORD_CLASS_DIR.fullmatch(entry)
        if match and int(match.group(1)) >= 1 and os.path.isdir(os.path.join(text_dir, entry)):
            class_ids[entry] = int(match.group(1)) - 1
    if not class_ids:
        raise CaptionDataError(
            f"{text_dir}: no class folders (class_00001, class_00002, ...) of caption files. Received: "
            f"text_dir={text_dir!r}"
        )

    wanted = set(class_ids)
    if split != "all":
        split_path = _find_split_file(split, data_dir, text_dir)
        wanted = set()
        for number, line in _numbered_lines(split_path):
            if line not in class_ids:
                raise CaptionDataError(
                    f"{split_path}:{number}: class {line!r} has no caption folder in {text_dir}. Received: {line!r}"
                )
            wanted.add(line)
    image_root = _require_dir(os.path.join(data_dir, "jpg"), "Oxford-102 image folder", data_dir=data_dir)

    candidates = []
    position = 0
    for class_dir in sorted(class_ids, key=class_ids.get):
        class_path = os.path.join(text_dir, class_dir)
        for caption_file in sorted(f for f in os.listdir(class_path) if f.endswith(".txt")):
            stem = caption_file[: -len(".txt")]
            if class_dir in wanted:
                candidates.append(_Candidate(
                    filename=stem,
                    caption_path=os.path.join(class_path, caption_file),
                    image_path=os.path.join(image_root, stem + ".jpg"),
                    class_id=class_ids[class_dir],
                    index=position,
                ))
            position += 1
    records = _build_records("oxford", split, candidates, captions_per_image, on_error)
    class_names = tuple(f"class_{i + 1:05d}" for i in range(max(class_ids.values()) + 1))
    return CaptionCorpus(name="oxford", records=records, captions_per_image=captions_per_image,
                         class_names=class_names, options={"split": split})


# ---------------------------------------------------------------------------------------
# Dispatch


def load_corpus(dataset: str, data_dir: str = "", text_dir: str = "", split: str = "train",
                num_examples: int = 10000, seed: int = 0, on_error: str = "fail") -> CaptionCorpus:
    """The corpus `dataset` names, from flag-shaped arguments (empty strings mean "not given").

    Args:
      dataset: "shapes" (embedded; uses num_examples, seed and split), "cub" or "oxford" (use data_dir, text_dir,
        split and on_error).
      data_dir: the dataset's root folder; required for cub and oxford.
      text_dir: Reed's `text_c10` folder; "" for `<data_dir>/text_c10`.
      split: see `shapes_corpus`, `cub_corpus`, `oxford_corpus`.
      num_examples, seed: shapes only.
      on_error: cub and oxford only, "fail" or "skip".

    Raises:
      ValueError: an unknown `dataset`, or cub / oxford without `data_dir` (named as --data_dir).
      CaptionDataError: see the readers.
    """
    if dataset == "shapes":
        return shapes_corpus(num_examples=num_examples, seed=seed, split=split)
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}. Received: dataset={dataset!r}")
    if not data_dir:
        raise ValueError(
            f"--data_dir is required for dataset={dataset!r} (the dataset's root folder). Received: "
            f"data_dir={data_dir!r}"
        )
    reader = cub_corpus if dataset == "cub" else oxford_corpus
    return reader(data_dir, text_dir=text_dir or None, split=split, on_error=on_error)


# ---------------------------------------------------------------------------------------
# Images


def stackgan_bbox_crop(image, bbox) -> tf.Tensor:
    """Crops `image` [H, W, C] around `bbox` (x, y, width, height) exactly as StackGAN's `preprocess_birds.py`.

    A square of side 2R, R = int(0.75 * max(width, height)), centred on the box (integer centre) and clipped to the
    image: the bird plus some context, so the crop stays useful when the square runs off the edge. Python's int()
    truncates like tf.cast, and float64 keeps the arithmetic the same as the original's.
    """
    image = tf.convert_to_tensor(image)
    x, y, width, height = tf.unstack(tf.cast(bbox, tf.float64))
    radius = tf.cast(tf.maximum(width, height) * 0.75, tf.int32)
    centre_x = tf.cast((2.0 * x + width) / 2.0, tf.int32)
    centre_y = tf.cast((2.0 * y + height) / 2.0, tf.int32)
    shape = tf.shape(image)
    y1 = tf.maximum(0, centre_y - radius)
    y2 = tf.minimum(shape[0], centre_y + radius)
    x1 = tf.maximum(0, centre_x - radius)
    x2 = tf.minimum(shape[1], centre_x + radius)
    return image[y1:y2, x1:x2]


def _checked_bbox_crop(image: tf.Tensor, element: dict) -> tf.Tensor:
    # A box outside the image leaves nothing to resize; say which file instead of failing inside the resize.
    cropped = stackgan_bbox_crop(image, element["bbox"])
    message = tf.strings.join([element["path"], ": bounding box (x, y, width, height) leaves an empty crop"])
    check = tf.debugging.Assert(tf.reduce_all(tf.shape(cropped)[:2] > 0), [message, element["bbox"], tf.shape(image)])
    with tf.control_dependencies([check]):
        return tf.identity(cropped)


def _render_plan(corpus: CaptionCorpus) -> list[int]:
    """shapes render indices, one per record, without computing captions for _ShapesRecords."""
    if isinstance(corpus.records, _ShapesRecords):
        return list(range(len(corpus.records)))
    return [record.index for record in corpus.records]


def _shapes_caption_dataset(corpus: CaptionCorpus, image_size: int, channels: int) -> tf.data.Dataset:
    shapes._check_image_size(image_size)
    if channels != 3:
        raise ValueError(f"shapes images are RGB. Received: channels={channels!r}")
    seed, split = corpus.options["seed"], corpus.options["split"]
    count = corpus.captions_per_image

    def render(render_index):
        example = shapes.render_example(int(render_index), seed=seed, image_size=image_size, split=split)
        captions = np.asarray([c.encode("utf-8") for c in example["captions"][:count]], dtype=object)
        label = np.asarray(example["label"], np.float32)
        return example["image"], captions, f"{split}_{int(render_index):06d}".encode("utf-8"), label

    def load(element):
        image, captions, filename, label = tf.numpy_function(
            render, [element["render_index"]], (tf.uint8, tf.string, tf.string, tf.float32), stateful=False
        )
        image.set_shape([image_size, image_size, 3])
        captions.set_shape([count])
        filename.set_shape([])
        label.set_shape([shapes.NUM_LABELS])
        # No flips or crops: captions such as "left of" must stay true.
        return {"image": images.to_unit_range(image), "captions": captions, "label": label,
                "class_id": tf.constant(-1, tf.int32), "filename": filename, "index": element["index"]}

    plan = _render_plan(corpus)
    dataset = tf.data.Dataset.from_tensor_slices({
        "render_index": tf.constant(plan, tf.int64), "index": tf.range(len(plan), dtype=tf.int64),
    })
    return dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _decode_naming_file(contents: tf.Tensor, path: tf.Tensor, channels: int) -> tf.Tensor:
    """folder's raster decode, run in Python so that a corrupt file fails with an error that names it.

    A graph decode fails with "Invalid JPEG data" and no path, which is useless in an 11,788-image dataset; this
    costs some throughput and is only used when the files were not validated up front.
    """

    def decode(data, name):
        try:
            return folder._decode_raster(tf.constant(data), channels).numpy()
        except Exception as error:  # noqa: BLE001 - any decode failure means "unreadable"
            raise CaptionDataError(f"{name.decode()}: unreadable image ({folder._one_line(error)})") from None

    image = tf.numpy_function(decode, [contents, path], tf.uint8, stateful=False)
    image.set_shape([None, None, channels])
    return image


def caption_dataset(corpus: CaptionCorpus, image_size: int = 64, training: bool = False, seed=0,
                    crop_to_bbox: bool = True, channels: int = 3, validate: bool = True,
                    on_error: str = "fail") -> tf.data.Dataset:
    """The corpus as an unbatched, unshuffled, finite `tf.data.Dataset` of dicts, in corpus order.

    Elements: "image" float32 [S, S, channels] in [-1, 1], "captions" tf.string [captions_per_image], "class_id"
    int32 (-1 without classes), "filename" tf.string (the record's key), "index" int64 (position in the corpus, kept
    when validation skips records); shapes adds "label" float32 [24], the image's multi-hot labels.

    shapes records are rendered (`shapes.render_example` with the corpus' seed and split) and only rescaled: no
    flip or crop, captions say "left of". Image files are decoded, cropped around their bbox like StackGAN
    (`stackgan_bbox_crop`) when `crop_to_bbox` and the record has one, then `images.stackgan_preprocess`ed:
    random flip + crop when `training`, centre crop otherwise.

    Args:
      corpus: from `load_corpus` or a reader.
      image_size: output side S (shapes: 32-256).
      training: augment file images (seeded per element, a new draw on every pass over the data).
      seed: int seeds the augmentation; None uses unseeded random ops.
      crop_to_bbox: crop to the record's bbox first (CUB); records without one are used whole.
      channels: 1, 3 or 4 for files; 3 for shapes.
      validate: decode every image file once up front (threaded, with t2i.data.folder's decoder) so that iteration
        cannot fail on a corrupt file. Without it, a corrupt file fails at iteration with an error naming it.
      on_error: what validation does with an unreadable file: "fail" raises naming it, "skip" drops its record.

    Raises:
      ValueError: bad arguments; folder.ImageFolderError (a ValueError) from validation; CaptionDataError for a
        record without an image file outside shapes or with the wrong caption count, or no record left.
    """
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 1:
        raise ValueError(f"image_size must be a positive integer. Received: image_size={image_size!r}")
    image_size = int(image_size)
    _check_on_error(on_error)
    if corpus.name == "shapes" or isinstance(corpus.records, _ShapesRecords):
        return _shapes_caption_dataset(corpus, image_size, channels)
    if isinstance(channels, bool) or channels not in _FILE_CHANNELS:
        raise ValueError(f"image files decode to 1, 3 or 4 channels. Received: channels={channels!r}")

    records = list(corpus.records)
    for record in records:
        if record.image_path is None:
            raise CaptionDataError(f"{corpus.name}: record {record.filename!r} has no image_path")
        if len(record.captions) != corpus.captions_per_image:
            raise CaptionDataError(
                f"{corpus.name}: record {record.filename!r} has {len(record.captions)} captions, not "
                f"captions_per_image. Received: captions_per_image={corpus.captions_per_image}"
            )
    positions = list(range(len(records)))
    if validate:
        good, _ = folder.validate_images([r.image_path for r in records], channels, on_error=on_error)
        good = set(good)
        positions = [i for i in positions if records[i].image_path in good]
        if not positions:
            raise CaptionDataError(f"{corpus.name}: no readable images left of the {len(records)} records")
        records = [records[i] for i in positions]

    use_bbox = crop_to_bbox and any(r.bbox is not None for r in records)
    elements = {
        "path": tf.constant([r.image_path for r in records], tf.string),
        "captions": tf.constant([list(r.captions) for r in records], tf.string),
        "class_id": tf.constant([r.class_id for r in records], tf.int32),
        "filename": tf.constant([r.filename for r in records], tf.string),
        "index": tf.constant(positions, tf.int64),
    }
    if use_bbox:
        elements["bbox"] = tf.constant([r.bbox or (0.0, 0.0, 0.0, 0.0) for r in records], tf.float64)
        elements["has_bbox"] = tf.constant([r.bbox is not None for r in records], tf.bool)
    dataset = tf.data.Dataset.from_tensor_slices(elements)

    use_seeds = training and seed is not None
    if use_seeds:
        # Per-element stateless seeds, as in t2i.data.folder: reproducible for a seed, new flips and crops per epoch.
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        dataset = tf.data.Dataset.zip(dataset, seeds)

    def load(element, element_seed=None):
        contents = tf.io.read_file(element["path"])  # a missing file fails naming its path
        if validate:
            # Every file decoded once already, so the fast graph decode cannot fail here.
            image = folder._decode_raster(contents, channels)
        else:
            image = _decode_naming_file(contents, element["path"], channels)
        if use_bbox:
            image = tf.cond(element["has_bbox"], lambda: _checked_bbox_crop(image, element), lambda: image)
        image = images.stackgan_preprocess(image, image_size, training=training, seed=element_seed)
        return {"image": image, "captions": element["captions"], "class_id": element["class_id"],
                "filename": element["filename"], "index": element["index"]}

    if use_seeds:
        return dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.map(lambda element: load(element), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
