"""GAN metric maths on features and predictions: Inception Score, FID and KID, in float64 numpy.

Kept apart from running any network (see `t2i.evaluation.features`), so each formula is tested against a plain
numpy/scipy reference on random numbers, and the same code scores features from any classifier.

- `GaussianStats` accumulates the mean and covariance of features batch by batch in O(d²) memory, whatever the
  number of images, and saves/loads them as `.npz` (reference statistics of real data are computed once).
- `frechet_distance` / `fid_from_stats`: Heusel et al. 2017, "GANs trained by a two time-scale update rule".
- `inception_score`: Salimans et al. 2016, "Improved techniques for training GANs".
- `kernel_inception_distance`: Bińkowski et al. 2018, "Demystifying MMD GANs".
"""
from __future__ import annotations

import io
import os

import numpy as np

from t2i.utils import files

__all__ = [
    "MetricError",
    "GaussianStats",
    "frechet_distance",
    "fid_from_stats",
    "inception_score",
    "kernel_inception_distance",
]


class MetricError(ValueError):
    """Inputs a metric cannot be computed from (wrong shapes, too few samples, a file of the wrong layout)."""


def _as_matrix(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2:
        raise MetricError(f"{name} must be a [num_samples, dim] matrix. Received: {name}.shape={array.shape}")
    if not np.all(np.isfinite(array)):
        raise MetricError(f"{name} contains NaN or infinity (a diverged generator?). Received: {name}=non-finite")
    return array


# ---------------------------------------------------------------------------------------------------------------
# Streaming Gaussian statistics


class GaussianStats:
    """Running count, mean and covariance of feature vectors, exact in float64 and independent of batching.

    Numerics: the naive Σx, Σxxᵀ route computes the covariance as Σxxᵀ/n − μμᵀ, a difference of two large,
    nearly equal numbers; with features offset by 1e4 float64 keeps only about 8 correct digits of the
    covariance. Instead each batch is centred on its own mean (its co-moment M_b = Σ(x − x̄_b)(x − x̄_b)ᵀ has no
    such cancellation) and merged into the running totals with Chan, Golub & LeVeque's pairwise update:

        n = n_a + n_b,   δ = μ_b − μ_a,   μ = μ_a + δ·n_b/n,   M = M_a + M_b + δδᵀ·n_a·n_b/n

    The result matches `np.mean` / `np.cov` of all features at once to round-off, for any batch sizes
    (batches of one included), with memory O(d²).
    """

    def __init__(self, dim: int):
        if int(dim) < 1:
            raise MetricError(f"Feature dimension must be at least 1. Received: dim={dim}")
        self.dim = int(dim)
        self.n = 0
        self._mean = np.zeros(self.dim, np.float64)
        self._comoment = np.zeros((self.dim, self.dim), np.float64)

    def update(self, features) -> "GaussianStats":
        """Adds a batch of feature vectors [n, dim] (any float dtype; accumulated in float64). Returns self."""
        batch = _as_matrix(features, "features")
        if batch.shape[1] != self.dim:
            raise MetricError(
                f"Feature batch has {batch.shape[1]} columns but the statistics hold {self.dim}. "
                f"Received: features.shape={batch.shape}"
            )
        if batch.shape[0] == 0:
            return self
        mean = batch.mean(axis=0)
        centred = batch - mean
        self._merge(batch.shape[0], mean, centred.T @ centred)
        return self

    def merge(self, other: "GaussianStats") -> "GaussianStats":
        """Adds the features summarised by `other` (e.g. another worker's shard). Returns self."""
        if other.dim != self.dim:
            raise MetricError(f"Cannot merge statistics of dimension {other.dim} into {self.dim}. "
                              f"Received: other.dim={other.dim}")
        if other.n:
            self._merge(other.n, other._mean, other._comoment)
        return self

    def _merge(self, n_b: int, mean_b: np.ndarray, comoment_b: np.ndarray):
        n_a = self.n
        n = n_a + n_b
        delta = mean_b - self._mean
        self._mean = self._mean + delta * (n_b / n)
        self._comoment = self._comoment + comoment_b + np.outer(delta, delta) * (n_a * n_b / n)
        self.n = n

    @property
    def mean(self) -> np.ndarray:
        """float64 [dim]; needs at least one feature vector."""
        if self.n < 1:
            raise MetricError("Statistics hold no features yet; call update() first. Received: n=0")
        return self._mean.copy()

    @property
    def cov(self) -> np.ndarray:
        """Unbiased covariance float64 [dim, dim] (ddof=1, as `np.cov`); needs at least two feature vectors."""
        if self.n < 2:
            raise MetricError(f"A covariance needs at least 2 feature vectors. Received: n={self.n}")
        # M is symmetric in exact arithmetic; averaging with its transpose removes round-off asymmetry.
        comoment = 0.5 * (self._comoment + self._comoment.T)
        return comoment / (self.n - 1)

    @classmethod
    def from_moments(cls, mean, cov, n: int) -> "GaussianStats":
        """Statistics of `n` vectors with the given mean and unbiased covariance (e.g. read from a file)."""
        mean = np.asarray(mean, np.float64)
        cov = np.asarray(cov, np.float64)
        if mean.ndim != 1 or cov.shape != (mean.shape[0], mean.shape[0]):
            raise MetricError(f"mean must be [d] and cov [d, d]. Received: mean.shape={mean.shape}, "
                              f"cov.shape={cov.shape}")
        if int(n) < 2:
            raise MetricError(f"Stored statistics need n >= 2. Received: n={n}")
        stats = cls(mean.shape[0])
        stats.n = int(n)
        stats._mean = mean.copy()
        stats._comoment = cov * (stats.n - 1)
        return stats

    def to_arrays(self) -> dict:
        """{"mean", "cov", "n"} as numpy arrays: the `.npz` layout of `save`."""
        return {"mean": self.mean, "cov": self.cov, "n": np.asarray(self.n, np.int64)}

    def save(self, path):
        """Writes `mean`, `cov`, `n` to an `.npz` file atomically (a crash leaves the old file or none)."""
        buffer = io.BytesIO()
        np.savez(buffer, **self.to_arrays())
        files.atomic_write_bytes(os.fspath(path), buffer.getvalue())

    @classmethod
    def load(cls, path) -> "GaussianStats":
        """Reads a file written by `save` (extra arrays in the file are ignored)."""
        path = os.fspath(path)
        # allow_pickle=False: a statistics file must never be able to run code.
        with np.load(path, allow_pickle=False) as data:
            missing = [key for key in ("mean", "cov", "n") if key not in data.files]
            if missing:
                raise MetricError(f"{path}: not a t2i statistics file; it lacks {', '.join(missing)}. "
                                  f"Received: keys={sorted(data.files)}")
            return cls.from_moments(data["mean"], data["cov"], int(data["n"]))

    def __repr__(self):
        return f"GaussianStats(dim={self.dim}, n={self.n})"


# ---------------------------------------------------------------------------------------------------------------
# Fréchet distance


def _symmetric_eigh(matrix: np.ndarray, name: str):
    """Eigen-decomposition of a covariance; round-off negatives are set to 0, real negatives raise."""
    eigenvalues, eigenvectors = np.linalg.eigh(0.5 * (matrix + matrix.T))
    scale = max(float(np.max(np.abs(eigenvalues))), np.finfo(np.float64).tiny)
    # A covariance is PSD; computed in float64 its eigenvalues dip below zero by ~d·eps·‖C‖, and a covariance that
    # was stored in float32 by another tool by ~1e-6·‖C‖. Anything clearly below that is not a covariance.
    tolerance = 1e-5 * scale
    if eigenvalues.min() < -tolerance:
        raise MetricError(f"{name} is not positive semi-definite (not a covariance matrix). "
                          f"Received: min_eigenvalue={eigenvalues.min():.3g}")
    return np.clip(eigenvalues, 0.0, None), eigenvectors


def frechet_distance(mu1, cov1, mu2, cov2) -> float:
    """Fréchet distance between N(μ1, C1) and N(μ2, C2): ‖μ1 − μ2‖² + Tr(C1 + C2 − 2 (C1 C2)^½).

    The trace of the matrix square root is computed from a symmetric problem instead of `scipy.linalg.sqrtm(C1 C2)`:
    with S = C1^½ (eigen-decomposition of the symmetric C1), C1 C2 = S (S C2) is similar to S C2 S, so they share
    eigenvalues, and Tr (C1 C2)^½ = Σ √λᵢ(S C2 S). S C2 S is symmetric positive semi-definite, so `eigh` gives
    real, non-negative eigenvalues (round-off negatives are clipped to 0). This is exact where `sqrtm` needs the
    usual eps·I offset and a check on imaginary parts: it stays real and stable when C1 C2 is singular, as it is
    whenever there are fewer images than feature dimensions.

    Args:
      mu1, mu2: means [d].
      cov1, cov2: covariances [d, d] (symmetric positive semi-definite).

    Returns:
      The distance as a Python float (≥ 0 up to round-off).
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
    d = mu1.shape[0] if mu1.ndim == 1 else -1
    for name, value, shape in (("mu1", mu1, (d,)), ("mu2", mu2, (d,)), ("cov1", cov1, (d, d)),
                               ("cov2", cov2, (d, d))):
        if d < 1 or value.shape != shape:
            raise MetricError(f"Expected mu1, mu2 of shape [d] and cov1, cov2 of shape [d, d] with the same d. "
                              f"Received: {name}.shape={value.shape}")
        if not np.all(np.isfinite(value)):
            raise MetricError(f"{name} contains NaN or infinity. Received: {name}=non-finite")
    eigenvalues1, eigenvectors1 = _symmetric_eigh(cov1, "cov1")
    sqrt_cov1 = (eigenvectors1 * np.sqrt(eigenvalues1)) @ eigenvectors1.T
    inner, _ = _symmetric_eigh(sqrt_cov1 @ cov2 @ sqrt_cov1, "C1^½ C2 C1^½")
    trace_sqrt_product = float(np.sum(np.sqrt(inner)))
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * trace_sqrt_product)


def fid_from_stats(stats_a: GaussianStats, stats_b: GaussianStats) -> float:
    """Fréchet Inception Distance between two feature distributions summarised by `GaussianStats`."""
    if stats_a.dim != stats_b.dim:
        raise MetricError(f"FID needs features of the same network; dimensions differ. "
                          f"Received: dims=({stats_a.dim}, {stats_b.dim})")
    return frechet_distance(stats_a.mean, stats_a.cov, stats_b.mean, stats_b.cov)


# ---------------------------------------------------------------------------------------------------------------
# Inception Score


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))


def _stack_batches(predictions, name: str) -> np.ndarray:
    """One [n, k] matrix from an array or from a sequence of per-batch [b, k] arrays."""
    if isinstance(predictions, (list, tuple)):
        if not predictions:
            raise MetricError(f"{name} is empty. Received: {name}=[]")
        predictions = np.concatenate([np.asarray(p, np.float64) for p in predictions], axis=0)
    return _as_matrix(predictions, name)


def inception_score(predictions, splits: int = 10, from_logits: bool = True) -> tuple[float, float]:
    """Inception Score: per split exp(mean_x KL(p(y|x) ‖ p(y))), then (mean, std) over the splits.

    p(y) is each split's own marginal (the mean of p(y|x) over the split), as in Salimans et al.'s code. The n
    predictions are cut into contiguous splits at the original code's boundaries i·n // splits, so every
    prediction is used and split sizes differ by at most one (the remainder is spread over the splits rather than
    dropped or piled onto the last one). The std is the population std (ddof=0) over splits, as published.

    Args:
      predictions: [n, k] classifier logits (`from_logits=True`, turned into log-probabilities by a stable
        log-softmax) or probabilities (`from_logits=False`, rows summing to 1; zeros are allowed: 0·log 0 = 0).
        A list of per-batch [b, k] arrays is concatenated, so predictions can be collected batch by batch.
      splits: number of splits (the published protocol: 10 splits of 5000 images).
      from_logits: how to read `predictions`.

    Returns:
      (mean, std) of the per-split scores. Uniform predictions score 1; confident predictions spread evenly over
      K classes score K.
    """
    values = _stack_batches(predictions, "predictions")
    n = values.shape[0]
    if int(splits) < 1 or int(splits) > n:
        raise MetricError(f"splits must lie in [1, number of predictions = {n}]. Received: splits={splits}")
    splits = int(splits)
    if from_logits:
        log_probs = _log_softmax(values)
        probs = np.exp(log_probs)
    else:
        if values.min() < 0 or not np.allclose(values.sum(axis=1), 1.0, atol=1e-3):
            raise MetricError("Probabilities must be non-negative with rows summing to 1 (pass logits with "
                              "from_logits=True). Received: from_logits=False")
        probs = values / values.sum(axis=1, keepdims=True)
        with np.errstate(divide="ignore"):
            log_probs = np.log(probs)
    scores = []
    for i in range(splits):
        start, stop = i * n // splits, (i + 1) * n // splits
        part_probs, part_log_probs = probs[start:stop], log_probs[start:stop]
        # p·(log p − log p(y)) with 0·(anything) = 0: classes a prediction gives zero probability contribute nothing
        # (where p > 0, p(y) > 0 too, so the kept terms are finite; the discarded ones may be NaN).
        with np.errstate(divide="ignore", invalid="ignore"):
            log_marginal = np.log(part_probs.mean(axis=0, keepdims=True))
            kl_terms = np.where(part_probs > 0, part_probs * (part_log_probs - log_marginal), 0.0)
        scores.append(np.exp(np.mean(np.sum(kl_terms, axis=1))))
    scores = np.asarray(scores)
    return float(np.mean(scores)), float(np.std(scores))


# ---------------------------------------------------------------------------------------------------------------
# Kernel Inception Distance


def _polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (xᵀy / d + 1)³, the kernel of Bińkowski et al. (degree 3, γ = 1/d, coef0 = 1)."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def _unbiased_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    m = x.shape[0]
    k_xx, k_yy, k_xy = _polynomial_kernel(x, x), _polynomial_kernel(y, y), _polynomial_kernel(x, y)
    # The unbiased estimator leaves out the diagonal k(xᵢ, xᵢ) terms of the within-sample sums.
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.mean())


def kernel_inception_distance(feats_a, feats_b, num_subsets: int = 100, subset_size: int = 1000,
                              seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance: unbiased MMD² with the cubic polynomial kernel, averaged over random subsets.

    For each of `num_subsets` subsets, m = min(subset_size, n_a, n_b) rows are drawn without replacement from each
    set (independently per subset, as in Bińkowski et al.'s code and stylegan2-ada) and

        MMD²ᵤ = [Σ_{i≠j} k(xᵢ, xⱼ) + Σ_{i≠j} k(yᵢ, yⱼ)] / (m(m−1)) − 2/m² Σ_{i,j} k(xᵢ, yⱼ)

    is computed with k(x, y) = (xᵀy/d + 1)³. The estimator is unbiased, so it is near 0 (and may be negative) for
    two samples of one distribution. Published KID values are this mean, often ×10³.

    Args:
      feats_a, feats_b: features [n_a, d], [n_b, d] of the same network.
      num_subsets: subsets to average over.
      subset_size: rows per subset before the cap at min(n_a, n_b).
      seed: seed of the subset draws (same seed, same value).

    Returns:
      (mean, std) of the per-subset estimates (population std, ddof=0).
    """
    a, b = _as_matrix(feats_a, "feats_a"), _as_matrix(feats_b, "feats_b")
    if a.shape[1] != b.shape[1]:
        raise MetricError(f"KID needs features of the same dimension. Received: dims=({a.shape[1]}, {b.shape[1]})")
    m = min(int(subset_size), a.shape[0], b.shape[0])
    if m < 2:
        raise MetricError(f"KID needs subsets of at least 2 rows from each set. "
                          f"Received: subset_size={subset_size}, n_a={a.shape[0]}, n_b={b.shape[0]}")
    if int(num_subsets) < 1:
        raise MetricError(f"num_subsets must be at least 1. Received: num_subsets={num_subsets}")
    rng = np.random.default_rng(seed)
    estimates = np.empty(int(num_subsets), np.float64)
    for i in range(int(num_subsets)):
        x = a[rng.choice(a.shape[0], m, replace=False)]
        y = b[rng.choice(b.shape[0], m, replace=False)]
        estimates[i] = _unbiased_mmd2(x, y)
    return float(estimates.mean()), float(estimates.std())
