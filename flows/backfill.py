"""The backfill flow: the atlas flow over a range of past partitions."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.artifacts import create_table_artifact

from tasks.backfill import partition_task, partitions
from tasks.ingest import BUNDLED_DATA, resolve_data
from tsatlas.config import ClusterConfig, GenerateConfig, IngestConfig, PipelineConfig, TrainConfig, WindowsConfig
from tsatlas.errors import TsatlasError


@flow(name="backfill")
def backfill(
    start: str,
    end: str,
    every: str = "1d",
    data: str = BUNDLED_DATA,
    root: str = "./artifacts",
    ingest: IngestConfig = IngestConfig(),
    windows: WindowsConfig = WindowsConfig(),
    train: TrainConfig = TrainConfig(),
    cluster: ClusterConfig = ClusterConfig(),
    generate: GenerateConfig = GenerateConfig(),
    seed: int = 0,
    max_concurrency: int = 2,
    credentials: str | None = None,
) -> list[dict[str, Any]]:
    """Run the atlas flow once per partition [a, b) of [start, end), `every` long, at most
    `max_concurrency` at a time. Partitions already done with the same data and config are
    skipped, so after a failure a re-run finishes only what is missing.

    Returns:
        One row per partition: partition, state, run id, manifest (also a table artifact).
    """
    data = resolve_data(data)
    config = PipelineConfig(ingest=ingest, windows=windows, train=train, cluster=cluster, generate=generate, seed=seed)
    parts = partitions(start, end, every)
    rows: list[dict[str, Any]] = []
    for i in range(0, len(parts), max(1, max_concurrency)):  # bounded: one wave of submissions at a time
        wave = [partition_task.submit(data, p, config, root, credentials) for p in parts[i:i + max_concurrency]]
        rows += [f.result() for f in wave]
    create_table_artifact([{k: r.get(k, "") for k in ("partition", "state", "run_id", "manifest", "worker", "error")} for r in rows],
                          key="tsatlas-backfill", description=f"backfill {start} .. {end} every {every}")
    failed = [r for r in rows if r["state"] == "failed"]
    if failed:
        raise TsatlasError(f"backfill: {len(failed)} of {len(rows)} partitions failed, first {failed[0]['partition']}: "
                           f"{failed[0]['error']} (run it again to finish only these)")
    return rows
