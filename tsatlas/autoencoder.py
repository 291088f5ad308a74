"""RNNAutoencoder: the recurrent sequence autoencoder as a scikit-learn style estimator.

    ae = RNNAutoencoder(cell="gru", latent=16).fit(X)   # X: (n, T, C) float32
    z = ae.transform(X)                                 # (n, latent)
    err = ae.reconstruction_error(X)                    # (n,)
    X_hat = ae.decode(z, steps=T)                       # (n, T, C)
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from torch import nn

from tsatlas.nn import AEConfig, RecurrentAutoencoder
from tsatlas.training import autocast, fit, pick_device

log = logging.getLogger(__name__)

_ARCH = ("cell", "hidden", "latent", "layers", "bidirectional", "dropout")


def _mse(model: nn.Module, xb: torch.Tensor) -> torch.Tensor:
    recon, _ = model(xb)
    return torch.mean((recon.float() - xb) ** 2)


class RNNAutoencoder(TransformerMixin, BaseEstimator):
    """LSTM/GRU encoder-decoder whose bottleneck z embeds each window.

    Parameters are the `train.*` config keys; fitted attributes end in `_`:
    `module_`, `history_`, `n_channels_`, `seq_len_`, `device_`.
    """

    def __init__(self, cell: str = "gru", layers: int = 1, hidden: int = 64, latent: int = 16,
                 bidirectional: bool = False, dropout: float = 0.0, epochs: int = 100, batch_size: int = 64,
                 lr: float = 3e-3, weight_decay: float = 1e-4, patience: int = 8, val_fraction: float = 0.2,
                 clip_norm: float = 1.0, device: str = "auto", random_state: int = 0):
        self.cell = cell
        self.layers = layers
        self.hidden = hidden
        self.latent = latent
        self.bidirectional = bidirectional
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.val_fraction = val_fraction
        self.clip_norm = clip_norm
        self.device = device
        self.random_state = random_state

    def _build(self, n_channels: int) -> RecurrentAutoencoder:
        torch.manual_seed(self.random_state)
        return RecurrentAutoencoder(AEConfig(n_channels=n_channels, **{k: getattr(self, k) for k in _ARCH}))

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
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 3:
            raise ValueError(f"X must be (n_windows, window_len, n_channels), got shape {X.shape}")
        self.n_channels_, self.seq_len_ = X.shape[2], X.shape[1]
        self.device_ = pick_device(self.device)
        tr, va = self.split(len(X))
        model = self._build(self.n_channels_)
        Xt = torch.from_numpy(X[tr])
        Xv = torch.from_numpy(X[va])
        self.module_, self.history_ = fit(
            model, _mse, Xt, Xv, epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
            weight_decay=self.weight_decay, patience=self.patience, clip_norm=self.clip_norm,
            seed=self.random_state, device=self.device_, resume=resume, on_epoch=on_epoch)
        self.module_.eval()
        return self

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
        """One pass: z (n, latent) and per-window reconstruction MSE (n,)."""
        zs, errs = [], []
        with torch.inference_mode():
            for i in range(0, len(X), batch):
                xb = torch.from_numpy(np.array(X[i:i + batch], dtype=np.float32)).to(self.device_)
                with autocast(self.device_):
                    recon, z = self.module_(xb)
                zs.append(z.float().cpu().numpy())
                errs.append(((recon.float() - xb) ** 2).mean(dim=(1, 2)).cpu().numpy())
        return np.concatenate(zs), np.concatenate(errs)

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
                    "state_dict": {k: v.cpu() for k, v in self.module_.state_dict().items()}}, buf)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, device: str = "auto") -> RNNAutoencoder:
        """Rebuild from `to_bytes` output; refuses anything but tensors and plain values."""
        ckpt = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        ae = cls(**{**ckpt["params"], "device": device})
        ae.n_channels_, ae.seq_len_ = int(ckpt["n_channels"]), int(ckpt["seq_len"])
        ae.device_ = pick_device(device)
        ae.module_ = ae._build(ae.n_channels_)
        ae.module_.load_state_dict(ckpt["state_dict"])
        ae.module_.to(ae.device_).eval()
        ae.history_ = []
        return ae
