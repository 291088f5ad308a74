"""Partitions of a backfill: [start, end) cut into intervals, and where a finished one is recorded."""

from __future__ import annotations

import re

import pandas as pd

from tsatlas.config import PipelineConfig
from tsatlas.errors import ConfigError
from tsatlas.storage import check_key, digest


def _step(every: str) -> pd.Timedelta:
    return pd.Timedelta(re.sub(r"(?<=\d)d$", "D", every))


def partitions(start: str, end: str, every: str) -> list[tuple[str, str]]:
    """[start, end) cut into consecutive [a, b) intervals of length `every` (a pandas offset
    such as '1d', '6h', '7d'); the last one ends at `end`."""
    try:
        a, b, step = pd.Timestamp(start), pd.Timestamp(end), _step(every)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"backfill: bad --start/--end/--every ({e})") from None
    if step <= pd.Timedelta(0) or b <= a:
        raise ConfigError(f"backfill: need start < end and a positive step (got {start} .. {end} every {every})")
    edges = list(pd.date_range(a, b, freq=step))
    if edges[-1] < b:
        edges.append(b)
    return [(x.isoformat(), y.isoformat()) for x, y in zip(edges[:-1], edges[1:])]


def partition_name(p: tuple[str, str]) -> str:
    """A store-safe name for a partition, e.g. 19900101T000000--19900201T000000."""
    clean = [re.sub(r"[^0-9A-Za-z]", "", pd.Timestamp(x).strftime("%Y%m%dT%H%M%S")) for x in p]
    return check_key(f"{clean[0]}--{clean[1]}")


def record_key(config: PipelineConfig, data: str, p: tuple[str, str]) -> str:
    """Where a finished partition is recorded; the key holds the data and every config section
    except the partition's own start/end, so another config backfills afresh."""
    cfg = config.model_dump(mode="json")
    cfg["ingest"].pop("start")
    cfg["ingest"].pop("end")
    return check_key(f"partitions/{digest(data, cfg)}/{partition_name(p)}.json")


def scheduled_partition(at: object, every: str) -> tuple[str, str]:
    """The `every`-long partition that ends where `at` (a scheduled start time) falls, aligned to
    `every` since 1970-01-01 UTC: a run scheduled for 2024-05-02 02:00 UTC with every=1d gets
    [2024-05-01, 2024-05-02). Naive UTC ISO times, as backfill partitions are."""
    step = _step(every)
    t = pd.Timestamp(at)
    t = (t.tz_convert("UTC") if t.tzinfo else t.tz_localize("UTC")).tz_localize(None)
    end = t.floor(step)
    return (end - step).isoformat(), end.isoformat()


def fill_data_path(data: str, start: str | None, end: str | None) -> str:
    """`data` with {start} and {end} replaced by the partition's dates (YYYY-MM-DD), for inputs
    that arrive as one file per partition, e.g. incoming/{start}.csv."""
    if "{start}" not in data and "{end}" not in data:
        return data
    if not start or not end:
        raise ConfigError(f"data {data!r} names {{start}}/{{end}}, but this run has no partition "
                          "(set partition, or ingest.start and ingest.end)")
    return data.replace("{start}", pd.Timestamp(start).strftime("%Y-%m-%d")).replace(
        "{end}", pd.Timestamp(end).strftime("%Y-%m-%d"))
