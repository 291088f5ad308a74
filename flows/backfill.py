"""The backfill flow: the atlas flow over a range of past partitions."""

from __future__ import annotations

import os
import socket
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_table_artifact

from tasks.common import open_store
from tsatlas import catalog
from tsatlas.config import (ClusterConfig, Concurrency, DateText, Every, GenerateConfig, IngestConfig, PipelineConfig,
                            Seed, TrainConfig, WindowsConfig)
from tsatlas.errors import TsatlasError
from tsatlas.ingest import BUNDLED_DATA, resolve_data
from tsatlas.partitions import partition_name, partitions, record_key


@task(name="partition", retries=0, persist_result=False)
def run_partition(data: str, p: tuple[str, str], config: PipelineConfig, root: str,
                  credentials: str | None = None) -> dict[str, Any]:
    """The atlas flow for one partition unless it is recorded as done; never raises, so one
    failed partition does not stop the others."""
    # Imported here, not at the top: a Dask worker gets this function pickled by value, with only
    # the globals its body uses, and the atlas flow's annotations need its own module's globals.
    from flows.pipeline import atlas

    store = open_store(root, credentials)
    key = record_key(config, data, p)
    row = {"partition": partition_name(p), "start": p[0], "end": p[1],
           "worker": f"{socket.gethostname()}:{os.getpid()}"}  # where it ran: this process, or a Dask worker
    if (done := catalog.partition_record(store, key)) is not None:
        return {**row, **done, "state": "skipped (done before)"}
    cfg = config.model_copy(update={"ingest": config.ingest.model_copy(update={"start": p[0], "end": p[1]})})
    try:
        m = atlas(data=data, root=root, credentials=credentials, **cfg.sections())
    except Exception as e:  # reported in the table; the flow fails at the end
        return {**row, "state": "failed", "error": str(e).splitlines()[0][:300]}
    done = {"run_id": m["run_id"], "manifest": m["manifest_uri"]}
    catalog.write_partition_record(store, key, done)
    return {**row, **done, "state": "completed"}


@flow(name="backfill")
def backfill(
    start: DateText,
    end: DateText,
    every: Every = "1d",
    data: str = BUNDLED_DATA,
    root: str = "./artifacts",
    ingest: IngestConfig = IngestConfig(),
    windows: WindowsConfig = WindowsConfig(),
    train: TrainConfig = TrainConfig(),
    cluster: ClusterConfig = ClusterConfig(),
    generate: GenerateConfig = GenerateConfig(),
    seed: Seed = 0,
    max_concurrency: Concurrency = 2,
    credentials: str | None = None,
) -> list[dict[str, Any]]:
    """Run the atlas flow once per partition [a, b) of [start, end), `every` long, at most
    `max_concurrency` at a time. Partitions already done with the same data and config are
    skipped, so after a failure a re-run finishes only what is missing.

    Args:
        start: start of the first partition, a date or time such as 2024-01-01 or 2024-01-01T06:00Z.
        end: end of the last partition (exclusive), after start.
        every: partition length: a positive number and a unit (s, min, h, d, w), e.g. 1d, 6h, 30d.
        data: CSV or Parquet file (path or fsspec URL) holding every partition.
        root: artifact store root (local folder or fsspec URL such as s3://bucket/prefix).
        ingest: how to read the input table (start and end are set per partition).
        windows: how series are cut into windows and scaled.
        train: the recurrent autoencoder and its training.
        cluster: K-means over the embeddings.
        generate: synthetic series per cluster.
        seed: seed for every random step.
        max_concurrency: partitions run at once (at least 1).
        credentials: name of a Prefect AwsCredentials block for s3:// data and root.

    Returns:
        One row per partition: partition, state, run id, manifest (also a table artifact).
    """
    data = resolve_data(data)
    config = PipelineConfig(ingest=ingest, windows=windows, train=train, cluster=cluster, generate=generate, seed=seed)
    parts = partitions(start, end, every)
    rows: list[dict[str, Any]] = []
    for i in range(0, len(parts), max(1, max_concurrency)):  # bounded: one wave of submissions at a time
        wave = [run_partition.submit(data, p, config, root, credentials) for p in parts[i:i + max_concurrency]]
        rows += [f.result() for f in wave]
    create_table_artifact([{k: r.get(k, "") for k in ("partition", "state", "run_id", "manifest", "worker", "error")} for r in rows],
                          key="tsatlas-backfill", description=f"backfill {start} .. {end} every {every}")
    failed = [r for r in rows if r["state"] == "failed"]
    if failed:
        raise TsatlasError(f"backfill: {len(failed)} of {len(rows)} partitions failed, first {failed[0]['partition']}: "
                           f"{failed[0]['error']} (run it again to finish only these)")
    return rows
