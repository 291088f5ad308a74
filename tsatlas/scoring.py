"""Scoring: new data through an already trained atlas. Windows are cut and scaled as in
training, embedded with the stored model, assigned to the stored K-means centroids, and
flagged when their reconstruction error is above the threshold learned at training time."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from tsatlas.catalog import KMeansModel
from tsatlas.clustering import assign
from tsatlas.config import IngestConfig, WindowsConfig
from tsatlas.errors import InputError
from tsatlas.tables import from_fixed_list
from tsatlas.windowing import make_windows, no_whole_window

log = logging.getLogger(__name__)


def cluster_mix(train_sizes: np.ndarray, new_labels: np.ndarray) -> dict[str, Any]:
    """Share of windows per cluster in training and in the new data, and their total variation distance."""
    k = len(train_sizes)
    before = train_sizes / train_sizes.sum()
    after = np.bincount(new_labels, minlength=k) / max(len(new_labels), 1)
    return {"train_share": before.round(4).tolist(), "new_share": after.round(4).tolist(),
            "total_variation": float(0.5 * np.abs(before - after).sum())}


def reading_config(trained_cfg: dict[str, Any], trained: dict[str, Any]) -> IngestConfig:
    """How new data is read for a trained run (its ingest section and ingest summary): as the
    training data was, without its time range; the model's channels by name (in any column order,
    other columns left out; a wide table's columns are its series); under ingest.resample, onto the
    training grid's step rather than one chosen afresh from the new data's spacing."""
    read = {**trained_cfg, "start": None, "span": None, "end": None}
    if trained.get("layout") != "wide":
        read["channels"] = trained["channels"]
    if read.get("resample", "none") != "none" and read.get("freq") is None and isinstance(trained.get("step"), str) \
            and "time_unit" not in trained:
        read["freq"] = f"{pd.Timedelta(trained['step']).value}ns"
    return IngestConfig(**read)


def check_step(trained: dict[str, Any], new: dict[str, Any], source: str) -> None:
    """Refuse new data whose time step is not the training data's (ingest summaries of both): its
    windows of the same number of steps would span another duration, and be scored as if they
    did not. Manifests written before the step was recorded are not checked."""
    if "step" in trained and str(new["step"]) != str(trained["step"]):
        raise InputError(f"{source}: rows are {_step_text(new['step'])} apart, the model was trained on data "
                         f"{_step_text(trained['step'])} apart: resample the data to that step to score it")


def _step_text(step: Any) -> str:
    """'0 days 01:00:00' -> '01:00:00'; a counter's step -> 'N steps'; '1 month(s)' as it is."""
    if isinstance(step, (int, np.integer)):
        return f"{step} steps"
    return step.removeprefix("0 days ")


def align_to_grid(frame: pd.DataFrame, grid: dict[str, Any] | None, source: str) -> pd.DataFrame:
    """Drop the first rows of each series up to the first time on the training windows' grid
    (the same phase modulo stride x step: for calendar data the same time of day), so that new
    windows cover the same part of a cycle as the training windows did: a series seen in training
    on its own phase (`series_phase`, e.g. another time zone's midnight) keeps that phase, any
    other gets the common one. Logged when rows are dropped."""
    if not grid or not len(frame):
        return frame
    ts = frame["timestamp"]
    t = pd.DatetimeIndex(ts).as_unit("ns").asi8 if pd.api.types.is_datetime64_any_dtype(ts) else ts.to_numpy(np.int64)
    sid = frame["series_id"].to_numpy()
    first = np.flatnonzero(np.r_[True, sid[1:] != sid[:-1]])
    rows = np.diff(np.r_[first, len(t)])
    start_of = np.repeat(t[first], rows)
    phase = pd.Series(sid[first].astype(str)).map(grid.get("series_phase", {})).fillna(grid["phase"]).to_numpy(np.int64)
    offset = np.mod(np.repeat(phase, rows) - start_of, grid["period"])  # time from each series' start to its first grid point
    keep = t - start_of >= offset
    if keep.all():
        return frame
    dropped = int((~keep).sum())
    log.warning("score: %s starts off the training windows' grid: skipped the first %d rows (%d series) so that "
                "windows start where training windows did; start the data on that grid to keep them", source,
                dropped, len(np.unique(sid[~keep])))
    return frame.loc[keep].reset_index(drop=True)


def score_series(frame: pd.DataFrame, channels: list[str], wcfg: WindowsConfig, scaler: pa.Table, ae: Any,
                 km: KMeansModel, threshold: float, source: str) -> tuple[pa.Table, dict[str, Any]]:
    """Score an ingested series table with a trained atlas.

    Args:
        frame: the series table (series_id, timestamp, channels...), each series contiguous.
        wcfg: the windows section the atlas was trained with; scaler: its fitted scaler table
            (under scale=global new data is scaled exactly as the training data was).
        ae, km, threshold: the trained model, its K-means and anomaly threshold.

    Returns:
        (per-window table, summary counts).
    """
    values = frame[channels].to_numpy(np.float64)
    sid = frame["series_id"].to_numpy().astype(str)
    bounds = np.flatnonzero(np.r_[True, sid[1:] != sid[:-1], True])
    if wcfg.scale == "global":
        C = len(channels)
        loc, scale = (from_fixed_list(scaler.column(c), (C,))[0] for c in ("loc", "scale"))
        w, _ = make_windows(values, bounds, sid[bounds[:-1]], wcfg, source=source, global_stats=(loc, scale))
    else:
        w, _ = make_windows(values, bounds, sid[bounds[:-1]], wcfg, source=source)
    if not len(w.X):
        raise InputError(no_whole_window(source, wcfg.length))
    if w.left_out:
        log.warning("score: %d of %d windows overlap missing steps (a gap longer than ingest.max_gap): left out",
                    w.left_out, w.left_out + len(w.X))
    z, err = ae.embed(w.X)
    labels, dist = assign(z, km.centroids, km.z_mean, km.z_scale)
    table = pa.table({"window_id": pa.array(np.arange(len(z), dtype=np.int64)),
                      "series_id": pa.array(w.series_ids[w.series].astype(str)),
                      "start": frame["timestamp"].iloc[bounds[w.series] + w.start].to_numpy(),
                      "cluster": pa.array(labels.astype(np.int32)), "distance": pa.array(dist),
                      "recon_error": pa.array(err), "anomaly": pa.array(err > threshold)})
    summary = {"windows": int(len(z)), "left_out": w.left_out, "anomalies": int((err > threshold).sum()), "threshold": threshold,
               **cluster_mix(km.sizes, labels)}
    return table, summary
