"""Clustering and generation metrics (pure numpy / scikit-learn / scipy)."""

from __future__ import annotations

import numpy as np
from scipy.stats import wasserstein_distance
from sklearn import metrics as skm


def clustering_scores(Z: np.ndarray, labels: np.ndarray, sample: int = 5000, seed: int = 0) -> dict[str, float]:
    """Internal quality of a partition of Z: silhouette (on a seeded sample), Davies-Bouldin, Calinski-Harabasz."""
    if len(np.unique(labels)) < 2:
        return {"silhouette": float("nan"), "davies_bouldin": float("nan"), "calinski_harabasz": float("nan")}
    return {
        "silhouette": float(skm.silhouette_score(Z, labels, sample_size=min(sample, len(Z)), random_state=seed)),
        "davies_bouldin": float(skm.davies_bouldin_score(Z, labels)),
        "calinski_harabasz": float(skm.calinski_harabasz_score(Z, labels)),
    }


def agreement(truth: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """External agreement with known labels: adjusted Rand index and normalised mutual information."""
    return {"ari": float(skm.adjusted_rand_score(truth, labels)),
            "nmi": float(skm.normalized_mutual_info_score(truth, labels))}


def acf(X: np.ndarray, max_lag: int | None = None) -> np.ndarray:
    """Mean autocorrelation per channel over windows: (n, T, C) -> (max_lag, C), lags 1..max_lag."""
    n, T, C = X.shape
    max_lag = min(max_lag or T - 1, T - 1)
    Xc = X - X.mean(axis=1, keepdims=True)
    var = (Xc**2).sum(axis=1)  # (n, C)
    out = np.empty((max_lag, C))
    for lag in range(1, max_lag + 1):  # loop over lags (<= T), vectorised over windows
        cov = (Xc[:, lag:] * Xc[:, :-lag]).sum(axis=1)
        out[lag - 1] = np.nanmean(np.where(var > 0, cov / np.where(var > 0, var, 1), np.nan), axis=0)
    return np.nan_to_num(out)


def marginal_distance(real: np.ndarray, synth: np.ndarray, max_points: int = 200_000, seed: int = 0) -> float:
    """Mean over channels of the 1-D Wasserstein distance between real and synthetic values."""
    rng = np.random.default_rng(seed)
    C = real.shape[-1]
    r, s = real.reshape(-1, C), synth.reshape(-1, C)
    r = r[rng.choice(len(r), min(len(r), max_points), replace=False)]
    s = s[rng.choice(len(s), min(len(s), max_points), replace=False)]
    return float(np.mean([wasserstein_distance(r[:, c], s[:, c]) for c in range(C)]))


def autocorrelation_distance(real: np.ndarray, synth: np.ndarray) -> float:
    """Mean absolute difference between the mean autocorrelation functions of real and synthetic windows."""
    return float(np.abs(acf(real) - acf(synth)).mean())


def generation_scores(real: np.ndarray, synth: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Cheap distribution metrics on standardised (n, T, C) windows, with a real-vs-real
    floor: the same metrics between two random halves of the real data."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(real))
    a, b = real[perm[: len(real) // 2]], real[perm[len(real) // 2:]]
    return {
        "marginal": marginal_distance(real, synth, seed=seed),
        "autocorrelation": autocorrelation_distance(real, synth),
        "marginal_real_floor": marginal_distance(a, b, seed=seed),
        "autocorrelation_real_floor": autocorrelation_distance(a, b),
    }
