"""The train stage's work: fit the autoencoder on the windows, checkpointing every epoch to
the store so that a retried (or re-run) stage resumes where it stopped; under torchrun the
same function runs in every process and only rank 0 checkpoints.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from tsatlas import catalog
from tsatlas.autoencoder import RNNAutoencoder
from tsatlas.config import ClusterConfig, TrainConfig
from tsatlas.progress import report
from tsatlas.stage import run_stage
from tsatlas.storage import Store
from tsatlas.training import world

log = logging.getLogger(__name__)


def make_estimator(cfg: TrainConfig, seed: int, clusters: ClusterConfig | None = None) -> RNNAutoencoder:
    c = clusters or ClusterConfig()
    return RNNAutoencoder(**cfg.model_dump(exclude={"processes"}), n_clusters=c.k, k_min=c.k_min, k_max=c.k_max,
                          random_state=seed)


def train_config(cfg: TrainConfig, seed: int, clusters: ClusterConfig | None) -> dict[str, Any]:
    """What decides the train stage's output (its key): the train section and seed, and the
    cluster section's k only for objective=idec."""
    extra = clusters.model_dump(include={"k", "k_min", "k_max"}) if cfg.objective == "idec" and clusters else None
    return {"train": cfg.model_dump(exclude={"processes"}), "seed": seed, "clusters": extra}


def _resumed_at(resume: dict[str, Any] | None) -> int:
    """The epoch (counted over both phases) a resumed fit continued after; 0 for a fresh fit."""
    if resume is None:
        return 0
    return int(resume["epoch"]) + 1 + (len(resume["pretrain_history"]) if resume.get("phase") == 2 else 0)


def fit_resumable(store: Store, key: str, X: np.ndarray, cfg: TrainConfig, seed: int,
                  clusters: ClusterConfig | None = None,
                  progress: Callable[[int, int, dict[str, Any]], None] | None = None,
                  ) -> tuple[RNNAutoencoder, dict[str, Any]] | None:
    """Fit on X (n, T, C), resuming from the checkpoint of stage key `key`.

    Args:
        progress: called after every epoch with (epoch, epoch budget, history row).

    Returns:
        (the fitted estimator, metrics), or None on ranks other than 0 under torchrun.
    """
    resume = catalog.read_checkpoint(store, key)
    if resume is not None:
        log.info("train: resuming from checkpoint after epoch %d", _resumed_at(resume))
    budget = cfg.epochs + (cfg.cluster_epochs if cfg.objective == "idec" else 0)

    def on_epoch(state: dict[str, Any]) -> None:
        h = state["history"][-1]
        joint = state["phase"] == 2
        epoch = h["epoch"] + (len(state["pretrain_history"]) if joint else 0)
        log.info("train    %sepoch %d/%d  train %.5f  val %.5f  (%.2fs)", "joint " if joint else "", h["epoch"],
                 cfg.cluster_epochs if joint else cfg.epochs, h["train_loss"], h["val_loss"], h["seconds"])
        if progress is not None:
            progress(epoch, budget, h)
        report("train", epoch, budget)
        catalog.write_checkpoint(store, key, state)

    t0 = time.perf_counter()
    ae = make_estimator(cfg, seed, clusters).fit(X, resume=resume, on_epoch=on_epoch)
    seconds = time.perf_counter() - t0
    rank, size = world()
    replicas = replica_checksums(ae.module_) if size > 1 else None
    if rank != 0:
        return None
    hist = ae.history_
    best = min((h for h in hist if h["phase"] == hist[-1]["phase"]), key=lambda h: h["val_loss"])  # idec: joint phase
    metrics = {"epochs": len(hist), "objective": cfg.objective,
               "train_loss": hist[-1]["train_loss"], "val_loss": hist[-1]["val_loss"],
               "best_epoch": best["epoch"], "best_val_loss": best["val_loss"], "device": str(ae.device_), "batch_size": ae.batch_size_, "lr": ae.lr_,
               "resumed_from_epoch": _resumed_at(resume), "seconds": round(seconds, 2), "processes": size}
    if replicas is not None:  # DDP keeps replicas in step; a mismatch means it did not
        metrics["replicas_identical"] = len(set(replicas)) == 1
    if ae.n_clusters_:
        metrics["idec_clusters"] = ae.n_clusters_
    if ae.latent_losses_ is not None:
        metrics["latent"] = ae.latent_
        metrics["latent_losses"] = {str(k): round(v, 6) for k, v in ae.latent_losses_.items()}
    return ae, metrics


def train_stage(store: Store, windows: catalog.WindowsRef, cfg: TrainConfig, seed: int,
                clusters: ClusterConfig | None = None,
                progress: Callable[[int, int, dict[str, Any]], None] | None = None) -> catalog.ModelRef | None:
    """The train stage: reused when done, else fitted (resuming from its checkpoint) and written
    as model.pt and history.parquet. Returns None on ranks other than 0 under torchrun."""
    def compute(w: Any) -> catalog.ModelRef | None:
        X = catalog.read_windows(store, windows)[0].X
        fitted = fit_resumable(store, w.key, X, cfg, seed, clusters, progress)
        if fitted is None:
            return None
        ae, metrics = fitted
        catalog.write_model(w, ae.to_bytes(), ae.history_)
        return catalog.finish(w, catalog.MODEL, len(ae.history_), metrics=metrics)

    return run_stage(store, "train", [windows], train_config(cfg, seed, clusters), compute)


def replica_checksums(model: torch.nn.Module) -> list[float]:
    """Every process's sum of its parameters, gathered (collective: all ranks must call it)."""
    mine = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum().reshape(1)
    dev = next(model.parameters()).device
    out = [torch.zeros(1, dtype=torch.float64, device=dev) for _ in range(world()[1])]
    dist.all_gather(out, mine.to(dev))
    return [float(t) for t in out]


def launch_ddp(windows: catalog.WindowsRef, root: str, cfg: TrainConfig, seed: int, clusters: ClusterConfig | None,
               storage_options: dict[str, Any] | None, log: Any = log) -> None:
    """Run `python -m tsatlas.ddp` under torch's own launcher on this machine, one process per GPU
    (NCCL) or CPU processes (gloo); its output goes to `log`. Storage options (credentials) travel
    in the environment, never on the command line."""
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={cfg.processes}",
            "-m", "tsatlas.ddp", "--root", root, "--windows", json.dumps(windows.to_json()),
            "--train", cfg.model_dump_json(), "--seed", str(seed)]
    if clusters is not None:
        args += ["--clusters", clusters.model_dump_json()]
    env = {**os.environ, "TSATLAS_STORAGE_OPTIONS": json.dumps(storage_options or {})}
    log.info("train: launching %d DDP processes", cfg.processes)
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    errors: list[str] = []
    for line in proc.stdout:  # type: ignore[union-attr]
        log.info("%s", line.rstrip())
        if line.startswith("[rank") and "Error" in line.split(":", 1)[-1][:80]:  # a process's exception line
            errors.append(line.strip())
    if proc.wait() != 0:
        raise RuntimeError(f"train: torchrun exited with {proc.returncode}: "
                           + (errors[0] if errors else "see the task log for the processes' output"))
