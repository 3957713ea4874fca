"""Dataset registry: config → unbatched `tf.data` of dicts, and the batched training pipeline around it.

Every builder yields dicts whose "image" is float32 in [-1, 1], [S, S, C]; the trainer picks the keys it needs.
"""
import tensorflow as tf

from t2i.data import folder, images, shapes

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
    return dataset, int(dataset.cardinality()) if dataset.cardinality() >= 0 else None


BUILDERS = {"shapes": _shapes, "folder": _folder}


def build_dataset(config, split="train", training=True):
    """(unbatched dataset, number of examples or None) for `config.dataset`."""
    if config.dataset not in BUILDERS:
        raise ValueError(f"Unknown dataset; expected one of {sorted(BUILDERS)}. Received: dataset={config.dataset!r}")
    return BUILDERS[config.dataset](config, split, training)


def _as_float_images(example):
    example = dict(example)
    if example["image"].dtype == tf.uint8:
        example["image"] = images.to_unit_range(example["image"])
    return example


def training_pipeline(dataset, batch_size, keys=("image",), seed=0, shuffle_buffer=_SHUFFLE_BUFFER):
    """Shuffle → repeat → [-1, 1] → batch (full batches only, for equal replica shards) → prefetch."""
    dataset = dataset.map(lambda example: {key: example[key] for key in keys})
    dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()
    dataset = dataset.map(_as_float_images, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
