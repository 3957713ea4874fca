"""Cache of real-data feature statistics: computed once per (dataset, split, resolution, network, policy, count).

Passing the real images of a dataset through Inception takes far longer than scoring a few thousand samples, and
the result only depends on what went in. Like stylegan2-ada's dataset-statistics cache, the file is named after
a hash of everything that determines it, and the full key is stored inside the file as JSON: a file whose stored
key differs from the expected one (a hash collision, a renamed or hand-copied file) is recomputed, never reused.

    stats = reference_statistics(
        "runs/fid_cache",
        reference_key(dataset="cub", split="test", resolution=256, extractor=inception, num_images=None),
        lambda: extract(inception, dataset, batch_size=50).stats,
    )
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import zipfile

import numpy as np
from absl import logging

from t2i.evaluation.metrics import GaussianStats, MetricError
from t2i.utils import files

__all__ = ["reference_key", "cache_path", "reference_statistics"]

# Readable prefix of the cache file name, in this order, from whichever fields are present.
_PREFIX_FIELDS = ("dataset", "split", "resolution", "feature_network", "num_images")
_HASH_CHARS = 12


def reference_key(dataset: str, split: str, resolution: int, extractor, num_images: int | None = None,
                  **extra) -> dict:
    """The key of a dataset's reference statistics under `extractor` (its name and resize policy included).

    `num_images=None` means the whole split. Extra JSON-serialisable fields (e.g. ``crop="center"``) join the key.
    """
    return dict(dataset=dataset, split=split, resolution=int(resolution), feature_network=extractor.name,
                resize_policy=extractor.policy, num_images=num_images, **extra)


def _canonical_json(key_fields: dict) -> str:
    if not isinstance(key_fields, dict) or not key_fields:
        raise ValueError(f"The cache key must be a non-empty dict. Received: key_fields={key_fields!r}")
    try:
        return json.dumps(key_fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    except TypeError as e:
        raise ValueError(f"Cache key fields must be JSON values (str, int, float, bool, None, lists, dicts): {e}. "
                         f"Received: key_fields={key_fields!r}") from None


def cache_path(cache_dir, key_fields: dict) -> str:
    """``<cache_dir>/<dataset-split-resolution-network-count>-<hash12>.npz``: readable prefix, exact hash."""
    canonical = _canonical_json(key_fields)
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:_HASH_CHARS]
    # File-name-safe and short: the hash, not the prefix, is what identifies the file.
    parts = [re.sub(r"[^A-Za-z0-9.]+", "_", str(key_fields[field])).strip("_.")
             for field in _PREFIX_FIELDS if key_fields.get(field) is not None]
    prefix = "-".join(part for part in parts if part)[:80] or "stats"
    return os.path.join(os.fspath(cache_dir), f"{prefix}-{digest}.npz")


def _read_cached(path: str, canonical: str) -> GaussianStats | None:
    """The cached statistics, or None when the file is missing, unreadable or holds another key."""
    if not os.path.exists(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            stored = str(data["key"]) if "key" in data.files else None
        if stored is None or json.loads(stored) != json.loads(canonical):
            logging.warning("%s: cached statistics were computed for another key (%s); recomputing.", path, stored)
            return None
        return GaussianStats.load(path)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, MetricError) as e:
        logging.warning("%s: unreadable statistics cache (%s); recomputing.", path, e)
        return None


def reference_statistics(cache_dir, key_fields: dict, compute_fn) -> GaussianStats:
    """The `GaussianStats` for `key_fields`, from the cache when a file with the same key exists, else computed.

    Args:
      cache_dir: directory of cache files (created when needed); empty or None disables the cache.
      key_fields: JSON-serialisable dict of everything the statistics depend on — dataset, split, resolution,
        resize policy, feature network name, number of images (`reference_key` builds the usual one).
      compute_fn: zero-argument callable returning `GaussianStats`; called only on a cache miss.

    Returns:
      The statistics. A miss writes ``mean``, ``cov``, ``n`` and ``key`` (the canonical JSON of `key_fields`)
      atomically, so an interrupted run never leaves a half-written cache behind.
    """
    canonical = _canonical_json(key_fields)
    if not cache_dir:
        return compute_fn()
    path = cache_path(cache_dir, key_fields)
    cached = _read_cached(path, canonical)
    if cached is not None:
        logging.info("Reference statistics from %s (n=%d).", path, cached.n)
        return cached
    stats = compute_fn()
    if not isinstance(stats, GaussianStats):
        raise TypeError(f"compute_fn must return GaussianStats. Received: type={type(stats).__name__}")
    buffer = io.BytesIO()
    np.savez(buffer, **stats.to_arrays(), key=np.asarray(canonical))
    files.atomic_write_bytes(path, buffer.getvalue())
    logging.info("Reference statistics written to %s (n=%d).", path, stats.n)
    return stats
