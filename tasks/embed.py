"""Embed: z and reconstruction error for every window, and one embedding per series
(the mean of its windows' z)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from prefect import task

from tasks.common import STAGE_TASK, logger, open_store
from tasks.train import load_model
from tasks.windows import load_windows
from tsatlas.storage import code_version, digest
from tsatlas.tables import fixed_list, from_fixed_list, with_meta

# Windows whose reconstruction error is above this quantile of the training data are flagged.
ANOMALY_QUANTILE = 0.99


def series_means(z: np.ndarray, codes: np.ndarray, n_series: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean of z per series: (n, D), (n,) codes -> ((S, D) means, (S,) counts)."""
    counts = np.bincount(codes, minlength=n_series)
    sums = np.zeros((n_series, z.shape[1]), np.float64)
    np.add.at(sums, codes, z)
    return (sums / np.maximum(counts, 1)[:, None]).astype(np.float32), counts


def load_embeddings(store, ref: dict[str, Any]) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame, np.ndarray]:
    """-> (window rows, window z (n, D), series rows, series z (S, D))."""
    wt = store.read_stage_table(ref, "embeddings.parquet")
    st = store.read_stage_table(ref, "series.parquet")
    D = wt.schema.field("z").type.list_size
    return (wt.drop_columns(["z"]).to_pandas(), from_fixed_list(wt.column("z"), (D,)),
            st.drop_columns(["z"]).to_pandas(), from_fixed_list(st.column("z"), (D,)))


@task(name="embed", **STAGE_TASK)
def embed_task(windows: dict[str, Any], model: dict[str, Any], root: str, device: str = "auto",
               credentials: str | None = None) -> dict[str, Any]:
    """Embed every window with the trained encoder; skipped when already done."""
    store = open_store(root, credentials)
    key = digest("embed", windows["sha256"], model["sha256"], code_version())
    if (ref := store.stage_done("embed", key)) is not None:
        return ref
    w, _, ids = load_windows(store, windows)
    ae = load_model(store, model, device)
    z, err = ae.embed(w.X)
    threshold = float(np.quantile(err, ANOMALY_QUANTILE))
    zs, counts = series_means(z, w.series, len(w.series_ids))
    win = pa.table({"window_id": ids.column("window_id"), "series_id": ids.column("series_id"),
                    "z": fixed_list(z), "recon_error": pa.array(err), "anomaly": pa.array(err > threshold)})
    ser = {"series_id": pa.array(w.series_ids.astype(str)), "z": fixed_list(zs),
           "n_windows": pa.array(counts.astype(np.int64)),
           "recon_error": pa.array(np.bincount(w.series, weights=err, minlength=len(counts)) / np.maximum(counts, 1))}
    if "label" in ids.column_names:
        first = np.unique(w.series, return_index=True)[1]
        lab = np.full(len(counts), None, dtype=object)
        lab[w.series[first]] = ids.column("label").to_numpy(zero_copy_only=False)[first]
        ser["label"] = pa.array(lab, type=pa.string())
    logger().info("embed: %d windows -> z of %d; anomaly threshold %.4f", len(z), z.shape[1], threshold)
    with store.stage("embed", key) as out:
        out.put_table("embeddings.parquet", with_meta(win, threshold=threshold))
        out.put_table("series.parquet", pa.table(ser))
        return out.finish("embeddings.parquet", len(z), threshold=threshold, mean_recon_error=float(err.mean()))
