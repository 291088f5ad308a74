"""The cluster task: K-means on the embeddings, per window and per series, and the fitted K-means."""

from __future__ import annotations

from prefect import task

from tasks.common import STAGE_TASK, open_store, stage_state
from tsatlas import catalog
from tsatlas.clustering import cluster_embeddings, clustering_tables
from tsatlas.config import ClusterConfig
from tsatlas.stage import run_stage


@task(name="cluster", **STAGE_TASK)
def cluster_task(embed: catalog.EmbedRef, root: str, cfg: ClusterConfig, seed: int = 0,
                 credentials: str | None = None) -> catalog.ClusterRef:
    """Cluster the embeddings; reused when already done."""
    store = open_store(root, credentials)

    def compute(w):
        e = catalog.read_embeddings(store, embed)
        c = cluster_embeddings(e.z, e.series_z, cfg, seed, e.series_labels, e.window_series)
        windows, series = clustering_tables(c, e.window_id, e.series_id, e.series_ids)
        catalog.write_clusters(w, windows, series, catalog.KMeansModel(c.centroids, c.z_mean, c.z_scale, c.sizes))
        return catalog.finish(w, catalog.ASSIGNMENTS, len(c.labels), metrics=c.metrics)

    return stage_state(run_stage(store, "cluster", [embed], {"cluster": cfg.model_dump(), "seed": seed}, compute))
