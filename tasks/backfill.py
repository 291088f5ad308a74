"""Backfill: one atlas run per time partition, recorded so that a re-run skips what is done."""

from __future__ import annotations

import os
import re
import socket
from typing import Any

import pandas as pd
from prefect import task

from tasks.common import open_store
from tsatlas.config import PipelineConfig
from tsatlas.errors import ConfigError
from tsatlas.storage import check_key, digest


def partitions(start: str, end: str, every: str) -> list[tuple[str, str]]:
    """[start, end) cut into consecutive [a, b) intervals of length `every` (a pandas offset
    such as '1d', '6h', '7d'); the last one ends at `end`."""
    try:
        a, b, step = pd.Timestamp(start), pd.Timestamp(end), pd.Timedelta(re.sub(r"(?<=\d)d$", "D", every))
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


@task(name="partition", retries=0, persist_result=False)
def partition_task(data: str, p: tuple[str, str], config: PipelineConfig, root: str,
                   credentials: str | None = None) -> dict[str, Any]:
    """Run the atlas flow for one partition unless it is recorded as done; never raises, so one
    failed partition does not stop the others."""
    from flows.pipeline import atlas

    store = open_store(root, credentials)
    key = record_key(config, data, p)
    row = {"partition": partition_name(p), "start": p[0], "end": p[1],
           "worker": f"{socket.gethostname()}:{os.getpid()}"}  # where it ran: this process, or a Dask worker
    if store.exists(key):
        return {**row, **store.get_json(key), "state": "skipped (done before)"}
    ingest = config.ingest.model_copy(update={"start": p[0], "end": p[1]})
    try:
        m = atlas(data=data, root=root, ingest=ingest, windows=config.windows, train=config.train,
                  cluster=config.cluster, generate=config.generate, seed=config.seed, credentials=credentials)
    except Exception as e:  # reported in the table; the flow fails at the end
        return {**row, "state": "failed", "error": str(e).splitlines()[0][:300]}
    done = {"run_id": m["run_id"], "manifest": m["manifest_uri"]}
    store.put_json(key, done)
    return {**row, **done, "state": "completed"}
