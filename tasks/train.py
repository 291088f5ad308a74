"""Train: fit the recurrent autoencoder on the windows, checkpointing every epoch to the
store so that a retried (or re-run) task resumes where it stopped."""

from __future__ import annotations

import gc
import io
import json
import pickle
import subprocess
import sys
import time
from typing import Any

import pyarrow as pa
import torch
import torch.distributed as dist
from prefect import task
from prefect.artifacts import create_progress_artifact, update_progress_artifact

from tasks.common import STAGE_TASK, logger, open_store
from tasks.windows import load_windows
from tsatlas.autoencoder import RNNAutoencoder
from tsatlas.config import ClusterConfig, TrainConfig
from tsatlas.errors import StorageError
from tsatlas.storage import Store, code_version, digest
from tsatlas.training import world


def make_estimator(cfg: TrainConfig, seed: int, clusters: ClusterConfig | None = None) -> RNNAutoencoder:
    c = clusters or ClusterConfig()
    return RNNAutoencoder(**cfg.model_dump(exclude={"processes"}), n_clusters=c.k, k_min=c.k_min, k_max=c.k_max, random_state=seed)


def load_checkpoint(store: Store, key: str) -> dict[str, Any] | None:
    """The last epoch checkpoint, read with weights_only=True: a pickle that is more than
    tensors and plain values is refused, never run."""
    if not store.exists(key):
        return None
    data = store.get_bytes(key)
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as e:
        raise StorageError(f"{store.uri(key)}: refused to load checkpoint (not a plain state dict: "
                           f"{str(e).splitlines()[0][:160]}); delete it to train from scratch") from None


def load_model(store: Store, ref: dict[str, Any], device: str = "auto") -> RNNAutoencoder:
    data = store.read_stage_bytes(ref, "model.pt")
    try:
        return RNNAutoencoder.from_bytes(data, device=device)
    except (pickle.UnpicklingError, RuntimeError) as e:
        raise StorageError(f"{ref['uri']}: refused to load model weights ({str(e).splitlines()[0][:160]})") from None


def _resumed_at(resume: dict[str, Any] | None) -> int:
    """The epoch (counted over both phases) a resumed fit continued after; 0 for a fresh fit."""
    if resume is None:
        return 0
    return int(resume["epoch"]) + 1 + (len(resume["pretrain_history"]) if resume.get("phase") == 2 else 0)


def stage_key(windows: dict[str, Any], cfg: TrainConfig, seed: int, clusters: ClusterConfig | None) -> str:
    """The train stage's cache key; `clusters` counts only for objective=idec."""
    extra = [clusters.model_dump(include={"k", "k_min", "k_max"})] if cfg.objective == "idec" and clusters else []
    return digest("train", windows["sha256"], cfg.model_dump(), seed, code_version(), *extra)


def fit_stage(store: Store, key: str, windows: dict[str, Any], cfg: TrainConfig, seed: int,
              clusters: ClusterConfig | None, log: Any, progress: Any = None) -> dict[str, Any] | None:
    """Load the windows, fit (resuming from the stage's checkpoint), write the stage. Runs in the
    train task, or in every process of a torchrun launch, where only rank 0 checkpoints and writes.

    Returns:
        The stage reference (None on ranks other than 0).
    """
    ckpt_key = f"stages/train/{key}/checkpoint.pt"
    resume = load_checkpoint(store, ckpt_key)
    if resume is not None:
        log.info("train: resuming from checkpoint after epoch %d", _resumed_at(resume))
    w, _, _ = load_windows(store, windows)
    tty = sys.stderr.isatty() and progress is not None
    budget = cfg.epochs + (cfg.cluster_epochs if cfg.objective == "idec" else 0)

    def on_epoch(state: dict[str, Any]) -> None:
        h = state["history"][-1]
        joint = state["phase"] == 2
        epoch = h["epoch"] + (len(state["pretrain_history"]) if joint else 0)
        log.info("train: %sepoch %d/%d  train %.5f  val %.5f  (%.2fs)", "joint " if joint else "", h["epoch"],
                 cfg.cluster_epochs if joint else cfg.epochs, h["train_loss"], h["val_loss"], h["seconds"])
        if progress is not None:
            update_progress_artifact(progress, 100.0 * epoch / budget)
        if tty:  # a progress bar for people at a terminal
            done = int(30 * epoch / budget)
            sys.stderr.write(f"\r  train [{'#' * done}{'.' * (30 - done)}] epoch {epoch}/{budget}  "
                             f"val {h['val_loss']:.4f}")
            sys.stderr.flush()
        buf = io.BytesIO()
        torch.save(state, buf)
        store.put_bytes(ckpt_key, buf.getvalue())

    t0 = time.perf_counter()
    ae = make_estimator(cfg, seed, clusters).fit(w.X, resume=resume, on_epoch=on_epoch)
    seconds = time.perf_counter() - t0
    if tty:
        sys.stderr.write("\n")
    rank, size = world()
    replicas = replica_checksums(ae.module_) if size > 1 else None
    if rank != 0:
        return None
    hist = ae.history_
    best = min((h for h in hist if h["phase"] == hist[-1]["phase"]), key=lambda h: h["val_loss"])  # idec: joint phase
    metrics = {"epochs": len(hist), "objective": cfg.objective,
               "train_loss": hist[-1]["train_loss"], "val_loss": hist[-1]["val_loss"],
               "best_epoch": best["epoch"], "best_val_loss": best["val_loss"], "device": str(ae.device_),
               "resumed_from_epoch": _resumed_at(resume), "seconds": round(seconds, 2), "processes": size}
    if replicas is not None:  # DDP keeps replicas in step; a mismatch means it did not
        metrics["replicas_identical"] = len(set(replicas)) == 1
    if ae.n_clusters_:
        metrics["idec_clusters"] = ae.n_clusters_
    with store.stage("train", key) as out:
        out.put_bytes("model.pt", ae.to_bytes())
        out.put_table("history.parquet", pa.Table.from_pylist(hist))
        return out.finish("model.pt", len(hist), metrics=metrics)


@task(name="train", **STAGE_TASK)
def train_task(windows: dict[str, Any], root: str, cfg: TrainConfig, seed: int = 0,
               clusters: ClusterConfig | None = None, credentials: str | None = None) -> dict[str, Any]:
    """Fit the autoencoder; resumes from the stage's last checkpoint; skipped when already done.
    With train.processes > 1 the fit runs under torchrun (DDP) in that many local processes.

    `clusters` (the cluster stage's config) gives k to train.objective=idec and is ignored otherwise."""
    store = open_store(root, credentials)
    key = stage_key(windows, cfg, seed, clusters)
    if (ref := store.stage_done("train", key)) is not None:
        return ref
    gc.collect()
    if torch.cuda.is_available():  # a failed attempt's tensors stay in CUDA's cache otherwise
        torch.cuda.empty_cache()
    if cfg.processes > 1:
        launch_ddp(windows, root, cfg, seed, clusters, credentials)
        if (ref := store.stage_done("train", key)) is None:
            raise StorageError(f"train: the torchrun launch ended without writing stages/train/{key}")
        return ref
    progress = create_progress_artifact(0.0, description="autoencoder training, % of the epoch budget")
    ref = fit_stage(store, key, windows, cfg, seed, clusters, logger(), progress)
    update_progress_artifact(progress, 100.0)  # early stopping ends before the budget
    return ref


def replica_checksums(model: torch.nn.Module) -> list[float]:
    """Every process's sum of its parameters, gathered (collective: all ranks must call it)."""
    mine = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum().reshape(1)
    dev = next(model.parameters()).device
    out = [torch.zeros(1, dtype=torch.float64, device=dev) for _ in range(world()[1])]
    dist.all_gather(out, mine.to(dev))
    return [float(t) for t in out]


def launch_ddp(windows: dict[str, Any], root: str, cfg: TrainConfig, seed: int,
               clusters: ClusterConfig | None, credentials: str | None) -> None:
    """Run `python -m tasks.train_ddp` under torch's own launcher on this machine, one process
    per GPU (NCCL) or CPU processes (gloo); its output goes to this task's log."""
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={cfg.processes}",
            "-m", "tasks.train_ddp", "--root", root, "--windows", json.dumps(windows), "--train", cfg.model_dump_json(),
            "--seed", str(seed)]
    if clusters is not None:
        args += ["--clusters", clusters.model_dump_json()]
    if credentials:
        args += ["--credentials", credentials]
    log = logger()
    log.info("train: launching %d DDP processes", cfg.processes)
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    errors: list[str] = []
    for line in proc.stdout:  # type: ignore[union-attr]
        log.info("%s", line.rstrip())
        if line.startswith("[rank") and "Error" in line.split(":", 1)[-1][:80]:  # a process's exception line
            errors.append(line.strip())
    if proc.wait() != 0:
        raise RuntimeError(f"train: torchrun exited with {proc.returncode}: "
                           + (errors[0] if errors else "see the task log for the processes' output"))
