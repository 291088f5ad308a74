"""Torch networks only (no training loops): the recurrent sequence autoencoder."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class AEConfig:
    n_channels: int            # C, input features per step
    cell: str = "gru"          # "gru" trains faster; "lstm" for longer memory
    hidden: int = 64           # units per recurrent layer
    latent: int = 16           # size of z; small enough that K-means in z is meaningful
    layers: int = 1            # stacked recurrent layers in encoder and decoder
    bidirectional: bool = False  # encoder only; the decoder runs forward in time
    dropout: float = 0.0       # between stacked layers (torch ignores it for one layer)


def _rnn(cfg: AEConfig, input_size: int, bidirectional: bool) -> nn.RNNBase:
    cls = nn.LSTM if cfg.cell == "lstm" else nn.GRU
    return cls(input_size, cfg.hidden, num_layers=cfg.layers, batch_first=True,
               bidirectional=bidirectional, dropout=cfg.dropout if cfg.layers > 1 else 0.0)


class Encoder(nn.Module):
    """(B, T, C) -> z (B, latent): the last layer's final hidden state(s), projected."""

    def __init__(self, cfg: AEConfig):
        super().__init__()
        self.cfg = cfg
        self.rnn = _rnn(cfg, cfg.n_channels, cfg.bidirectional)
        dirs = 2 if cfg.bidirectional else 1
        self.head = nn.Linear(cfg.hidden * dirs, cfg.latent)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h = self.rnn(x)
        h = h[0] if isinstance(h, tuple) else h           # LSTM: (h_n, c_n)
        dirs = 2 if self.cfg.bidirectional else 1
        last = h.view(self.cfg.layers, dirs, x.shape[0], self.cfg.hidden)[-1]  # (dirs, B, H)
        return self.head(last.transpose(0, 1).reshape(x.shape[0], -1))        # (B, dirs*H) -> (B, latent)


class Decoder(nn.Module):
    """z (B, latent) -> (B, T, C). z sets the initial state and is also the input at every
    step, so the decoder cannot forget it over long windows."""

    def __init__(self, cfg: AEConfig):
        super().__init__()
        self.cfg = cfg
        self.init = nn.Linear(cfg.latent, cfg.layers * cfg.hidden)
        self.rnn = _rnn(cfg, cfg.latent, False)
        self.out = nn.Linear(cfg.hidden, cfg.n_channels)

    def forward(self, z: torch.Tensor, steps: int) -> torch.Tensor:
        B = z.shape[0]
        h0 = torch.tanh(self.init(z)).view(B, self.cfg.layers, self.cfg.hidden).transpose(0, 1).contiguous()  # (layers, B, H)
        state = (h0, torch.zeros_like(h0)) if self.cfg.cell == "lstm" else h0
        y, _ = self.rnn(z.unsqueeze(1).expand(B, steps, z.shape[1]), state)  # (B, T, H)
        return self.out(y)                                                   # (B, T, C)


class RecurrentAutoencoder(nn.Module):
    """x (B, T, C) -> (reconstruction (B, T, C), z (B, latent))."""

    def __init__(self, cfg: AEConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encoder(x)
        return self.decoder(z, x.shape[1]), z
