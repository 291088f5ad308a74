"""RNNAutoencoder: the recurrent sequence autoencoder as a scikit-learn style estimator.

    ae = RNNAutoencoder(cell="gru", latent=8).fit(X)    # X: (n, T, C) float32
    z = ae.transform(X)                                 # (n, latent)
    err = ae.reconstruction_error(X)                    # (n,)
    X_hat = ae.decode(z, steps=T)                       # (n, T, C)

Objectives beyond plain reconstruction, both remedies for plain autoencoder + K-means clustering
no better than K-means on the raw series:

- "contrastive" (the default, chosen by benchmarks/clustering.py): every batch is trained together
  with an augmented view of itself (shifted in time, rescaled, noisy), on reconstruction of both
  plus contrastive_weight x NT-Xent (SimCLR, Chen et al. 2020; for series e.g. TS-TCC, Eldele et
  al. 2021): a window's z and its view's z attract, other windows' repel, so z ignores the small
  shifts and scalings that DTW and KShape ignore through their distances.
- "idec": Guo et al.'s IDEC (2017) after the reconstruction pretraining: K-means on z initialises
  k learnable centres, then encoder, decoder and centres train on reconstruction +
  cluster_weight x KL(P || Q), where Q is DEC's Student-t soft assignment of z to the centres and
  P its sharpened target.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from torch import nn
from torch.nn import functional as F

from tsatlas.clustering import choose_k, kmeans
from tsatlas.config import ClusterConfig, TrainConfig
from tsatlas.nn import AEConfig, RecurrentAutoencoder, sharpened_target
from tsatlas.training import Rows, autocast, fit, pick_device, world

log = logging.getLogger(__name__)

# The defaults are the config's (TrainConfig, ClusterConfig): one place, nothing to drift.
_T = {name: f.default for name, f in TrainConfig.model_fields.items()}
_C = {name: f.default for name, f in ClusterConfig.model_fields.items()}

_ARCH = ("cell", "hidden", "latent", "layers", "bidirectional", "dropout", "teacher_forcing")
# latent="auto": the sizes tried, on how many windows, for how many epochs, and how close to the
# best validation loss the smallest kept size must come.
LATENT_LADDER = (2, 4, 8, 16, 32)
LATENT_SAMPLE, LATENT_EPOCHS, LATENT_TOLERANCE = 2000, 8, 0.10
AUTO_STEPS = 8  # patch="auto": the fewest steps per recurrent step that leave at most this many recurrent steps
# batch_size="auto": CPU_BATCH on the CPU (where larger batches did not train faster); on CUDA, where a
# small batch leaves the card waiting on kernel launches (H200: 0.62x a bare loop at 256, 0.98x at 4096),
# the largest power of two up to GPU_BATCH_MAX that still leaves GPU_MIN_STEPS steps per pass.
CPU_BATCH, GPU_BATCH_MAX, GPU_MIN_STEPS, LR_SCALE_MAX = 64, 4096, 32, 4.0


def resolve_patch(patch: int | str, seq_len: int, most: int = AUTO_STEPS) -> int:
    """Steps per recurrent step: the given number, or for "auto" the fewest that leave at most `most`
    recurrent steps, ceil(seq_len / most)."""
    return max(1, -(-seq_len // most)) if patch == "auto" else int(patch)


def resolve_batch(batch_size: int | str, lr: float, device: torch.device, n_train: int) -> tuple[int, float]:
    """(batch, lr) for training on `device` with n_train windows per process: a number is used as
    given; "auto" is CPU_BATCH on the CPU, and on CUDA the largest power of two from CPU_BATCH to
    GPU_BATCH_MAX with at least GPU_MIN_STEPS batches per pass, lr scaled by sqrt(batch / CPU_BATCH)
    (the square-root rule for Adam, Malladi et al. 2022), at most LR_SCALE_MAX x."""
    if batch_size != "auto":
        return int(batch_size), lr
    batch = CPU_BATCH
    if device.type == "cuda":
        while batch * 2 <= GPU_BATCH_MAX and n_train // (batch * 2) >= GPU_MIN_STEPS:
            batch *= 2
    return batch, lr * min(LR_SCALE_MAX, (batch / CPU_BATCH) ** 0.5)


def _mse(model: nn.Module, xb: torch.Tensor) -> torch.Tensor:
    recon, _ = model(xb)
    return torch.mean((recon.float() - xb) ** 2)


def augment(x: torch.Tensor, shift: float = 0.1, scale: float = 0.2, jitter: float = 0.1) -> torch.Tensor:
    """A random view of standardised windows (B, T, C): each shifted in time by up to shift x T
    steps (the edge value repeated), each channel scaled by N(1, scale), plus N(0, jitter) noise.
    Draws from torch's global generator, which checkpoints save and restore."""
    B, T, C = x.shape
    s = round(shift * T)
    if s:
        offset = torch.randint(-s, s + 1, (B, 1), device=x.device)
        idx = (torch.arange(T, device=x.device)[None, :] - offset).clamp(0, T - 1)
        x = torch.gather(x, 1, idx[:, :, None].expand(B, T, C))
    x = x * (1 + scale * torch.randn(B, 1, C, device=x.device))
    return x + jitter * torch.randn_like(x)


def _contrastive_loss(weight: float, temperature: float = 0.5) -> Callable[[nn.Module, torch.Tensor], torch.Tensor]:
    """Reconstruction MSE of the batch and of its augmented view + weight x NT-Xent between their
    z. One forward call over both halves (so it runs unchanged under DDP); the other windows of
    the batch are the negatives. In evaluation (validation, early stopping): the plain MSE."""
    def loss(model: nn.Module, xb: torch.Tensor) -> torch.Tensor:
        if not model.training:
            return _mse(model, xb)
        both = torch.cat([xb, augment(xb)])
        recon, z = model(both)
        a, b = F.normalize(z.float(), dim=1).chunk(2)
        logits = a @ b.T / temperature
        pairs = torch.arange(len(a), device=xb.device)
        nt_xent = 0.5 * (F.cross_entropy(logits, pairs) + F.cross_entropy(logits.T, pairs))
        return torch.mean((recon.float() - both) ** 2) + weight * nt_xent
    return loss


def _joint_loss(weight: float) -> Callable[[nn.Module, torch.Tensor], torch.Tensor]:
    """IDEC: reconstruction MSE + weight * KL(P || Q). P is computed from the batch's own Q (the
    paper refreshes it over the whole set every few iterations; per batch needs no extra pass and
    keeps the generic training loop, checkpoints and resume unchanged)."""
    def loss(model: nn.Module, xb: torch.Tensor) -> torch.Tensor:
        recon, z = model(xb)
        q = model.soft_assign(z)
        p = sharpened_target(q)
        kl = (p * (p.clamp_min(1e-12).log() - q.clamp_min(1e-12).log())).sum(dim=1).mean()
        return torch.mean((recon.float() - xb) ** 2) + weight * kl
    return loss


class RNNAutoencoder(TransformerMixin, BaseEstimator):
    """LSTM/GRU encoder-decoder whose bottleneck z embeds each window.

    Parameters are the `train.*` config keys (n_clusters, k_min and k_max come from `cluster.*`);
    fitted attributes end in `_`: `module_`, `history_`, `n_channels_`, `seq_len_`, `patch_`, `latent_`
    (`latent_losses_`: the ladder's validation losses when latent="auto"), `device_`, `n_clusters_`
    (0 unless objective="idec"), `cluster_centers_`, `batch_size_` and `lr_` (as trained: see resolve_batch).
    """

    def __init__(self, cell: str = _T["cell"], layers: int = _T["layers"], hidden: int = _T["hidden"],
                 latent: int = _T["latent"], bidirectional: bool = _T["bidirectional"], dropout: float = _T["dropout"],
                 teacher_forcing: float = _T["teacher_forcing"], patch: int | str = _T["patch"],
                 objective: str = _T["objective"], contrastive_weight: float = _T["contrastive_weight"],
                 cluster_weight: float = _T["cluster_weight"], cluster_epochs: int = _T["cluster_epochs"],
                 n_clusters: int | str = _C["k"], k_min: int = _C["k_min"], k_max: int = _C["k_max"],
                 epochs: int = _T["epochs"], batch_size: int | str = _T["batch_size"], min_batches: int = _T["min_batches"],
                 lr: float = _T["lr"], weight_decay: float = _T["weight_decay"], patience: int = _T["patience"],
                 val_fraction: float = _T["val_fraction"], clip_norm: float = _T["clip_norm"], device: str = _T["device"],
                 random_state: int = 0):
        self.cell = cell
        self.layers = layers
        self.hidden = hidden
        self.latent = latent
        self.bidirectional = bidirectional
        self.dropout = dropout
        self.teacher_forcing = teacher_forcing
        self.patch = patch
        self.objective = objective
        self.contrastive_weight = contrastive_weight
        self.cluster_weight = cluster_weight
        self.cluster_epochs = cluster_epochs
        self.n_clusters = n_clusters
        self.k_min = k_min
        self.k_max = k_max
        self.epochs = epochs
        self.batch_size = batch_size
        self.min_batches = min_batches
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.val_fraction = val_fraction
        self.clip_norm = clip_norm
        self.device = device
        self.random_state = random_state

    def _build(self, n_channels: int, n_clusters: int = 0) -> RecurrentAutoencoder:
        torch.manual_seed(self.random_state)
        return RecurrentAutoencoder(AEConfig(n_channels=n_channels, n_clusters=n_clusters,
                                             patch=self.patch_,
                                             **{k: getattr(self, k) for k in _ARCH} | {"latent": self.latent_}))

    def _choose_latent(self, X: np.ndarray) -> tuple[int, dict[int, float]]:
        """latent="auto": fit each size of LATENT_LADDER on a seeded sample of at most
        LATENT_SAMPLE windows (at most LATENT_EPOCHS epochs, the same objective) and keep the
        smallest whose best validation reconstruction loss is within LATENT_TOLERANCE of the best."""
        rng = np.random.default_rng(self.random_state)
        sample = X[np.sort(rng.choice(len(X), min(len(X), LATENT_SAMPLE), replace=False))]
        params = self.get_params() | {"epochs": min(self.epochs, LATENT_EPOCHS), "device": self.device}
        if params["objective"] == "idec":  # the size is about reconstruction; the joint phase comes after
            params["objective"] = "reconstruction"
        losses = {}
        for size in LATENT_LADDER:
            fit = type(self)(**params | {"latent": size}).fit(sample)
            losses[size] = float(min(h["val_loss"] for h in fit.history_))
        best = min(losses.values())
        chosen = min(size for size, v in losses.items() if v <= best * (1 + LATENT_TOLERANCE))
        log.info("latent=auto: validation loss by size %s: chose %d", {k: round(v, 5) for k, v in losses.items()}, chosen)
        return chosen, losses

    def split(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Seeded train/validation indices."""
        perm = np.random.default_rng(self.random_state).permutation(n)
        n_val = int(round(n * self.val_fraction)) if n >= 5 else 0
        return np.sort(perm[n_val:]), np.sort(perm[:n_val])

    def fit(self, X: np.ndarray, y: Any = None, *, resume: dict[str, Any] | None = None,
            on_epoch: Callable[[dict[str, Any]], None] | None = None) -> RNNAutoencoder:
        """Train on X (n, T, C) with a seeded validation split and early stopping.

        Args:
            resume: a checkpoint passed earlier to `on_epoch`; training continues from it.
            on_epoch: receives a checkpoint dict after every epoch.
        """
        X = np.asarray(X, dtype=np.float32)  # a float32 memory map stays one (no copy)
        if X.ndim != 3:
            raise ValueError(f"X must be (n_windows, window_len, n_channels), got shape {X.shape}")
        if self.objective not in ("reconstruction", "contrastive", "idec"):
            raise ValueError(f"objective must be 'reconstruction', 'contrastive' or 'idec', got {self.objective!r}")
        if self.objective == "idec" and world()[1] > 1:
            raise ValueError("objective='idec' does not run under torch.distributed yet (its centres sit "
                             "outside DDP's gradient sync); train it in one process")
        self.n_channels_, self.seq_len_ = X.shape[2], X.shape[1]
        self.patch_ = resolve_patch(self.patch, self.seq_len_)
        self.latent_, self.latent_losses_ = (self._choose_latent(X) if self.latent == "auto"
                                             else (int(self.latent), None))
        self.device_ = pick_device(self.device)
        if self.device_.type == "cuda" and world()[1] > 1:  # torchrun: one GPU per local process
            self.device_ = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        tr, va = self.split(len(X))
        Xt, Xv = Rows(X, tr), Rows(X, va)
        self.batch_size_, self.lr_ = resolve_batch(self.batch_size, self.lr, self.device_, len(tr) // world()[1])
        common = dict(batch_size=self.batch_size_, min_batches=self.min_batches, lr=self.lr_,
                      weight_decay=self.weight_decay, patience=self.patience, clip_norm=self.clip_norm,
                      seed=self.random_state, device=self.device_)

        def tagged(phase: int, **extra: Any) -> Callable[[dict[str, Any]], None] | None:
            return None if on_epoch is None else (lambda state: on_epoch({**state, "phase": phase, **extra}))

        phase = int(resume.get("phase", 1)) if resume is not None else 1
        if phase == 1:
            loss = _contrastive_loss(self.contrastive_weight) if self.objective == "contrastive" else _mse
            model, pretrain = fit(self._build(self.n_channels_), loss, Xt, Xv, epochs=self.epochs,
                                  resume=resume, on_epoch=tagged(1), **common)
            resume = None
        else:
            model, pretrain = None, [dict(h) for h in resume["pretrain_history"]]
        self.history_ = [{**h, "phase": 1} for h in pretrain]
        self.n_clusters_, self.cluster_centers_ = 0, None
        if self.objective == "idec":
            if model is not None:  # pretraining just ended: start the centres from K-means on z
                k, centers, scale = self._initial_centers(model, X, tr)
                state = model.state_dict()
                model = self._build(self.n_channels_, k)
                model.load_state_dict({**state, "centers": torch.from_numpy(centers), "z_scale": torch.from_numpy(scale)})
            else:
                model = self._build(self.n_channels_, int(resume["n_clusters"]))
            model, joint = fit(model, _joint_loss(self.cluster_weight), Xt, Xv, epochs=self.cluster_epochs,
                               resume=resume, on_epoch=tagged(2, n_clusters=model.cfg.n_clusters,
                                                              pretrain_history=pretrain), **common)
            n1 = len(pretrain)
            self.history_ += [{**h, "epoch": n1 + h["epoch"], "phase": 2} for h in joint]
            self.n_clusters_ = model.cfg.n_clusters
            self.cluster_centers_ = model.centers.detach().cpu().numpy()
        self.module_ = model.eval()
        return self

    def _initial_centers(self, model: RecurrentAutoencoder, X: np.ndarray, rows: np.ndarray,
                         ) -> tuple[int, np.ndarray, np.ndarray]:
        """k (given, or by silhouette), K-means centres in z units and z's std per dimension; K-means
        runs on standardised z, as the cluster stage does."""
        self.module_ = model.eval()  # transform() runs self.module_
        Z = np.concatenate([self.transform(X[rows[i:i + 65536]]) for i in range(0, len(rows), 65536)]).astype(np.float64)
        mean, scale = Z.mean(0), np.where(Z.std(0) > 0, Z.std(0), 1.0)
        Zs = (Z - mean) / scale
        if self.n_clusters == "auto":
            k, _ = choose_k(Zs, self.k_min, self.k_max, 5000, self.random_state)
        else:
            k = int(self.n_clusters)
        if k > len(Z):
            raise ValueError(f"n_clusters={k} exceeds the {len(Z)} training windows")
        km = kmeans(k, self.random_state, len(Z)).fit(Zs)
        return k, (km.cluster_centers_ * scale + mean).astype(np.float32), scale.astype(np.float32)

    # -- inference ---------------------------------------------------------------
    def _batches(self, X: np.ndarray, fn: Callable[[torch.Tensor], torch.Tensor], batch: int = 1024) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for i in range(0, len(X), batch):
                xb = torch.from_numpy(np.array(X[i:i + batch], dtype=np.float32)).to(self.device_)
                with autocast(self.device_):
                    out.append(fn(xb).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0,), np.float32)

    def transform(self, X: np.ndarray) -> np.ndarray:
        """(n, T, C) -> z (n, latent)."""
        return self._batches(X, self.module_.encoder)

    def embed(self, X: np.ndarray, batch: int = 1024) -> tuple[np.ndarray, np.ndarray]:
        """One pass: z (n, latent) and per-window reconstruction MSE (n,), written into arrays
        allocated once (no list of batches to concatenate)."""
        zs = np.empty((len(X), self.module_.cfg.latent), np.float32)
        errs = np.empty(len(X), np.float32)
        with torch.inference_mode():
            for i in range(0, len(X), batch):
                xb = torch.from_numpy(np.array(X[i:i + batch], dtype=np.float32)).to(self.device_)
                with autocast(self.device_):
                    recon, z = self.module_(xb)
                zs[i:i + len(xb)] = z.float().cpu().numpy()
                errs[i:i + len(xb)] = ((recon.float() - xb) ** 2).mean(dim=(1, 2)).cpu().numpy()
        return zs, errs

    def reconstruction_error(self, X: np.ndarray) -> np.ndarray:
        return self.embed(X)[1]

    def decode(self, z: np.ndarray, steps: int | None = None) -> np.ndarray:
        """z (n, latent) -> (n, steps, C) standardised windows."""
        steps = steps or self.seq_len_
        return self._batches(np.asarray(z, np.float32), lambda zb: self.module_.decoder(zb, steps))

    # -- persistence: a state_dict plus plain values, read with weights_only=True --
    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        torch.save({"params": self.get_params(), "n_channels": self.n_channels_, "seq_len": self.seq_len_,
                    "n_clusters": self.n_clusters_, "latent": self.latent_,
                    "state_dict": {k: v.cpu() for k, v in self.module_.state_dict().items()}}, buf)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, device: str = "auto") -> RNNAutoencoder:
        """Rebuild from `to_bytes` output; refuses anything but tensors and plain values."""
        ckpt = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        ae = cls(**{"patch": 1, **ckpt["params"], "device": device})  # saved before `patch` existed: one step per recurrent step
        ae.n_channels_, ae.seq_len_ = int(ckpt["n_channels"]), int(ckpt["seq_len"])
        ae.patch_ = resolve_patch(ae.patch, ae.seq_len_)
        ae.latent_, ae.latent_losses_ = int(ckpt.get("latent", ae.latent)), None
        ae.device_ = pick_device(device)
        ae.n_clusters_ = int(ckpt.get("n_clusters", 0))
        ae.module_ = ae._build(ae.n_channels_, ae.n_clusters_)
        ae.module_.load_state_dict(ckpt["state_dict"])
        ae.cluster_centers_ = ae.module_.centers.detach().numpy() if ae.n_clusters_ else None
        ae.module_.to(ae.device_).eval()
        ae.history_ = []
        return ae
