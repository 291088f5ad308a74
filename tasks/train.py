"""Train: fit the recurrent autoencoder on the windows, checkpointing every epoch to the
store so that a retried (or re-run) task resumes where it stopped."""

from __future__ import annotations

import gc
import io
import pickle
import sys
import time
from typing import Any

import pyarrow as pa
import torch
from prefect import task
from prefect.artifacts import create_progress_artifact, update_progress_artifact

from tasks.common import STAGE_TASK, logger, open_store
from tasks.windows import load_windows
from tsatlas.autoencoder import RNNAutoencoder
from tsatlas.config import ClusterConfig, TrainConfig
from tsatlas.errors import StorageError
from tsatlas.storage import Store, code_version, digest


def make_estimator(cfg: TrainConfig, seed: int, clusters: ClusterConfig | None = None) -> RNNAutoencoder:
    c = clusters or ClusterConfig()
    return RNNAutoencoder(**cfg.model_dump(), n_clusters=c.k, k_min=c.k_min, k_max=c.k_max, random_state=seed)


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


@task(name="train", **STAGE_TASK)
def train_task(windows: dict[str, Any], root: str, cfg: TrainConfig, seed: int = 0,
               clusters: ClusterConfig | None = None, credentials: str | None = None) -> dict[str, Any]:
    """Fit the autoencoder; resumes from the stage's last checkpoint; skipped when already done.

    `clusters` (the cluster stage's config) gives k to train.objective=idec and is ignored otherwise."""
    store = open_store(root, credentials)
    clusters = (clusters or ClusterConfig()) if cfg.objective == "idec" else None
    key = digest("train", windows["sha256"], cfg.model_dump(), seed, code_version(),
                 *([clusters.model_dump(include={"k", "k_min", "k_max"})] if clusters else []))
    if (ref := store.stage_done("train", key)) is not None:
        return ref
    gc.collect()
    if torch.cuda.is_available():  # a failed attempt's tensors stay in CUDA's cache otherwise
        torch.cuda.empty_cache()
    log = logger()
    ckpt_key = f"stages/train/{key}/checkpoint.pt"
    resume = load_checkpoint(store, ckpt_key)
    if resume is not None:
        log.info("train: resuming from checkpoint after epoch %d", int(resume["epoch"]) + 1)
    w, _, _ = load_windows(store, windows)

    progress = create_progress_artifact(0.0, description="autoencoder training, % of the epoch budget")
    tty = sys.stderr.isatty()

    budget = cfg.epochs + (cfg.cluster_epochs if clusters else 0)

    def on_epoch(state: dict[str, Any]) -> None:
        h = state["history"][-1]
        joint = state["phase"] == 2
        epoch = h["epoch"] + (len(state["pretrain_history"]) if joint else 0)
        log.info("train: %sepoch %d/%d  train %.5f  val %.5f  (%.2fs)", "joint " if joint else "", h["epoch"],
                 cfg.cluster_epochs if joint else cfg.epochs, h["train_loss"], h["val_loss"], h["seconds"])
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
    update_progress_artifact(progress, 100.0)  # early stopping ends before the budget
    if tty:
        sys.stderr.write("\n")
    hist = ae.history_
    best = min((h for h in hist if h["phase"] == hist[-1]["phase"]), key=lambda h: h["val_loss"])  # idec: joint phase
    metrics = {"epochs": len(hist), "train_loss": hist[-1]["train_loss"], "val_loss": hist[-1]["val_loss"],
               "best_epoch": best["epoch"], "best_val_loss": best["val_loss"], "device": str(ae.device_),
               "resumed_from_epoch": _resumed_at(resume), "seconds": round(seconds, 2)}
    if ae.n_clusters_:
        metrics["idec_clusters"] = ae.n_clusters_
    with store.stage("train", key) as out:
        out.put_bytes("model.pt", ae.to_bytes())
        out.put_table("history.parquet", pa.Table.from_pylist(hist))
        return out.finish("model.pt", len(hist), metrics=metrics)
