"""Ingest: read a CSV or Parquet table (long, wide or single-series), validate it, and put
every series on a regular time grid with short gaps filled.

Output (the series table): `series_id` (string), `timestamp` (UTC timestamp or int64
step), one float64 column per channel, optional `label`; grouped by series, each in time order.

A long Parquet file whose series are contiguous is streamed (a batch of whole series at a time);
other inputs are read whole.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from prefect import task

from tasks.common import STAGE_TASK, block_options, logger, open_store
from tsatlas.config import IngestConfig
from tsatlas.errors import InputError, StorageError
from tsatlas.storage import code_version, digest, fs_options
from tsatlas.tables import whole_groups, with_meta


# The bundled real dataset: hourly weather at three US sites (see data/README.md).
BUNDLED_DATA = "data/weather.csv"
_REPO = Path(__file__).resolve().parents[1]


def resolve_data(uri: str) -> str:
    """A relative path that does not exist from the working directory is looked up in the repository
    (so the default `data/weather.csv` works from anywhere)."""
    if "://" in uri:
        return uri
    if os.path.exists(uri):
        return os.path.abspath(uri)
    candidate = _REPO / uri
    return str(candidate) if candidate.exists() else uri


@dataclass
class Ingested:
    frame: pd.DataFrame
    channels: list[str]
    info: dict[str, Any]


def fingerprint(uri: str, storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Cheap identity of an input file (size plus mtime or ETag), so an unchanged file is not re-read."""
    try:
        fs, path = fsspec.core.url_to_fs(uri, **fs_options(uri, storage_options))
        info = fs.info(path)
    except FileNotFoundError:
        raise InputError(f"{uri}: file not found") from None
    except PermissionError as e:
        raise InputError(f"{uri}: access denied, check the credentials ({type(e).__name__})") from None
    except (ValueError, ImportError) as e:
        raise InputError(f"{uri}: cannot open ({e})") from None
    except OSError as e:
        raise StorageError(f"{uri}: cannot reach the input ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from e
    if info.get("type") == "directory":
        raise InputError(f"{uri}: is a directory, expected a CSV or Parquet file")
    keep = ("size", "mtime", "ETag", "LastModified", "created")
    return {"uri": uri, **{k: str(info[k]) for k in keep if k in info}}


def _time_filters(schema: pa.Schema, cfg: IngestConfig | None) -> list[tuple] | None:
    """Parquet predicates for start <= time < end, typed like the file's time column."""
    if cfg is None or (cfg.start is None and cfg.end is None) or cfg.time_column not in schema.names:
        return None
    typ = schema.field(cfg.time_column).type
    if pa.types.is_timestamp(typ):
        conv = (lambda v: pd.Timestamp(v).tz_localize("UTC") if pd.Timestamp(v).tz is None else pd.Timestamp(v)) \
            if typ.tz else (lambda v: pd.Timestamp(v).tz_localize(None))
    elif pa.types.is_integer(typ):
        conv = int
    else:
        conv = str
    out = []
    if cfg.start is not None:
        out.append((cfg.time_column, ">=", conv(cfg.start)))
    if cfg.end is not None:
        out.append((cfg.time_column, "<", conv(cfg.end)))
    return out


def read_table(uri: str, storage_options: dict[str, Any] | None = None, cfg: IngestConfig | None = None) -> pd.DataFrame:
    """Read CSV (any other suffix) or Parquet (.parquet/.pq) from a path or fsspec URL.

    With cfg.start/end, Parquet is read with row-group predicates on the time column, so only
    the partition's row groups are decoded; CSV is read whole and clipped after.
    """
    fingerprint(uri, storage_options)
    is_parquet = uri.lower().endswith((".parquet", ".pq"))
    try:
        with fsspec.open(uri, "rb", **fs_options(uri, storage_options)) as f:
            if is_parquet:
                pf = pq.ParquetFile(f)
                df = pq.read_table(f, filters=_time_filters(pf.schema_arrow, cfg)).to_pandas()
            else:
                df = pd.read_csv(f)
    except pd.errors.EmptyDataError:
        raise InputError(f"{uri}: file is empty") from None
    except pa.ArrowNotImplementedError as e:
        raise InputError(f"{uri}: cannot filter column {cfg.time_column!r} by ingest.start/end ({e})") from None
    except (pa.ArrowInvalid, pd.errors.ParserError, UnicodeDecodeError, OSError) as e:
        kind = "Parquet" if is_parquet else "CSV"
        raise InputError(f"{uri}: not a readable {kind} file ({str(e).splitlines()[0]})") from None
    if df.empty:
        raise InputError(f"{uri}: no data rows (header only?)")
    df.columns = [str(c) for c in df.columns]
    return df


def _numeric(df: pd.DataFrame, col: str, source: str, header_offset: int) -> np.ndarray:
    s = df[col]
    if pd.api.types.is_bool_dtype(s):
        raise InputError(f"{source}: column {col!r} is boolean, not a numeric channel")
    if pd.api.types.is_numeric_dtype(s):
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    num = pd.to_numeric(s, errors="coerce")
    bad = num.isna() & s.notna() & (s.astype(str).str.strip() != "")
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"{source}: column {col!r}, row {i + header_offset}: value {s.iloc[i]!r} is not a number "
            "(set ingest.channels to choose the numeric columns)"
        )
    return num.to_numpy(dtype=np.float64, na_value=np.nan)


def _time(df: pd.DataFrame, col: str, source: str, row0: int = 2) -> pd.Series:
    s = df[col]
    if pd.api.types.is_integer_dtype(s) or pd.api.types.is_float_dtype(s):
        if s.isna().any() or not np.all(np.mod(s.to_numpy(), 1) == 0):
            raise InputError(f"{source}: column {col!r}: integer steps expected, found a blank or fractional value")
        return s.astype(np.int64)
    text = s.astype(str).str.strip()
    aware = text.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True).to_numpy()
    if aware.any() and not aware.all():
        i = int(np.flatnonzero(aware != aware[0])[0])
        raise InputError(f"{source}: column {col!r}, row {i + row0}: {s.iloc[i]!r} mixes time zones: it has "
                         f"{'no' if aware[0] else 'a'} UTC offset, row {row0} has {'one' if aware[0] else 'none'}")
    try:
        return pd.to_datetime(s, utc=True, format="ISO8601")
    except (ValueError, TypeError):
        parsed = pd.to_datetime(s, utc=True, errors="coerce", format="ISO8601")
        i = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        raise InputError(f"{source}: column {col!r}, row {i + row0}: {s.iloc[i]!r} is not a timestamp") from None


def to_long(df: pd.DataFrame, cfg: IngestConfig, source: str, row0: int = 2) -> tuple[pd.DataFrame, list[str], bool]:
    """Any accepted layout -> columns series_id, timestamp, channels..., [label].

    `row0` is the file row of df's first row, for messages (2 after a CSV header).

    Returns:
        (frame, channel names, whether a label column came in)
    """
    layout = cfg.layout
    if layout == "auto":
        layout = "long" if cfg.id_column in df.columns else "wide"
    if layout == "long" and cfg.id_column not in df.columns:
        raise InputError(f"{source}: no id column {cfg.id_column!r} (columns: {', '.join(df.columns[:12])})")
    reserved = {cfg.id_column, cfg.time_column, cfg.label_column} if layout == "long" else {cfg.time_column}
    channels = list(cfg.channels) if cfg.channels else [c for c in df.columns if c not in reserved]
    missing = [c for c in channels if c not in df.columns]
    if missing:
        raise InputError(f"{source}: channel column {missing[0]!r} not found (columns: {', '.join(df.columns[:12])})")
    if not channels:
        raise InputError(f"{source}: no numeric channel column (columns: {', '.join(df.columns)})")
    values = {c: _numeric(df, c, source, row0) for c in channels}

    if cfg.time_column in df.columns:
        t = _time(df, cfg.time_column, source, row0)
    else:
        t = None

    if layout == "long":
        out = pd.DataFrame({"series_id": df[cfg.id_column].astype(str).to_numpy()})
        if t is None:  # no time column: steps in file order within each series
            out["timestamp"] = out.groupby("series_id").cumcount().astype(np.int64)
        else:
            out["timestamp"] = t.to_numpy()
        for c in channels:
            out[c] = values[c]
        has_label = cfg.label_column in df.columns
        if has_label:
            out["label"] = df[cfg.label_column].astype(str).to_numpy()
        return out, channels, has_label

    steps = t.to_numpy() if t is not None else np.arange(len(df), dtype=np.int64)
    if layout == "single":
        name = os.path.splitext(os.path.basename(source))[0] or "series"
        out = pd.DataFrame({"series_id": np.full(len(df), name), "timestamp": steps})
        for c in channels:
            out[c] = values[c]
        return out, channels, False
    # wide: one single-channel series per column, stacked column after column
    n = len(df)
    out = pd.DataFrame(
        {
            "series_id": np.repeat(np.asarray(channels, dtype=object), n),
            "timestamp": np.tile(steps, len(channels)),
            "value": np.concatenate([values[c] for c in channels]),
        }
    )
    return out, ["value"], False


def gap_runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of True down each column of a (L, C) mask.

    Returns:
        (column, start row, length) of every run, ordered by column then start.
    """
    L, C = mask.shape
    edges = np.diff(np.pad(mask.astype(np.int8), ((1, 1), (0, 0))), axis=0).T  # (C, L+1)
    col, start = np.nonzero(edges == 1)
    _, end = np.nonzero(edges == -1)
    return col, start, end - start


def regularise(long: pd.DataFrame, channels: list[str], cfg: IngestConfig, source: str,
               step: int | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Sort, check duplicates, place every series on a regular grid and fill gaps up to `max_gap` steps.

    The loop runs over series (few), never over rows. `step` (ns or integer steps) fixes the
    grid; default: ingest.freq, else the median step of `long`.
    """
    long = long.sort_values(["series_id", "timestamp"], kind="stable", ignore_index=True)
    dup = long.duplicated(["series_id", "timestamp"]).to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        raise InputError(
            f"{source}: series {long['series_id'].iat[i]!r} has duplicate timestamp {long['timestamp'].iat[i]} "
            f"(column {cfg.time_column!r})"
        )
    is_time = pd.api.types.is_datetime64_any_dtype(long["timestamp"])
    t = pd.DatetimeIndex(long["timestamp"]).as_unit("ns").asi8 if is_time else long["timestamp"].to_numpy(np.int64)
    sid = long["series_id"].to_numpy()
    bounds = np.flatnonzero(np.r_[True, sid[1:] != sid[:-1], True])

    if step is None and cfg.freq is not None:
        step = int(pd.Timedelta(cfg.freq).value) if is_time else int(cfg.freq)
    elif step is None:
        diffs = np.diff(t)
        same = sid[1:] == sid[:-1]
        step = int(np.median(diffs[same])) if same.any() else 1
    if step <= 0:
        raise InputError(f"{source}: cannot infer a positive time step from column {cfg.time_column!r}")

    vals = np.array(long[channels].to_numpy(np.float64), copy=True)
    vals[~np.isfinite(vals)] = np.nan
    parts_id, parts_t, parts_v, labels = [], [], [], []
    filled = 0
    for a, b in zip(bounds[:-1], bounds[1:]):
        s = sid[a]
        off = t[a:b] - t[a]
        if np.any(off % step):
            i = a + int(np.flatnonzero(off % step)[0])
            raise InputError(f"{source}: series {s!r}: timestamp {long['timestamp'].iat[i]} is off the {step}-step grid (set ingest.freq)")
        pos = off // step
        grid = np.full((int(pos[-1]) + 1, len(channels)), np.nan)
        grid[pos] = vals[a:b]
        miss = np.isnan(grid)
        if miss.any():
            col, start, length = gap_runs(miss)
            worst = int(np.argmax(length))
            if length[worst] > cfg.max_gap or length[worst] == grid.shape[0]:
                when = t[a] + start[worst] * step
                when_s = pd.Timestamp(when, tz="UTC") if is_time else when
                raise InputError(
                    f"{source}: series {s!r}, column {channels[col[worst]]!r}: {int(length[worst])} missing or "
                    f"non-finite steps from {when_s} exceed ingest.max_gap={cfg.max_gap}"
                )
            x = np.arange(grid.shape[0])
            for c in np.unique(col):  # one np.interp per channel with gaps
                ok = ~miss[:, c]
                grid[~ok, c] = np.interp(x[~ok], x[ok], grid[ok, c])
            filled += int(length.sum())
        parts_id.append(np.full(grid.shape[0], s, dtype=object))
        parts_t.append(t[a] + np.arange(grid.shape[0], dtype=np.int64) * step)
        parts_v.append(grid)
        if "label" in long.columns:
            labels.append(np.full(grid.shape[0], long["label"].iat[a], dtype=object))

    ts = np.concatenate(parts_t)
    out = pd.DataFrame({"series_id": np.concatenate(parts_id).astype(str), "timestamp": pd.to_datetime(ts, utc=True) if is_time else ts})
    out = pd.concat([out, pd.DataFrame(np.vstack(parts_v), columns=channels)], axis=1)
    if labels:
        out["label"] = np.concatenate(labels).astype(str)
    info = {"series": len(parts_id), "rows": len(out), "channels": channels, "gaps_filled": filled,
            "step": str(pd.Timedelta(step)) if is_time else step, "step_value": step}
    return out, info


def clip_range(df: pd.DataFrame, cfg: IngestConfig) -> pd.DataFrame:
    """Keep rows with start <= timestamp < end (the partition of a backfill run)."""
    if cfg.start is None and cfg.end is None:
        return df
    t = df["timestamp"]
    conv = (lambda v: pd.Timestamp(v, tz="UTC") if pd.Timestamp(v).tz is None else pd.Timestamp(v)) if pd.api.types.is_datetime64_any_dtype(t) else int
    keep = np.ones(len(df), dtype=bool)
    if cfg.start is not None:
        keep &= (t >= conv(cfg.start)).to_numpy()
    if cfg.end is not None:
        keep &= (t < conv(cfg.end)).to_numpy()
    return df.loc[keep].reset_index(drop=True)


def ingest_table(uri: str, cfg: IngestConfig, storage_options: dict[str, Any] | None = None) -> Ingested:
    """Read, validate and regularise one input file.

    Args:
        uri: local path or fsspec URL of a CSV or Parquet file.
        cfg: the ingest section of the config.

    Returns:
        The series table, its channel names, and counts for the summary.
    """
    raw = read_table(uri, storage_options, cfg)
    long, channels, has_label = to_long(raw, cfg, uri)
    long = clip_range(long, cfg)
    if long.empty:
        raise InputError(f"{uri}: no rows in the range start={cfg.start} end={cfg.end}")
    frame, info = regularise(long, channels, cfg, uri)
    info.update(rows_in=len(raw), has_label=has_label)
    return Ingested(frame, channels, info)


STREAM_ROWS = 1 << 20  # input rows per batch when a long Parquet file is streamed


class _NotGrouped(Exception):
    """A long Parquet file whose series are not contiguous: it cannot be streamed."""


def _row_groups(pf: pq.ParquetFile, cfg: IngestConfig) -> list[int]:
    """Row groups that may hold rows in [ingest.start, ingest.end), judged by their time statistics."""
    groups = list(range(pf.num_row_groups))
    filters = _time_filters(pf.schema_arrow, cfg)
    if not filters:
        return groups
    col = pf.schema_arrow.get_field_index(cfg.time_column)
    keep = []
    for g in groups:
        st = pf.metadata.row_group(g).column(col).statistics
        if st is None or not st.has_min_max:
            keep.append(g)
            continue
        if all((st.max >= v) if op == ">=" else (st.min < v) for _, op, v in filters):
            keep.append(g)
    return keep


def stream_parquet(uri: str, cfg: IngestConfig, opts: dict[str, Any] | None, out_path: str) -> tuple[list[str], dict[str, Any]] | None:
    """Ingest a long-layout Parquet file batch by batch into `out_path`: each batch of whole
    series is validated, clipped and regularised as the in-memory path does and appended as a
    row group, so memory follows the batch, not the file.

    Returns:
        (channels, info), or None when the file cannot be streamed (not Parquet, not long, or its
        series are not contiguous), in which case nothing was written.
    """
    if not uri.lower().endswith((".parquet", ".pq")):
        return None
    try:
        return _stream(uri, cfg, opts, out_path)
    except pa.ArrowInvalid as e:
        raise InputError(f"{uri}: not a readable Parquet file ({str(e).splitlines()[0]})") from None


def _stream(uri: str, cfg: IngestConfig, opts: dict[str, Any] | None, out_path: str) -> tuple[list[str], dict[str, Any]] | None:
    with fsspec.open(uri, "rb", **fs_options(uri, opts)) as f:
        pf = pq.ParquetFile(f)
        names = pf.schema_arrow.names
        if cfg.layout not in ("auto", "long") or cfg.id_column not in names:
            return None
        writer: pq.ParquetWriter | None = None
        info: dict[str, Any] = {"series": 0, "rows": 0, "gaps_filled": 0, "rows_in": 0}
        seen: set[str] = set()
        step, channels, has_label, row0 = None, [], False, 2
        try:
            batches = pf.iter_batches(batch_size=STREAM_ROWS, row_groups=_row_groups(pf, cfg))
            for t in whole_groups(batches, cfg.id_column):
                k = t.column(cfg.id_column)
                runs = 1 + (pc.sum(pc.not_equal(k.slice(1), k.slice(0, len(k) - 1))).as_py() or 0)
                ids = {str(v) for v in pc.unique(k).to_pylist()}
                if runs != len(ids) or ids & seen:  # a series in two places: cannot be cut into batches
                    raise _NotGrouped
                seen |= ids
                df = t.to_pandas()
                df.columns = [str(c) for c in df.columns]
                long, channels, has_label = to_long(df, cfg, uri, row0)
                row0 += len(df)
                long = clip_range(long, cfg)
                info["rows_in"] += len(long)
                if long.empty:
                    continue
                frame, part = regularise(long, channels, cfg, uri, step)
                step = part["step_value"]
                table = pa.Table.from_pandas(frame, preserve_index=False)
                if writer is None:
                    schema = with_meta(table, channels=",".join(channels)).schema
                    writer = pq.ParquetWriter(out_path, schema, compression="zstd")
                writer.write_table(table.cast(schema))
                info.update(series=info["series"] + part["series"], rows=info["rows"] + part["rows"],
                            gaps_filled=info["gaps_filled"] + part["gaps_filled"], step=part["step"])
        except _NotGrouped:
            if writer is not None:
                writer.close()
            logger().info("ingest: %s: series are not contiguous, reading the whole file instead of streaming", uri)
            return None
    if writer is None:
        if cfg.start is None and cfg.end is None:
            raise InputError(f"{uri}: no data rows")
        raise InputError(f"{uri}: no rows in the range start={cfg.start} end={cfg.end}")
    writer.close()
    info.update(channels=channels, has_label=has_label, step_value=step)
    return channels, info


@task(name="ingest", **STAGE_TASK)
def ingest_task(data: str, root: str, cfg: IngestConfig, credentials: str | None = None) -> dict[str, Any]:
    """Ingest `data` into the store; skipped when the same file and config were ingested before."""
    store = open_store(root, credentials)
    opts = block_options(credentials)
    key = digest("ingest", fingerprint(data, opts), cfg.model_dump(), code_version())
    if (ref := store.stage_done("ingest", key)) is not None:
        logger().info("ingest: unchanged input, reusing %s", ref["uri"])
        return ref
    with store.stage("ingest", key) as w:
        with w.local_file("series.parquet") as tmp:
            streamed = stream_parquet(data, cfg, opts, tmp)
            if streamed is None:  # CSV, wide or single layouts, or series not contiguous: in memory
                out = ingest_table(data, cfg, opts)
                pq.write_table(with_meta(pa.Table.from_pandas(out.frame, preserve_index=False),
                                         channels=",".join(out.channels)), tmp, compression="zstd")
                info = out.info
            else:
                info = streamed[1]
        info.pop("step_value", None)
        logger().info("ingest: %d rows in, %d series, %d gaps filled%s", info["rows_in"], info["series"],
                      info["gaps_filled"], " (streamed)" if streamed else "")
        return w.finish("series.parquet", info["rows"], info=info)
