"""Dataset registry: config → unbatched `tf.data` of dicts, and the batched training pipeline around it.

Every builder yields dicts whose "image" is float32 in [-1, 1], [S, S, C] (shapes: uint8, scaled by the pipeline) and,
when the dataset has labels, a float32 "label" vector of `label_count(config)` entries: multi-hot for shapes and
iCLEVR, one-hot for a folder with class sub-folders. The trainer picks the keys it needs.
"""
import numpy as np
import tensorflow as tf

from t2i.data import captions, folder, iclevr, images, shapes

_SHUFFLE_BUFFER = 10000


def _shapes(config, split, training):
    del training  # No flips or crops: captions such as "left of" must stay true.
    dataset = shapes.shapes_dataset(
        num_examples=config.num_examples, image_size=config.image_size, seed=config.dataset_seed, split=split
    )
    # Rendering is deterministic, so the uint8 images are cached once and later epochs cost nothing.
    return dataset.cache(), config.num_examples


def _folder(config, split, training):
    del split
    dataset = folder.image_folder_dataset(
        config.data_dir, image_size=config.image_size, channels=config.channels,
        class_subfolders=config.class_subfolders, training=training, on_error=config.on_bad_image,
        seed=config.dataset_seed,
    )
    if config.class_subfolders:
        # Class ids come from the folder names (not from the files that survived validation), so the one-hot
        # width matches label_count() even when a class folder is empty or all of it was skipped.
        num_classes = len(folder.image_folder_classes(config.data_dir))
        dataset = dataset.map(
            lambda example: {**example, "label": tf.one_hot(example["label"], num_classes, dtype=tf.float32)},
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    return dataset, int(dataset.cardinality()) if dataset.cardinality() >= 0 else None


def _iclevr(config, split, training):
    data = iclevr.iclevr_dataset(
        config.data_dir, config.image_size, split=split, channels=config.channels, on_error=config.on_bad_image,
        training=training, seed=config.dataset_seed,
    )
    return data.dataset, data.num_examples


def _text(config, split, training):
    """Images with caption embeddings for the text-to-image models: "image", "embedding" (one caption's, or the mean
    of `num_mean`, drawn per image per epoch), "class_id" (-1 without classes), "caption", "filename"."""
    from t2i.data import embeddings

    if config.dataset == "stackgan":
        return _stackgan(config, split, training)
    corpus = captions.load_corpus(
        config.dataset, data_dir=config.data_dir, text_dir=config.text_dir, split=split,
        num_examples=config.num_examples, seed=config.dataset_seed, on_error=config.on_bad_image,
    )
    dataset = embeddings.embedding_pipeline(
        config.embeddings, corpus, image_size=config.image_size, training=training, seed=config.dataset_seed,
        sampling=config.embedding_sampling, num_mean=config.num_mean, expected_dim=config.embedding_dim or None,
        channels=config.channels, on_error=config.on_bad_image,
        # shapes' renders are deterministic (no augmentation: captions say "left of"), so they are drawn once.
        cache_images=config.dataset == "shapes",
    )
    return dataset, len(corpus)


def _stackgan(config, split, training):
    """StackGAN's released split: 76-px images for Stage-I sizes, 304-px for larger, char-CNN-RNN embeddings."""
    from t2i.data import embeddings, stackgan_pickles

    image_file = "76images.pickle" if config.image_size <= 64 else "304images.pickle"
    data = stackgan_pickles.load_stackgan_split(config.data_dir, split, image_file=image_file)
    if config.embedding_dim and data.embeddings.shape[-1] != config.embedding_dim:
        raise embeddings.EmbeddingDimError(
            f"{data.path}: embeddings have dim {data.embeddings.shape[-1]} but the model expects "
            f"{config.embedding_dim} (--embedding_dim). Received: embedding_dim={config.embedding_dim}")
    dataset = stackgan_pickles.stackgan_dataset(data, image_size=config.image_size, training=training,
                                                seed=config.dataset_seed)
    randoms = tf.data.Dataset.random(seed=config.dataset_seed, rerandomize_each_iteration=True)
    no_text = tf.constant([""] * data.embeddings.shape[1])

    def pick(element, random_value):
        embedding, _ = embeddings.sample_caption_embedding(
            element["embeddings"], no_text, random_value, config.embedding_sampling, config.num_mean
        )
        return {"image": element["image"], "embedding": embedding, "class_id": element["class_id"],
                "filename": element["filename"], "index": element["index"]}

    return tf.data.Dataset.zip(dataset, randoms).map(pick, num_parallel_calls=tf.data.AUTOTUNE), len(data)


def text_embedding_dim(config):
    """The caption-embedding size of the config's data (the HDF5 file's, or the StackGAN pickles')."""
    if config.dataset == "stackgan":
        from t2i.data import stackgan_pickles

        return int(stackgan_pickles.load_stackgan_split(config.data_dir, "train").embeddings.shape[-1])
    from t2i.data import embeddings

    with embeddings.read_embeddings(config.embeddings) as handle:
        return handle.dim


def text_embedding_statistics(config, block=1024):
    """(mean, std), float32 [D] each, over every caption embedding of the config's training data (the HDF5 file's
    rows, or the StackGAN pickles'); computed in float64 one block of rows at a time. A dimension that never varies
    gets std 1 (it is only shifted)."""
    if config.dataset == "stackgan":
        from t2i.data import stackgan_pickles

        values = np.asarray(stackgan_pickles.load_stackgan_split(config.data_dir, "train").embeddings, np.float64)
        values = values.reshape(-1, values.shape[-1])
        mean, var = values.mean(0), values.var(0)
    else:
        from t2i.data import embeddings

        with embeddings.read_embeddings(config.embeddings) as handle:
            rows = handle.embeddings
            count, total, squares = 0, np.zeros(rows.shape[-1]), np.zeros(rows.shape[-1])
            shift = np.asarray(rows[0], np.float64).reshape(-1, rows.shape[-1]).mean(0)  # keeps the sums accurate
            for start in range(0, rows.shape[0], block):
                values = np.asarray(rows[start:start + block], np.float64).reshape(-1, rows.shape[-1]) - shift
                count += len(values)
                total += values.sum(0)
                squares += np.square(values).sum(0)
        mean = total / count
        var = np.maximum(squares / count - np.square(mean), 0.0)
        mean = mean + shift
    std = np.sqrt(var)
    std = np.where(std > 1e-8 * max(1.0, float(np.abs(mean).max())), std, 1.0)
    return mean.astype(np.float32), std.astype(np.float32)


def text_encoder_record(config):
    """(encoder kind, encoder path) recorded in the embeddings file ("" when unknown, e.g. imported files)."""
    if config.dataset == "stackgan" or not config.embeddings:
        return "", ""
    from t2i.data import embeddings

    with embeddings.read_embeddings(config.embeddings) as handle:
        return str(handle.attrs.get("encoder", "")), str(handle.attrs.get("encoder_path", ""))


BUILDERS = {"shapes": _shapes, "folder": _folder, "iclevr": _iclevr, "cub": _text, "oxford": _text,
            "stackgan": _text}

# Width of the "label" vector each dataset yields, read from metadata only (no image is decoded).
_LABEL_COUNTS = {
    "shapes": lambda config: shapes.NUM_LABELS,
    "folder": lambda config: len(folder.image_folder_classes(config.data_dir)) if config.class_subfolders else 0,
    "iclevr": lambda config: len(iclevr.read_objects(config.data_dir)),
    "cub": lambda config: 0,
    "oxford": lambda config: 0,
    "stackgan": lambda config: 0,
}


def _check_dataset(config):
    if config.dataset not in BUILDERS:
        raise ValueError(f"Unknown dataset; expected one of {sorted(BUILDERS)}. Received: dataset={config.dataset!r}")


def build_dataset(config, split="train", training=True):
    """(unbatched dataset, number of examples or None) for `config.dataset`; text models get caption embeddings."""
    _check_dataset(config)
    if config.uses_text:
        return _text(config, split, training)
    return BUILDERS[config.dataset](config, split, training)


def label_count(config):
    """Size of the "label" vector `build_dataset(config)` yields; 0 when the dataset has no labels."""
    _check_dataset(config)
    return _LABEL_COUNTS[config.dataset](config)


def _iclevr_names(config):
    objects = iclevr.read_objects(config.data_dir)
    return tuple(sorted(objects, key=objects.get))


_LABEL_NAMES = {
    "shapes": lambda config: tuple(shapes.LABEL_NAMES),
    "folder": lambda config: tuple(folder.image_folder_classes(config.data_dir)) if config.class_subfolders else (),
    "iclevr": _iclevr_names,
}


def label_names(config):
    """Names of the label vector's entries, in index order (`t2i-sample --labels` accepts them)."""
    _check_dataset(config)
    return _LABEL_NAMES[config.dataset](config)


def _shapes_conditions(config, indices):
    # Labels do not depend on the image size, so the smallest raster is the cheapest way to get them.
    return [
        shapes.render_example(int(i), seed=config.dataset_seed, image_size=shapes.MIN_IMAGE_SIZE, split="test")["label"]
        for i in indices
    ]


def _iclevr_conditions(config, indices):
    conditions = iclevr.condition_labels(config.data_dir)
    return conditions[indices % len(conditions)]


def _folder_conditions(config, indices):
    num_classes = label_count(config)
    if num_classes == 0:
        return np.zeros((len(indices), 0), np.float32)
    return np.eye(num_classes, dtype=np.float32)[indices % num_classes]


_CONDITIONS = {"shapes": _shapes_conditions, "folder": _folder_conditions, "iclevr": _iclevr_conditions}


def condition_examples(config, num, seed=0):
    """float32 [num, label_count(config)]: label vectors to sample with (progress grids, `t2i-sample`).

    Conditions a trained model should be judged on, in a fixed order: shapes → the labels of held-out (test split)
    examples; iCLEVR → the evaluation conditions of test.json, cycled; folder with classes → one-hot of classes
    0, 1, 2, ... cycled (no labels: shape [num, 0]). `seed` picks the window: entries seed·num to
    seed·num + num − 1 of that sequence, so seed 0 always gives the same conditions and other seeds page onwards.
    """
    _check_dataset(config)
    for name, value in (("num", num), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer. Received: {name}={value!r}")
    indices = np.arange(int(seed) * int(num), (int(seed) + 1) * int(num))
    rows = _CONDITIONS[config.dataset](config, indices)
    return np.asarray(rows, np.float32).reshape(int(num), label_count(config))


def _as_float_images(example):
    example = dict(example)
    if "image" in example and example["image"].dtype == tf.uint8:
        example["image"] = images.to_unit_range(example["image"])
    return example


def training_pipeline(dataset, batch_size, keys=("image",), seed=0, shuffle_buffer=_SHUFFLE_BUFFER):
    """Shuffle → repeat → [-1, 1] → batch (full batches only, for equal replica shards) → prefetch.

    tf.data's autotuning model is switched off (AUTOTUNE parallelism then means one call per core, and the prefetch
    buffer still grows on demand): its optimisation thread sleeps for up to 60 s between rounds once a run is a few
    minutes old, and destroying the iterator at the end of `fit` waited for that sleep — 40–50 s of a 7500-step run
    spent after its last step (TensorFlow 2.21, seen with gdb: the main thread in ~RootDataset::Iterator, the
    `Model::OptimizeLoop` thread in a timed wait).
    """
    dataset = dataset.map(lambda example: {key: example[key] for key in keys})
    dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()
    dataset = dataset.map(_as_float_images, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)
