"""Windowing: cut each series into fixed-length windows and standardise them.

Output: windows.parquet, one row per window: `window_id`, `series_id`, `start`, `values`
(T*C float32), `label` when the input had one, and under scale=window the `loc`/`scale` (C
each) that turn the standardised values back into original units; the global or per-series
loc/scale are a small scaler table beside it.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tsatlas.config import WindowsConfig
from tsatlas.errors import InputError
from tsatlas.tables import fixed_list, from_fixed_list, meta, whole_groups, with_meta

log = logging.getLogger(__name__)


@dataclass
class Windows:
    """Standardised windows and what is needed to undo the scaling.

    X: (n, T, C) float32 standardised values; loc, scale: (n, C); series: (n,) index into
    `series_ids`; start: (n,) row offset of the first step inside its series; left_out: windows
    not cut because they overlap missing steps (an outage kept missing at ingest).
    """

    X: np.ndarray
    loc: np.ndarray
    scale: np.ndarray
    series: np.ndarray
    start: np.ndarray
    series_ids: np.ndarray
    left_out: int = 0

    def original_units(self) -> np.ndarray:
        return self.X * self.scale[:, None, :] + self.loc[:, None, :]


def window_starts(bounds: np.ndarray, length: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Row offsets of every window start, never crossing a series boundary.

    Args:
        bounds: (S+1,) row offsets; series s occupies rows bounds[s]:bounds[s+1].

    Returns:
        (starts, series index) arrays, one entry per window.
    """
    lens = np.diff(bounds)
    counts = np.where(lens >= length, (lens - length) // stride + 1, 0)
    series = np.repeat(np.arange(len(lens)), counts)
    first = np.repeat(bounds[:-1], counts)
    # position of each window within its series: 0, 1, 2, ... restarting per series
    within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return first + within * stride, series


def cut(values: np.ndarray, bounds: np.ndarray, length: int, stride: int) -> np.ndarray:
    """(N, C) rows -> (n, length, C) windows, `stride` apart inside each series, never across.

    A window is `length` consecutive rows, i.e. one contiguous block of length*C values, so each
    series is a single strided view (n_s, length*C) copied in one numpy call: the loop runs over
    series, never over windows.
    """
    src = np.ascontiguousarray(values)
    N, C = src.shape
    lens = np.diff(bounds)
    counts = np.where(lens >= length, (lens - length) // stride + 1, 0)
    out = np.empty((int(counts.sum()), length, C), dtype=src.dtype)
    flat = out.reshape(len(out), length * C)
    row, item = src.strides
    k = 0
    for a, n in zip(bounds[:-1], counts):
        if n:
            view = np.lib.stride_tricks.as_strided(src[a:], shape=(int(n), length * C), strides=(stride * row, item),
                                                   writeable=False)
            flat[k:k + n] = view
            k += n
    return out


def series_stats(values: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation per series and channel, (S, C) each, over the values present
    (an outage kept missing at ingest is NaN). Each series is shifted by a value of its own before
    summing, so a large offset cannot cancel the variance away."""
    S, C = len(bounds) - 1, values.shape[1]
    mean, sd = np.zeros((S, C)), np.zeros((S, C))
    for s, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):  # loop over series, vectorised inside
        if b > a:
            ref = values[a]
            if np.isnan(ref).any():
                with np.errstate(all="ignore"), warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # a channel with no value: its mean is NaN
                    ref = np.nan_to_num(np.nanmean(values[a:b], axis=0))
            d = values[a:b] - ref
            n: np.ndarray | int = b - a
            total = d.sum(axis=0)
            if np.isnan(total).any():  # missing values: sums and counts over those present
                n = np.maximum((~np.isnan(d)).sum(axis=0), 1)
                d = np.nan_to_num(d, nan=0.0)
                total = d.sum(axis=0)
            m = total / n
            mean[s] = m + ref
            sd[s] = np.sqrt(np.maximum(np.einsum("nc,nc->c", d, d) / n - m * m, 0.0))
    return mean, sd


def _standardise_rows(values: np.ndarray, bounds: np.ndarray, loc: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """(values - loc[s]) / sd[s] for the rows of each series s, as float32, in place on one float32 copy."""
    out = values.astype(np.float32)
    inv = (1.0 / sd).astype(np.float32)
    for s, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        out[a:b] -= loc[s].astype(np.float32)
        out[a:b] *= inv[s]
    return out


def _too_short(series_id: str, steps: int, length: int) -> str:
    return f"series {str(series_id)!r} has {int(steps)} steps, fewer than windows.length={length}: skipped"


def no_whole_window(source: str, length: int) -> str:
    """The message when every window overlaps an outage (windowing and scoring)."""
    return (f"{source}: no window of {length} steps without missing steps: every one overlaps a gap longer than "
            "ingest.max_gap (raise it to fill them by interpolation, or shorten windows.length)")


def _safe(sd: np.ndarray, loc: np.ndarray) -> np.ndarray:
    return np.where(sd > 1e-8 * np.maximum(np.abs(loc), 1.0), sd, 1.0)  # a constant channel stays unscaled


def make_windows(values: np.ndarray, bounds: np.ndarray, series_ids: np.ndarray, cfg: WindowsConfig,
                 source: str = "input", global_stats: tuple[np.ndarray, np.ndarray] | None = None,
                 ) -> tuple[Windows, list[str]]:
    """Cut and standardise.

    Global and per-series scaling are applied to the (N, C) rows before cutting (cheaper than
    scaling the overlapping windows); per-window scaling is applied to the windows.

    Args:
        values: (N, C) rows of all series, each series contiguous and time-ordered.
        bounds: (S+1,) row offsets of the series.
        series_ids: (S,) names, for messages.
        global_stats: (mean (C,), sd (C,)) of all rows, when `values` is one batch of a larger
            input (scale=global); default: computed from `values`.

    Returns:
        The windows (`left_out` counts those that overlap missing steps), and warnings about
        series skipped for being shorter than a window.
    """
    lens = np.diff(bounds)
    short = np.flatnonzero(lens < cfg.length)
    if len(short) == len(lens):
        raise InputError(
            f"{source}: every series is shorter than windows.length={cfg.length} "
            f"(longest has {int(lens.max()) if len(lens) else 0} steps)"
        )
    notes = [_too_short(series_ids[i], lens[i], cfg.length) for i in short]
    starts, series = window_starts(bounds, cfg.length, cfg.stride)
    C = values.shape[1]
    if cfg.scale in ("global", "series"):
        groups = bounds if cfg.scale == "series" else np.array([0, len(values)])
        if cfg.scale == "global" and global_stats is not None:
            mean, sd = (np.asarray(a, np.float64)[None, :] for a in global_stats)
        else:
            mean, sd = series_stats(values, groups)
        sd = _safe(sd, mean)
        X = cut(_standardise_rows(values, groups, mean, sd), bounds, cfg.length, cfg.stride)
    else:
        X = cut(values.astype(np.float32), bounds, cfg.length, cfg.stride)
    left_out = 0
    if np.isnan(values.sum()):  # outages kept missing at ingest (long_gaps=skip): no window may overlap one
        keep = ~np.isnan(X).any(axis=(1, 2))
        X, starts, series, left_out = X[keep], starts[keep], series[keep], int((~keep).sum())
    n = len(starts)
    if cfg.scale in ("global", "series"):
        loc, scale = (mean[series], sd[series]) if cfg.scale == "series" else (
            np.broadcast_to(mean[0], (n, C)), np.broadcast_to(sd[0], (n, C)))
    elif cfg.scale == "window":  # two passes in place: centre, then scale (no window-sized temporaries)
        loc = np.einsum("ntc->nc", X) / cfg.length
        X -= loc[:, None, :]
        scale = _safe(np.sqrt(np.einsum("ntc,ntc->nc", X, X) / cfg.length), loc)
        X /= scale[:, None, :]
    else:
        loc, scale = np.zeros((n, C)), np.ones((n, C))
    w = Windows(X, np.ascontiguousarray(loc, np.float32), np.ascontiguousarray(scale, np.float32), series,
                starts - bounds[series], np.asarray(series_ids), left_out)
    return w, notes


def to_table(w: Windows, timestamps: pa.Array | None, bounds: np.ndarray, channels: list[str], scope: str,
             labels: np.ndarray | None = None, first_id: int = 0) -> pa.Table:
    """Windows -> the windows.parquet table (one row per window); ids count from `first_id`.
    Per-window `loc`/`scale` columns only for scale=window; other scopes keep theirs in the
    scaler table (scaler_table)."""
    n, T, C = w.X.shape
    cols: dict[str, Any] = {
        "window_id": pa.array(np.arange(first_id, first_id + n, dtype=np.int64)),
        "series_id": pa.array(w.series_ids[w.series].astype(str)),
        "start": timestamps.take(pa.array(bounds[w.series] + w.start)) if timestamps is not None else pa.array(w.start),
        "values": fixed_list(w.X),
    }
    if scope == "window":
        cols |= {"loc": fixed_list(w.loc), "scale": fixed_list(w.scale)}
    if labels is not None:
        cols["label"] = pa.array(labels[w.series].astype(str))
    return with_meta(pa.table(cols), length=T, channels=",".join(channels), scale=scope)


def scaler_table(w: Windows, scope: str) -> pa.Table:
    """The scaling of scope global (one row, series_id null) or series (one row per series with
    windows); empty for window (kept per window) and none."""
    C = w.X.shape[2]
    if scope == "global" and len(w.X):
        return pa.table({"series_id": pa.array([None], pa.string()), "loc": fixed_list(w.loc[:1]),
                         "scale": fixed_list(w.scale[:1])})
    if scope == "series" and len(w.X):
        first = np.unique(w.series, return_index=True)[1]
        return pa.table({"series_id": pa.array(w.series_ids[w.series[first]].astype(str)),
                         "loc": fixed_list(w.loc[first]), "scale": fixed_list(w.scale[first])})
    empty = fixed_list(np.zeros((0, C), np.float32))
    return pa.table({"series_id": pa.array([], pa.string()), "loc": empty, "scale": empty})


def from_table(table: pa.Table, X: np.ndarray | None = None, scaler: pa.Table | None = None) -> tuple[Windows, list[str]]:
    """The windows.parquet table (and its scaler table) -> Windows and channel names; `X`
    replaces the `values` column (the catalog passes a memory map and reads the table without it).
    Under global scaling loc/scale are broadcast views of one row, not n copies."""
    T, channels, scope = int(meta(table, "length")), meta(table, "channels").split(","), meta(table, "scale")
    C, n = len(channels), len(table)
    # series index per window from Arrow's dictionary encoding: no Python string per window
    codes = pc.dictionary_encode(table.column("series_id")).combine_chunks()
    series = codes.indices.to_numpy().astype(np.int64)
    series_ids = np.asarray(codes.dictionary.to_pylist(), dtype=str)
    if "loc" in table.column_names:
        loc, scale = from_fixed_list(table.column("loc"), (C,)), from_fixed_list(table.column("scale"), (C,))
    elif scope == "global" and scaler is not None and len(scaler):
        loc, scale = (np.broadcast_to(from_fixed_list(scaler.column(c), (C,))[0], (n, C)) for c in ("loc", "scale"))
    elif scope == "series" and scaler is not None:
        row = {sid: i for i, sid in enumerate(scaler.column("series_id").to_pylist())}
        at = np.array([row[s] for s in series_ids], dtype=np.int64)[series]
        loc, scale = (from_fixed_list(scaler.column(c), (C,))[at] for c in ("loc", "scale"))
    else:
        loc, scale = np.zeros((n, C), np.float32), np.ones((n, C), np.float32)
    w = Windows(X=from_fixed_list(table.column("values"), (T, C)) if X is None else X, loc=loc, scale=scale,
                series=series, start=np.zeros(n, np.int64), series_ids=series_ids)
    return w, channels


def _values(t: pa.Table, channels: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> (values (N, C) float64, bounds (S+1,), series ids (S,)) of a batch of whole series."""
    values = np.column_stack([t.column(c).to_numpy() for c in channels]).astype(np.float64, copy=False)
    sid = t.column("series_id").to_numpy(zero_copy_only=False).astype(str)
    bounds = np.flatnonzero(np.r_[True, sid[1:] != sid[:-1], True])
    return values, bounds, sid[bounds[:-1]]


def global_stats(pf: pq.ParquetFile, channels: list[str], batch_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation per channel over all rows, one batch at a time (Chan et
    al.'s pairwise combination of counts, means and sums of squared deviations)."""
    n, mean, m2 = np.zeros(len(channels)), np.zeros(len(channels)), np.zeros(len(channels))
    for rb in pf.iter_batches(batch_size=batch_rows, columns=channels):
        v = np.column_stack([rb.column(c).to_numpy(zero_copy_only=False) for c in channels]).astype(np.float64, copy=False)
        bm, bsd = series_stats(v, np.array([0, len(v)]))
        nb = (~np.isnan(v)).sum(axis=0)  # values present per channel (outages are NaN)
        delta = bm[0] - mean
        both = np.maximum(n + nb, 1)
        m2 += bsd[0] ** 2 * nb + delta**2 * n * nb / both
        mean += delta * nb / both
        n += nb
    return mean, np.sqrt(m2 / np.maximum(n, 1))


def _phases(timestamps: pa.ChunkedArray, bounds: np.ndarray, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """(S, 2) per series: (window period = stride x the series' step, first start modulo it), as
    int64 nanoseconds (timestamps) or steps, and the positions of those series in `bounds`; series
    of one row are left out."""
    t = timestamps.combine_chunks().cast(pa.int64()).to_numpy() if pa.types.is_timestamp(timestamps.type) \
        else timestamps.to_numpy()
    a, b = bounds[:-1], bounds[1:]
    keep = np.flatnonzero(b - a >= 2)
    a = a[keep]
    period = (t[a + 1] - t[a]) * stride
    return np.column_stack([period, np.mod(t[a], np.where(period > 0, period, 1))]).astype(np.int64), keep


MAX_SERIES_PHASES = 5000  # series whose own phase the manifest keeps, where it is not the common one


def window_grid(phases: np.ndarray, ids: np.ndarray) -> dict[str, Any] | None:
    """Where the training windows start, for aligning new data to it: the most common (period,
    phase) over the series, the share of series on it, and, when some series started elsewhere
    (series in other time zones, each starting at its local midnight), each of those series'
    own phase by id (`series_phase`; at most MAX_SERIES_PHASES of them). None without series."""
    if not len(phases):
        return None
    pairs, counts = np.unique(phases, axis=0, return_counts=True)
    i = int(np.argmax(counts))
    grid = {"period": int(pairs[i, 0]), "phase": int(pairs[i, 1]), "share": round(float(counts[i] / counts.sum()), 4)}
    other = np.flatnonzero((phases != pairs[i]).any(axis=1) & (phases[:, 0] == pairs[i, 0]))
    if 0 < len(other) <= MAX_SERIES_PHASES:
        grid["series_phase"] = {str(ids[j]): int(phases[j, 1]) for j in other}
    return grid


BATCH_ROWS = 1 << 20  # ingest rows per windowing batch
GROUP_BYTES = 32 << 20  # windows.parquet row groups of about this many bytes of values: the unit of streaming reads


def write_windows(series_path: str, channels: list[str], cfg: WindowsConfig, out_path: str,
                  source: str = "input") -> tuple[dict[str, Any], pa.Table]:
    """Cut the series table at `series_path` into standardised windows written to `out_path`,
    streaming: the series are read in batches of whole series and the windows are written one
    row group per batch; global scaling takes one extra pass for the statistics.

    Returns:
        (facts: shape, channels, skipped_series; the scaler table).
    """
    src = pq.ParquetFile(series_path)
    columns = ["series_id", "timestamp", *channels, *(["label"] if "label" in src.schema_arrow.names else [])]
    stats = global_stats(src, channels, BATCH_ROWS) if cfg.scale == "global" else None
    n, longest, notes, scalers, phases, phase_ids, left_out = 0, 0, [], [], [], [], 0
    writer: pq.ParquetWriter | None = None
    for t in whole_groups(src.iter_batches(batch_size=BATCH_ROWS, columns=columns), "series_id"):
        values, bounds, ids = _values(t, channels)
        longest = max(longest, int(np.diff(bounds).max()))
        if np.diff(bounds).max() < cfg.length:  # no window in this batch
            notes += [_too_short(s, m, cfg.length) for s, m in zip(ids, np.diff(bounds))]
            continue
        w, warn = make_windows(values, bounds, ids, cfg, source=source, global_stats=stats)
        notes += warn
        left_out += w.left_out
        labels = t.column("label").to_numpy(zero_copy_only=False)[bounds[:-1]] if "label" in t.column_names else None
        out = to_table(w, t.column("timestamp").combine_chunks(), bounds, channels, cfg.scale, labels, first_id=n)
        writer = writer or pq.ParquetWriter(out_path, out.schema, compression="zstd")
        writer.write_table(out, row_group_size=GROUP_BYTES // (4 * cfg.length * len(channels)) + 1)
        if not scalers or cfg.scale == "series":
            scalers.append(scaler_table(w, cfg.scale))
        ph, kept = _phases(t.column("timestamp"), bounds, cfg.stride)
        phases.append(ph)
        phase_ids.append(ids[kept])
        n += len(w.X)
    if writer is None:
        raise InputError(f"{source}: every series is shorter than windows.length={cfg.length} (longest has {longest} steps)")
    writer.close()
    if n == 0:
        raise InputError(no_whole_window(source, cfg.length))
    for msg in notes:
        log.warning("windows: %s", msg)
    if left_out:
        log.warning("windows: %d of %d windows overlap missing steps (a gap longer than ingest.max_gap): left out",
                    left_out, n + left_out)
    log.info("windows: %d windows of %d steps x %d channels", n, cfg.length, len(channels))
    facts = {"shape": [n, cfg.length, len(channels)], "channels": channels, "skipped_series": len(notes), "left_out": left_out,
             "grid": window_grid(np.concatenate(phases), np.concatenate(phase_ids)) if phases else None}
    return facts, pa.concat_tables(scalers)
