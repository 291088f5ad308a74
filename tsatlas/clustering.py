"""Clustering: K-means on standardised embeddings (k given or chosen by silhouette), per-window
and per-series assignment, and the K-means helpers the autoencoder's joint objective shares."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.metrics import adjusted_rand_score, silhouette_score
from sklearn.preprocessing import StandardScaler

from tsatlas.config import ClusterConfig
from tsatlas.errors import ConfigError
from tsatlas.metrics import agreement, clustering_scores

log = logging.getLogger(__name__)

MINIBATCH_ABOVE = 50_000  # windows; above this K-means runs in mini-batches
STABILITY_SEEDS = 3       # K-means fits compared for the stability score
STABILITY_ROWS = 20_000   # at most this many windows in those extra fits


def kmeans(k: int, seed: int, n: int) -> KMeans | MiniBatchKMeans:
    """KMeans (10 restarts), or MiniBatchKMeans for more than MINIBATCH_ABOVE rows."""
    if n > MINIBATCH_ABOVE:
        return MiniBatchKMeans(n_clusters=k, batch_size=4096, n_init=3, random_state=seed)
    return KMeans(n_clusters=k, n_init=10, random_state=seed)


def choose_k(Zs: np.ndarray, k_min: int, k_max: int, sample: int, seed: int) -> tuple[int, dict[int, float]]:
    """The k in k_min..k_max with the best silhouette, each k fitted and scored on one seeded
    sample of the standardised Z (at most 4 x `sample` rows)."""
    rng = np.random.default_rng(seed)
    S = Zs[rng.choice(len(Zs), min(len(Zs), 4 * sample), replace=False)]
    scores = {}
    for k in range(k_min, min(k_max, len(S) - 1) + 1):
        labels = kmeans(k, seed, len(S)).fit_predict(S)
        scores[k] = float(silhouette_score(S, labels, sample_size=min(sample, len(S)), random_state=seed))
    return max(scores, key=scores.__getitem__), scores


def stability(Zs: np.ndarray, k: int, labels: np.ndarray, seed: int, window_series: np.ndarray | None,
              series_labels: np.ndarray) -> dict[str, float]:
    """How much of the structure is real rather than one fit's luck, as adjusted Rand indices
    (1: the same partition, 0: chance):

    - stability_seed_ari: the mean over pairs of STABILITY_SEEDS K-means fits with different seeds
      (the run's own is one), on at most STABILITY_ROWS windows;
    - stability_window_series_ari: each window's cluster against its series' cluster (how far a
      series is one kind of window), when windows' series are known.
    """
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(Zs), min(len(Zs), STABILITY_ROWS), replace=False))
    runs = [labels[idx]] + [kmeans(k, seed + i, len(idx)).fit_predict(Zs[idx]) for i in range(1, STABILITY_SEEDS)]
    pairs = [adjusted_rand_score(a, b) for i, a in enumerate(runs) for b in runs[i + 1:]]
    out = {"stability_seed_ari": round(float(np.mean(pairs)), 4)}
    if window_series is not None:
        out["stability_window_series_ari"] = round(float(adjusted_rand_score(labels, series_labels[window_series])), 4)
    return out


@dataclass
class Clustering:
    k: int
    labels: np.ndarray          # (n,) cluster per window
    distance: np.ndarray        # (n,) distance to its centroid, in standardised z units
    series_labels: np.ndarray   # (S,)
    series_distance: np.ndarray
    centroids: np.ndarray       # (k, D) in z units (not standardised)
    z_mean: np.ndarray          # (D,) the standardisation applied before K-means
    z_scale: np.ndarray
    scores_by_k: dict[int, float]
    metrics: dict[str, Any]

    @property
    def sizes(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=self.k)


def cluster_embeddings(Z: np.ndarray, Z_series: np.ndarray, cfg: ClusterConfig, seed: int = 0,
                       series_truth: np.ndarray | None = None, window_series: np.ndarray | None = None) -> Clustering:
    """K-means on standardised window embeddings; series are assigned by their mean embedding.

    Args:
        Z: (n, D) window embeddings. Z_series: (S, D) series embeddings.
        series_truth: (S,) known labels, used only for ARI/NMI.
        window_series: (n,) each window's row in Z_series, for the window/series agreement.
    """
    n = len(Z)
    if cfg.k != "auto" and cfg.k > n:
        raise ConfigError(f"cluster.k={cfg.k} exceeds the number of windows ({n})")
    if n < 3:
        raise ConfigError(f"only {n} windows: too few to cluster (shorten windows.stride or windows.length)")
    scaler = StandardScaler().fit(Z)
    Zs = scaler.transform(Z)
    if cfg.k == "auto":
        k, scores = choose_k(Zs, cfg.k_min, cfg.k_max, cfg.sample, seed)
    else:
        k, scores = int(cfg.k), {}
    km = kmeans(k, seed, n).fit(Zs)
    labels = km.labels_
    dist = np.linalg.norm(Zs - km.cluster_centers_[labels], axis=1)
    Ss = scaler.transform(Z_series)
    s_labels = km.predict(Ss)
    s_dist = np.linalg.norm(Ss - km.cluster_centers_[s_labels], axis=1)
    metrics: dict[str, Any] = {"k": k, **clustering_scores(Zs, labels, cfg.sample, seed),
                               "sizes": np.bincount(labels, minlength=k).tolist(),
                               **stability(Zs, k, labels, seed, window_series, s_labels)}
    if series_truth is not None and len(series_truth) > 1:
        metrics.update(agreement(series_truth, s_labels))
    if scores:
        metrics["silhouette_by_k"] = {str(k): round(v, 4) for k, v in scores.items()}
    log.info("cluster: k=%d sizes %s silhouette %.3f", k, metrics["sizes"], metrics["silhouette"])
    return Clustering(k, labels, dist, s_labels, s_dist, scaler.inverse_transform(km.cluster_centers_),
                      scaler.mean_, scaler.scale_, scores, metrics)


def assign(Z: np.ndarray, centroids: np.ndarray, z_mean: np.ndarray, z_scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid in the standardised space K-means used: (n, D) -> (cluster (n,), distance (n,))."""
    Zs = (Z - z_mean) / z_scale
    Cs = (centroids - z_mean) / z_scale
    d2 = (Zs**2).sum(1)[:, None] - 2 * Zs @ Cs.T + (Cs**2).sum(1)[None, :]  # (n, k)
    lab = np.argmin(d2, axis=1)
    return lab, np.sqrt(np.maximum(d2[np.arange(len(Z)), lab], 0.0))


def clustering_tables(c: Clustering, window_id: np.ndarray, series_id: np.ndarray,
                      series_ids: np.ndarray) -> tuple[pa.Table, pa.Table]:
    """(per-window assignments: window_id, series_id, cluster, distance; per-series: series_id, cluster, distance)."""
    windows = pa.table({"window_id": pa.array(window_id), "series_id": pa.array(np.asarray(series_id).astype(str)),
                        "cluster": pa.array(c.labels.astype(np.int32)), "distance": pa.array(c.distance)})
    series = pa.table({"series_id": pa.array(np.asarray(series_ids).astype(str)),
                       "cluster": pa.array(c.series_labels.astype(np.int32)), "distance": pa.array(c.series_distance)})
    return windows, series
