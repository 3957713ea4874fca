"""Scores generators of `shapes` with the evaluator classifier: iCLEVR accuracy, caption accuracy, evaluator FID.

Metric functions (pure numpy, tested against hand-computed values):

- `iclevr_accuracy(scores, requested)`: iCLEVR's evaluator definition. For each image, take the k labels the
  evaluator scores highest, k = the number of objects requested for that image; accuracy = hits / total requested
  objects over all images. Ties are broken towards the lower label index (a stable sort of the scores), so equal
  scores are never counted twice and the result does not depend on the platform.
- `caption_labels(caption)`: the multi-hot labels a `shapes` caption requests — every "<colour> <shape>" mention
  (plurals such as "two purple squares" included, though the embedded captions never use them). `shapes`
  captions name exactly the objects of their image, so this recovers the image's labels.
- `caption_attribute_accuracy(scores, captions)`: the same top-k rule with the labels parsed from each caption.
- FID in the evaluator's feature space: `t2i.evaluation.metrics.fid_from_stats` of the evaluator's penultimate
  features of generated images against those of real test-split images (cached by `reference_stats`).

Metric names carry the number of images they were measured on, as published numbers do: "accuracy1k",
"caption_accuracy1k", "fid1k" for 1000 images (`count_suffix`: 500 → "fid500", 10000 → "fid10k").

`run_evaluation` is what `t2i-eval` runs: one checkpoint of a run, a SavedModel export, or every checkpoint of a
run; it appends one JSON line per evaluation to `metrics.jsonl`, writes the top-k / bottom-k sample sheets, and
with every checkpoint the score-vs-step curve and `best_checkpoint.json`.

What is generated, for every evaluation the same (fixed seeds), so checkpoints are compared on equal terms:
noise = `sampling.fixed_noise(config, n, seed)`; label-conditioned models get the labels of test-split examples
0..n−1 (`datasets.condition_examples(config, n, 0)`); text models get caption (i mod 10) of test-split example i,
embedded with the run's encoder (Conditioning Augmentation noise restarted from `seed`); the FID reference is the
real test-split images 0..n−1 at the generator's resolution, so for conditional models both sets share one label
distribution.
"""
from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import time

import numpy as np

from t2i.data import shapes
from t2i.evaluation.metrics import GaussianStats, MetricError, fid_from_stats

__all__ = [
    "EvaluationError",
    "top_k_hits",
    "iclevr_accuracy",
    "caption_labels",
    "caption_attribute_accuracy",
    "count_suffix",
    "metric_name",
    "rank_images",
    "evaluator_fid",
    "Generated",
    "evaluation_captions",
    "evaluation_inputs",
    "generate_from_generator",
    "generate_from_saved_model",
    "reference_statistics_for",
    "Scored",
    "score",
    "checkpoint_step",
    "best_record",
    "plot_score_curve",
    "write_sheets",
    "EvaluationReport",
    "run_evaluation",
]

METRICS_FILE = "metrics.jsonl"
CURVE_FILE = "score_curve.png"
BEST_FILE = "best_checkpoint.json"
TOP_SHEET = "top_samples.png"
BOTTOM_SHEET = "bottom_samples.png"
SHEETS_LISTING = "samples_sheets.txt"


class EvaluationError(ValueError):
    """An evaluation that cannot run as asked (conflicting flags, a run the evaluator cannot score)."""


# ---------------------------------------------------------------------------------------------------------------
# Metric functions


def _score_matrix(scores, requested):
    scores = np.asarray(scores, np.float64)
    wanted = np.asarray(requested, np.float64)
    if scores.ndim != 2 or wanted.shape != scores.shape:
        raise MetricError(f"scores and requested labels must both be [num_images, num_labels]. "
                          f"Received: scores.shape={scores.shape}, requested.shape={wanted.shape}")
    if not np.all(np.isfinite(scores)):
        raise MetricError("Evaluator scores contain NaN or infinity. Received: scores=non-finite")
    return scores, wanted > 0.5


def top_k_hits(scores, requested) -> tuple[np.ndarray, np.ndarray]:
    """(hits [n], requested counts [n]): per image, how many of its k top-scored labels were requested (k = count).

    Args:
        scores: [n, L] probabilities or logits (only the order matters).
        requested: [n, L] multi-hot requested labels.

    Ties in `scores` go to the lower label index (stable sort), so e.g. scores [0.5, 0.5, 0.1] with label 1
    requested (k = 1) give 0 hits: label 0 is taken first.
    """
    scores, wanted = _score_matrix(scores, requested)
    counts = wanted.sum(axis=1)
    order = np.argsort(-scores, axis=1, kind="stable")
    within_top_k = np.arange(scores.shape[1])[None, :] < counts[:, None]
    hits = (np.take_along_axis(wanted, order, axis=1) & within_top_k).sum(axis=1)
    return hits.astype(np.int64), counts.astype(np.int64)


def iclevr_accuracy(scores, requested) -> float:
    """iCLEVR accuracy: Σ hits / Σ requested objects, with each image's top-k labels (k = its object count)."""
    hits, counts = top_k_hits(scores, requested)
    if counts.sum() == 0:
        raise MetricError("No labels were requested, so there is nothing to be accurate about. "
                          "Received: requested=all zero")
    return float(hits.sum() / counts.sum())


_MENTION = re.compile(
    r"\b(" + "|".join(shapes.COLOURS) + r")\s+(" + "|".join(shapes.SHAPES) + r")s?\b", re.IGNORECASE)
_LABEL_INDEX = {name: i for i, name in enumerate(shapes.LABEL_NAMES)}


def caption_labels(caption: str) -> np.ndarray:
    """float32 [24]: 1 for every "<colour> <shape>" (or plural "<colour> <shape>s") the caption mentions.

    "an orange square to the left of a white circle." → orange square, white circle. Counts and articles do not
    matter: the label vector is multi-hot.
    """
    labels = np.zeros(shapes.NUM_LABELS, np.float32)
    for colour, shape in _MENTION.findall(caption):
        labels[_LABEL_INDEX[f"{colour.lower()} {shape.lower()}"]] = 1.0
    return labels


def caption_attribute_accuracy(scores, captions) -> float:
    """iCLEVR accuracy against the labels each caption requests (`caption_labels`); one caption per image."""
    requested = np.asarray([caption_labels(c) for c in captions], np.float32).reshape(-1, shapes.NUM_LABELS)
    return iclevr_accuracy(scores, requested)


def count_suffix(num_images: int) -> str:
    """Sample count as metric names carry it: 1000 → "1k", 10000 → "10k", 500 → "500", 2500 → "2500"."""
    num_images = int(num_images)
    return f"{num_images // 1000}k" if num_images >= 1000 and num_images % 1000 == 0 else str(num_images)


def metric_name(base: str, num_images: int) -> str:
    return f"{base}{count_suffix(num_images)}"


def rank_images(scores, requested=None) -> np.ndarray:
    """Image indices from best to worst as the evaluator sees them.

    With requested labels: by the fraction of requested labels found in the image's top-k, then by the mean score
    of the requested labels (so among images that get everything right, the most convincing come first).
    Without (unconditional models): by the evaluator's highest label score — how clearly the image shows at least
    one object. Equal images keep their generation order.
    """
    scores = np.asarray(scores, np.float64)
    if requested is None:
        return np.argsort(-scores.max(axis=1), kind="stable")
    hits, counts = top_k_hits(scores, requested)
    wanted = np.asarray(requested, np.float64) > 0.5
    fraction = hits / np.maximum(counts, 1)
    mean_requested = (scores * wanted).sum(axis=1) / np.maximum(counts, 1)
    # lexsort: last key is primary; negated for descending order; stable for ties.
    return np.lexsort((np.arange(len(scores)), -mean_requested, -fraction))


def evaluator_fid(generated: GaussianStats, reference: GaussianStats) -> float:
    """FID between generated and real feature statistics of the evaluator (its penultimate layer)."""
    return fid_from_stats(generated, reference)


def _sigmoid(logits):
    # tanh form: no overflow warnings for large |logits|, unlike 1 / (1 + exp(−x)).
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(logits, np.float64)))


# ---------------------------------------------------------------------------------------------------------------
# Generating the evaluation set


@dataclasses.dataclass
class Generated:
    """Generated images with what was asked of them."""

    images: np.ndarray  # float32 [n, S, S, 3] in [-1, 1]
    requested: np.ndarray | None  # float32 [n, 24] multi-hot: labels given, or parsed from the captions
    captions: list | None  # text models: the caption of each image


def _check_evaluable(config, source_flag):
    if config.dataset != "shapes":
        raise EvaluationError(f"{source_flag}: the shapes evaluator scores models trained on --dataset=shapes. "
                              f"Received: dataset={config.dataset}")
    if config.model == "srgan":
        raise EvaluationError(f"{source_flag}: t2i-eval scores generators of noise, labels or text; "
                              f"super-resolution is not evaluated. Received: model={config.model}")
    if config.channels != 3:
        raise EvaluationError(f"{source_flag}: the evaluator reads RGB images. Received: channels={config.channels}")


def evaluation_captions(config, num_images: int) -> list:
    """Caption (i mod 10) of test-split example i, i < num_images: held-out captions of every template kind."""
    return [shapes.example_captions(i, seed=config.dataset_seed, split="test")[i % shapes.CAPTIONS_PER_IMAGE]
            for i in range(num_images)]


def evaluation_inputs(config, num_images: int, seed: int = 0):
    """(noise [n, noise_dim], requested labels [n, 24] or None, captions or None) of a `shapes` evaluation."""
    from t2i.data import datasets
    from t2i.training import sampling

    noise = sampling.fixed_noise(config, num_images, seed)
    if config.uses_text:
        captions = evaluation_captions(config, num_images)
        return noise, np.stack([caption_labels(c) for c in captions]), captions
    if config.uses_labels:
        return noise, datasets.condition_examples(config, num_images, seed=0), None
    return noise, None, None


def _batches(count, batch_size):
    for start in range(0, count, batch_size):
        yield slice(start, min(start + batch_size, count))


def _restart_conditioning_noise(generator, seed):
    """Restarts every Conditioning Augmentation noise sequence from `seed`: text evaluations are reproducible."""
    from t2i.layers.conditioning import ConditioningAugmentation

    layers = [layer for layer in generator._flatten_layers() if isinstance(layer, ConditioningAugmentation)]
    for i, layer in enumerate(layers):
        state = layer.seed_generator.state
        state.assign(np.asarray([seed, i + 1], dtype=state.dtype))


def generate_from_generator(generator, config, num_images: int, seed: int = 0, batch_size: int = 100) -> Generated:
    """The evaluation set of a Keras generator (restored from a run) in batches of `batch_size`.

    Text generators draw their Conditioning Augmentation noise batch by batch from a sequence restarted at `seed`:
    the same seed and batch size give the same images, whatever the generator did before.
    """
    from t2i.export.serving import image_output
    from t2i.training import sampling

    noise, requested, captions = evaluation_inputs(config, num_images, seed)
    condition = None
    if config.uses_text:
        condition = ("embedding", sampling.embed_captions(config, captions))
        _restart_conditioning_noise(generator, seed)
    elif config.uses_labels:
        condition = ("labels", requested)
    images = []
    for part in _batches(num_images, batch_size):
        inputs = noise[part] if condition is None else {"noise": noise[part], condition[0]: condition[1][part]}
        images.append(np.asarray(image_output(generator, generator(inputs, training=False)), np.float32))
    return Generated(np.concatenate(images), requested, captions)


def generate_from_saved_model(path, num_images: int, seed: int = 0, batch_size: int = 100):
    """(Generated, config) from a t2i SavedModel export; the same images as its run's checkpoint for the same seed.

    String-input text exports draw their noise inside the model (`seeded` signature, seed `seed` + batch index),
    so their images differ from the checkpoint's, though the captions are the same.
    """
    import tensorflow as tf

    from t2i import configs
    from t2i.export.saved_model import read_metadata

    path = os.fspath(path)
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise FileNotFoundError(f"--saved_model: no saved_model.pb in {path!r}. Received: saved_model={path!r}")
    metadata = read_metadata(path)
    if "config" not in metadata:
        raise EvaluationError(f"--saved_model: {path!r} has no assets.extra/t2i.json (not a t2i generator export). "
                              f"Received: saved_model={path!r}")
    config = configs.TrainConfig.from_dict(metadata["config"])
    _check_evaluable(config, "--saved_model")
    loaded = tf.saved_model.load(path)
    noise, requested, captions = evaluation_inputs(config, num_images, seed)
    images = []
    if metadata.get("text_input"):
        serve = loaded.signatures["seeded"]
        for index, part in enumerate(_batches(num_images, batch_size)):
            outputs = serve(text=tf.constant(captions[part]), seed=tf.constant(seed + index, tf.int64))
            images.append(outputs["images_float"].numpy())
    else:
        from t2i.training import sampling

        serve = loaded.signatures["serving_default"]
        named = {"noise": noise}
        if config.uses_text:
            named["embedding"] = sampling.embed_captions(config, captions)
        elif config.uses_labels:
            named["labels"] = requested
        else:
            named = {metadata["inputs"][0]: noise}
        for part in _batches(num_images, batch_size):
            outputs = serve(**{name: tf.constant(value[part]) for name, value in named.items()})
            images.append(outputs["images_float"].numpy())
    return Generated(np.concatenate(images).astype(np.float32), requested, captions), config


def reference_statistics_for(config, evaluator, num_images: int, cache_dir="", batch_size: int = 100) -> GaussianStats:
    """Evaluator features of real test-split images 0..num_images−1 at the run's resolution, cached by key."""
    from t2i.evaluation import features, reference_stats

    key = reference_stats.reference_key(dataset="shapes", split="test", resolution=config.image_size,
                                        extractor=evaluator, num_images=int(num_images),
                                        dataset_seed=int(config.dataset_seed))

    def compute():
        dataset = shapes.shapes_dataset(int(num_images), config.image_size, seed=config.dataset_seed, split="test")
        return features.extract(evaluator, dataset.batch(batch_size), batch_size=batch_size, keep_logits=False).stats

    return reference_stats.reference_statistics(cache_dir, key, compute)


# ---------------------------------------------------------------------------------------------------------------
# Scoring


@dataclasses.dataclass
class Scored:
    """Metrics of one evaluation and what the sample sheets need."""

    metrics: dict  # {"accuracy1k": ..., "fid1k": ...}
    num_images: int
    probabilities: np.ndarray  # [n, 24]
    order: np.ndarray  # image indices, best first (`rank_images`)
    generated: Generated


def score(generated: Generated, evaluator, reference: GaussianStats, batch_size: int = 100) -> Scored:
    """Runs the evaluator over the generated images and computes the metrics that apply to them.

    Label-conditioned sets get "accuracy<n>", text sets "caption_accuracy<n>" (labels parsed from the captions),
    every set "fid<n>".
    """
    from t2i.evaluation import features

    extracted = features.extract(evaluator, generated.images, batch_size=batch_size, keep_logits=True)
    probabilities = _sigmoid(extracted.logits)
    n = extracted.num_images
    metrics = {}
    if generated.captions is not None:
        metrics[metric_name("caption_accuracy", n)] = caption_attribute_accuracy(probabilities, generated.captions)
    elif generated.requested is not None:
        metrics[metric_name("accuracy", n)] = iclevr_accuracy(probabilities, generated.requested)
    metrics[metric_name("fid", n)] = evaluator_fid(extracted.stats, reference)
    return Scored(metrics, n, probabilities, rank_images(probabilities, generated.requested), generated)


def checkpoint_step(path) -> int | None:
    """The training step a checkpoint was written at (its saved global step; else its ckpt-<n> suffix)."""
    import tensorflow as tf

    try:
        return int(tf.train.load_checkpoint(path).get_tensor("global_step/.ATTRIBUTES/VARIABLE_VALUE"))
    except (tf.errors.OpError, ValueError, KeyError):
        match = re.search(r"-(\d+)$", os.fspath(path))
        return int(match.group(1)) if match else None


# ---------------------------------------------------------------------------------------------------------------
# Outputs: JSON lines, curve, sheets


def _append_jsonl(path, record):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _primary_metric(record):
    """(metric name, higher_is_better) a record is judged by: its accuracy if any, else its FID."""
    for key in record:
        if key.startswith(("accuracy", "caption_accuracy")):
            return key, True
    return next(key for key in record if key.startswith("fid")), False


def best_record(records):
    """The record with the highest accuracy (lowest FID when there is none); ties → lower FID, then earlier."""
    key, higher = _primary_metric(records[0])
    fid_key = next(k for k in records[0] if k.startswith("fid"))

    def rank(item):
        index, record = item
        return (-record[key] if higher else record[key], record[fid_key], index)

    return min(enumerate(records), key=rank)[1]


def plot_score_curve(records, png_path, best=None):
    """Score vs step: accuracy on the left axis (when measured), FID on the right; the best checkpoint marked."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from t2i.utils import files

    records = sorted((r for r in records if r.get("step") is not None), key=lambda r: r["step"])
    if not records:
        return None
    steps = [r["step"] for r in records]
    fid_key = next(k for k in records[0] if k.startswith("fid"))
    accuracy_key = next((k for k in records[0] if k.startswith(("accuracy", "caption_accuracy"))), None)
    fig, left = plt.subplots(figsize=(8, 4.5), dpi=100)
    fid_axis = left.twinx() if accuracy_key else left
    if accuracy_key:
        left.plot(steps, [r[accuracy_key] for r in records], "o-", color="tab:blue", label=accuracy_key)
        left.set_ylabel(accuracy_key, color="tab:blue")
        left.set_ylim(-0.02, 1.02)
    fid_axis.plot(steps, [r[fid_key] for r in records], "s--", color="tab:red", label=fid_key)
    fid_axis.set_ylabel(f"{fid_key} (evaluator features)", color="tab:red")
    if best is not None and best.get("step") is not None:
        best_key, _ = _primary_metric(best)
        axis = left if best_key == accuracy_key else fid_axis
        axis.plot([best["step"]], [best[best_key]], "*", color="gold", markersize=18, markeredgecolor="black",
                  label=f"best: step {best['step']}", zorder=5)
    left.set_xlabel("step")
    left.grid(alpha=0.3)
    handles = [h for ax in {left, fid_axis} for h in ax.get_legend_handles_labels()[0]]
    left.legend(handles=handles, loc="best")
    fig.suptitle(f"{os.path.basename(os.path.dirname(os.path.abspath(png_path)))}: score vs step")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    files.atomic_write_bytes(png_path, buffer.getvalue())
    return png_path


def _describe(scored, index, label_names):
    probabilities = scored.probabilities[index]
    generated = scored.generated
    if generated.requested is None:
        top = np.argsort(-probabilities, kind="stable")[:3]
        return "sees: " + ", ".join(f"{label_names[i]} {probabilities[i]:.2f}" for i in top)
    hits, counts = top_k_hits(probabilities[None], generated.requested[index][None])
    top = np.argsort(-probabilities, kind="stable")[:int(counts[0])]
    asked = (f"caption: {generated.captions[index]}" if generated.captions is not None else
             "labels: " + ", ".join(label_names[i] for i in np.flatnonzero(generated.requested[index] > 0.5)))
    seen = ", ".join(f"{label_names[i]} {probabilities[i]:.2f}" for i in top)
    return f"{int(hits[0])}/{int(counts[0])} found | {asked} | evaluator top-{int(counts[0])}: {seen}"


def write_sheets(scored: Scored, output_dir, sheet_size: int = 16, label_names=shapes.LABEL_NAMES):
    """Top-k and bottom-k sample sheets (PNG grids, best / worst first) and a listing of what each image shows.

    Returns the paths written ([] when `sheet_size` is 0).
    """
    from t2i.utils import files
    from t2i.utils.images import display_scale, save_grid

    k = min(int(sheet_size), scored.num_images)
    if k <= 0:
        return []
    images = scored.generated.images
    scale = display_scale(images.shape[1])
    sheets = {TOP_SHEET: scored.order[:k], BOTTOM_SHEET: scored.order[::-1][:k]}
    lines = []
    for name, indices in sheets.items():
        save_grid(os.path.join(output_dir, name), images[indices], scale=scale)
        order = "best first" if name == TOP_SHEET else "worst first"
        lines.append(f"{name} ({order}, row by row):")
        lines += [f"  {rank + 1:3d}. image {int(i)}: {_describe(scored, int(i), label_names)}"
                  for rank, i in enumerate(indices)]
    listing = os.path.join(output_dir, SHEETS_LISTING)
    files.atomic_write_text(listing, "\n".join(lines) + "\n")
    return [os.path.join(output_dir, name) for name in sheets] + [listing]


# ---------------------------------------------------------------------------------------------------------------
# t2i-eval


@dataclasses.dataclass
class EvaluationReport:
    """What `run_evaluation` measured and wrote."""

    records: list  # one dict per evaluation, as appended to metrics.jsonl
    best: dict | None  # the best record (--all_checkpoints)
    output_dir: str
    metrics_path: str
    curve_path: str | None = None
    sheet_paths: list = dataclasses.field(default_factory=list)
    best_path: str | None = None


def _check_options(log_dir, checkpoint, saved_model, all_checkpoints, output_dir, num_images, batch_size,
                   sheet_size):
    if bool(log_dir) == bool(saved_model):
        raise EvaluationError("Give exactly one of --log_dir (a run) or --saved_model (an export). "
                              f"Received: log_dir={log_dir!r}, saved_model={saved_model!r}")
    if checkpoint and (saved_model or all_checkpoints):
        raise EvaluationError("--checkpoint picks one checkpoint of --log_dir; it cannot be combined with "
                              f"--saved_model or --all_checkpoints. Received: checkpoint={checkpoint!r}")
    if all_checkpoints and saved_model:
        raise EvaluationError("--all_checkpoints evaluates the checkpoints of a --log_dir run, not a SavedModel. "
                              f"Received: saved_model={saved_model!r}")
    if saved_model and not output_dir:
        raise EvaluationError("--output_dir is required with --saved_model (where metrics.jsonl and the sheets go). "
                              "Received: output_dir=''")
    if isinstance(num_images, bool) or int(num_images) < 2:
        raise EvaluationError(f"--num_images must be at least 2 (FID needs a covariance). "
                              f"Received: num_images={num_images}")
    if int(batch_size) < 1:
        raise EvaluationError(f"--batch_size must be at least 1. Received: batch_size={batch_size}")
    if int(sheet_size) < 0:
        raise EvaluationError(f"--sheet_size must be >= 0 (0: no sheets). Received: sheet_size={sheet_size}")


def _record(step, checkpoint, scored, evaluator, seed, seconds, model):
    return {
        "step": step,
        "checkpoint": checkpoint,
        **{name: round(float(value), 6) for name, value in scored.metrics.items()},
        "num_images": scored.num_images,
        "evaluator": evaluator.name,
        "model": model,
        "seed": int(seed),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": round(seconds, 2),
    }


def run_evaluation(evaluator, log_dir="", checkpoint="", saved_model="", all_checkpoints=False, output_dir="",
                   num_images=1000, seed=0, batch_size=100, sheet_size=16, reference_cache_dir="",
                   verbose=True) -> EvaluationReport:
    """Evaluates a run's checkpoint (newest, or `checkpoint`), a SavedModel, or every checkpoint of a run.

    Args:
        evaluator: path of the evaluator (`load_evaluator`), or an already loaded one.
        log_dir: run directory; with `checkpoint` a specific checkpoint prefix, with `all_checkpoints` every
            checkpoint the run kept (oldest first).
        saved_model: a SavedModel version directory written by `t2i-export` (instead of `log_dir`).
        output_dir: where metrics.jsonl, the sheets, the curve and best_checkpoint.json go (default: `log_dir`).
        num_images: images generated per evaluation (the count in the metric names).
        seed: noise seed; conditions and captions are always the first `num_images` test-split examples.
        batch_size: images per generator / evaluator call.
        sheet_size: images in each of the top / bottom sheets (0: none); with `all_checkpoints` the sheets show
            the best checkpoint's images.
        reference_cache_dir: cache of real-data statistics (default `<output_dir>/reference_stats`).
        verbose: print each record and the best checkpoint.

    Returns:
        `EvaluationReport`. Each evaluation's record is appended to `<output_dir>/metrics.jsonl` as soon as it is
        measured, so an interrupted sweep keeps what it finished.
    """
    from t2i.evaluation.classifier import load_evaluator

    _check_options(log_dir, checkpoint, saved_model, all_checkpoints, output_dir, num_images, batch_size,
                   sheet_size)
    if isinstance(evaluator, (str, os.PathLike)) or evaluator is None:
        evaluator = load_evaluator(evaluator)
    output_dir = os.fspath(output_dir or log_dir)
    cache_dir = reference_cache_dir or os.path.join(output_dir, "reference_stats")
    metrics_path = os.path.join(output_dir, METRICS_FILE)
    label_names = getattr(evaluator, "label_names", shapes.LABEL_NAMES)
    report = EvaluationReport([], None, output_dir, metrics_path)

    def finish(scored, step, name, start, model):
        record = _record(step, name, scored, evaluator, seed, time.perf_counter() - start, model)
        _append_jsonl(metrics_path, record)
        report.records.append(record)
        if verbose:
            print(json.dumps(record), flush=True)
        return record

    if saved_model:
        start = time.perf_counter()
        generated, config = generate_from_saved_model(saved_model, num_images, seed, batch_size)
        reference = reference_statistics_for(config, evaluator, num_images, cache_dir, batch_size)
        scored = score(generated, evaluator, reference, batch_size)
        finish(scored, None, os.fspath(saved_model), start, config.model)
        report.sheet_paths = write_sheets(scored, output_dir, sheet_size, label_names)
        return report

    import tensorflow as tf

    from t2i import configs
    from t2i.training import run

    if all_checkpoints:
        state = tf.train.get_checkpoint_state(run.checkpoint_dir(log_dir))
        paths = list(state.all_model_checkpoint_paths) if state else []
        if not paths:
            configs.load(log_dir)  # a clear error first when log_dir is no run at all
            raise EvaluationError(f"--log_dir: no checkpoints under {run.checkpoint_dir(log_dir)}. "
                                  f"Received: log_dir={log_dir!r}")
    else:
        if checkpoint and not os.path.isfile(os.fspath(checkpoint) + ".index"):
            raise FileNotFoundError(f"--checkpoint: no checkpoint {checkpoint!r} (expected its .index file; give "
                                    f"the prefix, e.g. <log_dir>/checkpoints/ckpt-500). Received: "
                                    f"checkpoint={checkpoint!r}")
        paths = [checkpoint or None]
    generator, config, first_path = run.restore_generator(log_dir, paths[0])
    paths[0] = first_path
    _check_evaluable(config, "--log_dir")
    reference = reference_statistics_for(config, evaluator, num_images, cache_dir, batch_size)
    best_scored, best = None, None
    for index, path in enumerate(paths):
        start = time.perf_counter()
        if index:
            run.restore_generator_weights(generator, config, path)
        scored = score(generate_from_generator(generator, config, num_images, seed, batch_size), evaluator,
                       reference, batch_size)
        record = finish(scored, checkpoint_step(path), path, start, config.model)
        if best_record([best, record] if best else [record]) is record:
            best, best_scored = record, scored
    report.sheet_paths = write_sheets(best_scored, output_dir, sheet_size, label_names)
    if all_checkpoints:
        report.best = best
        key, higher = _primary_metric(best)
        report.best_path = os.path.join(output_dir, BEST_FILE)
        from t2i.utils import files

        files.atomic_write_text(report.best_path, json.dumps(
            dict(best, selected_by=key, rule="highest" if higher else "lowest",
                 checkpoints_evaluated=len(report.records)), indent=2) + "\n")
        report.curve_path = plot_score_curve(report.records, os.path.join(output_dir, CURVE_FILE), best)
        if verbose:
            print(f"Best checkpoint: {best['checkpoint']} (step {best['step']}, {key} {best[key]:.4f})", flush=True)
    return report
