"""Torch networks only (no training loops): the recurrent sequence autoencoder."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class AEConfig:
    """The network's shape; no defaults here (they live in tsatlas.config.TrainConfig)."""

    n_channels: int            # C, input features per step
    cell: str                  # "gru" trains faster; "lstm" for longer memory
    hidden: int                # units per recurrent layer
    latent: int                # size of z; small enough that K-means in z is meaningful
    layers: int                # stacked recurrent layers in encoder and decoder
    bidirectional: bool        # encoder only; the decoder runs forward in time
    dropout: float             # between stacked layers (torch ignores it for one layer)
    teacher_forcing: float     # > 0: the decoder also sees the previous value (true one with this probability)
    n_clusters: int = 0        # > 0: learnable cluster centres in z for the joint (IDEC) objective
    patch: int = 1             # time steps folded into one recurrent step (1: none; the estimator resolves "auto")


def to_patches(x: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, T, C) -> (B, ceil(T / patch), patch * C): consecutive steps side by side, zeros in
    front when T is not a multiple, so the last recurrent step always sees the last values."""
    if patch == 1:
        return x
    B, T, C = x.shape
    pad = -T % patch
    if pad:
        x = torch.cat([x.new_zeros(B, pad, C), x], dim=1)
    return x.reshape(B, (T + pad) // patch, patch * C)


def from_patches(y: torch.Tensor, steps: int, n_channels: int) -> torch.Tensor:
    """The inverse of to_patches: (B, P, patch * C) -> (B, steps, C), the front padding dropped."""
    y = y.reshape(y.shape[0], -1, n_channels)
    return y[:, y.shape[1] - steps:]


def _rnn(cfg: AEConfig, input_size: int, bidirectional: bool) -> nn.RNNBase:
    cls = nn.LSTM if cfg.cell == "lstm" else nn.GRU
    return cls(input_size, cfg.hidden, num_layers=cfg.layers, batch_first=True,
               bidirectional=bidirectional, dropout=cfg.dropout if cfg.layers > 1 else 0.0)


class Encoder(nn.Module):
    """(B, T, C) -> z (B, latent): the last layer's final hidden state(s), projected. With patch > 1
    each recurrent step reads `patch` consecutive steps, so a long window costs T / patch steps."""

    def __init__(self, cfg: AEConfig):
        super().__init__()
        self.cfg = cfg
        self.rnn = _rnn(cfg, cfg.n_channels * cfg.patch, cfg.bidirectional)
        dirs = 2 if cfg.bidirectional else 1
        self.head = nn.Linear(cfg.hidden * dirs, cfg.latent)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h = self.rnn(to_patches(x, self.cfg.patch))
        h = h[0] if isinstance(h, tuple) else h           # LSTM: (h_n, c_n)
        dirs = 2 if self.cfg.bidirectional else 1
        last = h.view(self.cfg.layers, dirs, x.shape[0], self.cfg.hidden)[-1]  # (dirs, B, H)
        return self.head(last.transpose(0, 1).reshape(x.shape[0], -1))        # (B, dirs*H) -> (B, latent)


class Decoder(nn.Module):
    """z (B, latent) -> (B, T, C). z sets the initial state and is also the input at every
    step, so the decoder cannot forget it over long windows.

    With teacher_forcing > 0 the input also carries the previous value: in training the true
    one with that probability (else the decoder's own output), in inference always its own
    output (free running), so the validation loss measures what inference does."""

    def __init__(self, cfg: AEConfig):
        super().__init__()
        self.cfg = cfg
        self.feedback = cfg.teacher_forcing > 0
        self.init = nn.Linear(cfg.latent, cfg.layers * cfg.hidden)
        self.width = cfg.n_channels * cfg.patch  # values out per recurrent step
        self.rnn = _rnn(cfg, cfg.latent + (self.width if self.feedback else 0), False)
        self.out = nn.Linear(cfg.hidden, self.width)

    def forward(self, z: torch.Tensor, steps: int, target: torch.Tensor | None = None) -> torch.Tensor:
        B, P = z.shape[0], -(-steps // self.cfg.patch)  # P recurrent steps
        h0 = torch.tanh(self.init(z)).view(B, self.cfg.layers, self.cfg.hidden).transpose(0, 1).contiguous()  # (layers, B, H)
        state = (h0, torch.zeros_like(h0)) if self.cfg.cell == "lstm" else h0
        zs = z.unsqueeze(1).expand(B, P, z.shape[1])
        if not self.feedback:
            y, _ = self.rnn(zs, state)                                       # (B, P, H)
            return from_patches(self.out(y), steps, self.cfg.n_channels)     # (B, T, C)
        ratio = self.cfg.teacher_forcing if target is not None else 0.0
        target = to_patches(target, self.cfg.patch) if target is not None else None
        if ratio >= 1.0:  # full teacher forcing: one fused call over the shifted target
            prev = torch.cat([torch.zeros_like(target[:, :1]), target[:, :-1]], dim=1)
            y, _ = self.rnn(torch.cat([zs, prev.to(zs.dtype)], dim=2), state)
            return from_patches(self.out(y), steps, self.cfg.n_channels)
        prev = z.new_zeros(B, self.width)
        outs = []
        for t in range(P):  # step by step: the next input depends on this output
            y, state = self.rnn(torch.cat([z, prev.to(z.dtype)], dim=1).unsqueeze(1), state)
            o = self.out(y[:, 0])
            outs.append(o)
            if ratio > 0:
                use_true = torch.rand(B, 1, device=z.device) < ratio
                prev = torch.where(use_true, target[:, t].to(o.dtype), o)
            else:
                prev = o
        return from_patches(torch.stack(outs, dim=1), steps, self.cfg.n_channels)


class RecurrentAutoencoder(nn.Module):
    """x (B, T, C) -> (reconstruction (B, T, C), z (B, latent))."""

    def __init__(self, cfg: AEConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        if cfg.n_clusters > 0:  # set from K-means on the pretrained z before the joint phase
            self.centers = nn.Parameter(torch.zeros(cfg.n_clusters, cfg.latent))
            self.register_buffer("z_scale", torch.ones(cfg.latent))  # the pretrained z's std per dimension

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encoder(x)
        return self.decoder(z, x.shape[1], target=x if self.training else None), z

    def soft_assign(self, z: torch.Tensor) -> torch.Tensor:
        """DEC's Student-t kernel (one degree of freedom): q_ij, rows sum to 1. (B, latent) -> (B, k).
        Distances are in units of the pretrained z's spread: the kernel's width is fixed at 1, and
        raw z of a small spread would make every q uniform and the clustering loss vanish."""
        q = 1.0 / (1.0 + torch.cdist(z.float() / self.z_scale, self.centers.float() / self.z_scale) ** 2)
        return q / q.sum(dim=1, keepdim=True)


def sharpened_target(q: torch.Tensor) -> torch.Tensor:
    """DEC's auxiliary target p_ij = (q_ij^2 / f_j) / sum_j' (...), f_j = sum_i q_ij: confident
    assignments pull harder, and the division by f_j keeps big clusters from swallowing small ones."""
    p = q**2 / q.sum(dim=0, keepdim=True)
    return (p / p.sum(dim=1, keepdim=True)).detach()
