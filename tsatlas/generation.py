"""Generation: synthetic windows per cluster, written back in the series-table schema and
in original units, with a `cluster` column.

- method=latent: per cluster, a Gaussian mixture fitted to that cluster's z is sampled and
  decoded by the autoencoder's decoder; each sample then gets the reconstruction residual of a
  training window of its cluster near it in z (generate.noise).
- method=timegan: one TimeGAN conditioned on the cluster id serves every cluster.
Each synthetic window returns to original units with the scaler of a random member window
of its cluster. A `length` longer than the window chains windows of the same cluster.
"""

from __future__ import annotations

import io
import logging
import time
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import NearestNeighbors

from tsatlas.autoencoder import RNNAutoencoder, resolve_patch
from tsatlas.config import GenerateConfig
from tsatlas.errors import ConfigError
from tsatlas.gan import GANSchedule, sample_timegan, train_timegan
from tsatlas.metrics import (CHECK_EVERY, MIN_ITERATIONS, PATIENCE, discriminative_score, generation_scores, hidden_units,
                             mean_std, predictive_scores, side_by_side)
from tsatlas.progress import report
from tsatlas.timegan import TimeGAN
from tsatlas.windowing import Windows

log = logging.getLogger(__name__)

EVAL_MAX = 2000  # windows per side used to score generation


def allocate(sizes: np.ndarray, n: int) -> np.ndarray:
    """Split n samples across clusters in proportion to `sizes` (largest remainder; sums to n)."""
    share = n * sizes / sizes.sum()
    counts = np.floor(share).astype(int)
    counts[np.argsort(-(share - counts), kind="stable")[: n - counts.sum()]] += 1
    return counts


GMM_FIT_AT_MOST = 20_000  # z per cluster that a latent Gaussian mixture is fitted on (a seeded sample above it)


class LatentMixtures:
    """Per cluster, a Gaussian mixture over that cluster's z (over a seeded sample of
    GMM_FIT_AT_MOST of them in a bigger cluster), fitted once when first sampled and kept: the
    run's output and its evaluation sample the same fitted mixtures."""

    def __init__(self, Z: np.ndarray, labels: np.ndarray, components: int, seed: int):
        self.Z, self.labels, self.components, self.seed = Z, labels, components, seed
        self._fitted: dict[int, GaussianMixture | np.ndarray] = {}

    def _mixture(self, c: int) -> GaussianMixture | np.ndarray:
        """Cluster c's mixture, or its one window's z (no covariance to fit)."""
        if c not in self._fitted:
            Zc = self.Z[self.labels == c]
            if len(Zc) > GMM_FIT_AT_MOST:  # a few components in z need no more; EM time grows with the rows
                Zc = Zc[np.sort(np.random.default_rng(self.seed + c).choice(len(Zc), GMM_FIT_AT_MOST, replace=False))]
            Zc = Zc.astype(np.float64)  # float32 covariances come out slightly asymmetric
            self._fitted[c] = Zc[0] if len(Zc) < 2 else GaussianMixture(
                n_components=max(1, min(self.components, len(Zc) // 10)), covariance_type="full", reg_covar=1e-3,
                random_state=self.seed + c).fit(Zc)
        return self._fitted[c]

    def sample(self, counts: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """counts[c] draws from cluster c's mixture, shuffled: (z (n, D), cluster (n,))."""
        zs, cs = [], []
        for c, m in enumerate(counts):
            if m == 0:
                continue
            mix = self._mixture(c)
            if isinstance(mix, np.ndarray):  # a cluster of one window: sample around it
                zs.append(mix + np.sqrt(1e-3) * np.random.default_rng(seed + c).standard_normal((int(m), len(mix))))
            else:
                mix.random_state = seed + c  # what GaussianMixture.sample draws with
                zs.append(mix.sample(int(m))[0])
            cs.append(np.full(int(m), c))
        z, cl = np.concatenate(zs).astype(np.float32), np.concatenate(cs)
        order = np.random.default_rng(seed).permutation(len(z))  # GMM.sample groups by component
        return z[order], cl[order]


def sample_latent(Z: np.ndarray, labels: np.ndarray, counts: np.ndarray, components: int,
                  seed: int) -> tuple[np.ndarray, np.ndarray]:
    """counts[c] draws from a Gaussian mixture fitted to Z[labels == c] (LatentMixtures, fitted and
    sampled with `seed`): (z (n, D), cluster (n,))."""
    return LatentMixtures(Z, labels, components, seed).sample(counts, seed)


class Generator:
    """A fitted generator of standardised windows per cluster."""

    def __init__(self, method: str, cfg: GenerateConfig, seed: int, ae: RNNAutoencoder, Z: np.ndarray,
                 X: np.ndarray, labels: np.ndarray, device: str = "auto", gan: TimeGAN | None = None):
        """`gan`: a TimeGAN trained before (a run's stored weights) instead of training one."""
        self.method, self.cfg, self.seed, self.ae, self.Z, self.X, self.labels = method, cfg, seed, ae, Z, X, labels
        self.steps = X.shape[1]
        self.gan, self.history = gan, []
        self.mixtures = LatentMixtures(Z, labels, cfg.components, seed)
        # a stored TimeGAN reads the patch it was trained with (every step, if it predates gan_patch)
        self.gan_patch = gan.cfg.n_channels // X.shape[2] if gan is not None else gan_patch(cfg, self.steps)
        if method == "timegan" and gan is None:
            sched = GANSchedule(iterations=cfg.gan_iterations, batch_size=cfg.gan_batch_size, mmd=cfg.gan_mmd,
                                critic=cfg.gan_critic)
            self.gan, self.history = train_timegan(patched(np.asarray(X), self.gan_patch), labels, hidden=cfg.gan_hidden,
                                                   layers=cfg.gan_layers, cell=cfg.gan_cell, schedule=sched, seed=seed,
                                                   device=device)

    def sample(self, counts: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """counts per cluster -> (standardised windows (n, T, C), cluster (n,)), shuffled."""
        if self.gan is None:
            z, cl = self.mixtures.sample(counts, seed)
            x = self.ae.decode(z, steps=self.steps)
            if self.cfg.noise != "none":
                x += self._residuals(cl, seed, z if self.cfg.noise == "nearest" else None)
            return x, cl
        cl = np.random.default_rng(seed).permutation(np.repeat(np.arange(len(counts)), counts))
        p = self.gan_patch
        x = sample_timegan(self.gan, cl, -(-self.steps // p), seed=seed)
        return x.reshape(len(x), -1, x.shape[2] // p)[:, -self.steps:], cl  # patched() pads in front

    def _residuals(self, cl: np.ndarray, seed: int, z: np.ndarray | None = None) -> np.ndarray:
        """For each sample, the reconstruction residual X - decode(Z) of a training window of its
        cluster: the detail (noise, sharp steps) that the decoder's conditional mean smooths away
        and that a classifier otherwise tells apart at once (benchmarks/RESULTS.md). Given the
        samples' z, the donor is drawn from the generate.donors training windows of the cluster nearest
        to the sample in z (a residual that fits the sample's shape and phase)."""
        rng = np.random.default_rng(seed + 1)
        pick = np.empty(len(cl), dtype=np.int64)
        for c in np.unique(cl):
            at = np.flatnonzero(cl == c)
            members = np.flatnonzero(self.labels == c)
            if z is None:
                pick[at] = rng.choice(members, len(at))
                continue
            k = min(self.cfg.donors, len(members))
            index, rank = NearestNeighbors(n_neighbors=k).fit(self.Z[members]), rng.integers(0, k, len(at))
            for i in range(0, len(at), 65_536):  # (chunk, k) neighbour ids at a time
                part = slice(i, i + 65_536)
                near = index.kneighbors(z[at[part]], return_distance=False)
                pick[at[part]] = members[near[np.arange(len(near)), rank[part]]]
        order = np.argsort(pick, kind="stable")  # ascending reads from a memory-mapped X
        res = np.empty((len(cl), *self.X.shape[1:]), dtype=np.float32)
        res[order] = np.asarray(self.X[pick[order]], np.float32) - self.ae.decode(self.Z[pick[order]], steps=self.steps)
        return res

    def weights(self) -> bytes | None:
        if self.gan is None:
            return None
        buf = io.BytesIO()
        torch.save({k: v.cpu() for k, v in self.gan.state_dict().items()}, buf)
        return buf.getvalue()


def chain(X: np.ndarray, length: int) -> np.ndarray:
    """Join consecutive windows (n * pieces, T, C) into (n, length, C) series: each window is
    shifted so it starts where the previous one ended (level continuity; the slope may jump)."""
    n_all, T, C = X.shape
    pieces = -(-length // T)
    Y = X.reshape(n_all // pieces, pieces, T, C).copy()
    jumps = Y[:, :-1, -1, :] - Y[:, 1:, 0, :]            # (n, pieces-1, C)
    Y[:, 1:] += np.cumsum(jumps, axis=1)[:, :, None, :]
    return Y.reshape(-1, pieces * T, C)[:, :length]


def to_original_units(Xs: np.ndarray, cluster: np.ndarray, w: Windows, labels: np.ndarray, seed: int) -> np.ndarray:
    """Undo the standardisation of synthetic windows with the scalers of random member windows."""
    rng = np.random.default_rng(seed)
    template = np.empty(len(Xs), dtype=np.int64)
    for c in np.unique(cluster):
        members = np.flatnonzero(labels == c)
        at = np.flatnonzero(cluster == c)
        template[at] = members[rng.integers(0, len(members), len(at))]
    return Xs * w.scale[template][:, None, :] + w.loc[template][:, None, :]


RESERVED = ("series_id", "timestamp", "cluster")  # columns of the synthetic table besides the channels


def output_channels(channels: list[str]) -> dict[str, str]:
    """Channel name -> its column in the synthetic table: a channel named like one of RESERVED
    gets a `_value` suffix (logged), so it never overwrites the ids or the cluster."""
    taken, out = set(RESERVED) | set(channels), {}
    for c in channels:
        name = c
        if c in RESERVED:
            name = f"{c}_value"
            while name in taken:
                name += "_"
            taken.add(name)
            log.warning("generate: channel %r is written as column %r (%r is a column of the synthetic table)", c, name, c)
        out[c] = name
    return out


def series_table(X: np.ndarray, cluster: np.ndarray, channels: list[str]) -> pd.DataFrame:
    """(n, T, C) synthetic series -> long series table (integer steps); channels keep their
    names except those renamed by output_channels."""
    n, T, C = X.shape
    channels = list(output_channels(channels).values())
    ids = np.char.add(np.char.add("syn-c", cluster.astype(str)), np.char.add("-", np.char.zfill(np.arange(n).astype(str), 6)))
    df = pd.DataFrame({"series_id": np.repeat(ids, T), "timestamp": np.tile(np.arange(T, dtype=np.int64), n)})
    df = pd.concat([df, pd.DataFrame(X.reshape(n * T, C), columns=channels)], axis=1)
    df["cluster"] = np.repeat(cluster.astype(np.int32), T)
    return df


EVAL_STEPS = 24  # recurrent steps of the post-hoc GRUs (TimeGAN's benchmarks use windows of 24)
EVAL_BATCH = 128
# Iterations of each predictive GRU (train on synthetic, and the reference trained on real). A
# regression has no plateau to wait out, and both get the same budget, so the comparison stays
# fair: on the bundled data their MAEs were 0.208 / 0.204 at 200 iterations, 0.187 / 0.183 at 500
# (benchmarks/RESULTS.md, "Evaluation's share of a run"). The discriminative fit keeps the longer
# budget its plateau needs.
PREDICTIVE_ITERATIONS = 200


# Values in one batch of a post-hoc fit: EVAL_BATCH windows of EVAL_STEPS steps of 32 channels. Longer
# or wider windows get fewer per batch (at least EVAL_MIN_BATCH), so that an iteration's cost, which
# grows with the values it reads, stays bounded whatever the window length.
EVAL_VALUES = EVAL_BATCH * EVAL_STEPS * 32
EVAL_MIN_BATCH = 16


def eval_plan(n_windows: int, steps: int, channels: int, cfg: GenerateConfig) -> dict[str, int]:
    """How the post-hoc metrics run, bounded whatever the window length and data size: at most
    EVAL_MAX windows per side; windows longer than EVAL_STEPS read `patch` consecutive steps per
    recurrent step (as the autoencoder does), so each GRU runs at most EVAL_STEPS recurrent steps;
    GRUs of at most metrics.MAX_HIDDEN units (`hidden`), on batches of at most EVAL_VALUES values;
    the discriminative GRUs at most generate.eval_iterations iterations, fewer where a held-out
    loss stops improving (metrics._train), the predictive ones PREDICTIVE_ITERATIONS."""
    windows = min(n_windows, EVAL_MAX)
    patch = resolve_patch("auto", steps, EVAL_STEPS)
    recurrent = -(-steps // patch)
    batch = max(EVAL_MIN_BATCH, min(EVAL_BATCH, EVAL_VALUES // (recurrent * patch * channels)))
    return {"windows": windows, "patch": patch, "recurrent_steps": recurrent, "hidden": hidden_units(patch * channels),
            "batch": batch, "iterations": cfg.eval_iterations,
            "predictive_iterations": min(cfg.eval_iterations, PREDICTIVE_ITERATIONS),
            "early_stopping": {"check_every": CHECK_EVERY, "patience": PATIENCE, "min_iterations": MIN_ITERATIONS}, "repeats": cfg.eval_repeats}


GAN_STEPS = 24  # gan_patch=auto: at most this many recurrent steps per window (the paper's windows)


def gan_patch(cfg: GenerateConfig, steps: int) -> int:
    """Time steps per recurrent step of the TimeGAN networks for windows of `steps` (generate.gan_patch)."""
    return resolve_patch(cfg.gan_patch, steps, GAN_STEPS)


def patched(X: np.ndarray, patch: int) -> np.ndarray:
    """(n, T, C) -> (n, ceil(T / patch), patch * C): consecutive steps side by side, zeros in front."""
    if patch == 1:
        return X
    n, T, C = X.shape
    pad = -T % patch
    if pad:
        X = np.concatenate([np.zeros((n, pad, C), X.dtype), X], axis=1)
    return np.ascontiguousarray(X).reshape(n, (T + pad) // patch, patch * C)


def evaluate(gen: Generator, real: np.ndarray, labels: np.ndarray, cfg: GenerateConfig, seed: int) -> dict[str, Any]:
    """Field-standard scores on standardised windows, real vs a fresh synthetic sample of the same
    cluster mix; the post-hoc GRUs run on the bounded plan of eval_plan (recorded as `eval`), side
    by side on torch's threads."""
    t0 = time.perf_counter()
    plan = eval_plan(len(real), real.shape[1], real.shape[2], cfg)
    rng = np.random.default_rng(seed)
    real = np.asarray(real[np.sort(rng.choice(len(real), plan["windows"], replace=False))])
    synth, _ = gen.sample(allocate(np.bincount(labels), len(real)), seed + 1)
    scores = generation_scores(real, synth, seed)
    r, s = patched(real, plan["patch"]), patched(synth, plan["patch"])
    disc = {"iterations": plan["iterations"], "batch": plan["batch"]}
    fits = {"discriminative": disc} | ({"discriminative_strict": disc | {"strict": True}} if cfg.eval_strict else {})
    jobs = [(name, k) for name in [*fits, "predictive"] for k in range(plan["repeats"])]

    def fit(job: tuple[str, int]) -> dict[str, float]:
        name, k = job
        if name == "predictive":  # trained on synthetic and, the reference, on real windows: one block-diagonal GRU
            on_synth, on_real = predictive_scores(r, [s, r], iterations=plan["predictive_iterations"], batch=plan["batch"],
                                                  seed=seed + k)
            return {"predictive": on_synth, "predictive_real": on_real}
        return {name: discriminative_score(r, s, seed=seed + k, **fits[name])}

    workers = eval_workers(len(jobs))
    report("generate", 0, len(jobs))
    vals = side_by_side(fit, jobs, workers, lambda k: report("generate", k, len(jobs)))
    per_seed: dict[str, list[float]] = {}
    for job in jobs:
        for name, v in vals[job].items():
            per_seed.setdefault(name, []).append(v)
    scores |= {name: mean_std(v) for name, v in per_seed.items()}
    return scores | {"eval": plan | {"workers": workers}, "eval_seconds": round(time.perf_counter() - t0, 2)}


def eval_workers(jobs: int) -> int:
    """Post-hoc fits run side by side: one per torch thread (torch.set_num_threads / OMP_NUM_THREADS)."""
    return max(1, min(jobs, torch.get_num_threads()))


def generate(ae: RNNAutoencoder, w: Windows, channels: list[str], Z: np.ndarray, labels: np.ndarray,
             cfg: GenerateConfig, seed: int = 0, device: str = "auto") -> tuple[pd.DataFrame, dict[str, Any], bytes | None]:
    """Synthetic series per cluster, in original units.

    Args:
        ae: the fitted autoencoder; w: the windows it was trained on; Z: (n, D) their embeddings;
        labels: (n,) their clusters.

    Returns:
        (the synthetic series table, metrics, TimeGAN weights or None).
    """
    sizes = np.bincount(labels)
    if cfg.per_cluster is not None:
        if len(cfg.per_cluster) != len(sizes):
            raise ConfigError(f"generate.per_cluster has {len(cfg.per_cluster)} counts for {len(sizes)} clusters")
        counts = np.asarray(cfg.per_cluster)
    else:
        counts = allocate(sizes, cfg.n)
    T = w.X.shape[1]
    length = cfg.length or T
    pieces = -(-length // T)
    gen = Generator(cfg.method, cfg, seed, ae, Z, w.X, labels, device)
    Xs, cl = gen.sample(counts * pieces, seed)
    order = np.argsort(cl, kind="stable")      # windows of one cluster next to each other for chaining
    Xs, cl = Xs[order], cl[order]
    X = to_original_units(Xs, cl, w, labels, seed)
    cl = cl[::pieces]
    X = chain(X, length) if pieces > 1 or length != T else X
    frame = series_table(X, cl, channels)
    metrics: dict[str, Any] = {"method": cfg.method, "n": int(len(X)), "length": length, "per_cluster": counts.tolist()}
    if cfg.method == "timegan":
        metrics["gan_patch"] = gen.gan_patch
    if gen.history:
        metrics["gan_seconds"] = round(gen.history[-1]["seconds"], 2)
    if cfg.evaluate:
        metrics.update(evaluate(gen, w.X, labels, cfg, seed))
    log.info("generate: %d synthetic series of %d steps (%d rows), method %s", len(X), length, len(frame), cfg.method)
    return frame, metrics, gen.weights()
