"""Fixed generator inputs for progress grids, `t2i-sample` and exports: noise, grid conditions, low-res images.

One module decides what a model is sampled with, so the grid a run writes while training and the grid `t2i-sample`
writes from its checkpoint agree for the same seed.
"""
import json
import math

import numpy as np

from t2i.data import datasets
from t2i.data.images import to_unit_range
from t2i.training.srgan import low_resolution


def noise_distribution(config):
    """BEGAN draws z ~ U[-1, 1]; the others N(0, I)."""
    return "uniform" if config.model == "began" else "normal"


def fixed_noise(config, num_samples, seed):
    rng = np.random.default_rng(seed)
    if noise_distribution(config) == "uniform":
        return rng.uniform(-1.0, 1.0, (num_samples, config.noise_dim)).astype("float32")
    return rng.standard_normal((num_samples, config.noise_dim)).astype("float32")


def grid_columns(num_samples):
    """The column count `t2i.utils.images.make_grid` uses."""
    return int(math.ceil(math.sqrt(num_samples)))


def rows_of(conditions, num_samples):
    """Repeats each condition along one grid row: every row shows one condition with different noise."""
    columns = grid_columns(num_samples)
    conditions = np.asarray(conditions, dtype="float32")
    return np.repeat(conditions, columns, axis=0)[:num_samples]


def grid_conditions(config, num_samples, seed=0):
    """[num_samples, N] label vectors: one held-out condition of the dataset per grid row."""
    rows = int(math.ceil(num_samples / grid_columns(num_samples)))
    return rows_of(datasets.condition_examples(config, rows, seed=seed), num_samples)


def reference_images(config, num_samples, seed=0):
    """(images [n, S, S, C] in [-1, 1], labels or None) from the held-out split: what SRGAN grids upscale."""
    import tensorflow as tf

    dataset, _ = datasets.build_dataset(config, split="test" if config.dataset == "shapes" else "train",
                                        training=False)
    batch = next(iter(dataset.take(num_samples).batch(num_samples)))
    images = to_unit_range(batch["image"]) if batch["image"].dtype == tf.uint8 else batch["image"]
    labels = batch["label"].numpy().astype("float32") if config.uses_labels else None
    del seed  # The held-out split is already a fixed, seeded order.
    return images.numpy().astype("float32"), labels


def generator_inputs(config, num_samples, seed=0, labels=None):
    """What the generator of `config` is called on for a grid of `num_samples` (a tensor or a dict)."""
    if config.model == "srgan":
        images, image_labels = reference_images(config, num_samples, seed)
        low_res = low_resolution(images, config.sr_scale).numpy()
        if not config.uses_labels:
            return low_res
        return {"low_res": low_res, "labels": image_labels if labels is None else labels}
    noise = fixed_noise(config, num_samples, seed)
    if not config.uses_labels:
        return noise
    if labels is None:
        labels = grid_conditions(config, num_samples, seed)
    return {"noise": noise, "labels": np.asarray(labels, dtype="float32")}


def parse_conditions(values, label_names):
    """Multi-hot rows from strings such as "red circle, blue square" or "0,12" (one string per condition).

    An unknown name is a ValueError naming it and the flag, listing a few known names.
    """
    index = {name.lower(): i for i, name in enumerate(label_names)}
    rows = []
    for value in values:
        row = np.zeros(len(label_names), dtype="float32")
        for item in (part.strip() for part in value.split(",")):
            if not item:
                continue
            if item.isdigit() and int(item) < len(label_names):
                row[int(item)] = 1.0
            elif item.lower() in index:
                row[index[item.lower()]] = 1.0
            else:
                known = ", ".join(label_names[:6])
                raise ValueError(f"--labels: unknown label {item!r}; known labels are {known}, ... "
                                 f"({len(label_names)} in all) or their indices. Received: labels={value!r}")
        rows.append(row)
    return np.stack(rows)


def conditions_for_grid(rows, num_samples):
    """Cycles the given conditions over the grid's rows, each repeated along its row."""
    rows = np.asarray(rows, dtype="float32")
    needed = int(math.ceil(num_samples / grid_columns(num_samples)))
    return rows_of(rows[np.arange(needed) % len(rows)], num_samples)


def export_metadata(config):
    """What a client of an export needs to build valid inputs, stored beside the SavedModel."""
    metadata = {"model": config.model, "noise_distribution": noise_distribution(config),
                "config": json.loads(config.to_json())}
    if config.uses_labels:
        metadata["label_names"] = list(datasets.label_names(config))
    return metadata
