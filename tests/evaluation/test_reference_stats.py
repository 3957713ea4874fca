"""The reference-statistics cache: computed once per key, reused, recomputed when the stored key differs."""
import json
import os
import re
import shutil
import types

import numpy as np
import pytest

from t2i.evaluation import metrics, reference_stats

EXTRACTOR = types.SimpleNamespace(name="hub_inception(tfgan)", policy="uint8→bilinear(aa=False)→299")


def _key(**overrides):
    key = reference_stats.reference_key(dataset="cub", split="test", resolution=64, extractor=EXTRACTOR,
                                        num_images=500)
    key.update(overrides)
    return key


class _Counting:
    """compute_fn that records how often it ran and returns statistics of fixed random features."""

    def __init__(self, seed=0):
        self.calls = 0
        self.features = np.random.default_rng(seed).normal(size=(30, 4)) + 3.0

    def __call__(self):
        self.calls += 1
        return metrics.GaussianStats(4).update(self.features)


def test_second_run_reuses_the_cache(tmp_path):
    compute = _Counting()
    first = reference_stats.reference_statistics(tmp_path, _key(), compute)
    second = reference_stats.reference_statistics(tmp_path, _key(), compute)
    assert compute.calls == 1
    assert second.n == 30
    np.testing.assert_array_equal(second.mean, first.mean)
    np.testing.assert_allclose(second.cov, np.cov(compute.features, rowvar=False), rtol=1e-12)
    # Only the cache file is left: the atomic write leaves no temporary behind.
    assert os.listdir(tmp_path) == [os.path.basename(reference_stats.cache_path(tmp_path, _key()))]


def test_file_name_is_readable_prefix_plus_hash_and_holds_the_key(tmp_path):
    path = reference_stats.cache_path(tmp_path, _key())
    assert re.fullmatch(r"cub-test-64-hub_inception_tfgan-500-[0-9a-f]{12}\.npz", os.path.basename(path))
    # Key order does not matter; any changed field gives another file.
    assert reference_stats.cache_path(tmp_path, dict(reversed(list(_key().items())))) == path
    assert reference_stats.cache_path(tmp_path, _key(resize_policy="uint8→bicubic(aa=True)→299")) != path
    reference_stats.reference_statistics(tmp_path, _key(), _Counting())
    with np.load(path, allow_pickle=False) as data:
        assert json.loads(str(data["key"])) == _key()
        assert sorted(data.files) == ["cov", "key", "mean", "n"]
    # The cache file is an ordinary statistics file.
    assert metrics.GaussianStats.load(path).n == 30


def test_changed_key_computes_again(tmp_path):
    compute = _Counting()
    reference_stats.reference_statistics(tmp_path, _key(), compute)
    reference_stats.reference_statistics(tmp_path, _key(num_images=1000), compute)
    reference_stats.reference_statistics(tmp_path, _key(feature_network="keras_inception_v3(w.h5)"), compute)
    assert compute.calls == 3
    assert len(os.listdir(tmp_path)) == 3


def test_mismatching_key_inside_the_file_is_recomputed(tmp_path):
    # A file computed for another key sits under this key's name (a copied file, or a hash collision).
    reference_stats.reference_statistics(tmp_path, _key(split="train"), _Counting(seed=1))
    wanted = reference_stats.cache_path(tmp_path, _key())
    shutil.copy(reference_stats.cache_path(tmp_path, _key(split="train")), wanted)
    compute = _Counting(seed=2)
    stats = reference_stats.reference_statistics(tmp_path, _key(), compute)
    assert compute.calls == 1
    np.testing.assert_allclose(stats.mean, compute.features.mean(axis=0), rtol=1e-12)
    # The file now holds the right key and is reused.
    reference_stats.reference_statistics(tmp_path, _key(), compute)
    assert compute.calls == 1


def test_unreadable_cache_file_is_recomputed(tmp_path):
    path = reference_stats.cache_path(tmp_path, _key())
    with open(path, "wb") as f:
        f.write(b"half a file")
    compute = _Counting()
    reference_stats.reference_statistics(tmp_path, _key(), compute)
    assert compute.calls == 1
    assert metrics.GaussianStats.load(path).n == 30


def test_no_cache_dir_always_computes(tmp_path):
    compute = _Counting()
    reference_stats.reference_statistics(None, _key(), compute)
    reference_stats.reference_statistics("", _key(), compute)
    assert compute.calls == 2


def test_key_must_be_json(tmp_path):
    with pytest.raises(ValueError, match="JSON values"):
        reference_stats.reference_statistics(tmp_path, _key(extra=object()), _Counting())
