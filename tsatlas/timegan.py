"""TimeGAN networks (Yoon, Jarrett, van der Schaar, NeurIPS 2019), conditional on a cluster id.

Five recurrent networks over a latent sequence space H (B, T, hidden):
embedder X -> H, recovery H -> X, generator (noise, cluster) -> E, supervisor H -> next H,
discriminator (H, cluster) -> real/fake logit per step. Networks only; the three-phase
training lives in tsatlas.gan.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class TimeGANConfig:
    n_channels: int          # C of the data
    n_classes: int = 1       # clusters the generator and discriminator are conditioned on
    hidden: int = 24         # H width; the paper uses 24 for Sines and Stocks
    layers: int = 3          # recurrent layers per network, as in the paper
    noise: int = 0           # noise width per step; 0 means n_channels, as in the paper
    cell: str = "gru"
    bounded: bool = True     # as in the paper: data min-max scaled to [0, 1] per channel, sigmoid recovery


class _Net(nn.Module):
    """A recurrent stack plus a per-step linear head: (B, T, in) -> (B, T, out)."""

    def __init__(self, inp: int, out: int, cfg: TimeGANConfig, layers: int, act: nn.Module | None):
        super().__init__()
        cls = nn.LSTM if cfg.cell == "lstm" else nn.GRU
        self.rnn = cls(inp, cfg.hidden, num_layers=max(layers, 1), batch_first=True)
        self.head = nn.Linear(cfg.hidden, out)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.head(self.rnn(x)[0])
        return self.act(y) if self.act is not None else y


def one_hot(c: torch.Tensor, n: int, steps: int) -> torch.Tensor:
    """(B,) class ids -> (B, T, n) one-hot repeated over time."""
    return nn.functional.one_hot(c.long(), n).float().unsqueeze(1).expand(-1, steps, -1)


class TimeGAN(nn.Module):
    def __init__(self, cfg: TimeGANConfig):
        super().__init__()
        self.cfg = cfg
        h, k = cfg.hidden, cfg.n_classes
        self.noise_dim = cfg.noise or cfg.n_channels
        self.embedder = _Net(cfg.n_channels, h, cfg, cfg.layers, nn.Sigmoid())
        self.recovery = _Net(h, cfg.n_channels, cfg, cfg.layers, nn.Sigmoid() if cfg.bounded else None)
        # the data's range per channel: the networks see (x - lo) / span, in [0, 1] when bounded
        self.register_buffer("lo", torch.zeros(cfg.n_channels))
        self.register_buffer("span", torch.ones(cfg.n_channels))
        self.generator = _Net(self.noise_dim + k, h, cfg, cfg.layers, nn.Sigmoid())
        self.supervisor = _Net(h, h, cfg, cfg.layers - 1, nn.Sigmoid())
        self.discriminator = _Net(h + k, 1, cfg, cfg.layers, None)

    def generate_latent(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """noise (B, T, noise) + cluster (B,) -> E_hat (B, T, hidden)."""
        return self.generator(torch.cat([z, one_hot(c, self.cfg.n_classes, z.shape[1])], dim=-1))

    def discriminate(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """(B, T, hidden) + cluster -> logits (B, T, 1)."""
        return self.discriminator(torch.cat([h, one_hot(c, self.cfg.n_classes, h.shape[1])], dim=-1))

    def fit_range(self, X: torch.Tensor) -> None:
        """Set lo and span from data (B, T, C) when bounded (per channel min and max - min)."""
        if self.cfg.bounded:
            flat = X.reshape(-1, X.shape[-1])
            self.lo.copy_(flat.min(0).values)
            self.span.copy_((flat.max(0).values - self.lo).clamp_min(1e-7))

    def scale(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.lo) / self.span

    @torch.no_grad()
    def sample(self, c: torch.Tensor, steps: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """cluster ids (B,) -> synthetic windows (B, steps, C) in the training data's units."""
        z = torch.rand(len(c), steps, self.noise_dim, generator=generator).to(c.device)
        return self.recovery(self.supervisor(self.generate_latent(z, c))) * self.span + self.lo
