"""Training and sampling of the conditional TimeGAN in its three phases:
1. autoencoding (embedder + recovery), 2. supervised next-step in latent space
(supervisor), 3. joint adversarial training with the supervised and moment losses.

Three additions to the paper's algorithm, all on by default and all measured on Stocks
(benchmarks/RESULTS.md, "TimeGAN on Stocks at a CPU budget"): the generator's loss also has a
kernel two-sample term (MMD) between generated and real windows, between their step-to-step
increments, and between each channel's increments on their own, which gives it a direct,
non-adversarial signal for the roughness a GRU classifier spots first (the per-channel term makes a
channel with a narrow range and sharp spikes, Stocks' volume, count); an adversarial term from a
critic that reads the recovered windows with every channel standardised, as the post-hoc classifier
does (the paper's discriminator reads latent sequences, which carry a narrow channel's detail
faintly); and samples come from an exponential moving average of the generator's and supervisor's
weights, which damps the adversarial phase's swings. `mmd=0, critic=0, ema=0` is the paper's.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from tsatlas.config import GenerateConfig
from tsatlas.timegan import TimeGAN, TimeGANConfig
from tsatlas.training import pick_device

log = logging.getLogger(__name__)


@dataclass
class GANSchedule:
    iterations: int = GenerateConfig.model_fields["gan_iterations"].default  # per phase (the paper: 10,000)
    batch_size: int = GenerateConfig.model_fields["gan_batch_size"].default
    lr: float = 1e-3
    gamma: float = 1.0        # weight of the unsupervised loss on E_hat
    d_threshold: float = 0.15  # the discriminator is only updated while its loss (one iteration before) is above this
    mmd: float = GenerateConfig.model_fields["gan_mmd"].default  # weight of the two-sample loss (generator)
    mmd_channels: bool = True  # also each channel's increments on their own (a narrow, spiky channel's roughness)
    critic: float = GenerateConfig.model_fields["gan_critic"].default  # weight of the window critic's term (generator)
    ema: float = 0.99          # decay of the moving average of generator and supervisor weights sampled from (0: off)
    history: list[dict[str, float]] = field(default_factory=list)


def mmd(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Kernel two-sample distance between row sets x and y (b, d): the square root of the (biased)
    MMD^2 under a sum of Gaussian kernels whose widths are 1/4, 1, 4 and 16 times the median squared
    distance between rows of y (no width to tune per data set). Leading dimensions (..., b, d) give
    one distance per index, each with its own widths."""
    b = x.shape[-2]
    xy = torch.cat([x, y], dim=-2)
    d2 = torch.cdist(xy, xy).pow(2)
    med = d2[..., b:, b:].detach().flatten(-2).median(-1).values.clamp_min(1e-8)[..., None, None]
    k = sum(torch.exp(-d2 / (med * w)) for w in (0.25, 1.0, 4.0, 16.0))
    m2 = k[..., :b, :b].mean((-2, -1)) + k[..., b:, b:].mean((-2, -1)) - 2 * k[..., :b, b:].mean((-2, -1))
    return torch.sqrt(m2.clamp_min(0) + 1e-8)


class WindowCritic(nn.Module):
    """Real or generated, from a window (B, T, C) in the networks' units: each channel standardised
    with the real data's mean and s.d., then two GRU layers of max(8, C) units (the strict post-hoc
    classifier's shape), a logit from the last step. A channel without variance in the real data
    reads as 0: standardised by a tiny s.d., the recovery's small offset from the constant would be
    blown up into a difference the critic always sees and the generator cannot remove."""

    def __init__(self, mean: torch.Tensor, sd: torch.Tensor):
        super().__init__()
        C = len(mean)
        self.register_buffer("mean", mean)
        self.register_buffer("sd", torch.where(sd > 1e-6, sd, torch.full_like(sd, float("inf"))))
        self.rnn = nn.GRU(C, max(8, C), num_layers=2, batch_first=True)
        self.head = nn.Linear(max(8, C), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn((x - self.mean) / self.sd)[0][:, -1])[:, 0]


CRITIC_LR = 1e-2  # as the post-hoc classifier's: at 1e-3 a critic chasing the generator never left chance


def _batch(n: int, size: int, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.randint(0, n, (min(size, n),), generator=gen, device=device)


class _Lagged:
    """A device scalar read on the host one iteration later. A plain read (`.item()`) waits until
    the device has run everything queued; on CUDA the value is copied to pinned memory behind an
    event instead, and the next read waits for that event only, long done by then."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.host = torch.zeros((), pin_memory=self.cuda)
        self.event = torch.cuda.Event() if self.cuda else None
        self.pending = False

    def swap(self, value: torch.Tensor) -> float | None:
        """The value given at the previous call (None at the first); starts the copy of this one."""
        last = None
        if self.pending:
            if self.event is not None:
                self.event.synchronize()
            last = float(self.host)
        self.host.copy_(value.detach(), non_blocking=self.cuda)
        if self.event is not None:
            self.event.record()
        self.pending = True
        return last


def train_timegan(X: np.ndarray, clusters: np.ndarray | None = None, *,
                  hidden: int = GenerateConfig.model_fields["gan_hidden"].default,
                  layers: int = GenerateConfig.model_fields["gan_layers"].default,
                  cell: str = GenerateConfig.model_fields["gan_cell"].default,
                  schedule: GANSchedule | None = None, seed: int = 0, device: str = "auto",
                  bounded: bool = True, check: Callable[[int, TimeGAN], None] | None = None,
                  check_every: int = 250) -> tuple[TimeGAN, list]:
    """Fit a (cluster-conditional) TimeGAN to windows X (n, T, C). `check(iteration, model)` is
    called every `check_every` joint iterations with the model samples would come from (benchmarks).

    Returns:
        (model, history): one history row per 100 joint iterations and per phase end.
    """
    s = schedule or GANSchedule()
    dev = pick_device(device)
    torch.manual_seed(seed)
    # batches and noise are drawn on the device (on a CPU, the same stream as a CPU generator's)
    gen = torch.Generator(device=dev).manual_seed(seed)
    n, T, C = X.shape
    c_all = np.zeros(n, np.int64) if clusters is None else np.asarray(clusters, np.int64)
    k = int(c_all.max()) + 1
    model = TimeGAN(TimeGANConfig(n_channels=C, n_classes=k, hidden=hidden, layers=layers, cell=cell, bounded=bounded)).to(dev)
    Xd = torch.from_numpy(np.array(X, np.float32)).to(dev)
    model.fit_range(Xd)
    Xd = model.scale(Xd)  # what the networks see: [0, 1] per channel when bounded
    Cd = torch.from_numpy(c_all).to(dev)
    m = model
    opt_e = torch.optim.Adam([*m.embedder.parameters(), *m.recovery.parameters()], lr=s.lr)
    opt_s = torch.optim.Adam([*m.supervisor.parameters(), *m.generator.parameters()], lr=s.lr)
    opt_g = torch.optim.Adam([*m.generator.parameters(), *m.supervisor.parameters()], lr=s.lr)
    opt_d = torch.optim.Adam(m.discriminator.parameters(), lr=s.lr)
    hist: list[dict[str, float]] = []
    critic = WindowCritic(Xd.mean((0, 1)), Xd.std((0, 1))).to(dev) if s.critic else None
    opt_c = torch.optim.Adam(critic.parameters(), lr=CRITIC_LR) if critic is not None else None
    sampling = [*m.generator.parameters(), *m.supervisor.parameters()]
    ema = [p.detach().clone() for p in sampling] if s.ema else None

    def averaged() -> TimeGAN:
        """The model with the averaged generator and supervisor (the model itself when ema is off)."""
        if ema is None:
            return m
        out = copy.deepcopy(m)
        for p, a in zip([*out.generator.parameters(), *out.supervisor.parameters()], ema):
            p.data.copy_(a)
        return out

    bce = nn.BCEWithLogitsLoss()

    def noise(b: int) -> torch.Tensor:
        return torch.rand(b, T, m.noise_dim, generator=gen, device=dev)

    d_seen = _Lagged(dev)
    t0 = time.perf_counter()
    for it in range(s.iterations):  # phase 1: autoencoding
        idx = _batch(n, s.batch_size, gen, dev)
        x = Xd[idx]
        loss = 10 * torch.sqrt(F.mse_loss(m.recovery(m.embedder(x)), x))
        opt_e.zero_grad(set_to_none=True)
        loss.backward()
        opt_e.step()
    hist.append({"phase": 1, "iteration": s.iterations, "recon": loss.item() / 10, "seconds": time.perf_counter() - t0})

    for it in range(s.iterations):  # phase 2: supervised next-step in latent space
        idx = _batch(n, s.batch_size, gen, dev)
        h = m.embedder(Xd[idx]).detach()
        loss = F.mse_loss(m.supervisor(h)[:, :-1], h[:, 1:])
        opt_s.zero_grad(set_to_none=True)
        loss.backward()
        opt_s.step()
    hist.append({"phase": 2, "iteration": s.iterations, "supervised": loss.item(), "seconds": time.perf_counter() - t0})

    # Phase 3 runs each network once per step on the inputs stacked along the batch where the paper
    # runs it several times (the supervisor on E_hat and H, the discriminator on two or three
    # sequence sets): the same losses, fewer and larger recurrent calls (on a CPU a small GRU's cost
    # is mostly per call and per step, not per row).
    for it in range(s.iterations):  # phase 3: joint
        for _ in range(2):  # generator (and supervisor) twice per discriminator step, as in the paper
            idx = _batch(n, s.batch_size, gen, dev)
            x, c = Xd[idx], Cd[idx]
            b = len(idx)
            h = m.embedder(x)  # one forward for both steps: the generator step does not change the embedder
            e_hat = m.generate_latent(noise(b), c)
            hd = h.detach()  # the generator's loss updates generator and supervisor only (as the paper's var_list)
            h_hat, s_real = m.supervisor(torch.cat([e_hat, hd])).split(b)
            x_hat = m.recovery(h_hat)
            y_fake, y_fake_e = m.discriminate(torch.cat([h_hat, e_hat]), torch.cat([c, c])).split(b)
            g_adv = bce(y_fake, torch.ones_like(y_fake)) + s.gamma * bce(y_fake_e, torch.ones_like(y_fake_e))
            g_sup = F.mse_loss(s_real[:, :-1], hd[:, 1:])
            g_mom = (torch.abs(x_hat.std(0) - x.std(0)).mean() + torch.abs(x_hat.mean(0) - x.mean(0)).mean())
            g_loss = g_adv + 100 * torch.sqrt(g_sup) + 100 * g_mom
            if s.mmd:  # windows and their increments: shape and roughness
                dx_hat, dx = x_hat.diff(dim=1), x.diff(dim=1)
                g_mmd = mmd(x_hat.flatten(1), x.flatten(1)) + mmd(dx_hat.flatten(1), dx.flatten(1))
                if s.mmd_channels:  # each channel's increments on their own: a narrow channel's roughness counts too
                    g_mmd = g_mmd + mmd(dx_hat.permute(2, 0, 1), dx.permute(2, 0, 1)).mean()
                g_loss = g_loss + s.mmd * g_mmd
            if critic is not None:
                g_loss = g_loss + s.critic * bce(critic(x_hat), torch.ones(b, device=dev))
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            if ema is not None:
                with torch.no_grad():
                    torch._foreach_lerp_(ema, sampling, 1 - s.ema)
            # embedder: reconstruction plus a little of the supervised loss
            e_loss = 10 * torch.sqrt(F.mse_loss(m.recovery(h), x)) + 0.1 * F.mse_loss(m.supervisor(h)[:, :-1], h[:, 1:])
            opt_e.zero_grad(set_to_none=True)
            e_loss.backward()
            opt_e.step()
        if critic is not None:  # one critic step: the last real batch against the last generated windows
            y_r, y_f = critic(x), critic(x_hat.detach())
            c_loss = bce(y_r, torch.ones_like(y_r)) + bce(y_f, torch.zeros_like(y_f))
            opt_c.zero_grad(set_to_none=True)
            c_loss.backward()
            opt_c.step()
        idx = _batch(n, s.batch_size, gen, dev)
        x, c = Xd[idx], Cd[idx]
        with torch.no_grad():
            h = m.embedder(x)
            e_hat = m.generate_latent(noise(len(idx)), c)
            h_hat = m.supervisor(e_hat)
        y_real, y_fake, y_fake_e = m.discriminate(torch.cat([h, h_hat, e_hat]), torch.cat([c, c, c])).split(len(idx))
        d_loss = (bce(y_real, torch.ones_like(y_real)) + bce(y_fake, torch.zeros_like(y_fake))
                  + s.gamma * bce(y_fake_e, torch.zeros_like(y_fake_e)))
        last = d_seen.swap(d_loss)  # the loss of the iteration before: no wait on the device here
        if last is None or last > s.d_threshold:
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
        if (it + 1) % 100 == 0 or it + 1 == s.iterations:
            row = {"phase": 3, "iteration": it + 1, "g_loss": g_loss.item(), "d_loss": d_loss.item(),
                   "moments": g_mom.item(), "mmd": g_mmd.item() if s.mmd else None,
                   "critic": c_loss.item() if critic is not None else None, "seconds": time.perf_counter() - t0}
            hist.append(row)
            log.debug("timegan joint %d/%d g %.3f d %.3f", it + 1, s.iterations, row["g_loss"], row["d_loss"])
        if check is not None and (it + 1) % check_every == 0:
            check(it + 1, averaged().eval())
    m = averaged()
    m.eval()
    return m, hist


def sample_timegan(model: TimeGAN, clusters: np.ndarray, steps: int, seed: int = 0, batch: int = 4096) -> np.ndarray:
    """Synthetic windows (len(clusters), steps, C) for the given cluster ids."""
    dev = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(0, len(clusters), batch):
        c = torch.from_numpy(np.asarray(clusters[i:i + batch], np.int64)).to(dev)
        out.append(model.sample(c, steps, generator=gen).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, steps, model.cfg.n_channels), np.float32)
