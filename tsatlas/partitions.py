"""Partitions of a backfill: intervals of one length from a start, and where a finished one is recorded."""

from __future__ import annotations

import re

import pandas as pd

from tsatlas.config import PipelineConfig, duration
from tsatlas.errors import ConfigError
from tsatlas.storage import check_key, digest


def partition_bounds(start: str, count: int, every: str) -> list[tuple[str, str]]:
    """`count` consecutive [a, b) intervals of length `every` (e.g. '1d', '6h', '7d') from `start`."""
    try:
        a, step = pd.Timestamp(start), duration(every)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"backfill: bad start or every ({e})") from None
    if step <= pd.Timedelta(0) or count < 1:
        raise ConfigError(f"backfill: need a positive step and at least one partition (got {count} every {every})")
    edges = [a + i * step for i in range(count + 1)]
    return [(x.isoformat(), y.isoformat()) for x, y in zip(edges[:-1], edges[1:])]


def count_between(start: str, end: str, every: str) -> int:
    """How many `every`-long partitions make [start, end): the CLI's --end as the flow's partition count."""
    try:
        a, b, step = pd.Timestamp(start), pd.Timestamp(end), duration(every)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"backfill: bad --start/--end/--every ({e})") from None
    if b <= a:
        raise ConfigError(f"backfill: --start ({start}) must be before --end ({end})")
    n, rest = divmod(b - a, step)
    if rest:
        raise ConfigError(f"backfill: {start} .. {end} is not a whole number of {every} partitions "
                          f"({(b - a) / step:.2f}); move --end or give --partitions")
    return int(n)


def partition_name(p: tuple[str, str]) -> str:
    """A store-safe name for a partition, e.g. 19900101T000000--19900201T000000."""
    clean = [re.sub(r"[^0-9A-Za-z]", "", pd.Timestamp(x).strftime("%Y%m%dT%H%M%S")) for x in p]
    return check_key(f"{clean[0]}--{clean[1]}")


def record_key(config: PipelineConfig, data: str, p: tuple[str, str]) -> str:
    """Where a finished partition is recorded; the key holds the data and every config section
    except the partition's own start/span/end, so another config backfills afresh."""
    cfg = config.model_dump(mode="json")
    for key in ("start", "span", "end"):
        cfg["ingest"].pop(key)
    return check_key(f"partitions/{digest(data, cfg)}/{partition_name(p)}.json")


def scheduled_partition(at: object, every: str) -> tuple[str, str]:
    """The `every`-long partition that ends where `at` (a scheduled start time) falls, aligned to
    `every` since 1970-01-01 UTC: a run scheduled for 2024-05-02 02:00 UTC with every=1d gets
    [2024-05-01, 2024-05-02). Naive UTC ISO times, as backfill partitions are."""
    step = duration(every)
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
                          "(set partition, or ingest.start and ingest.span)")
    return data.replace("{start}", pd.Timestamp(start).strftime("%Y-%m-%d")).replace(
        "{end}", pd.Timestamp(end).strftime("%Y-%m-%d"))
