"""One generic training loop for the networks in nn.py; returns (model, history).

Data comes as `Rows`: a subset of an (n, ...) numpy array that may be a memory map. On a GPU
the subset is copied to the device once and batches are index slices of it (windows are small,
and this keeps the GPU busy without DataLoader workers); on the CPU each batch is gathered
from the array when it is needed, so training never holds a second copy of the windows.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from tsatlas.errors import ConfigError, NonFiniteLossError

log = logging.getLogger(__name__)

LossFn = Callable[[nn.Module, torch.Tensor], torch.Tensor]


class Rows:
    """Rows `index` of the float32 array `array` (n, ...), e.g. a read-only memory map."""

    def __init__(self, array: np.ndarray, index: np.ndarray | None = None):
        self.array = array
        self.index = np.arange(len(array)) if index is None else np.asarray(index, np.int64)

    def __len__(self) -> int:
        return len(self.index)

    def subset(self, sl: slice) -> Rows:
        return Rows(self.array, self.index[sl])

    def take(self, positions: torch.Tensor) -> torch.Tensor:
        """The rows at `positions` (into this subset) as one new tensor; sorted reads for locality."""
        rows = np.sort(self.index[positions.cpu().numpy()])
        return torch.from_numpy(np.ascontiguousarray(self.array[rows], dtype=np.float32))

    def materialise(self) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(self.array[self.index], dtype=np.float32))


def _on_device(X: Rows | torch.Tensor, device: torch.device) -> Rows | torch.Tensor:
    """CUDA: the whole subset on the card. CPU: leave Rows where they are (gathered per batch)."""
    if isinstance(X, Rows):
        return to_device(X.materialise(), device) if device.type == "cuda" else X
    return to_device(X, device)


def _batch(X: Rows | torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    return X.take(positions) if isinstance(X, Rows) else X[positions]


def pick_device(name: str = "auto") -> torch.device:
    """auto: CUDA when available, else CPU."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device=cuda, but torch sees no CUDA device here: use train.device=auto or cpu")
    return torch.device("cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu")


def autocast(device: torch.device):
    """bf16 autocast on CUDA cards that support it; a no-op elsewhere."""
    use = device.type == "cuda" and torch.cuda.is_bf16_supported()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use)


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    if device.type == "cuda":
        return x.pin_memory().to(device, non_blocking=True)
    return x


def world() -> tuple[int, int]:
    """(rank, world size): (0, 1) unless torch.distributed is initialised (torchrun)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _sum_across(*values: float, device: torch.device) -> list[float]:
    """Sum plain numbers over all processes (a no-op in one process)."""
    if world()[1] == 1:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


@torch.no_grad()
def evaluate(model: nn.Module, loss_fn: LossFn, X: Rows | torch.Tensor, batch_size: int, device: torch.device) -> float:
    """Mean loss over X; under DDP each process takes every world-th row and the sums are combined."""
    model.eval()
    rank, size = world()
    X = X.subset(slice(rank, None, size)) if isinstance(X, Rows) else X[rank::size]
    total = torch.zeros((), dtype=torch.float64, device=device)  # summed on the device: one sync, not one per batch
    for i in range(0, len(X), batch_size):
        xb = _batch(X, torch.arange(i, min(i + batch_size, len(X))))
        with autocast(device):
            total += loss_fn(model, xb).detach().double() * len(xb)
    total, n = _sum_across(float(total), float(len(X)), device=device)
    return total / max(n, 1)


def fit(
    model: nn.Module,
    loss_fn: LossFn,
    X_train: Rows | torch.Tensor,
    X_val: Rows | torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float = 0.0,
    patience: int = 5,
    clip_norm: float = 1.0,
    min_batches: int = 1,
    seed: int = 0,
    device: torch.device | None = None,
    resume: dict[str, Any] | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[nn.Module, list[dict[str, float]]]:
    """AdamW with gradient clipping, plateau LR decay and early stopping on validation loss.

    Under torchrun (torch.distributed initialised) the model is wrapped in DistributedDataParallel:
    every process draws the same permutation and takes every world-th window of it, so `batch_size`
    is per process; losses are averaged over processes, so every process makes the same
    early-stopping decision; only rank 0 calls `on_epoch`.

    Args:
        loss_fn: (model, batch) -> scalar loss.
        X_train, X_val: Rows of a numpy array (or tensors); on CUDA moved to the card once.
        min_batches: the fewest optimisation steps (per process) that make an epoch.
        resume: a checkpoint dict that `on_epoch` received earlier; training continues after its epoch.
        on_epoch: called after every epoch with a checkpoint dict (tensors and plain values only,
            so it can be saved and loaded with torch.load(weights_only=True)).

    Returns:
        The model holding the best validation weights, and one history row per epoch.
    """
    device = device or pick_device()
    model.to(device)
    rank, size = world()
    net = model if size == 1 else DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    Xt, Xv = _on_device(X_train, device), _on_device(X_val, device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=max(1, patience // 2))
    gen = torch.Generator().manual_seed(seed)
    history: list[dict[str, float]] = []
    best_val, best_state, since_best, start = math.inf, None, 0, 0
    if resume is not None:
        model.load_state_dict(resume["model"])
        opt.load_state_dict(resume["optimizer"])
        sched.load_state_dict(resume["scheduler"])
        gen.set_state(resume["generator"])
        history = [dict(h) for h in resume["history"]]
        best_val, best_state, since_best = resume["best_val"], resume["best_model"], resume["since_best"]
        if "torch_rng" in resume:  # teacher forcing draws from torch's global generator
            torch.set_rng_state(resume["torch_rng"])
        start = int(resume["epoch"]) + 1
        log.debug("resuming at epoch %d of %d", start + 1, epochs)  # the train stage says so (over both phases)

    for epoch in range(start, epochs):
        if since_best >= patience:
            break
        t0 = time.perf_counter()
        net.train()
        # an epoch is at least min_batches batches: a small set is passed over several times,
        # so that patience (in epochs) counts real progress rather than one or two steps
        passes = max(1, -(-min_batches * batch_size * size // max(len(Xt), 1)))
        perm = torch.cat([torch.randperm(len(Xt), generator=gen) for _ in range(passes)])
        perm = perm.to(device) if isinstance(Xt, torch.Tensor) else perm
        perm = perm[: len(perm) // size * size][rank::size]  # same number of steps in every process
        total = 0.0
        for i in range(0, len(perm), batch_size):
            xb = _batch(Xt, perm[i:i + batch_size])
            with autocast(device):
                loss = loss_fn(net, xb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
            opt.step()
            total += loss.detach() * len(xb)  # stays on the device: no sync per step
        total, seen = _sum_across(float(total), float(len(perm)), device=device)
        train_loss = total / max(seen, 1)
        val_loss = evaluate(model, loss_fn, Xv, max(batch_size, 256), device) if len(Xv) else train_loss
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
            raise NonFiniteLossError(f"training diverged: loss is {train_loss} (validation {val_loss}) at epoch "
                                     f"{epoch + 1}; look for extreme input values, or lower train.lr")
        sched.step(val_loss)
        if val_loss < best_val - 1e-7:
            best_val, since_best = val_loss, 0
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        else:
            since_best += 1
        row = {"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss,
               "lr": opt.param_groups[0]["lr"], "seconds": time.perf_counter() - t0}
        history.append(row)
        log.debug("epoch %d/%d train %.5f val %.5f (%.2fs)", epoch + 1, epochs, train_loss, val_loss, row["seconds"])
        if on_epoch is not None and rank == 0:
            on_epoch({
                "epoch": epoch, "model": model.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), "generator": gen.get_state(), "history": history,
                "best_val": best_val, "best_model": best_state, "since_best": since_best,
                "torch_rng": torch.get_rng_state(),
            })
    if best_state is not None:
        model.load_state_dict(best_state)
    return model, history

