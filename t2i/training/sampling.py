"""Fixed generator inputs for progress grids, `t2i-sample` and exports: noise, grid conditions, low-res images.

One module decides what a model is sampled with, so the grid a run writes while training and the grid `t2i-sample`
writes from its checkpoint agree for the same seed.
"""
import json
import math

import numpy as np

from t2i import configs
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


# ---- text-to-image --------------------------------------------------------------------------------------------


def default_captions(config, num):
    """`num` fixed captions to judge a text model by: held-out (test split) captions for shapes, else the first
    caption of the first images of the embeddings file."""
    if config.dataset == "shapes":
        from t2i.data import shapes

        return [shapes.example_captions(i, seed=config.dataset_seed, split="test")[0] for i in range(num)]
    return [row[0] for row in _file_rows(config, num)[1]]


def _file_rows(config, num):
    """(embeddings [num, D] of caption 0, captions [num][C]) of the first `num` rows of the training embeddings."""
    if config.dataset == "stackgan":
        from t2i.data import stackgan_pickles

        data = stackgan_pickles.load_stackgan_split(config.data_dir, "train")
        rows = np.arange(num) % len(data)
        return data.embeddings[rows, 0].astype("float32"), [[name] for name in np.asarray(data.filenames)[rows]]
    from t2i.data import embeddings as embeddings_lib

    with embeddings_lib.read_embeddings(config.embeddings) as handle:
        rows = np.arange(num) % len(handle)
        vectors = np.stack([np.asarray(handle.embeddings[int(r), 0], "float32") for r in rows])
        captions = [list(handle.captions[int(r)]) for r in rows]
    return vectors, captions


def text_encoder(config):
    """The sentence encoder the run's embeddings came from (a Keras layer strings → vectors), or None if unknown."""
    if not config.text_encoder or not config.text_encoder_path:
        return None
    from t2i.text import encoders

    return encoders.load_encoder(config.text_encoder, config.text_encoder_path)


def embed_captions(config, captions, encoder=None):
    """float32 [len(captions), embedding_dim] from the run's encoder (or `encoder`, already loaded); a clear error if
    the run has none."""
    if encoder is None:
        encoder = text_encoder(config)
    if encoder is None:
        raise ValueError(
            f"--text: the run's embeddings ({config.embeddings or config.dataset}) record no loadable encoder; "
            "set --text_encoder and --text_encoder_path (a seq2seq, skip_thought or hub encoder)"
        )
    from t2i.text import encoders

    vectors = encoders.encode(encoder, captions)
    if vectors.shape[-1] != config.embedding_dim:
        raise ValueError(f"--text_encoder_path: {config.text_encoder_path} gives {vectors.shape[-1]}-d vectors but "
                         f"the model takes {config.embedding_dim}-d embeddings")
    return vectors


def grid_text(config, num_samples, captions=None):
    """(embeddings [num_samples, D], the caption of each grid row): one caption per row, cycled.

    Without `captions`, the dataset's fixed held-out captions (`default_captions`); they are embedded with the run's
    encoder, or — when the embeddings came from an encoder t2i cannot load (StackGAN's char-CNN-RNN) — taken from
    the embeddings themselves.
    """
    rows = int(math.ceil(num_samples / grid_columns(num_samples)))
    encoder = text_encoder(config)
    if captions:
        captions = [captions[i % len(captions)] for i in range(rows)]
        vectors = embed_captions(config, captions, encoder)
    elif encoder is not None:
        captions = default_captions(config, rows)
        vectors = embed_captions(config, captions, encoder)
    else:
        vectors, all_captions = _file_rows(config, rows)
        captions = [row[0] for row in all_captions]
    return rows_of(vectors, num_samples), captions


def grid_captions(config, num_samples):
    """The caption of each row of the progress grids (`grid_text`'s second half, without running the encoder)."""
    rows = int(math.ceil(num_samples / grid_columns(num_samples)))
    if config.sample_text_file:
        given = read_caption_file(config.sample_text_file)
        return [given[i % len(given)] for i in range(rows)]
    if config.text_encoder and config.text_encoder_path:
        return default_captions(config, rows)
    return [row[0] for row in _file_rows(config, rows)[1]]


def read_caption_file(path):
    """Non-empty lines of a caption file (`--text_file`, `--sample_text_file`)."""
    with open(path, encoding="utf-8") as f:
        captions = [line.strip() for line in f if line.strip()]
    if not captions:
        raise ValueError(f"{path}: no captions (one per line expected)")
    return captions


def generator_inputs(config, num_samples, seed=0, labels=None, captions=None):
    """What the generator of `config` is called on for a grid of `num_samples` (a tensor or a dict)."""
    if config.model in configs.TEXT_MODELS:
        noise = fixed_noise(config, num_samples, seed)
        if not config.uses_text:
            return noise
        if not captions and config.sample_text_file:
            captions = read_caption_file(config.sample_text_file)
        embedding, _ = grid_text(config, num_samples, captions)
        return {"noise": noise, "embedding": embedding}
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
    if config.uses_text:
        metadata["embedding_dim"] = config.embedding_dim
        metadata["text_encoder"] = {"kind": config.text_encoder, "path": config.text_encoder_path}
    return metadata
