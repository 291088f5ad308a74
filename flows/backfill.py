"""The backfill flow: the atlas flow over a range of past partitions, either as runs of an atlas
deployment (as an operator backfills with Prefect) or inside this flow run."""

# Annotations here are evaluated (no `from __future__ import annotations`): `flow.serve()` runs each flow run
# from the pickled flow, where postponed ones could not be resolved and every run failed validation.
import os
import socket
import time
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_table_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment

from tasks.common import open_store
from tsatlas import catalog
from tsatlas.config import (ClusterConfig, Concurrency, DateText, DeploymentName, Every, GenerateConfig, IngestConfig,
                            PartitionCount, PipelineConfig, Seed, TrainConfig, WindowsConfig)
from tsatlas.errors import TsatlasError
from tsatlas.ingest import BUNDLED_DATA, resolve_data
from tsatlas.partitions import partition_bounds, partition_name, record_key

POLL_SECONDS = 2.0
MAX_ATTEMPTS = 50  # new runs per partition, across re-runs of a backfill, after failed ones


@task(name="partition", retries=0, persist_result=False)
def run_partition(data: str, p: tuple[str, str], config: PipelineConfig, root: str,
                  credentials: str | None = None) -> dict[str, Any]:
    """The atlas flow for partition p (`config` reads only p) unless it is recorded as done; never
    raises, so one failed partition does not stop the others."""
    # Imported here, not at the top: a Dask worker gets this function pickled by value, with only
    # the globals its body uses, and the atlas flow's annotations need its own module's globals.
    from flows.pipeline import atlas

    store = open_store(root, credentials)
    key = record_key(config, data, p)
    row = {"partition": partition_name(p), "start": p[0], "end": p[1],
           "worker": f"{socket.gethostname()}:{os.getpid()}"}  # where it ran: this process, or a Dask worker
    if (done := catalog.partition_record(store, key)) is not None:
        return {**row, **done, "state": "skipped (done before)"}
    try:
        m = atlas(data=data, root=root, credentials=credentials, **config.sections())
    except Exception as e:  # reported in the table; the flow fails at the end
        return {**row, "state": "failed", "error": str(e).splitlines()[0][:300]}
    done = {"run_id": m["run_id"], "manifest": m["manifest_uri"]}
    catalog.write_partition_record(store, key, done)
    return {**row, **done, "state": "completed"}


def _for_partition(config: PipelineConfig, p: tuple[str, str], every: str) -> PipelineConfig:
    """`config` reading only partition p (`every` long): ingest.start and span set to it."""
    ingest = IngestConfig(**{**config.ingest.model_dump(), "start": p[0], "span": every, "end": None})
    return config.model_copy(update={"ingest": ingest})


def _partition_params(data: str, config: PipelineConfig, root: str, credentials: str | None) -> dict[str, Any]:
    """The atlas deployment's parameters for a partition's config (its sections and seed, as JSON)."""
    return {"data": data, "root": root, "credentials": credentials, "partition": None, **config.model_dump(mode="json")}


def _start_run(deployment: str, p: tuple[str, str], params: dict[str, Any], key: str) -> FlowRun:
    """The partition's run of `deployment`: the same run again for the same key (idempotency key
    `key#n`), or, when that one failed or crashed, a new one under `key#n+1`."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        run = run_deployment(deployment, parameters=params, idempotency_key=f"{key}#{attempt}", timeout=0,
                             flow_run_name=f"partition-{partition_name(p)}", tags=["tsatlas-backfill"])
        if run.state is None or not (run.state.is_failed() or run.state.is_crashed() or run.state.is_cancelled()):
            return run
    raise TsatlasError(f"backfill: partition {partition_name(p)} failed {MAX_ATTEMPTS} times; see its flow runs")


def _as_deployment_runs(deployment: str, data: str, parts: list[tuple[tuple[str, str], PipelineConfig]],
                        root: str, credentials: str | None) -> list[dict[str, Any]]:
    """One flow run of `deployment` per partition not recorded as done, all created at once (the
    deployment's concurrency limit decides how many run together), then waited for."""
    store = open_store(root, credentials)
    rows: list[dict[str, Any]] = []
    waiting: dict[Any, tuple[dict[str, Any], str]] = {}
    for p, config in parts:
        key = record_key(config, data, p)
        row = {"partition": partition_name(p), "start": p[0], "end": p[1]}
        if (done := catalog.partition_record(store, key)) is not None:
            rows.append({**row, **done, "state": "skipped (done before)"})
            continue
        run = _start_run(deployment, p, _partition_params(data, config, root, credentials), key)
        row.update(flow_run=run.name, flow_run_id=str(run.id), worker=f"{deployment} run {run.name}")
        rows.append(row)
        waiting[run.id] = (row, key)
    with get_client(sync_client=True) as client:
        while waiting:
            time.sleep(POLL_SECONDS)
            for run_id, (row, key) in list(waiting.items()):
                state = client.read_flow_run(run_id).state
                if state is None or not state.is_final():
                    continue
                del waiting[run_id]
                found = catalog.run_of_flow_run(store, str(run_id)) if state.is_completed() else None
                if found is None:
                    why = (state.message or "").strip().splitlines() or ["no manifest written"]
                    row.update(state="failed", error=f"flow run {row['flow_run']} ended {state.name}: {why[0][:300]}")
                    continue
                done = {"run_id": found, "manifest": store.uri(catalog.manifest_key(found))}
                catalog.write_partition_record(store, key, done)
                row.update(done, state="completed")
    return rows


@flow(name="backfill")
def backfill(
    start: DateText,
    partitions: PartitionCount,
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
    deployment: DeploymentName | None = None,
    credentials: str | None = None,
) -> list[dict[str, Any]]:
    """Run the atlas flow once per partition [a, b), `every` long, `partitions` of them from `start`. Partitions
    already done with the same data and config are skipped, so after a failure a re-run
    finishes only what is missing.

    Args:
        start: start of the first partition, a date or time such as 2024-01-01 or 2024-01-01T06:00Z.
        partitions: how many partitions; the last one ends at start + partitions x every.
        every: partition length: a positive number and a unit (s, min, h, d, w), e.g. 1d, 6h, 30d.
        data: CSV or Parquet file, or a folder of them (path or fsspec URL), holding every partition.
        root: artifact store root (local folder or fsspec URL such as s3://bucket/prefix).
        ingest: how to read the input table (start and span are set per partition).
        windows: how series are cut into windows and scaled.
        train: the recurrent autoencoder and its training.
        cluster: K-means over the embeddings.
        generate: synthetic series per cluster.
        seed: seed for every random step.
        max_concurrency: partitions run at once inside this flow run (at least 1); with
            `deployment`, that deployment's concurrency limit decides instead.
        deployment: run each partition as a flow run of this atlas deployment ("flow/deployment",
            e.g. atlas/atlas), with an idempotency key per partition and config, so that a re-run
            never starts a second run of a partition that is running or done. Default: inside
            this flow run.
        credentials: name of a Prefect AwsCredentials block for s3:// data and root.

    Returns:
        One row per partition: partition, state, run id, manifest (also a table artifact).
    """
    data = resolve_data(data)
    config = PipelineConfig(ingest=ingest, windows=windows, train=train, cluster=cluster, generate=generate, seed=seed)
    parts = [(p, _for_partition(config, p, every)) for p in partition_bounds(start, partitions, every)]
    if deployment:
        rows = _as_deployment_runs(deployment, data, parts, root, credentials)
    else:
        rows = []
        for i in range(0, len(parts), max_concurrency):  # bounded: one wave of submissions at a time
            wave = [run_partition.submit(data, p, cfg, root, credentials) for p, cfg in parts[i:i + max_concurrency]]
            rows += [f.result() for f in wave]
    create_table_artifact([{k: r.get(k, "") for k in ("partition", "state", "run_id", "manifest", "worker", "error")}
                           for r in rows],
                          key="tsatlas-backfill", description=f"backfill {start} .. {parts[-1][0][1]} every {every}")
    failed = [r for r in rows if r["state"] == "failed"]
    if failed:
        raise TsatlasError(f"backfill: {len(failed)} of {len(rows)} partitions failed, first {failed[0]['partition']}: "
                           f"{failed[0]['error']} (run it again to finish only these)")
    return rows
