"""The train task: fit the recurrent autoencoder, resuming from the stage's last checkpoint."""

from __future__ import annotations

import dataclasses
import gc

import torch
from prefect import task
from prefect.artifacts import create_progress_artifact, update_progress_artifact

from tasks.common import STAGE_TASK, block_options, logger, open_store, stage_state
from tsatlas import catalog
from tsatlas.config import ClusterConfig, TrainConfig
from tsatlas.errors import StorageError
from tsatlas.stage import stage_key
from tsatlas.trainer import launch_ddp, train_config, train_stage


@task(name="train", **STAGE_TASK)
def train_task(windows: catalog.WindowsRef, root: str, cfg: TrainConfig, seed: int = 0,
               clusters: ClusterConfig | None = None, credentials: str | None = None) -> catalog.ModelRef:
    """Fit the autoencoder (under torchrun when train.processes > 1); reused when already done.
    `clusters` gives k to train.objective=idec and is ignored otherwise."""
    store = open_store(root, credentials)
    gc.collect()
    if torch.cuda.is_available():  # a failed attempt's tensors stay in CUDA's cache otherwise
        torch.cuda.empty_cache()
    if cfg.processes > 1:
        key = stage_key("train", [windows], train_config(cfg, seed, clusters))
        if (ref := catalog.find(store, "train", key)) is not None:
            return stage_state(dataclasses.replace(ref, reused=True))
        launch_ddp(windows, root, cfg, seed, clusters, block_options(credentials), logger())
        if (ref := catalog.find(store, "train", key)) is None:
            raise StorageError(f"train: the torchrun launch ended without writing stages/train/{key}")
        return ref
    progress = create_progress_artifact(0.0, key="tsatlas-train-progress",
                                        description="autoencoder training, % of the epoch budget")
    ref = train_stage(store, windows, cfg, seed, clusters,
                      progress=lambda epoch, budget, _: update_progress_artifact(progress, 100.0 * epoch / budget))
    update_progress_artifact(progress, 100.0)  # early stopping ends before the budget
    return stage_state(ref)
