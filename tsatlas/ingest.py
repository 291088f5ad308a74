"""Ingest: read a CSV or Parquet table (long, wide or single-series), or a folder of them,
validate it, and put every series on a regular time grid with short gaps filled.

Output (the series table): `series_id` (string), `timestamp` (UTC timestamp or int64
step), one float64 column per channel, optional `label`; grouped by series, each in time order.

A long Parquet file whose series are contiguous is streamed (a batch of whole series at a time);
other inputs are read whole.
"""

from __future__ import annotations

import logging
import lzma
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
import fsspec.compression
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tsatlas.config import IngestConfig
from tsatlas.errors import InputError, StorageError, redact
from tsatlas.storage import fs_options, io_reason
from tsatlas.tables import whole_groups, with_meta


log = logging.getLogger(__name__)

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
    """Cheap identity of an input file (size plus mtime or ETag), so an unchanged file is not re-read;
    of a folder, the same of every data file in it (a file added, changed or removed changes it)."""
    fs, path, info = _stat(uri, storage_options)
    keep = ("size", "mtime", "ETag", "LastModified", "created")
    if info.get("type") != "directory":
        return {"uri": redact(uri), **{k: str(info[k]) for k in keep if k in info}}
    files = _data_files(fs, path, uri)
    return {"uri": redact(uri), "files": [[rel, *(str(i[k]) for k in keep if k in i)] for rel, i in files]}


def _stat(uri: str, storage_options: dict[str, Any] | None) -> tuple[Any, str, dict[str, Any]]:
    """(filesystem, path, fsspec info) of an input, with the failures a user can act on as one line."""
    try:
        fs, path = fsspec.core.url_to_fs(uri, **fs_options(uri, storage_options))
        return fs, path, fs.info(path)
    except FileNotFoundError as e:
        cause = e.__cause__  # fsspec's HTTP filesystem turns every failure into FileNotFoundError
        if cause is not None and getattr(cause, "status", None) != 404:
            raise StorageError(f"{uri}: cannot reach the input ({io_reason(cause)})") from None
        raise InputError(f"{uri}: file not found") from None
    except PermissionError as e:
        raise InputError(f"{uri}: access denied, check the credentials ({type(e).__name__})") from None
    except (ValueError, ImportError) as e:
        raise InputError(f"{uri}: cannot open ({e})") from None
    except OSError as e:
        raise StorageError(f"{uri}: cannot reach the input ({io_reason(e)})") from None


# Files of a folder that are read: CSV (also compressed or zipped) and Parquet; names starting with
# "." or "_" (hidden files, Spark's _SUCCESS, _metadata) are not data, nor is .txt (a folder's
# README.txt or notes; a .txt file given on its own is read).
_DATA_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq", ".gz", ".bz2", ".xz", ".zip")


def _data_files(fs: Any, path: str, uri: str) -> list[tuple[str, dict[str, Any]]]:
    """(path relative to the folder, fsspec info) of every data file under a folder, in name order."""
    root = path.rstrip("/")
    found = fs.find(root, detail=True)
    out = []
    for full, info in sorted(found.items()):
        rel = full[len(root):].lstrip("/")
        if info.get("type") == "directory" or any(part[:1] in "._" for part in rel.split("/")):
            continue
        if rel.lower().endswith(_DATA_SUFFIXES):
            out.append((rel, info))
    if not out:
        raise InputError(f"{uri}: a folder without CSV or Parquet files (looked for {', '.join(_DATA_SUFFIXES)})")
    return out


def input_files(uri: str, storage_options: dict[str, Any] | None = None) -> list[tuple[str, str]] | None:
    """(relative name, uri) of every data file when `uri` is a folder (a local directory or an
    object-store prefix), else None."""
    fs, path, info = _stat(uri, storage_options)
    if info.get("type") != "directory":
        return None
    base = uri.rstrip("/")
    return [(rel, f"{base}/{rel}") for rel, _ in _data_files(fs, path, uri)]


def _time_filters(schema: pa.Schema, cfg: IngestConfig | None) -> list[tuple] | None:
    """Parquet predicates for start <= time < end, typed like the file's time column."""
    if cfg is None or (cfg.start is None and cfg.stop is None) or cfg.time_column not in schema.names:
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
    if cfg.stop is not None:
        out.append((cfg.time_column, "<", conv(cfg.stop)))
    return out


def read_table(uri: str, storage_options: dict[str, Any] | None = None, cfg: IngestConfig | None = None) -> pd.DataFrame:
    """Read CSV (plain, gzip, bz2 or xz compressed, or the one file of a zip archive) or Parquet
    from a path or fsspec URL; which, from the file's first bytes (a Parquet file need not be named
    .parquet, nor a .gz one .gz). Workbooks and JSON are refused with what to do instead.

    With cfg.start/end, Parquet is read with row-group predicates on the time column, so only
    the partition's row groups are decoded; CSV is read whole and clipped after.
    """
    kind = "Parquet" if uri.lower().endswith((".parquet", ".pq")) else "CSV"
    try:
        with fsspec.open(uri, "rb", **fs_options(uri, storage_options)) as raw:
            head = raw.read(8)
            raw.seek(0)
            kind, compression = _sniff(uri, head)
            if kind == "Parquet":
                pf = pq.ParquetFile(raw)
                df = pq.read_table(raw, filters=_time_filters(pf.schema_arrow, cfg)).to_pandas()
            elif compression == "zip":
                df = _read_csv(_zipped_csv(uri, raw), cfg)
            else:
                df = _read_csv(fsspec.compression.compr[compression](raw, mode="rb") if compression else raw, cfg)
    except FileNotFoundError:
        raise InputError(f"{uri}: file not found") from None
    except pd.errors.EmptyDataError:
        raise InputError(f"{uri}: file is empty") from None
    except pa.ArrowNotImplementedError as e:
        raise InputError(f"{uri}: cannot filter column {cfg.time_column!r} by ingest.start/end ({e})") from None
    except (pa.ArrowInvalid, pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError, zipfile.BadZipFile,
            lzma.LZMAError) as e:
        raise InputError(f"{uri}: not a readable {kind} file ({str(e).splitlines()[0]})") from None
    if df.empty:
        raise InputError(f"{uri}: no data rows (header only?)")
    df.columns = [str(c) for c in df.columns]
    return df


_COMPRESSED = {b"\x1f\x8b": "gzip", b"BZh": "bz2", b"\xfd7zXZ\x00": "xz"}  # first bytes -> fsspec compression
_WORKBOOKS = (".xlsx", ".xlsm", ".xls", ".ods")


def _zipped_csv(uri: str, raw: Any) -> Any:
    """The one file of a zip archive, opened for reading; an error naming the files when there are more."""
    z = zipfile.ZipFile(raw)
    names = [n for n in z.namelist() if not n.endswith("/") and not n.startswith("__MACOSX/")]
    if len(names) != 1:
        raise InputError(f"{uri}: a zip archive of {len(names)} files ({', '.join(names[:4])}{', ...' if len(names) > 4 else ''}); "
                         "tsatlas reads one CSV or Parquet file: unzip it and pass one")
    if names[0].lower().endswith((".parquet", ".pq", *_WORKBOOKS)):
        raise InputError(f"{uri}: a zip archive holding {names[0]}: unzip it and pass that file")
    return z.open(names[0])


def _sniff(uri: str, head: bytes) -> tuple[str, str | None]:
    """("Parquet" or "CSV", the CSV's compression or None) from a file's first bytes; an error
    saying what to do for the formats people try first that are neither."""
    if head.startswith(b"PAR1"):
        return "Parquet", None
    for magic, compression in _COMPRESSED.items():
        if head.startswith(magic):
            return "CSV", compression
    lower = uri.lower().split("?")[0]
    if head.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0")):  # zip (xlsx, ods, .zip) or OLE2 (xls)
        if lower.endswith(_WORKBOOKS):
            raise InputError(f"{uri}: a spreadsheet workbook; tsatlas reads CSV or Parquet: save the sheet as CSV "
                             "(File > Save As > CSV) and pass that")
        return "CSV", "zip"  # one CSV inside, as data downloads come; _zipped_csv checks that
    if lower.endswith((".json", ".jsonl", ".ndjson")) and head.lstrip()[:1] in (b"{", b"["):
        raise InputError(f"{uri}: JSON; tsatlas reads CSV or Parquet: write the table as one of those "
                         "(pandas: pd.read_json(...).to_csv(...))")
    return "CSV", None


# What pandas reads as missing by default; kept for value columns, never applied to the id column.
_NA_TEXT = ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
            "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]


_SEPARATORS = ",;\t|"


def _csv_dialect(f: Any) -> dict[str, str]:
    """Encoding, field separator and decimal mark, from the first 64 KiB: UTF-8, else Windows'
    cp1252 (what spreadsheets there export), else Latin-1; the separator is the one of , ; tab |
    that the header holds most often (a comma when it holds none); with another separator than
    the comma, numbers written 1,5 in the first data line mean a decimal comma (spreadsheets in
    much of Europe write `a;1,5`)."""
    head = f.read(1 << 16)
    f.seek(0)
    head, encoding = _decode(head) if isinstance(head, bytes) else (head, "utf-8")
    lines = head.splitlines()[:2]
    if not lines:
        return {"sep": ",", "decimal": ".", "encoding": encoding}
    sep = max(_SEPARATORS, key=lines[0].count)
    if lines[0].count(sep) == 0:
        sep = ","
    field = rf"(?:^|{re.escape(sep)})\s*-?\d+,\d+\s*(?:$|{re.escape(sep)})"
    comma = sep != "," and len(lines) > 1 and re.search(field, lines[1]) is not None
    return {"sep": sep, "decimal": "," if comma else ".", "encoding": encoding}


def _decode(head: bytes) -> tuple[str, str]:
    """(text, encoding) of a file's first bytes: UTF-8, else cp1252, else Latin-1 (which reads any bytes)."""
    for encoding in ("utf-8", "cp1252"):
        try:
            return head.decode(encoding), encoding
        except UnicodeDecodeError as e:
            if encoding == "utf-8" and len(head) == 1 << 16 and e.start >= len(head) - 3:  # a character cut by the read
                return head[:e.start].decode(encoding), encoding
    return head.decode("latin-1"), "latin-1"


def _read_csv(f: Any, cfg: IngestConfig | None) -> pd.DataFrame:
    """A CSV whose id column is read as text exactly as written: "NA", "null" and "01" stay
    distinct ids (an empty id is refused later, naming its row). Encoding, separator and decimal
    mark as _csv_dialect finds them."""
    id_col = (cfg or IngestConfig()).id_column
    dialect = _csv_dialect(f)
    header = pd.read_csv(f, nrows=0, **dialect)
    f.seek(0)
    if id_col not in header.columns:
        return pd.read_csv(f, **dialect)
    na = {c: _NA_TEXT for c in header.columns if c != id_col}
    return pd.read_csv(f, dtype={id_col: str}, keep_default_na=False, na_values=na, **dialect)


def _ids(df: pd.DataFrame, col: str, source: str, row0: int) -> np.ndarray:
    """The id column as strings; a missing or blank id is an error naming its row."""
    s = df[col]
    missing = s.isna().to_numpy() | (s.astype(str).str.strip() == "").to_numpy()
    if missing.any():
        i = int(np.flatnonzero(missing)[0])
        raise InputError(f"{source}: column {col!r}, row {i + row0}: empty series id")
    return s.astype(str).to_numpy()


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
        hint = "set ingest.channels to choose the numeric columns"
        if _is_time_text(s.iloc[i]):
            hint = f"it reads as a time: set ingest.time_column={col} if this column is the time axis"
        raise InputError(f"{source}: column {col!r}, row {i + header_offset}: value {s.iloc[i]!r} is not a number ({hint})")
    return num.to_numpy(dtype=np.float64, na_value=np.nan)


# Text forms tried, in this order, for a time column that is not ISO 8601: the date forms
# spreadsheets write, alone or with a time of day. One that reads every value is used; two that
# read every value differently (01/02/2024: 1 February or 2 January?) are an error.
_DATE_FORMS = ("%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%Y/%m/%d", "%d-%m-%Y", "%m-%d-%Y")
_TEXT_FORMS = tuple(d + t for d in _DATE_FORMS for t in ("", " %H:%M", " %H:%M:%S"))


def _time_form(s: pd.Series, col: str, source: str) -> tuple[pd.Series, str] | None:
    """(the column parsed, the form) with the one form of _TEXT_FORMS that reads every value; None
    when none does."""
    fits: dict[str, pd.Series] = {}
    for form in _TEXT_FORMS:
        try:
            parsed = pd.to_datetime(s, utc=True, format=form)
        except (ValueError, TypeError):
            continue
        if not any(parsed.equals(p) for p in fits.values()):
            fits[form] = parsed
    if len(fits) > 1:
        raise InputError(f"{source}: column {col!r}: its dates (such as {s.iloc[0]!r}) read as {' and as '.join(fits)}; "
                         f"set ingest.time_format to the one meant")
    for form, parsed in fits.items():
        return parsed, form
    return None


def _is_time_text(value: Any) -> bool:
    """Whether one value reads as a time: ISO 8601 or one of the common forms."""
    for form in ("ISO8601", *_TEXT_FORMS):
        try:
            pd.to_datetime(str(value).strip(), format=form)
            return True
        except (ValueError, TypeError):
            continue
    return False


def _time(df: pd.DataFrame, col: str, source: str, row0: int = 2, form: str | None = None) -> tuple[pd.Series, str | None]:
    """(the time column, the strftime form its text was read with, None for ISO 8601 or no text):
    integer steps, or timestamps (ISO 8601, `form` when given, else the one common text form that
    reads every value), in UTC."""
    s = df[col]
    if pd.api.types.is_integer_dtype(s) or pd.api.types.is_float_dtype(s):
        if s.isna().any() or not np.all(np.mod(s.to_numpy(), 1) == 0):
            raise InputError(f"{source}: column {col!r}: integer steps expected, found a blank or fractional value")
        return s.astype(np.int64), None
    if pd.api.types.is_datetime64_any_dtype(s):  # typed times (Parquet): nothing to parse, one zone
        return _typed_times(s)
    text = s.astype(str).str.strip()
    aware = text.str.contains(_OFFSET, regex=True).to_numpy()
    if aware.any() and not aware.all():
        i = int(np.flatnonzero(aware != aware[0])[0])
        raise InputError(f"{source}: column {col!r}, row {i + row0}: {s.iloc[i]!r} mixes time zones: it has "
                         f"{'no' if aware[0] else 'a'} UTC offset, row {row0} has {'one' if aware[0] else 'none'}")
    try:
        parsed = pd.to_datetime(s, utc=True, format=form or "ISO8601")
    except (ValueError, TypeError):
        found = None if form else _time_form(s, col, source)
        if found is None:
            coerced = pd.to_datetime(s, utc=True, errors="coerce", format=form or "ISO8601")
            i = int(np.flatnonzero((coerced.isna() & s.notna()).to_numpy())[0])
            what = (f"does not match ingest.time_format={form!r}" if form else "is not a timestamp: neither ISO 8601 "
                    "(2024-01-31, 2024-01-31 13:00) nor a common form such as 31/01/2024 13:00 (set "
                    "ingest.time_format, e.g. '%d/%m/%Y %H:%M')")
            raise InputError(f"{source}: column {col!r}, row {i + row0}: {s.iloc[i]!r} {what}") from None
        parsed, form = found
    lo, hi = pd.Timestamp.min.tz_localize("UTC"), pd.Timestamp.max.tz_localize("UTC")
    outside = ((parsed < lo) | (parsed > hi)).to_numpy()
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise InputError(f"{source}: column {col!r}, row {i + row0}: {s.iloc[i]!r} is outside the supported time "
                         f"range ({lo:%Y-%m-%d} to {hi:%Y-%m-%d}); use integer steps for such a time axis")
    if aware.all() and form is None:
        local = _wall_clock(text, parsed)
        if local is not None:
            return local
    return parsed.dt.as_unit("ns"), form


def _typed_times(s: pd.Series) -> tuple[pd.Series, str | None]:
    """A datetime column in UTC; one in a time zone whose times are all at one time of day (dates
    at local midnight) as its local dates, as _wall_clock does for text."""
    if s.dt.tz is None:
        return s.dt.tz_localize("UTC").dt.as_unit("ns"), None
    utc, wall = s.dt.tz_convert(None), s.dt.tz_localize(None)
    if (wall == utc).all() or (wall - wall.dt.normalize()).nunique() != 1:
        return s.dt.tz_convert("UTC").dt.as_unit("ns"), None
    return wall.dt.tz_localize("UTC").dt.as_unit("ns"), f"local wall-clock times of time zone {s.dt.tz}"


_OFFSET = r"(?:Z|[+-]\d\d:?\d\d)$"  # a time's UTC offset at the end of its text


def _wall_clock(text: pd.Series, utc: pd.Series) -> tuple[pd.Series, str] | None:
    """(the local wall-clock times, how they were read) of times written with UTC offsets (`utc`:
    the same, parsed), when the offsets are not all zero and every time is at the same time of day:
    dates written by a program that knows its time zone (daily data at local midnight, monthly data
    on the first), which in UTC are 23 or 25 hours apart across a daylight-saving change, or fall on
    the last day of the month before. None otherwise: times of several times of day (hourly data)
    are regular in UTC."""
    if (utc - utc.dt.normalize()).nunique() > 4:  # many times of day in UTC: not dates (and no text pass)
        return None
    offsets = text.str.extract(f"({_OFFSET})", expand=False)
    if offsets.isin(["Z", "+00:00", "-00:00", "+0000", "-0000"]).all():
        return None
    wall = pd.to_datetime(text.str.replace(_OFFSET, "", regex=True), utc=True, format="ISO8601")
    if (wall - wall.dt.normalize()).nunique() != 1:
        return None
    seen = sorted(offsets.unique())
    return wall.dt.as_unit("ns"), f"local wall-clock times, UTC offsets {', '.join(seen[:4])}{' ...' if len(seen) > 4 else ''} dropped"


# pandas' name for a column whose header cell is empty (a row index written with the data).
_UNNAMED = re.compile(r"Unnamed: \d+")

# Column names taken for the time axis when ingest.time_column is not in the table.
TIME_NAMES = ("timestamp", "time", "date", "datetime", "ds", "step", "t")


def _is_step_counter(s: pd.Series) -> bool:
    """An integer column that rises by the same positive step on every row (0, 1, 2, ... or 5, 10, ...)."""
    if not pd.api.types.is_integer_dtype(s) or len(s) < 2:
        return False
    d = np.diff(s.to_numpy())
    return bool(d[0] > 0 and (d == d[0]).all())


def find_time_column(df: pd.DataFrame, cfg: IngestConfig, long: bool) -> str | None:
    """ingest.time_column when the table has it; else a column named like a time axis
    (TIME_NAMES), a datetime column, a column without a header holding times, or (one series per
    table) an integer step counter."""
    if cfg.time_column in df.columns:
        return cfg.time_column
    skip = {cfg.id_column, cfg.label_column}
    for c in df.columns:
        if c not in skip and c.strip().lower() in TIME_NAMES:
            return c
    for c in df.columns:
        if c not in skip and pd.api.types.is_datetime64_any_dtype(df[c]):
            return c
    for c in df.columns:  # a time index written without a header (pandas' to_csv of a DatetimeIndex)
        s = df[c]
        if _UNNAMED.fullmatch(c) and len(s) and not pd.api.types.is_numeric_dtype(s) and _is_time_text(s.iloc[0]):
            return c
    if not long:
        for c in df.columns:
            if c not in skip and _is_step_counter(df[c]):
                return c
    return None


def resolve_layout(df: pd.DataFrame, cfg: IngestConfig, source: str) -> tuple[str, str | None]:
    """(layout, time column) for ingest.layout=auto: long when the id column is there; else
    wide (one series per column) when there is a time column, single (one series, every numeric
    column a channel) when there is none. A table that fits both gets a warning saying how to choose."""
    if cfg.layout != "auto":
        return cfg.layout, find_time_column(df, cfg, cfg.layout == "long")
    if cfg.id_column in df.columns:
        return "long", find_time_column(df, cfg, True)
    time_col = find_time_column(df, cfg, False)
    values = [c for c in df.columns if c not in (time_col, cfg.label_column) and pd.api.types.is_numeric_dtype(df[c])]
    layout = "wide" if time_col is not None else "single"
    if len(values) > 1:
        other = "single" if layout == "wide" else "wide"
        reading = (f"{len(values)} series of one channel each" if layout == "wide"
                   else f"one series of {len(values)} channels")
        log.warning("ingest: %s has no %r column: read as %s (%s); if its columns are %s, set ingest.layout=%s",
                    redact(source), cfg.id_column, layout, reading,
                    "channels of one series" if layout == "wide" else "separate series", other)
    return layout, time_col


def to_long(df: pd.DataFrame, cfg: IngestConfig, source: str, row0: int = 2) -> tuple[pd.DataFrame, list[str], dict[str, Any]]:
    """Any accepted layout -> columns series_id, timestamp, channels..., [label].

    `row0` is the file row of df's first row, for messages (2 after a CSV header). A wide table's
    series are trimmed of the missing values before their first and after their last value
    (sites that start or end at different times).

    Returns:
        (frame, channel names, how it was read: layout, time_column, id_column, has_label)
    """
    layout, time_col = resolve_layout(df, cfg, source)
    if layout == "long" and cfg.id_column not in df.columns:
        raise InputError(f"{source}: no id column {cfg.id_column!r} (columns: {', '.join(df.columns[:12])})")
    reserved = {cfg.id_column, time_col, cfg.label_column} if layout == "long" else {time_col, cfg.label_column}
    channels = list(cfg.channels) if cfg.channels else [c for c in df.columns if c not in reserved]
    unnamed = [] if cfg.channels else [c for c in channels if _UNNAMED.fullmatch(c)]
    if unnamed:  # a column without a header: a spreadsheet's or pandas' row index, not data
        channels = [c for c in channels if c not in unnamed]
        log.warning("ingest: %s: left out %d column(s) without a header (a row index?), the first at position %d; "
                    "set ingest.channels to use them", redact(source), len(unnamed), list(df.columns).index(unnamed[0]) + 1)
    missing = [c for c in channels if c not in df.columns]
    if missing:
        raise InputError(f"{source}: channel column {missing[0]!r} not found (columns: {', '.join(df.columns[:12])})")
    if not channels:
        raise InputError(f"{source}: no numeric channel column (columns: {', '.join(df.columns)})")
    values = {c: _numeric(df, c, source, row0) for c in channels}
    t, time_format = _time(df, time_col, source, row0, cfg.time_format) if time_col is not None else (None, None)
    has_label = layout == "long" and cfg.label_column in df.columns
    how = {"layout": layout, "time_column": time_col, "time_format": time_format,
           "id_column": cfg.id_column if layout == "long" else None,
           "has_label": has_label}

    if layout == "long":
        out = pd.DataFrame({"series_id": _ids(df, cfg.id_column, source, row0)})
        if t is None:  # no time column: steps in file order within each series
            out["timestamp"] = out.groupby("series_id").cumcount().astype(np.int64)
        else:
            out["timestamp"] = t.array  # (a tz-aware column's to_numpy() is one Python object per row)
        for c in channels:
            out[c] = values[c]
        if has_label:
            out["label"] = df[cfg.label_column].astype(str).to_numpy()
        return out, channels, how

    steps = t.array if t is not None else np.arange(len(df), dtype=np.int64)
    if layout == "single":
        name = os.path.splitext(os.path.basename(source))[0] or "series"
        out = pd.DataFrame({"series_id": np.full(len(df), name), "timestamp": steps})
        for c in channels:
            out[c] = values[c]
        return out, channels, how
    # wide: one single-channel series per column, stacked column after column, each trimmed to
    # the span from its first to its last value
    ids, rows, vals = [], [], []  # rows: each series' positions in the table
    empty = [c for c in channels if not np.isfinite(values[c]).any()]
    if len(empty) == len(channels):
        raise InputError(f"{source}: no column has a value")
    if empty:  # a sensor that never reported: not a series
        log.warning("ingest: %s: left out %d column(s) without a value: %s", redact(source), len(empty),
                    ", ".join(map(repr, empty[:5])) + (" ..." if len(empty) > 5 else ""))
    for c in (c for c in channels if c not in empty):
        v = values[c]
        present = np.flatnonzero(np.isfinite(v))
        a, b = present[0], present[-1] + 1
        ids.append(np.full(b - a, c, dtype=object))
        rows.append(np.arange(a, b))
        vals.append(v[a:b])
    out = pd.DataFrame({"series_id": np.concatenate(ids), "timestamp": steps[np.concatenate(rows)],
                        "value": np.concatenate(vals)})
    return out, ["value"], how


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


MAX_ABS = 1e30  # largest |value| accepted: standardising squares it, and windows are float32 (max 3.4e38)


def regularise(long: pd.DataFrame, channels: list[str], cfg: IngestConfig, source: str,
               step: int | None = None, wide: bool = False) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Sort, check duplicates, place every series on a regular grid and fill gaps up to `max_gap`
    steps; longer runs (outages) stay missing under long_gaps=skip (windowing leaves out the
    windows that overlap them; counted in info["gaps_left"]) and are an error under long_gaps=error.

    Vectorised over rows; the one loop runs over the series with missing steps or values. `step` (ns or integer steps) fixes the
    grid; default: ingest.freq, else the median step of `long`. `wide`: the series are the
    user's columns, and messages name them so.
    """
    long = long.sort_values(["series_id", "timestamp"], kind="stable", ignore_index=True)
    dup = long.duplicated(["series_id", "timestamp"]).to_numpy()
    if dup.any() and cfg.resample == "none":
        i = int(np.flatnonzero(dup)[0])
        raise InputError(
            f"{source}: series {long['series_id'].iat[i]!r} has duplicate timestamp {long['timestamp'].iat[i]} "
            f"(column {cfg.time_column!r})"
        )
    is_time = pd.api.types.is_datetime64_any_dtype(long["timestamp"])
    calendar = _calendar(long["timestamp"]) if is_time and cfg.freq is None else None
    if calendar is not None:  # steps of calendar months or of weekdays, which no fixed duration fits
        long, is_time = long.assign(timestamp=calendar[0]), False
    t = pd.DatetimeIndex(long["timestamp"]).as_unit("ns").asi8 if is_time else long["timestamp"].to_numpy(np.int64)
    sid = long["series_id"].to_numpy()
    bounds = np.flatnonzero(np.r_[True, sid[1:] != sid[:-1], True])

    if step is None and cfg.freq is not None:
        step = int(pd.Timedelta(cfg.freq).value) if is_time else int(cfg.freq)
    elif step is None:
        diffs = np.diff(t)
        same = sid[1:] == sid[:-1]
        if cfg.resample != "none":  # rows of one time are averaged, not steps
            same &= diffs > 0
        step = int(np.median(diffs[same])) if same.any() else 1
        if cfg.resample != "none" and is_time:  # jittered or irregular spacing: the nearest round duration
            step = min(_ROUND_STEPS, key=lambda d: abs(np.log(d / max(step, 1))))
    if step <= 0:
        raise InputError(f"{source}: cannot infer a positive time step from column {cfg.time_column!r}")
    resampled = None
    if cfg.resample == "mean":
        long, resampled = _resample_mean(long, channels, t, step, is_time)
        t = pd.DatetimeIndex(long["timestamp"]).as_unit("ns").asi8 if is_time else long["timestamp"].to_numpy(np.int64)
        sid = long["series_id"].to_numpy()
        bounds = np.flatnonzero(np.r_[True, sid[1:] != sid[:-1], True])

    vals = np.array(long[channels].to_numpy(np.float64), copy=True)
    vals[~np.isfinite(vals)] = np.nan
    huge = np.abs(np.nan_to_num(vals)) > MAX_ABS
    if huge.any():  # its square overflows, and float32 cannot hold it: the statistics would be inf/nan
        i, c = (int(a[0]) for a in np.nonzero(huge))
        raise InputError(f"{source}: series {sid[i]!r}, column {channels[c]!r}, at {long['timestamp'].iat[i]}: "
                         f"value {vals[i, c]:g} is too large (|value| above {MAX_ABS:g}); rescale the column")
    # Every series on its grid at once: row -> (series, step number); the loop below runs only over
    # series with missing steps or values.
    counts = np.diff(bounds)
    first_t = t[bounds[:-1]]
    off = t - np.repeat(first_t, counts)
    bad = np.flatnonzero(off % step)
    if len(bad):
        i = int(bad[0])
        unit = str(pd.Timedelta(step)).removeprefix("0 days ") if is_time else f"{step} {calendar[1]}(s)" if calendar else step
        how = "ingest.freq" if cfg.freq else "the median spacing; set ingest.freq to the right step"
        raise InputError(f"{source}: series {sid[i]!r}: timestamp {long['timestamp'].iat[i]} is off the regular grid "
                         f"(one step = {unit}, {how}; for jittered or irregular times, set ingest.resample=mean "
                         "to average the rows onto the grid)")
    pos = off // step
    lengths = pos[bounds[1:] - 1] + 1  # grid steps per series
    out_start = np.r_[0, np.cumsum(lengths)[:-1]]
    grid = np.full((int(lengths.sum()), len(channels)), np.nan)
    grid[np.repeat(out_start, counts) + pos] = vals
    series_of = np.repeat(np.arange(len(counts)), lengths)
    ts = np.repeat(first_t, lengths) + (np.arange(len(grid)) - np.repeat(out_start, lengths)) * step

    filled, left, first_left = 0, [], None
    for k in np.unique(series_of[np.isnan(grid).any(axis=1)]):
        s, g = sid[bounds[k]], grid[out_start[k]:out_start[k] + lengths[k]]  # a view: filled in place
        miss = np.isnan(g)
        col, start, length = gap_runs(miss)
        long_run = (length > cfg.max_gap) | (length == g.shape[0])
        if long_run.any():
            worst = int(np.flatnonzero(long_run)[0]) if cfg.long_gaps == "skip" else int(np.argmax(length))
            when = first_t[k] + start[worst] * step
            when_s = pd.Timestamp(when, tz="UTC") if is_time else _calendar_text(when, calendar[1]) if calendar else when
            where = f"column {s!r}" if wide else f"series {s!r}, column {channels[col[worst]]!r}"
            what = f"{where}: {int(length[worst])} missing or non-finite steps from {when_s}"
            if cfg.long_gaps == "error":
                raise InputError(f"{source}: {what} exceed ingest.max_gap={cfg.max_gap}")
            first_left = first_left or what
            left.append(length[long_run])
        x = np.arange(g.shape[0])
        for c in np.unique(col):  # one np.interp per channel with gaps
            ok = ~miss[:, c]
            if ok.any():
                g[~ok, c] = np.interp(x[~ok], x[ok], g[ok, c])
        for c, a0, n in zip(col[long_run], start[long_run], length[long_run]):  # outages stay missing
            g[a0:a0 + n, c] = np.nan
        filled += int(length[~long_run].sum())

    out = pd.DataFrame({"series_id": sid[bounds[:-1]][series_of].astype(str),
                        "timestamp": pd.to_datetime(ts, utc=True) if is_time else ts})
    out = pd.concat([out, pd.DataFrame(grid, columns=channels)], axis=1)
    if "label" in long.columns:
        out["label"] = long["label"].to_numpy()[bounds[:-1]][series_of].astype(str)
    info = {"series": len(counts), "rows": len(out), "channels": channels, "gaps_filled": filled,
            "step": str(pd.Timedelta(step)) if is_time else step, "step_value": step}
    if resampled:
        info["resampled"] = resampled
    if left:  # runs longer than max_gap, kept missing (long_gaps=skip): counted, the first one named
        runs = np.concatenate(left)
        info["gaps_left"] = {"runs": len(runs), "steps": int(runs.sum()), "first": first_left}
    if calendar is not None:
        info.update(step=f"{step} {calendar[1]}(s)", time_unit=f"{calendar[1]} numbers ({calendar[1]}s since 1970-01-01)")
    return out, info


# Grid steps ingest.resample chooses from when ingest.freq is not set (ns): 1 ms to 1 week.
_ROUND_STEPS = [int(pd.Timedelta(d).value) for d in (
    "1ms", "10ms", "100ms", "1s", "2s", "5s", "10s", "15s", "30s", "1min", "2min", "5min", "10min", "15min", "30min",
    "1h", "2h", "3h", "6h", "12h", "1D", "7D")]


def _resample_mean(long: pd.DataFrame, channels: list[str], t: np.ndarray, step: int,
                   is_time: bool) -> tuple[pd.DataFrame, dict[str, int]]:
    """Each row to its nearest grid time (a multiple of `step`: whole minutes for a step of a
    minute), the rows of one series and grid time averaged over their finite values (a label: the
    first). Returns the new rows and counts: rows in, grid times out, grid times that had several rows."""
    g = (t + step // 2) // step
    values = long[channels].where(np.isfinite(long[channels].to_numpy(np.float64)))
    keys = [long["series_id"].to_numpy(), g]
    grouped = values.groupby(keys, sort=True)
    out = grouped.mean()
    ids, cells = out.index.get_level_values(0).to_numpy(), out.index.get_level_values(1).to_numpy(np.int64) * step
    frame = pd.DataFrame({"series_id": ids, "timestamp": pd.to_datetime(cells, utc=True) if is_time else cells})
    frame[channels] = out.to_numpy(np.float64)
    if "label" in long.columns:
        frame["label"] = long["label"].groupby(keys, sort=True).first().to_numpy()
    sizes = grouped.size().to_numpy()
    return frame, {"rows": len(long), "grid_times": len(frame), "shared": int((sizes > 1).sum())}


def _calendar(ts: pd.Series) -> tuple[np.ndarray, str] | None:
    """(step numbers, unit) when the times follow a calendar no fixed duration fits: "month"
    (months since 1970-01) when every time is midnight on the first day of its month, or every
    one on the last (monthly, quarterly, yearly data, steps of 28 to 31 days); "weekday"
    (Monday-Friday days since 1970-01-01) when every time is midnight on a weekday, most one day
    apart and some across a weekend (business-day data, whose weekends are not gaps). None otherwise."""
    idx = pd.DatetimeIndex(ts)
    idx = idx.tz_convert(None) if idx.tz is not None else idx
    if len(idx) < 2 or not (idx == idx.normalize()).all():
        return None
    if (idx.day == 1).all() or idx.is_month_end.all():
        return ((idx.year - 1970) * 12 + idx.month - 1).to_numpy(np.int64), "month"
    days = idx.to_numpy().astype("datetime64[D]")
    if (idx.day_of_week < 5).all():
        gaps = np.diff(np.sort(days)).astype(np.int64)
        if np.median(gaps[gaps > 0]) == 1 and (gaps == 3).any():
            return np.busday_count(np.datetime64("1970-01-01"), days).astype(np.int64), "weekday"
    return None


def _calendar_text(n: int, unit: str) -> str:
    """A step number of _calendar as a date: YYYY-MM for months, YYYY-MM-DD for weekdays."""
    if unit == "month":
        return f"{1970 + n // 12}-{n % 12 + 1:02d}"
    return str(np.busday_offset(np.datetime64("1970-01-01"), n, roll="forward"))


def clip_range(df: pd.DataFrame, cfg: IngestConfig) -> pd.DataFrame:
    """Keep rows with start <= timestamp < end (the partition of a backfill run)."""
    if cfg.start is None and cfg.stop is None:
        return df
    t = df["timestamp"]
    conv = (lambda v: pd.Timestamp(v, tz="UTC") if pd.Timestamp(v).tz is None else pd.Timestamp(v)) if pd.api.types.is_datetime64_any_dtype(t) else int
    keep = np.ones(len(df), dtype=bool)
    if cfg.start is not None:
        keep &= (t >= conv(cfg.start)).to_numpy()
    if cfg.stop is not None:
        keep &= (t < conv(cfg.stop)).to_numpy()
    return df.loc[keep].reset_index(drop=True)


def ingest_table(uri: str, cfg: IngestConfig, storage_options: dict[str, Any] | None = None) -> Ingested:
    """Read, validate and regularise one input file, or every data file of a folder (read_folder).

    Args:
        uri: local path or fsspec URL of a CSV or Parquet file, or of a folder of them.
        cfg: the ingest section of the config.

    Returns:
        The series table, its channel names, and counts for the summary.
    """
    files = input_files(uri, storage_options)
    if files is None:
        raw = read_table(uri, storage_options, cfg)
        long, channels, how = to_long(raw, cfg, uri)
        rows_in = len(raw)
    else:
        long, channels, how, rows_in = read_folder(uri, files, cfg, storage_options)
    long = clip_range(long, cfg)
    if long.empty:
        raise InputError(f"{uri}: no rows in the range start={cfg.start} end={cfg.stop}")
    frame, info = regularise(long, channels, cfg, uri, wide=how["layout"] == "wide")
    info.update(rows_in=rows_in, **how)
    _log_time_form(uri, info)
    return Ingested(frame, channels, info)


def read_folder(uri: str, files: list[tuple[str, str]], cfg: IngestConfig, storage_options: dict[str, Any] | None,
                ) -> tuple[pd.DataFrame, list[str], dict[str, Any], int]:
    """Every data file of a folder as one long table: (frame, channels, how it was read, rows in).

    With ingest.layout=auto, files with the id column are parts of one long table (a partitioned
    Parquet dataset, monthly exports: an id in two files is one series), and a file without it is
    one series, named by its path in the folder without the suffix (`site-a/2023.csv` ->
    `site-a/2023`), every numeric column a channel. The files are read one by one and parsed as
    one table, so every file's times are read the same way; files must have the same columns (or,
    with ingest.channels, each those channels), and an error names the file."""
    raws = [read_table(f, storage_options, cfg) for _, f in files]
    keyed = [cfg.id_column in r.columns for r in raws]
    names = [rel for rel, _ in files]
    if cfg.layout == "auto" and any(keyed) and not all(keyed):
        odd = keyed.index(not keyed[0])
        raise InputError(f"{files[odd][1]}: {'has an' if keyed[odd] else 'has no'} {cfg.id_column!r} column and {names[0]} "
                         f"{'has one' if keyed[0] else 'has none'}: a folder holds either parts of one long table (every "
                         "file with the id column) or one series per file (none with it)")
    for (_, f), r in zip(files, raws):
        missing = (set(cfg.channels) if cfg.channels else set(raws[0].columns)) - set(r.columns)
        extra = set() if cfg.channels else set(r.columns) - set(raws[0].columns)
        if missing or extra:
            raise InputError(f"{f}: its columns differ from those of {names[0]} ("
                             + "; ".join(x for x in (missing and f"lacks {', '.join(sorted(missing)[:8])}",
                                                     extra and f"has {', '.join(sorted(extra)[:8])} besides") if x)
                             + "); set ingest.channels to the ones every file has")
    per_file = cfg.layout == "single" or (cfg.layout == "auto" and not keyed[0])
    time_col = find_time_column(raws[0], cfg, not per_file and cfg.layout != "wide")  # a single series may count steps
    whole = cfg.model_copy(update={"time_column": time_col}) if time_col else cfg
    if per_file:  # each file one series: its name as the id, then read as a long table
        raws = [r.assign(**{cfg.id_column: re.sub(r"(\.(csv|tsv|parquet|pq))?(\.(gz|bz2|xz|zip))?$", "", rel, flags=re.I)})
                for rel, r in zip(names, raws)]
        whole = whole.model_copy(update={"layout": "long"})
    if time_col is not None:
        steps = [pd.api.types.is_numeric_dtype(r[time_col]) if time_col in r.columns else None for r in raws]
        if len(set(steps)) > 1:
            odd = next(i for i, v in enumerate(steps) if v != steps[0])
            what = {None: "is missing", True: "holds numbers", False: "holds times"}
            raise InputError(f"{files[odd][1]}: its time column {time_col!r} {what[steps[odd]]}, that of {names[0]} "
                             f"{what[steps[0]]}; every file needs the same kind")
    table = pd.concat(raws, ignore_index=True)
    try:
        long, channels, how = to_long(table, whole, uri)
    except InputError as e:
        for (_, f), r in zip(files, raws):  # a fault within one file: named by it, with its own row numbers
            to_long(r, whole, f)
        starts = np.cumsum([0] + [len(r) for r in raws])

        def where(m: re.Match) -> str:  # a row of the files read together -> that row of its file
            i = int(m.group(1)) - 2
            j = int(np.searchsorted(starts, i, side="right")) - 1
            return f"row {i - starts[j] + 2} of {names[j]}"

        raise InputError(re.sub(r"\brow (\d+)", where, str(e))) from None
    if per_file:
        how |= {"layout": "single", "id_column": None}
    how["files"] = len(files)
    log.info("ingest: %s: %d file(s), %s", redact(uri), len(files),
             "one series each" if per_file else f"parts of one {how['layout']} table")
    return long, channels, how, len(table)


def _log_time_form(uri: str, info: dict[str, Any]) -> None:
    """One line when the time column's text was read another way than as ISO 8601 in UTC."""
    if info.get("time_format"):
        log.info("ingest: %s: column %r read as %s", redact(uri), info["time_column"], info["time_format"])


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
        step, channels, how, row0 = None, [], {}, 2
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
                long, channels, how = to_long(df, cfg, uri, row0)
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
                            gaps_filled=info["gaps_filled"] + part["gaps_filled"], step=part["step"],
                            **{k: part[k] for k in ("time_unit",) if k in part})
                if "resampled" in part:
                    before = info.get("resampled", {})
                    info["resampled"] = {k: before.get(k, 0) + v for k, v in part["resampled"].items()}
                if "gaps_left" in part:
                    seen_left = info.get("gaps_left", {"runs": 0, "steps": 0, "first": part["gaps_left"]["first"]})
                    info["gaps_left"] = {**seen_left, "runs": seen_left["runs"] + part["gaps_left"]["runs"],
                                         "steps": seen_left["steps"] + part["gaps_left"]["steps"]}
        except _NotGrouped:
            if writer is not None:
                writer.close()
            log.info("ingest: %s: series are not contiguous, reading the whole file instead of streaming", uri)
            return None
    if writer is None:
        if cfg.start is None and cfg.stop is None:
            raise InputError(f"{uri}: no data rows")
        raise InputError(f"{uri}: no rows in the range start={cfg.start} end={cfg.stop}")
    writer.close()
    info.update(channels=channels, step_value=step, **how)
    return channels, info




def ingest_to_file(uri: str, cfg: IngestConfig, out_path: str, storage_options: dict[str, Any] | None = None,
                   ) -> dict[str, Any]:
    """Ingest `uri` into the series-table Parquet file `out_path`: streamed when it is a long
    Parquet file with contiguous series, else read whole.

    Returns:
        Counts for the summary: rows_in, series, rows, channels, gaps_filled, step, has_label.
    """
    folder = _stat(uri, storage_options)[2].get("type") == "directory"
    streamed = None if folder else stream_parquet(uri, cfg, storage_options, out_path)
    if streamed is None:  # a folder, CSV, wide or single layouts, or series not contiguous: in memory
        out = ingest_table(uri, cfg, storage_options)
        pq.write_table(with_meta(pa.Table.from_pandas(out.frame, preserve_index=False),
                                 channels=",".join(out.channels)), out_path, compression="zstd")
        info = out.info
    else:
        info = streamed[1]
        _log_time_form(uri, info)
    info.pop("step_value", None)
    log.info("ingest: %d rows in, %d series, %d gaps filled%s", info["rows_in"], info["series"],
             info["gaps_filled"], " (streamed)" if streamed else "")
    if "resampled" in info:
        r = info["resampled"]
        log.info("ingest: ingest.resample=mean: %d rows averaged onto %d grid times of %s (%d of them had several rows)",
                 r["rows"], r["grid_times"], info["step"], r["shared"])
    if "gaps_left" in info:
        g = info["gaps_left"]
        log.warning("ingest: %d run(s) of missing steps longer than ingest.max_gap=%d (%d steps) kept missing, the first: "
                    "%s; windows that overlap them are left out (ingest.long_gaps=error to stop instead)",
                    g["runs"], cfg.max_gap, g["steps"], g["first"])
    if "time_unit" in info:
        log.info("ingest: the times follow a calendar (month starts or ends, or weekdays): steps of %s, timestamps are %s",
                 info["step"], info["time_unit"])
    return info
