"""Score: new data through an already trained run. Windows are cut and scaled as in training,
embedded with the stored model, assigned to the stored centroids, and flagged when their
reconstruction error is above the threshold learned at training time."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import numpy as np
import pyarrow as pa
from prefect import task

from tasks.cluster import assign, load_centroids
from tasks.common import STAGE_TASK, block_options, logger, open_store
from tasks.ingest import ingest_table
from tasks.report import latest_run
from tasks.train import load_model
from tasks.windows import load_windows, make_windows
from tsatlas.config import IngestConfig, WindowsConfig
from tsatlas.errors import InputError, StorageError
from tsatlas.storage import Store, check_key


def cluster_mix(train_sizes: np.ndarray, new_labels: np.ndarray) -> dict[str, Any]:
    """Share of windows per cluster in training and in the new data, and their total variation distance."""
    k = len(train_sizes)
    before = train_sizes / train_sizes.sum()
    after = np.bincount(new_labels, minlength=k) / max(len(new_labels), 1)
    return {"train_share": before.round(4).tolist(), "new_share": after.round(4).tolist(),
            "total_variation": float(0.5 * np.abs(before - after).sum())}


def score_frame(store: Store, manifest: dict[str, Any], data: str, storage_options: dict | None = None,
                device: str = "auto") -> tuple[pa.Table, dict[str, Any]]:
    """Score `data` with the run in `manifest`. Returns (per-window table, summary)."""
    stages, cfg = manifest["stages"], manifest["config"]
    icfg = IngestConfig(**{**cfg["ingest"], "start": None, "end": None})
    wcfg = WindowsConfig(**cfg["windows"])
    ing = ingest_table(data, icfg, storage_options)
    trained_channels = manifest["summary"]["ingest"]["channels"]
    if ing.channels != trained_channels:
        raise InputError(f"{data}: channels {ing.channels} differ from the trained model's {trained_channels}")
    f = ing.frame
    values = f[ing.channels].to_numpy(np.float64)
    sid = f["series_id"].to_numpy().astype(str)
    bounds = np.flatnonzero(np.r_[True, sid[1:] != sid[:-1], True])
    if wcfg.scale == "global":  # new data must be scaled exactly as the training data was
        w, _ = make_windows(values, bounds, sid[bounds[:-1]], wcfg.model_copy(update={"scale": "none"}), source=data)
        trained, _, _ = load_windows(store, stages["windows"])
        w.loc[:], w.scale[:] = trained.loc[0], trained.scale[0]
        w.X = (w.X - w.loc[:, None, :]) / w.scale[:, None, :]
    else:
        w, _ = make_windows(values, bounds, sid[bounds[:-1]], wcfg, source=data)
    ae = load_model(store, stages["train"], device)
    z, err = ae.embed(w.X)
    centroids, sizes, z_mean, z_scale = load_centroids(store, stages["cluster"])
    labels, dist = assign(z, centroids, z_mean, z_scale)
    threshold = manifest["summary"]["embed"]["anomaly_threshold"]
    table = pa.table({"window_id": pa.array(np.arange(len(z), dtype=np.int64)),
                      "series_id": pa.array(w.series_ids[w.series].astype(str)),
                      "start": f["timestamp"].iloc[bounds[w.series] + w.start].to_numpy(),
                      "cluster": pa.array(labels.astype(np.int32)), "distance": pa.array(dist),
                      "recon_error": pa.array(err), "anomaly": pa.array(err > threshold)})
    summary = {"windows": int(len(z)), "anomalies": int((err > threshold).sum()), "threshold": threshold,
               **cluster_mix(sizes, labels)}
    return table, summary


@task(name="score", **STAGE_TASK)
def score_task(data: str, model: str, root: str, credentials: str | None = None, device: str = "auto") -> dict[str, Any]:
    """Score new data with a trained run (`model`: a run id or 'latest'); writes scores/<score_id>/."""
    store = open_store(root, credentials)
    run_id = latest_run(store) if model == "latest" else model
    key = check_key(f"runs/{run_id}/manifest.json")
    if not store.exists(key):
        raise StorageError(f"{store.uri(key)}: no such run to score with")
    manifest = store.get_json(key)
    table, summary = score_frame(store, manifest, data, block_options(credentials), device)
    score_id = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    out_key = check_key(f"scores/{score_id}/windows.parquet")
    sha = store.put_table(out_key, table)
    result = {"score_id": score_id, "model_run": run_id, "data": data, "uri": store.uri(out_key), "sha256": sha,
              **summary}
    store.put_json(check_key(f"scores/{score_id}/summary.json"), result)
    logger().info("score: %d windows, %d anomalies, cluster mix shift (total variation) %.3f",
                  summary["windows"], summary["anomalies"], summary["total_variation"])
    return result
