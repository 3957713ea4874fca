"""IS, FID, KID and streaming statistics against plain numpy/scipy references written out here."""
import numpy as np
import pytest
import scipy.linalg
import scipy.special

from t2i.evaluation import metrics


def _features(seed, n=60, d=6, offset=0.0):
    rng = np.random.default_rng(seed)
    # Correlated, non-centred features so that covariance and mean terms both matter.
    mixing = rng.normal(size=(d, d))
    return rng.normal(size=(n, d)) @ mixing + rng.normal(size=d) + offset


# ----------------------------------------------------------------------------------------------------------------
# Streaming statistics


@pytest.mark.parametrize("batch_size", [1, 7, 60])
def test_streaming_stats_equal_numpy_for_any_batch_size(batch_size):
    features = _features(0)
    stats = metrics.GaussianStats(6)
    for start in range(0, len(features), batch_size):
        stats.update(features[start:start + batch_size])
    assert stats.n == 60
    np.testing.assert_allclose(stats.mean, features.mean(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(stats.cov, np.cov(features, rowvar=False), rtol=1e-10, atol=1e-12)


def test_stats_stay_accurate_with_a_large_offset():
    features = _features(1, n=200)
    shifted = metrics.GaussianStats(6)
    for start in range(0, 200, 13):
        shifted.update((features + 1e4)[start:start + 13])
    # The covariance of x + 1e4 is that of x; Σxxᵀ/n − μμᵀ would lose about 8 of 16 digits here.
    np.testing.assert_allclose(shifted.cov, np.cov(features, rowvar=False), rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(shifted.mean - 1e4, features.mean(axis=0), atol=1e-9)


def test_merge_equals_one_pass_and_save_load_round_trips(tmp_path):
    features = _features(2, n=50)
    left, right = metrics.GaussianStats(6).update(features[:17]), metrics.GaussianStats(6).update(features[17:])
    left.merge(right)
    np.testing.assert_allclose(left.cov, np.cov(features, rowvar=False), rtol=1e-10)
    left.save(tmp_path / "s.npz")
    loaded = metrics.GaussianStats.load(tmp_path / "s.npz")
    assert loaded.n == 50
    np.testing.assert_array_equal(loaded.mean, left.mean)
    np.testing.assert_allclose(loaded.cov, left.cov, rtol=1e-15)
    # Loaded statistics keep accumulating correctly.
    loaded.update(features[:5])
    np.testing.assert_allclose(loaded.cov, np.cov(np.concatenate([features, features[:5]]), rowvar=False),
                               rtol=1e-10)


def test_stats_refuse_wrong_width_and_too_few_rows():
    stats = metrics.GaussianStats(3)
    with pytest.raises(metrics.MetricError, match="features.shape=\\(2, 4\\)"):
        stats.update(np.zeros((2, 4)))
    stats.update(np.ones((1, 3)))
    with pytest.raises(metrics.MetricError, match="n=1"):
        stats.cov


# ----------------------------------------------------------------------------------------------------------------
# FID


def _reference_fid(mu1, cov1, mu2, cov2):
    covmean = scipy.linalg.sqrtm(cov1 @ cov2)
    covmean = covmean.real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2.0 * np.trace(covmean))


def test_frechet_distance_matches_scipy_sqrtm():
    a, b = _features(3, n=80, d=8), _features(4, n=90, d=8) * 0.7 + 0.3
    mu1, cov1 = a.mean(axis=0), np.cov(a, rowvar=False)
    mu2, cov2 = b.mean(axis=0), np.cov(b, rowvar=False)
    expected = _reference_fid(mu1, cov1, mu2, cov2)
    assert expected > 1.0
    assert metrics.frechet_distance(mu1, cov1, mu2, cov2) == pytest.approx(expected, rel=1e-6)
    stats_a, stats_b = metrics.GaussianStats(8).update(a), metrics.GaussianStats(8).update(b)
    assert metrics.fid_from_stats(stats_a, stats_b) == pytest.approx(expected, rel=1e-6)


def test_frechet_distance_of_diagonal_gaussians_by_hand():
    # Diagonal C1 = diag(1, 4), C2 = diag(9, 1): Tr(C1 + C2 − 2(C1C2)^½) = 15 − 2(3 + 2) = 5; ‖μ1 − μ2‖² = 1 + 4.
    value = metrics.frechet_distance([0.0, 0.0], np.diag([1.0, 4.0]), [1.0, 2.0], np.diag([9.0, 1.0]))
    assert value == pytest.approx(10.0, abs=1e-12)


def test_fid_of_a_set_with_itself_is_zero_even_when_singular():
    features = _features(5, n=80, d=8)
    stats = metrics.GaussianStats(8).update(features)
    scale = np.trace(stats.cov)
    assert abs(metrics.fid_from_stats(stats, stats)) < 1e-6 * scale
    # Fewer samples than dimensions: C1 C2 is singular, the case where sqrtm needs an eps offset.
    few = metrics.GaussianStats(8).update(features[:4])
    assert abs(metrics.fid_from_stats(few, few)) < 1e-6 * np.trace(few.cov)


def test_frechet_distance_refuses_a_non_covariance():
    with pytest.raises(metrics.MetricError, match="positive semi-definite"):
        metrics.frechet_distance([0.0, 0.0], np.diag([1.0, -1.0]), [0.0, 0.0], np.eye(2))


# ----------------------------------------------------------------------------------------------------------------
# Inception Score


def _reference_inception_score(probs, splits):
    # The original (Salimans et al.) loop, with the original split boundaries.
    scores = []
    n = probs.shape[0]
    for i in range(splits):
        part = probs[i * n // splits:(i + 1) * n // splits]
        py = np.mean(part, axis=0, keepdims=True)
        kl = np.sum(part * (np.log(part) - np.log(py)), axis=1)
        scores.append(np.exp(np.mean(kl)))
    return np.mean(scores), np.std(scores)


@pytest.mark.parametrize("splits", [1, 3, 10])
def test_inception_score_matches_reference_from_logits_and_probs(splits):
    logits = np.random.default_rng(6).normal(scale=3.0, size=(47, 7))  # 47 = not divisible by 3 or 10
    probs = scipy.special.softmax(logits, axis=1)
    expected_mean, expected_std = _reference_inception_score(probs, splits)
    mean, std = metrics.inception_score(logits, splits=splits)
    assert mean == pytest.approx(expected_mean, rel=1e-6)
    assert std == pytest.approx(expected_std, rel=1e-6, abs=1e-12)
    mean_p, std_p = metrics.inception_score(probs, splits=splits, from_logits=False)
    assert (mean_p, std_p) == (pytest.approx(expected_mean, rel=1e-6), pytest.approx(expected_std, rel=1e-6,
                                                                                      abs=1e-12))


def test_inception_score_accepts_batches():
    logits = np.random.default_rng(7).normal(size=(20, 5))
    assert metrics.inception_score([logits[:6], logits[6:13], logits[13:]], splits=2) == pytest.approx(
        metrics.inception_score(logits, splits=2), rel=1e-12)


def test_inception_score_extremes():
    # Uniform predictions: p(y|x) = p(y), KL = 0, score exp(0) = 1.
    assert metrics.inception_score(np.zeros((12, 5)), splits=3) == pytest.approx((1.0, 0.0), abs=1e-12)
    # Confident predictions spread evenly over K = 4 classes in every split: KL = log 4, score 4.
    one_hot = np.tile(np.eye(4), (6, 1))  # 24 rows, each split of 8 holds every class twice
    mean, std = metrics.inception_score(one_hot, splits=3, from_logits=False)
    assert mean == pytest.approx(4.0, rel=1e-12) and std == pytest.approx(0.0, abs=1e-12)
    # The same through very confident logits.
    assert metrics.inception_score(one_hot * 100.0, splits=3)[0] == pytest.approx(4.0, rel=1e-6)


def test_inception_score_refuses_more_splits_than_predictions():
    with pytest.raises(metrics.MetricError, match="splits=10"):
        metrics.inception_score(np.zeros((5, 3)), splits=10)


# ----------------------------------------------------------------------------------------------------------------
# KID


def _reference_mmd2(x, y):
    m, d = x.shape
    k = lambda a, b: (a @ b / d + 1.0) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2.0 * xy


def test_kid_matches_explicit_loops():
    a, b = _features(8, n=12, d=5) / 3.0, _features(9, n=15, d=5) / 3.0 + 0.5
    num_subsets, subset_size, seed = 4, 6, 3
    # Same subset draws as the implementation documents: per subset, m rows of a then m rows of b.
    rng = np.random.default_rng(seed)
    expected = []
    for _ in range(num_subsets):
        x = a[rng.choice(12, subset_size, replace=False)]
        y = b[rng.choice(15, subset_size, replace=False)]
        expected.append(_reference_mmd2(x, y))
    mean, std = metrics.kernel_inception_distance(a, b, num_subsets=num_subsets, subset_size=subset_size, seed=seed)
    assert mean == pytest.approx(np.mean(expected), rel=1e-6)
    assert std == pytest.approx(np.std(expected), rel=1e-6)


def test_kid_subset_size_is_capped_and_full_sets_are_used():
    a, b = _features(10, n=9, d=4) / 3.0, _features(11, n=11, d=4) / 3.0
    # subset_size 1000 → m = 9: all of a in every subset (order does not change the estimate).
    rng = np.random.default_rng(0)
    rng.choice(9, 9, replace=False)
    y = b[rng.choice(11, 9, replace=False)]
    mean, _ = metrics.kernel_inception_distance(a, b, num_subsets=1, seed=0)
    assert mean == pytest.approx(_reference_mmd2(a, y), rel=1e-6)


def test_kid_is_unbiased_for_one_distribution_and_positive_for_two():
    # Over many independent pairs of samples from one distribution the estimates average to 0 (within their
    # standard error), where the biased estimator (diagonal kept) sits clearly above 0.
    rng = np.random.default_rng(12)
    m, d, repeats = 20, 4, 300
    unbiased, biased = [], []
    for _ in range(repeats):
        x, y = rng.normal(size=(m, d)), rng.normal(size=(m, d))
        unbiased.append(metrics.kernel_inception_distance(x, y, num_subsets=1)[0])
        k = lambda a, b: (a @ b.T / d + 1.0) ** 3  # noqa: E731
        biased.append(k(x, x).mean() + k(y, y).mean() - 2.0 * k(x, y).mean())
    standard_error = np.std(unbiased) / np.sqrt(repeats)
    assert abs(np.mean(unbiased)) < 4 * standard_error
    assert np.mean(biased) > 10 * standard_error
    # Different distributions: clearly positive.
    x, y = rng.normal(size=(200, d)), rng.normal(size=(200, d)) + 0.5
    shifted_mean, shifted_std = metrics.kernel_inception_distance(x, y, num_subsets=10, subset_size=100)
    assert shifted_mean > 20 * standard_error and shifted_mean > 5 * shifted_std / np.sqrt(10)
