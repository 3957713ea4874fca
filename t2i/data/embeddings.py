"""Caption embeddings in HDF5: written once by `data_prep.embed_captions`, read by the text-conditioned pipelines.

Sentence encoders are slow next to a GAN step and never trained with it, so every caption of a corpus is encoded once
and stored. One file per (corpus, split, encoder):

    /embeddings    float32 [N, C, D]   row i holds the vectors of image i's C captions (chunked, gzip-compressed)
    /filenames     utf-8 [N]           the image keys (`CaptionRecord.filename`), in corpus order
    /captions      utf-8 [N, C]        the sentences that were encoded ("" when unknown, as in imported files)
    /class_ids     int32 [N]           0-based class, -1 when the corpus has none
    attrs          format_version (1), encoder (kind), encoder_path, dim (D), dataset, split, captions_per_image (C),
                   num_examples (N), corpus_options (json), complete (bool), num_written (rows done)

Writes are resumable and never leave a half-written file under the final name: rows go into `<path>.partial`,
flushed after every batch with `num_written` recording how far it got, and the finished file is renamed onto
`<path>`. A file at `<path>` is therefore always complete (or foreign). Re-running the same command after a crash
continues the `.partial` from `num_written` (after checking that it holds the same corpus, encoder and captions);
`resume=False` (`--noresume`) discards it. `overwrite=True` (`--overwrite`) is only about `<path>`: the old file stays
readable until the new one is complete, and an interrupted overwrite resumes like any other write.

`embedding_pipeline` joins a file with `t2i.data.captions.caption_dataset` by filename and samples one caption (or the
mean of several, GAN-INT / StackGAN style) per image per epoch. Importers convert files from earlier projects:
paarthneekhara/text-to-image's one-dataset-per-image skip-thought files and StackGAN's char-CNN-RNN pickles.
"""
import json
import os

import h5py
import numpy as np
import tensorflow as tf
from absl import logging

__all__ = [
    "FORMAT_VERSION",
    "EmbeddingFileError",
    "EmbeddingDimError",
    "EmbeddingFile",
    "partial_path",
    "write_embeddings",
    "read_embeddings",
    "embedding_pipeline",
    "embedding_table_dataset",
    "import_paarthneekhara",
    "import_stackgan",
    "embed_corpus",
    "import_embeddings",
]

FORMAT_VERSION = 1
PARTIAL_SUFFIX = ".partial"
SAMPLING_MODES = ("one", "mean")
IMPORT_FORMATS = ("paarthneekhara", "stackgan")
_DATASETS = ("embeddings", "filenames", "captions", "class_ids")
# A chunk of about 1 MiB holds whole rows: one row is read per pipeline element, and HDF5's default chunk cache
# (1 MiB per dataset) then keeps the chunk being read sequentially.
_CHUNK_BYTES = 1 << 20
_MAX_CHUNK_ROWS = 256
_IMPORT_BLOCK_ROWS = 256
# The attributes that identify what an unfinished write was writing; all must match to resume it.
_IDENTITY_ATTRS = ("format_version", "dataset", "split", "num_examples", "captions_per_image", "corpus_options",
                   "encoder", "encoder_path")
_EMBED_COMMAND = "python -m data_prep.embed_captions"


class EmbeddingFileError(ValueError):
    """A problem with an embedding file (missing key, unfinished, wrong corpus); the message names the file."""


class EmbeddingDimError(EmbeddingFileError):
    """The embeddings' size D differs from what the encoder or the model expects."""


def partial_path(path) -> str:
    """Where an unfinished write of `path` lives until it is complete and renamed."""
    return os.fspath(path) + PARTIAL_SUFFIX


def _decode(value):
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _attrs_dict(h5file) -> dict:
    return {key: _decode(value.item() if isinstance(value, np.generic) else value)
            for key, value in h5file.attrs.items()}


def _check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
    return int(value)


def _one_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


# ---------------------------------------------------------------------------------------
# Writing


def _chunk_rows(num_rows: int, captions_per_image: int, dim: int) -> int:
    row_bytes = captions_per_image * dim * 4
    return int(max(1, min(num_rows, _MAX_CHUNK_ROWS, _CHUNK_BYTES // max(row_bytes, 1))))


def _create(partial: str, num_rows: int, captions_per_image: int, dim: int, attrs: dict) -> h5py.File:
    """A fresh `.partial` with pre-sized datasets: rows are written in place, so memory never grows with N."""
    directory = os.path.dirname(os.path.abspath(partial))
    os.makedirs(directory, exist_ok=True)
    rows = _chunk_rows(num_rows, captions_per_image, dim)
    text = h5py.string_dtype("utf-8")
    f = h5py.File(partial, "w")
    try:
        f.create_dataset("embeddings", (num_rows, captions_per_image, dim), np.float32,
                         chunks=(rows, captions_per_image, dim), compression="gzip", compression_opts=4, shuffle=True)
        f.create_dataset("filenames", (num_rows,), text, chunks=(rows,))
        f.create_dataset("captions", (num_rows, captions_per_image), text, chunks=(rows, captions_per_image))
        f.create_dataset("class_ids", (num_rows,), np.int32, chunks=(rows,), compression="gzip", fillvalue=-1)
        for key, value in attrs.items():
            f.attrs[key] = value
        f.attrs["dim"] = dim
        f.attrs["complete"] = False
        f.attrs["num_written"] = 0
        f.flush()
    except BaseException:
        f.close()
        raise
    return f


def _write_rows(f: h5py.File, start: int, embeddings, filenames, captions, class_ids) -> int:
    """Writes rows [start, start + len(filenames)) and records the progress; returns the new row count."""
    end = start + len(filenames)
    f["embeddings"][start:end] = embeddings
    f["filenames"][start:end] = np.asarray(filenames, dtype=object)
    f["captions"][start:end] = np.asarray(captions, dtype=object).reshape(len(filenames), -1)
    f["class_ids"][start:end] = np.asarray(class_ids, np.int32)
    # Progress last: a crash between the rows and this line only costs re-encoding this batch.
    f.attrs["num_written"] = end
    f.flush()
    return end


def _finish(f: h5py.File, partial: str, path: str) -> str:
    f.attrs["complete"] = True
    f.flush()
    f.close()
    os.replace(partial, path)
    return path


def _refuse_existing(path: str, overwrite: bool) -> None:
    if os.path.exists(path) and not overwrite:
        raise EmbeddingFileError(
            f"{path} already exists; pass --overwrite (overwrite=True) to replace it. Received: overwrite={overwrite}")


def _corpus_attrs(corpus, encoder_kind: str, encoder_path: str) -> dict:
    options = dict(getattr(corpus, "options", {}) or {})
    return {
        "format_version": FORMAT_VERSION,
        "dataset": str(corpus.name),
        "split": str(options.get("split", "")),
        "num_examples": len(corpus),
        "captions_per_image": int(corpus.captions_per_image),
        "corpus_options": json.dumps(options, sort_keys=True, default=str),
        "encoder": str(encoder_kind),
        "encoder_path": str(encoder_path),
    }


def _record_captions(record, captions_per_image: int) -> list:
    captions = list(record.captions)
    if len(captions) != captions_per_image:
        raise EmbeddingFileError(
            f"{record.filename}: the corpus promises {captions_per_image} captions per image. "
            f"Received: len(captions)={len(captions)}")
    return captions


def _open_for_resume(partial: str, attrs: dict, declared_dim, corpus, block: int):
    """Opens an unfinished write of the same corpus and encoder; returns (h5py.File, rows already written)."""
    hint = "delete it or pass --noresume (resume=False) to start over"
    try:
        f = h5py.File(partial, "r+")
    except OSError as error:
        raise EmbeddingFileError(
            f"{partial}: cannot reopen the unfinished write ({_one_line(error)}); {hint}") from None
    try:
        old = _attrs_dict(f)
        if "embeddings" not in f or "num_written" not in old:
            raise EmbeddingFileError(f"{partial}: not an unfinished t2i embedding file (no 'num_written'); {hint}")
        old_dim = int(f["embeddings"].shape[-1])
        if declared_dim is not None and int(declared_dim) != old_dim:
            raise EmbeddingDimError(
                f"{partial}: the unfinished write has dim {old_dim} but the encoder gives {int(declared_dim)}; {hint}. "
                f"Received: dim={int(declared_dim)}")
        for key in _IDENTITY_ATTRS:
            if old.get(key) != attrs[key]:
                raise EmbeddingFileError(
                    f"{partial}: the unfinished write is of another corpus or encoder ({key} was {old.get(key)!r}); "
                    f"{hint}. Received: {key}={attrs[key]!r}")
        written = int(old["num_written"])
        # Same name, same size and same encoder is not enough (shapes' filenames do not depend on the seed, CUB's
        # captions can be edited): the rows already written must hold exactly this corpus' filenames and captions.
        for begin in range(0, written, block):
            end = min(begin + block, written)
            names = f["filenames"].asstr()[begin:end]
            texts = f["captions"].asstr()[begin:end]
            for offset in range(end - begin):
                record = corpus[begin + offset]
                if names[offset] != record.filename or list(texts[offset]) != list(record.captions):
                    raise EmbeddingFileError(
                        f"{partial}: row {begin + offset} holds {names[offset]!r}, not the corpus' {record.filename!r} "
                        f"with the same captions; {hint}. Received: filename={record.filename!r}")
        return f, written
    except BaseException:
        f.close()
        raise


def write_embeddings(path, corpus, encoder, batch_size: int = 64, overwrite: bool = False, resume: bool = True,
                     progress: bool = True, *, encoder_path: str = "") -> str:
    """Encodes every caption of `corpus` with `encoder` and stores them at `path`; returns `path`.

    Records are streamed in batches of `batch_size` images; all `batch_size * C` captions of a batch go through the
    encoder in one call, and the rows are written and flushed before the next batch is read, so memory does not grow
    with the corpus. See the module docstring for the `.partial` file, resuming and overwriting.

    Args:
        path: the output `.h5` file.
        corpus: a `t2i.data.captions.CaptionCorpus` (anything sized and indexable by position with `name`,
            `captions_per_image` and records carrying `filename`, `captions`, `class_id`).
        encoder: a sentence encoder (`t2i.text.encoders.load_encoder`): string [B] → float32 [B, dim], with `dim`
            and `kind` attributes.
        batch_size: images per encoder call.
        overwrite: replace an existing file at `path` (only once the new one is complete).
        resume: continue a matching unfinished write (`<path>.partial`); False starts over.
        progress: show a progress bar.
        encoder_path: where the encoder was loaded from; recorded in the file and compared on resume. Not read from
            the encoder: a Keras layer's `path` is its name inside a model.
    """
    from t2i.text import encoders

    path = os.fspath(path)
    batch_size = _check_positive_int("batch_size", batch_size)
    num_rows = len(corpus)
    if num_rows == 0:
        raise EmbeddingFileError(
            f"{path}: the corpus {corpus.name!r} has no records to embed. Received: num_examples=0")
    captions_per_image = int(corpus.captions_per_image)
    _refuse_existing(path, overwrite)
    attrs = _corpus_attrs(corpus, getattr(encoder, "kind", "") or type(encoder).__name__, os.fspath(encoder_path))
    declared_dim = getattr(encoder, "dim", None)

    partial = partial_path(path)
    f, start = None, 0
    if os.path.exists(partial):
        if resume:
            f, start = _open_for_resume(partial, attrs, declared_dim, corpus, max(batch_size, 1024))
            logging.info("%s: resuming an unfinished write at row %d of %d", partial, start, num_rows)
        else:
            os.remove(partial)

    bar = None
    if progress:
        import keras

        bar = keras.utils.Progbar(num_rows, unit_name="image")
        bar.update(start)
    try:
        for begin in range(start, num_rows, batch_size):
            records = [corpus[i] for i in range(begin, min(begin + batch_size, num_rows))]
            sentences = [s for record in records for s in _record_captions(record, captions_per_image)]
            vectors = encoders.encode(encoder, sentences, batch_size=len(sentences))
            if vectors.ndim != 2 or vectors.shape[0] != len(sentences):
                raise EmbeddingFileError(
                    f"{path}: the encoder must return one vector per sentence, float32 [{len(sentences)}, dim]. "
                    f"Received: shape={tuple(vectors.shape)}")
            dim = vectors.shape[1]
            if f is None:
                f = _create(partial, num_rows, captions_per_image, dim, attrs)
            elif dim != f["embeddings"].shape[-1]:
                raise EmbeddingDimError(
                    f"{partial}: the file has dim {f['embeddings'].shape[-1]} but the encoder gives {dim}; delete it "
                    f"or pass --noresume (resume=False) to start over. Received: dim={dim}")
            vectors = vectors.reshape(len(records), captions_per_image, dim)
            finite = np.isfinite(vectors).all(axis=(1, 2))
            if not finite.all():
                bad = records[int(np.argmin(finite))]
                raise EmbeddingFileError(
                    f"{path}: the encoder returned NaN or inf for the captions of {bad.filename!r}; nothing after row "
                    f"{begin} was written. Received: filename={bad.filename!r}")
            _write_rows(f, begin, vectors, [r.filename for r in records], sentences, [r.class_id for r in records])
            if bar is not None:
                bar.update(begin + len(records))
        return _finish(f, partial, path)
    finally:
        if f is not None and f.id.valid:
            f.close()


# ---------------------------------------------------------------------------------------
# Reading


class EmbeddingFile:
    """An open, complete embedding file: metadata in memory, embeddings and captions read on demand.

    Attributes:
        path: the file.
        attrs: its attributes as Python values.
        filenames: list[str] [N].
        class_ids: int32 [N].
        embeddings: the h5py dataset [N, C, D]; slicing it reads only the rows asked for.
        captions: [N, C] sentences as str, read on slicing ("" where unknown).
        dim, captions_per_image, encoder: from the file.
    """

    def __init__(self, path: str, h5file: h5py.File):
        self.path = path
        self._file = h5file
        self.attrs = _attrs_dict(h5file)
        self.embeddings = h5file["embeddings"]
        self.captions = h5file["captions"].asstr()
        self.filenames = list(h5file["filenames"].asstr()[...])
        self.class_ids = np.asarray(h5file["class_ids"][...], np.int32)
        self.dim = int(self.embeddings.shape[-1])
        self.captions_per_image = int(self.embeddings.shape[1])
        self.encoder = str(self.attrs.get("encoder", ""))
        self._rows = None

    def __len__(self) -> int:
        return len(self.filenames)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        self._file.close()

    def rows_of(self, filenames) -> np.ndarray:
        """int64 row of each filename; a filename the file lacks is an error naming it."""
        if self._rows is None:
            self._rows = {name: row for row, name in enumerate(self.filenames)}
        rows = np.empty(len(filenames), np.int64)
        for i, name in enumerate(filenames):
            row = self._rows.get(name)
            if row is None:
                missing = sum(1 for n in filenames if n not in self._rows)
                raise EmbeddingFileError(
                    f"{self.path}: no embeddings for {name!r} ({missing} of the {len(filenames)} images are missing; "
                    f"was it written for another dataset or split?). Received: filename={name!r}")
            rows[i] = row
        return rows


def read_embeddings(path, expected_dim=None) -> EmbeddingFile:
    """Opens a complete embedding file for reading (see `EmbeddingFile`).

    Raises FileNotFoundError when `path` does not exist (saying so when an unfinished `.partial` waits to be resumed),
    EmbeddingFileError when it is not a complete t2i embedding file, and EmbeddingDimError when `expected_dim` is given
    and differs from the file's D.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        if os.path.exists(partial_path(path)):
            raise FileNotFoundError(
                f"{path}: no embedding file yet, but {partial_path(path)} holds an unfinished write; resume it by "
                f"re-running {_EMBED_COMMAND} with the same flags")
        raise FileNotFoundError(f"{path}: no such embedding file (write one with {_EMBED_COMMAND})")
    try:
        f = h5py.File(path, "r")
    except OSError as error:
        raise EmbeddingFileError(f"{path}: not a readable HDF5 file ({_one_line(error)})") from None
    try:
        for key in _DATASETS:
            if key not in f:
                raise EmbeddingFileError(
                    f"{path}: not a t2i embedding file: no '/{key}' dataset (files with one dataset per image convert "
                    f"with {_EMBED_COMMAND} --import_format=paarthneekhara)")
        version = f.attrs.get("format_version")
        if version is None or int(version) > FORMAT_VERSION:
            raise EmbeddingFileError(
                f"{path}: unsupported embedding format_version; this t2i reads up to {FORMAT_VERSION}. "
                f"Received: format_version={version!r}")
        if not bool(f.attrs.get("complete", False)):
            raise EmbeddingFileError(
                f"{path}: unfinished write ({int(f.attrs.get('num_written', 0))} of {f['embeddings'].shape[0]} rows); "
                f"resume it with {_EMBED_COMMAND} and the same flags")
        shape = f["embeddings"].shape
        if len(shape) != 3 or f["filenames"].shape != shape[:1] or f["captions"].shape != shape[:2] \
                or f["class_ids"].shape != shape[:1]:
            raise EmbeddingFileError(
                f"{path}: inconsistent shapes: /embeddings must be [N, C, D] with /filenames [N], /captions [N, C], "
                f"/class_ids [N]. Received: embeddings.shape={shape}, filenames.shape={f['filenames'].shape}")
        handle = EmbeddingFile(path, f)
    except BaseException:
        f.close()
        raise
    if expected_dim is not None and int(expected_dim) != handle.dim:
        handle.close()
        raise EmbeddingDimError(
            f"{path}: embeddings have dim {handle.dim} but the model expects {int(expected_dim)} "
            f"(--embedding_dim / the model's text input). Received: expected_dim={int(expected_dim)}")
    return handle


# ---------------------------------------------------------------------------------------
# tf.data


def _check_sampling(sampling: str, num_mean: int, captions_per_image: int, path: str) -> None:
    if sampling not in SAMPLING_MODES:
        raise ValueError(f"sampling must be one of {SAMPLING_MODES}. Received: sampling={sampling!r}")
    if sampling == "mean" and (isinstance(num_mean, bool) or not isinstance(num_mean, (int, np.integer))
                               or not 1 <= num_mean <= captions_per_image):
        raise ValueError(
            f"{path}: num_mean must be between 1 and the file's {captions_per_image} captions per image. "
            f"Received: num_mean={num_mean!r}")


def sample_caption_embedding(embeddings, captions, random_value, sampling: str, num_mean: int):
    """One caption's embedding (or the mean of `num_mean` distinct ones) and its sentence, from [C, D] and [C].

    Stateless ops keyed by a per-element random value: the choice is reproducible from the seed, yet differs between
    epochs because the value comes from `Dataset.random(..., rerandomize_each_iteration=True)`.
    """
    # caption_dataset draws its flip/crop seeds as pairs from the same seeded stream; the fixed second key keeps
    # these draws apart from those.
    seed = tf.stack([random_value, tf.constant(0x7432, tf.int64)])
    count = tf.shape(embeddings)[0]
    if sampling == "one":
        k = tf.random.stateless_uniform([], seed, minval=0, maxval=count, dtype=tf.int32)
        return embeddings[k], captions[k]
    chosen = tf.argsort(tf.random.stateless_uniform([count], seed))[:num_mean]
    return tf.reduce_mean(tf.gather(embeddings, chosen), axis=0), captions[chosen[0]]


def _read_rows_fn(handle: EmbeddingFile, with_captions: bool):
    def read(row):
        row = int(row)
        vectors = np.asarray(handle.embeddings[row], np.float32)
        if not with_captions:
            return vectors
        return vectors, np.asarray([c.encode("utf-8") for c in handle.captions[row]], dtype=object)

    return read


def _check_captions_agree(handle: EmbeddingFile, corpus, rows: np.ndarray, block: int = 1024) -> None:
    """The file's sentences (where it has them) must be the corpus' first C captions of the same image: a file
    embedded from another seed or edited text has the same filenames but describes other images."""
    position_of_row = np.full(len(handle), -1, np.int64)
    position_of_row[rows] = np.arange(len(rows))
    for begin in range(0, len(handle), block):
        texts = handle.captions[begin:begin + block]
        for offset, file_captions in enumerate(texts):
            position = position_of_row[begin + offset]
            if position < 0:
                continue
            record = corpus[int(position)]
            for k, sentence in enumerate(file_captions):
                if sentence and sentence != record.captions[k]:
                    raise EmbeddingFileError(
                        f"{handle.path}: caption {k} of {record.filename!r} differs from the corpus' (embedded from "
                        f"another seed, split or text?); re-run {_EMBED_COMMAND}. Received: caption={sentence!r}")


def embedding_pipeline(path, corpus, image_size: int = 64, training: bool = True, seed: int = 0,
                       sampling: str = "one", num_mean: int = 4, expected_dim=None, crop_to_bbox: bool = True,
                       channels: int = 3, on_error: str = "fail", cache_images: bool = False,
                       in_memory_bytes: int = 256 << 20) -> tf.data.Dataset:
    """Images of `corpus` joined by filename with their caption embeddings from `path`; unbatched, in corpus order.

    The file may list its images in any order and hold more images than the corpus (a file for all of Oxford-102
    serves the train split); every corpus filename must be in it. Its captions per image C may be fewer than the
    corpus' (paarthneekhara's files embed the first 5 of 10): file caption k is corpus caption k, and where the file
    stores sentences they must equal the corpus' (checked here, once).

    Each element: "image" float32 [S, S, channels] in [-1, 1] (from `caption_dataset`), "embedding" float32 [D],
    "caption" string (the sampled sentence; for "mean" the first of the averaged ones), "class_id" int32, "filename"
    string, "index" int64; and "label" float32 [24] for shapes (the image's multi-hot labels).

    sampling="one": one of the C captions, uniformly, per image and epoch; "mean": the mean of `num_mean` distinct
    captions' embeddings chosen at random (StackGAN's training input). The choices come from `seed` and change every
    epoch, reproducibly; so shuffle, batch and repeat after this, and do not `.cache()` after it (that would freeze
    the first epoch's choice). `image_size`, `training`, `seed`, `crop_to_bbox`, `channels` and `on_error` go to
    `caption_dataset`. `cache_images` keeps the decoded images in memory after the first epoch (right for
    deterministic images such as shapes' renders with training=False; augmented images must not be cached). The
    file's embeddings are read into memory once when they take at most `in_memory_bytes`; otherwise
    the file stays open, read row by row, as long as the dataset lives.
    """
    from t2i.data import captions as captions_lib

    handle = read_embeddings(path, expected_dim=expected_dim)
    file_c = handle.captions_per_image
    _check_sampling(sampling, num_mean, file_c, handle.path)
    if file_c > corpus.captions_per_image:
        raise EmbeddingFileError(
            f"{handle.path}: holds {file_c} embeddings per image but the corpus {corpus.name!r} has only "
            f"{corpus.captions_per_image} captions. Received: captions_per_image={corpus.captions_per_image}")
    rows = handle.rows_of([record.filename for record in corpus])
    _check_captions_agree(handle, corpus, rows)

    images = captions_lib.caption_dataset(corpus, image_size=image_size, training=training, seed=seed,
                                          crop_to_bbox=crop_to_bbox, channels=channels, on_error=on_error)
    if cache_images:
        images = images.cache()
    # Rows are looked up by the element's corpus position, not zipped: validation may drop unreadable images.
    randoms = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    shape = (file_c, handle.dim)
    if len(handle) * file_c * handle.dim * 4 <= in_memory_bytes:
        # Small enough to hold: one read now, then a gather per element instead of an HDF5 read through Python
        # (which costs more than a 32x32 training step on 2 cores).
        table = tf.constant(np.asarray(handle.embeddings[...], np.float32)[rows])

        def vectors_of(position):
            return tf.gather(table, position)
    else:
        row_of_position = tf.constant(rows, tf.int64)
        read = _read_rows_fn(handle, with_captions=False)

        def vectors_of(position):
            vectors = tf.numpy_function(read, [tf.gather(row_of_position, position)], tf.float32, stateful=False)
            vectors.set_shape(shape)
            return vectors

    def join(element, random_value):
        vectors = vectors_of(element["index"])
        embedding, caption = sample_caption_embedding(vectors, element["captions"][:file_c], random_value, sampling, num_mean)
        joined = {"image": element["image"], "embedding": embedding, "caption": caption,
                  "class_id": element["class_id"], "filename": element["filename"], "index": element["index"]}
        if "label" in element:  # shapes: the image's multi-hot labels
            joined["label"] = element["label"]
        return joined

    return tf.data.Dataset.zip(images, randoms).map(join, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def embedding_table_dataset(path, seed: int = 0, sampling: str = "one", num_mean: int = 4,
                            expected_dim=None) -> tf.data.Dataset:
    """The file's rows without images, in file order: for text-only models and checks of an embedding file.

    Elements: "embedding" float32 [D], "caption" string ("" where the file stores none), "class_id" int32,
    "filename" string, "index" int64 (the row). Sampling as in `embedding_pipeline`.
    """
    handle = read_embeddings(path, expected_dim=expected_dim)
    _check_sampling(sampling, num_mean, handle.captions_per_image, handle.path)
    table = tf.data.Dataset.from_tensor_slices({
        "row": np.arange(len(handle), dtype=np.int64),
        "filename": np.asarray(handle.filenames, dtype=object),
        "class_id": handle.class_ids,
    })
    randoms = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    read = _read_rows_fn(handle, with_captions=True)
    shape = (handle.captions_per_image, handle.dim)

    def join(element, random_value):
        vectors, sentences = tf.numpy_function(read, [element["row"]], (tf.float32, tf.string), stateful=False)
        vectors.set_shape(shape)
        sentences.set_shape(shape[:1])
        embedding, caption = sample_caption_embedding(vectors, sentences, random_value, sampling, num_mean)
        return {"embedding": embedding, "caption": caption, "class_id": element["class_id"],
                "filename": element["filename"], "index": element["row"]}

    return tf.data.Dataset.zip(table, randoms).map(join, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


# ---------------------------------------------------------------------------------------
# Importers


def _write_imported(output: str, overwrite: bool, num_rows: int, captions_per_image: int, dim: int, attrs: dict,
                    blocks) -> str:
    """Writes blocks of (embeddings, filenames, captions, class_ids) to a fresh file; imports never resume."""
    output = os.fspath(output)
    _refuse_existing(output, overwrite)
    partial = partial_path(output)
    if os.path.exists(partial):
        os.remove(partial)
    attrs = dict(attrs, format_version=FORMAT_VERSION, num_examples=num_rows, captions_per_image=captions_per_image)
    f = _create(partial, num_rows, captions_per_image, dim, attrs)
    try:
        start = 0
        for block in blocks:
            start = _write_rows(f, start, *block)
        if start != num_rows:
            raise EmbeddingFileError(f"{output}: wrote {start} of {num_rows} rows. Received: num_examples={num_rows}")
        return _finish(f, partial, output)
    finally:
        if f.id.valid:
            f.close()


def _stem(key: str) -> str:
    return os.path.splitext(key)[0]


def import_paarthneekhara(src_h5, output, filenames=None, captions=None, class_ids=None, overwrite: bool = False,
                          encoder: str = "skip_thought", dataset: str = "", split: str = "") -> str:
    """Converts a paarthneekhara/text-to-image file (one dataset [C, D] per image, keyed "image_00001.jpg") to ours.

    Filenames are the keys without extension, in sorted order unless `filenames` (keys, with or without extension)
    gives the rows to keep and their order. `captions` optionally maps a filename to its sentences (the first C are
    stored; the original script embedded the first 5 lines of each text_c10 file) and `class_ids` to its class;
    otherwise captions are "" and classes -1. That project encoded with skip-thought, hence the default `encoder`.
    """
    src_h5 = os.fspath(src_h5)
    if not os.path.exists(src_h5):
        raise FileNotFoundError(f"{src_h5}: no such file (--import_path)")
    try:
        src = h5py.File(src_h5, "r")
    except OSError as error:
        raise EmbeddingFileError(f"{src_h5}: not a readable HDF5 file ({_one_line(error)})") from None
    with src:
        keys = {}
        for key, item in src.items():
            if isinstance(item, h5py.Dataset):
                if _stem(key) in keys:
                    raise EmbeddingFileError(
                        f"{src_h5}: two datasets for image {_stem(key)!r} ({keys[_stem(key)]!r} and {key!r}). "
                        f"Received: key={key!r}")
                keys[_stem(key)] = key
        if not keys:
            raise EmbeddingFileError(f"{src_h5}: no datasets at the top level; expected one [C, D] array per image")
        if filenames is None:
            names = sorted(keys)
        else:
            names = [_stem(str(name)) for name in filenames]
            for name in names:
                if name not in keys:
                    raise EmbeddingFileError(f"{src_h5}: no dataset for {name!r}. Received: filename={name!r}")
        shape = src[keys[names[0]]].shape
        if len(shape) != 2 or 0 in shape:
            raise EmbeddingFileError(
                f"{src_h5}: dataset {keys[names[0]]!r} must be [captions, dim]. Received: shape={shape}")
        num_captions, dim = shape

        def sentences_of(name):
            if captions is None or name not in captions:
                return [""] * num_captions
            given = [str(s) for s in captions[name]]
            if len(given) < num_captions:
                raise EmbeddingFileError(
                    f"{src_h5}: {name!r} has {num_captions} embeddings but only {len(given)} captions were given. "
                    f"Received: len(captions)={len(given)}")
            return given[:num_captions]

        def blocks():
            for begin in range(0, len(names), _IMPORT_BLOCK_ROWS):
                block = names[begin:begin + _IMPORT_BLOCK_ROWS]
                vectors = []
                for name in block:
                    array = src[keys[name]]
                    if array.shape != shape:
                        raise EmbeddingFileError(
                            f"{src_h5}: dataset {keys[name]!r} has shape {array.shape}, unlike {keys[names[0]]!r}'s "
                            f"{shape}. Received: shape={array.shape}")
                    vectors.append(np.asarray(array, np.float32))
                yield (np.stack(vectors), block, [sentences_of(n) for n in block],
                       [int(class_ids.get(n, -1)) if class_ids is not None else -1 for n in block])

        attrs = {"encoder": encoder, "encoder_path": src_h5, "dataset": dataset, "split": split,
                 "corpus_options": json.dumps({"imported_from": "paarthneekhara"})}
        return _write_imported(output, overwrite, len(names), num_captions, dim, attrs, blocks())


def import_stackgan(data_dir, split: str, output, overwrite: bool = False, dataset: str = "") -> str:
    """Converts StackGAN's released char-CNN-RNN embeddings of `split` (read by `t2i.data.stackgan_pickles`) to ours.

    Rows keep the pickles' order; captions are "" (the pickles carry none) and the encoder is "char-CNN-RNN".
    """
    from t2i.data import stackgan_pickles

    data_dir = os.fspath(data_dir)
    split_data = stackgan_pickles.load_stackgan_split(data_dir, split)
    vectors = np.asarray(split_data.embeddings, np.float32)
    names = [str(name) for name in split_data.filenames]
    classes = np.asarray(split_data.class_ids, np.int32).reshape(-1)
    if vectors.ndim != 3 or len(names) != vectors.shape[0] or len(classes) != vectors.shape[0] or not len(names):
        raise EmbeddingFileError(
            f"{data_dir}: StackGAN {split} data must hold embeddings [N, C, D] with N filenames and class ids. "
            f"Received: embeddings.shape={vectors.shape}, filenames={len(names)}, class_ids={len(classes)}")
    num_rows, num_captions, dim = vectors.shape

    def blocks():
        for begin in range(0, num_rows, _IMPORT_BLOCK_ROWS):
            end = min(begin + _IMPORT_BLOCK_ROWS, num_rows)
            yield vectors[begin:end], names[begin:end], [[""] * num_captions] * (end - begin), classes[begin:end]

    attrs = {"encoder": "char-CNN-RNN", "encoder_path": data_dir,
             "dataset": dataset or os.path.basename(os.path.normpath(data_dir)), "split": split,
             "corpus_options": json.dumps({"imported_from": "stackgan"})}
    return _write_imported(output, overwrite, num_rows, num_captions, dim, attrs, blocks())


# ---------------------------------------------------------------------------------------
# What data_prep.embed_captions runs


def embed_corpus(output, dataset: str, encoder: str, encoder_path: str, data_dir: str = "", text_dir: str = "",
                 split: str = "train", num_examples: int = 10000, seed: int = 0, on_error: str = "fail",
                 batch_size: int = 64, overwrite: bool = False, resume: bool = True, progress: bool = True) -> str:
    """Loads the corpus and the encoder named by the flags and writes (or resumes) `output`; returns it."""
    from t2i.data import captions as captions_lib
    from t2i.text import encoders

    # Cheap checks first: loading an encoder or listing CUB takes a while.
    _refuse_existing(os.fspath(output), overwrite)
    if encoder not in encoders.ENCODER_MODULES:
        raise ValueError(f"Unknown encoder; expected one of {sorted(encoders.ENCODER_MODULES)}. "
                         f"Received: encoder={encoder!r}")
    corpus = captions_lib.load_corpus(dataset, data_dir=data_dir, text_dir=text_dir, split=split,
                                      num_examples=num_examples, seed=seed, on_error=on_error)
    layer = encoders.load_encoder(encoder, encoder_path)
    # Recorded absolute: training and sampling read it later, from other working directories.
    return write_embeddings(output, corpus, layer, batch_size=batch_size, overwrite=overwrite, resume=resume,
                            progress=progress, encoder_path=os.path.abspath(encoder_path))


def import_embeddings(import_format: str, import_path: str, output, split: str = "train", overwrite: bool = False,
                      dataset: str = "", data_dir: str = "", text_dir: str = "", on_error: str = "fail") -> str:
    """Converts `import_path` in `import_format` ("paarthneekhara": an .h5 file; "stackgan": the pickles' folder).

    For paarthneekhara files, a `dataset` with its `data_dir` fills in the captions and classes from that corpus.
    """
    if import_format not in IMPORT_FORMATS:
        raise ValueError(f"import_format must be one of {IMPORT_FORMATS}. Received: import_format={import_format!r}")
    if not import_path:
        raise ValueError(f"--import_format={import_format} needs --import_path. Received: import_path={import_path!r}")
    if import_format == "stackgan":
        return import_stackgan(import_path, split, output, overwrite=overwrite, dataset=dataset)
    captions = class_ids = None
    if dataset:
        from t2i.data import captions as captions_lib

        corpus = captions_lib.load_corpus(dataset, data_dir=data_dir, text_dir=text_dir, split=split,
                                          on_error=on_error)
        captions = {record.filename: record.captions for record in corpus}
        class_ids = {record.filename: record.class_id for record in corpus}
    # The file covers every image it was made for, whatever split the captions came from: no split attribute.
    return import_paarthneekhara(import_path, output, captions=captions, class_ids=class_ids, overwrite=overwrite,
                                 dataset=dataset)
