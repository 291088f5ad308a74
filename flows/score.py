"""The score flow: embed and assign new data with an already trained run."""

# Annotations here are evaluated (no `from __future__ import annotations`): `flow.serve()` runs each flow run
# from the pickled flow, where postponed ones could not be resolved and every run failed validation.
from typing import Any

from prefect import flow

from tsatlas.config import Device
from tsatlas.ingest import resolve_data
from tasks.score import score_task


@flow(name="score")
def score(data: str, model: str = "latest", root: str = "./artifacts", credentials: str | None = None,
          device: Device = "auto") -> dict[str, Any]:
    """Score new series with a trained atlas: cluster per window, distance to its centroid,
    reconstruction error, and an anomaly flag above the threshold learned in training.

    Args:
        data: CSV or Parquet file, or a folder of them (path or fsspec URL), with the trained run's channels.
        model: run id of a finished atlas run, or 'latest'.
        root: artifact store root holding that run.
        credentials: name of a Prefect AwsCredentials block for s3:// paths.
        device: auto, cpu or cuda.

    Returns:
        Where the scores are, the anomaly count, and how the cluster mix differs from training.
    """
    return score_task(resolve_data(data), model, root, credentials, device)
