"""Cluster: K-means on standardised embeddings, k given or chosen by silhouette;
assignments per window and per series (its mean embedding), and centroids."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from prefect import task
from sklearn.preprocessing import StandardScaler

from tasks.common import STAGE_TASK, logger, open_store
from tasks.embed import load_embeddings
from tsatlas.clustering import choose_k, kmeans
from tsatlas.config import ClusterConfig
from tsatlas.errors import ConfigError
from tsatlas.metrics import agreement, clustering_scores
from tsatlas.storage import code_version, digest
from tsatlas.tables import fixed_list, from_fixed_list, meta, with_meta


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
    metrics: dict[str, float]


def cluster_embeddings(Z: np.ndarray, Z_series: np.ndarray, cfg: ClusterConfig, seed: int = 0,
                       series_truth: np.ndarray | None = None) -> Clustering:
    """K-means on standardised window embeddings; series are assigned by their mean embedding.

    Args:
        Z: (n, D) window embeddings. Z_series: (S, D) series embeddings.
        series_truth: (S,) known labels, used only for ARI/NMI.
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
                               "sizes": np.bincount(labels, minlength=k).tolist()}
    if series_truth is not None and len(series_truth) > 1:
        metrics.update(agreement(series_truth, s_labels))
    return Clustering(k, labels, dist, s_labels, s_dist, scaler.inverse_transform(km.cluster_centers_),
                      scaler.mean_, scaler.scale_, scores, metrics)


def assign(Z: np.ndarray, centroids: np.ndarray, z_mean: np.ndarray, z_scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid in the standardised space K-means used: (n, D) -> (cluster (n,), distance (n,))."""
    Zs = (Z - z_mean) / z_scale
    Cs = (centroids - z_mean) / z_scale
    d2 = (Zs**2).sum(1)[:, None] - 2 * Zs @ Cs.T + (Cs**2).sum(1)[None, :]  # (n, k)
    lab = np.argmin(d2, axis=1)
    return lab, np.sqrt(np.maximum(d2[np.arange(len(Z)), lab], 0.0))


@task(name="cluster", **STAGE_TASK)
def cluster_task(embed: dict[str, Any], root: str, cfg: ClusterConfig, seed: int = 0,
                 credentials: str | None = None) -> dict[str, Any]:
    """Cluster the embeddings; skipped when already done."""
    store = open_store(root, credentials)
    key = digest("cluster", embed["sha256"], cfg.model_dump(), seed, code_version())
    if (ref := store.stage_done("cluster", key)) is not None:
        return ref
    wins, Z, series, Zs = load_embeddings(store, embed)
    truth = series["label"].to_numpy() if "label" in series and series["label"].notna().all() else None
    c = cluster_embeddings(Z, Zs, cfg, seed, truth)
    if c.scores_by_k:
        c.metrics["silhouette_by_k"] = {str(k): round(v, 4) for k, v in c.scores_by_k.items()}
    logger().info("cluster: k=%d sizes %s silhouette %.3f", c.k, c.metrics["sizes"], c.metrics["silhouette"])
    with store.stage("cluster", key) as out:
        out.put_table("windows.parquet", pa.table({
            "window_id": pa.array(wins["window_id"].to_numpy()), "series_id": pa.array(wins["series_id"].astype(str).to_numpy()),
            "cluster": pa.array(c.labels.astype(np.int32)), "distance": pa.array(c.distance)}))
        out.put_table("series.parquet", pa.table({
            "series_id": pa.array(series["series_id"].astype(str).to_numpy()),
            "cluster": pa.array(c.series_labels.astype(np.int32)), "distance": pa.array(c.series_distance)}))
        out.put_table("centroids.parquet", with_meta(pa.table({
            "cluster": pa.array(np.arange(c.k, dtype=np.int32)), "size": pa.array(np.bincount(c.labels, minlength=c.k)),
            "z": fixed_list(c.centroids)}), z_mean=json.dumps(c.z_mean.tolist()), z_scale=json.dumps(c.z_scale.tolist())))
        return out.finish("windows.parquet", len(c.labels), metrics=c.metrics)


def load_centroids(store, ref: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """-> (centroids (k, D), sizes (k,), z_mean (D,), z_scale (D,))."""
    t = store.read_stage_table(ref, "centroids.parquet")
    D = t.schema.field("z").type.list_size
    return (from_fixed_list(t.column("z"), (D,)), t.column("size").to_numpy(),
            np.asarray(json.loads(meta(t, "z_mean"))), np.asarray(json.loads(meta(t, "z_scale"))))
