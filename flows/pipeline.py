"""The atlas flow: ingest -> windows -> train -> embed -> cluster -> generate, then the
run's report and manifest."""

# Annotations here are evaluated (no `from __future__ import annotations`): `flow.serve()` runs each flow run
# from the pickled flow, where postponed ones could not be resolved and every run failed validation.
from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from tasks.cluster import cluster_task
from tasks.embed import embed_task
from tasks.generate import generate_task
from tasks.ingest import ingest_task
from tasks.manifest import manifest_task, new_run_id
from tasks.report import report_task
from tasks.train import train_task
from tasks.windows import windows_task
from tsatlas.config import (ClusterConfig, Every, GenerateConfig, IngestConfig, PipelineConfig, Seed, TrainConfig,
                            WindowsConfig)
from tsatlas.ingest import BUNDLED_DATA, resolve_data
from tsatlas.partitions import fill_data_path, scheduled_partition


@flow(name="atlas")
def atlas(
    data: str = BUNDLED_DATA,
    root: str = "./artifacts",
    ingest: IngestConfig = IngestConfig(),
    windows: WindowsConfig = WindowsConfig(),
    train: TrainConfig = TrainConfig(),
    cluster: ClusterConfig = ClusterConfig(),
    generate: GenerateConfig = GenerateConfig(),
    seed: Seed = 0,
    partition: Every | None = None,
    credentials: str | None = None,
) -> dict[str, Any]:
    """Learn an atlas of the series in `data`: windows, a recurrent autoencoder, K-means
    clusters of its embeddings, and synthetic series per cluster.

    Args:
        data: CSV or Parquet file, or a folder of them (path or fsspec URL); long, wide or single. {start} and {end} in it
            become the partition's dates (YYYY-MM-DD), e.g. incoming/{start}.csv.
        root: artifact store root (local folder or fsspec URL such as s3://bucket/prefix).
        ingest: how to read the input table.
        windows: how series are cut into windows and scaled.
        train: the recurrent autoencoder and its training.
        cluster: K-means over the embeddings.
        generate: synthetic series per cluster.
        seed: seed for every random step.
        partition: for scheduled runs: process only the partition this long (e.g. 1d) that ends where
            the run's scheduled start falls (a run scheduled for 2024-05-02 02:00 UTC reads
            [2024-05-01, 2024-05-02)); sets ingest.start/span. Default: the whole table.
        credentials: name of a Prefect AwsCredentials block for s3:// data and root; default:
            the AWS_* environment variables or profile.

    Returns:
        The run manifest (also written to <root>/runs/<run_id>/manifest.json).
    """
    run_id = new_run_id()
    if partition:
        start, _ = scheduled_partition(flow_run.scheduled_start_time, partition)
        ingest = ingest.model_copy(update={"start": start, "span": partition, "end": None})
    data = resolve_data(fill_data_path(data, ingest.start, ingest.stop))
    at = dict(root=root, credentials=credentials)
    ing = ingest_task(data, cfg=ingest, **at)
    win = windows_task(ing, cfg=windows, source=data, **at)
    model = train_task(win, cfg=train, seed=seed, clusters=cluster, **at)
    emb = embed_task(win, model, device=train.device, **at)
    clu = cluster_task(emb, cfg=cluster, seed=seed, **at)
    syn = generate_task(win, model, emb, clu, cfg=generate, seed=seed, device=train.device, **at)
    config = PipelineConfig(ingest=ingest, windows=windows, train=train, cluster=cluster, generate=generate, seed=seed)
    refs = {"ingest": ing, "windows": win, "train": model, "embed": emb, "cluster": clu, "generate": syn}
    report = report_task(run_id, refs, seed, **at)
    return manifest_task(run_id, data, config, refs, report, **at)
