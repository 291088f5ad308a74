"""Embedding: z and reconstruction error for every window, and one embedding per series (the
mean of its windows' z)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from tsatlas.tables import fixed_list
from tsatlas.windowing import Windows

# Windows whose reconstruction error is above this quantile of the training data are flagged.
ANOMALY_QUANTILE = 0.99


def series_means(z: np.ndarray, codes: np.ndarray, n_series: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean of z per series: (n, D), (n,) codes -> ((S, D) means, (S,) counts)."""
    counts = np.bincount(codes, minlength=n_series)
    sums = np.zeros((n_series, z.shape[1]), np.float64)
    np.add.at(sums, codes, z)
    return (sums / np.maximum(counts, 1)[:, None]).astype(np.float32), counts


def embed_windows(ae: Any, w: Windows, ids: pa.Table) -> tuple[pa.Table, pa.Table, float]:
    """Embed every window with a fitted RNNAutoencoder.

    Args:
        w: the windows; ids: their id columns (window_id, series_id, [label]).

    Returns:
        (per-window table: window_id, series_id, z, recon_error, anomaly; per-series table:
        series_id, z, n_windows, recon_error, [label]; the anomaly threshold).
    """
    z, err = ae.embed(w.X)
    if not (np.isfinite(z).all() and np.isfinite(err).all()):
        raise ValueError("embed: the model produced non-finite embeddings or errors")
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
    return win, pa.table(ser), threshold
