"""Clustering and generation metrics (pure numpy / scikit-learn / scipy)."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed

import numpy as np
import torch
from scipy.stats import wasserstein_distance
from sklearn import metrics as skm
from torch import nn
from torch.nn import functional as F


def clustering_scores(Z: np.ndarray, labels: np.ndarray, sample: int = 5000, seed: int = 0) -> dict[str, float]:
    """Internal quality of a partition of Z: silhouette (on a seeded sample), Davies-Bouldin, Calinski-Harabasz."""
    if len(np.unique(labels)) < 2:
        return {"silhouette": float("nan"), "davies_bouldin": float("nan"), "calinski_harabasz": float("nan")}
    return {
        "silhouette": float(skm.silhouette_score(Z, labels, sample_size=min(sample, len(Z)), random_state=seed)),
        "davies_bouldin": float(skm.davies_bouldin_score(Z, labels)),
        "calinski_harabasz": float(skm.calinski_harabasz_score(Z, labels)),
    }


def agreement(truth: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """External agreement with known labels: adjusted Rand index and normalised mutual information."""
    return {"ari": float(skm.adjusted_rand_score(truth, labels)),
            "nmi": float(skm.normalized_mutual_info_score(truth, labels))}


def acf(X: np.ndarray, max_lag: int | None = None) -> np.ndarray:
    """Mean autocorrelation per channel over windows: (n, T, C) -> (max_lag, C), lags 1..max_lag.

    Every lag's sum of products at once, through the FFT (O(T log T) per window, not O(T^2));
    windows without variance have no autocorrelation and are left out of the mean."""
    n, T, C = X.shape
    max_lag = min(max_lag or T - 1, T - 1)
    Xc = X - X.mean(axis=1, keepdims=True)
    nfft = 1 << (2 * T - 1).bit_length()  # zero padding of at least T: no wrap-around
    F = np.fft.rfft(Xc, n=nfft, axis=1)
    cov = np.fft.irfft(F.real**2 + F.imag**2, n=nfft, axis=1)[:, : max_lag + 1]  # (n, 1 + max_lag, C)
    var = cov[:, 0]
    ok = var > 1e-12 * np.maximum((np.asarray(X, np.float64) ** 2).sum(axis=1), 1e-300)
    n_ok = np.maximum(ok.sum(axis=0), 1)
    return np.where(ok[:, None], cov[:, 1:] / np.where(ok, var, 1)[:, None], 0.0).sum(axis=0) / n_ok


def marginal_distance(real: np.ndarray, synth: np.ndarray, max_points: int = 200_000, seed: int = 0) -> float:
    """Mean over channels of the 1-D Wasserstein distance between real and synthetic values."""
    rng = np.random.default_rng(seed)
    C = real.shape[-1]
    r, s = real.reshape(-1, C), synth.reshape(-1, C)
    r = r[rng.choice(len(r), min(len(r), max_points), replace=False)]
    s = s[rng.choice(len(s), min(len(s), max_points), replace=False)]
    return float(np.mean([wasserstein_distance(r[:, c], s[:, c]) for c in range(C)]))


def autocorrelation_distance(real: np.ndarray, synth: np.ndarray) -> float:
    """Mean absolute difference between the mean autocorrelation functions of real and synthetic windows."""
    return float(np.abs(acf(real) - acf(synth)).mean())


def nearest_real_ratio(reference: np.ndarray, held_out: np.ndarray, synth: np.ndarray) -> float:
    """Distance to the closest real window (DCR), synthetic against held-out real: the median
    Euclidean distance from each synthetic window to its nearest `reference` window, over the same
    median for `held_out` real windows (as many of each). About 1: synthetic windows are no closer
    to the real ones than new real windows are; well below 1: they copy real windows."""
    from sklearn.neighbors import NearestNeighbors

    m = min(len(held_out), len(synth))
    if m == 0 or len(reference) == 0:
        return float("nan")
    nn_ = NearestNeighbors(n_neighbors=1).fit(reference.reshape(len(reference), -1))
    d_synth = nn_.kneighbors(synth[:m].reshape(m, -1))[0]
    d_real = nn_.kneighbors(held_out[:m].reshape(m, -1))[0]
    return float(np.median(d_synth) / max(float(np.median(d_real)), 1e-12))


def generation_scores(real: np.ndarray, synth: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Cheap distribution metrics on standardised (n, T, C) windows, with a real-vs-real
    floor: the same metrics between two random halves of the real data; and the nearest-real
    distance ratio of synthetic windows to one half, against the other half's."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(real))
    a, b = real[perm[: len(real) // 2]], real[perm[len(real) // 2:]]
    return {
        "marginal": marginal_distance(real, synth, seed=seed),
        "autocorrelation": autocorrelation_distance(real, synth),
        "marginal_real_floor": marginal_distance(a, b, seed=seed),
        "autocorrelation_real_floor": autocorrelation_distance(a, b),
        "nearest_real_ratio": nearest_real_ratio(a, b, synth[rng.permutation(len(synth))]),
    }


# -- post-hoc recurrent models (the TimeGAN paper's discriminative and predictive scores) ------

class _PostHocGRU(nn.Module):
    """A GRU (one layer unless asked) with a linear head: per sequence (last step) or per step."""

    def __init__(self, inp: int, hidden: int, out: int, layers: int = 1, seed: int = 0):
        super().__init__()
        self.rnn = nn.GRU(inp, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, out)
        # PyTorch's default initialisation of both (uniform within 1/sqrt(hidden)), drawn from the fit's
        # own generator: fits that run side by side on threads share no random state.
        gen, bound = torch.Generator().manual_seed(seed), hidden ** -0.5
        with torch.no_grad():
            for p in self.parameters():
                p.uniform_(-bound, bound, generator=gen)

    def forward(self, x: torch.Tensor, last: bool) -> torch.Tensor:
        y, _ = self.rnn(x)
        return self.head(y[:, -1] if last else y)


# Adam's step size for the post-hoc GRUs. The paper's 1e-3 leaves them far from converged within a
# bounded budget: on the bundled data the latent samples scored 0.10 after 343 iterations at 1e-3,
# 0.47 after 2,000 at 1e-3 and 0.48 after 343 at 1e-2 (real vs real stays at 0.01-0.03), so an
# under-trained classifier flatters the generator. benchmarks/RESULTS.md, "Post-hoc metrics".
POSTHOC_LR = 1e-2
# Early stopping: the held-out loss every CHECK_EVERY iterations; stop after PATIENCE checks without a
# gain, but not before MIN_ITERATIONS: a GRU classifier's loss often sits at log 2 for its first
# 100-200 iterations before it finds the difference (measured on the bundled data, ItalyPowerDemand,
# Stocks and over-smoothed sines).
CHECK_EVERY, PATIENCE, MIN_ITERATIONS = 25, 4, 300


def _train(model: nn.Module, loss_fn, n: int, iterations: int, batch: int, gen: torch.Generator, val_loss,
           parts: list[dict[str, torch.Tensor]] | None = None) -> int:
    """At most `iterations` Adam steps on random batches of rows [0, n); after MIN_ITERATIONS, stops
    when `val_loss()` (a held-out loss) has not improved for PATIENCE checks; keeps the weights of its best check:
    a classifier that cannot tell the samples apart stops early, one that still learns does not.
    `parts` (a block_diagonal model's masks): `val_loss()` gives one loss per part, and each part
    stops and keeps its best weights on its own, as if trained alone. Returns the iterations run."""
    opt = torch.optim.Adam(model.parameters(), lr=POSTHOC_LR)
    k = len(parts) if parts else 1
    best, best_state, since, done = [float("inf")] * k, [None] * k, [0] * k, [False] * k
    for it in range(1, iterations + 1):
        idx = torch.randint(0, n, (min(batch, n),), generator=gen)
        loss = loss_fn(idx)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if it % CHECK_EVERY and it != iterations:
            continue
        with torch.no_grad():
            vals = torch.as_tensor(val_loss()).reshape(-1).tolist()
        for j, v in enumerate(vals):
            if done[j]:
                continue
            if v < best[j] - 1e-4:
                best[j], best_state[j], since[j] = v, {key: t.clone() for key, t in model.state_dict().items()}, 0
                continue
            since[j] += 1
            done[j] = since[j] >= PATIENCE and it >= MIN_ITERATIONS
        if all(done):
            break
    if parts and all(st is not None for st in best_state):  # each block from its own best check
        model.load_state_dict({key: sum(st[key] * mask[key] for st, mask in zip(best_state, parts))
                               if key in parts[0] else t for key, t in model.state_dict().items()})
    elif not parts and best_state[0] is not None:
        model.load_state_dict(best_state[0])
    return it


def block_diagonal(models: list[_PostHocGRU]) -> tuple[_PostHocGRU, list[dict[str, torch.Tensor]]]:
    """One GRU that is `models` side by side: their inputs, hidden units and outputs concatenated, every
    weight between two of them zero and kept zero (its gradient masked; Adam, per element, then never
    moves it), so each block trains as its model alone would. On a CPU a small GRU's cost is per call
    and per step, not per unit: two predictive GRUs of 1-18 inputs cost 1.05-1.1x one (61 inputs: 1.9x).
    Returns (model, per block {parameter name: its mask})."""
    first = models[0]
    m, h, c_in, c_out, layers = len(models), first.rnn.hidden_size, first.rnn.input_size, first.head.out_features, first.rnn.num_layers
    big = _PostHocGRU(m * c_in, m * h, m * c_out, layers=layers)
    gates = first.rnn.weight_hh_l0.shape[0] // h

    def span(b: int, size: int, blocks: int = 1) -> torch.Tensor:  # block b's rows of `blocks` stacked (gate) blocks
        return torch.cat([torch.arange(g * m * size + b * size, g * m * size + (b + 1) * size) for g in range(blocks)])

    masks: list[dict[str, torch.Tensor]] = [{} for _ in models]
    with torch.no_grad():
        for name, p in big.named_parameters():
            p.zero_()
            for b, small in enumerate(models):
                rnn = name.startswith("rnn.")
                rows = span(b, h, gates) if rnn else span(b, c_out)
                cols = (span(b, c_in) if name == "rnn.weight_ih_l0" else span(b, h)) if p.dim() == 2 else None
                mask = torch.zeros_like(p, dtype=torch.bool)
                if cols is None:
                    p[rows] = small.get_parameter(name)
                    mask[rows] = True
                else:
                    p[rows[:, None], cols[None, :]] = small.get_parameter(name)
                    mask[rows[:, None], cols[None, :]] = True
                masks[b][name] = mask
            keep = torch.stack([mk[name] for mk in masks]).any(0)
            p.register_hook(lambda g, keep=keep: g * keep)
    return big, masks


# The post-hoc GRUs' hidden units: the paper's C // 2 for C inputs per recurrent step (strict: C), at
# least 8 so that one or two channels can still be learned, at most MAX_HIDDEN. On long windows, read
# many steps per recurrent step, C grows with the window's length (1,460 steps: 61 inputs; 5,840: 244)
# and an uncapped GRU's cost with its square: 27.6 s of evaluation against a 3.1 s train stage at
# 5,840 steps (benchmarks/RESULTS.md, "Long windows"). The paper's classifier on windows of 24 steps
# is unchanged up to 65 channels (the strict one up to 32).
MAX_HIDDEN = 32


def hidden_units(C: int, strict: bool = False) -> int:
    return min(max(8, C if strict else C // 2), MAX_HIDDEN)


def discriminative_score(real: np.ndarray, synth: np.ndarray, *, iterations: int = 2000, batch: int = 128,
                         seed: int = 0, strict: bool = False) -> float:
    """|accuracy - 0.5| of a post-hoc GRU classifier, real vs synthetic, on a held-out 20% (and
    early stopped on another 10%).

    0 means the classifier cannot tell them apart; 0.5 means it always can. `strict`: a stronger
    classifier (two GRU layers of C units) than the paper's one layer of C // 2 (both: hidden_units).
    """
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    n = min(len(real), len(synth))
    X = np.concatenate([real[rng.choice(len(real), n, replace=False)], synth[rng.choice(len(synth), n, replace=False)]])
    y = np.r_[np.ones(n), np.zeros(n)].astype(np.float32)
    perm = rng.permutation(2 * n)
    cut = int(0.8 * 2 * n)
    tr, te = perm[:cut], perm[cut:]
    tr, va = tr[:len(tr) - len(tr) // 8], tr[len(tr) - len(tr) // 8:]
    Xt, yt = torch.from_numpy(X[tr].astype(np.float32)), torch.from_numpy(y[tr])
    Xv, yv = torch.from_numpy(X[va].astype(np.float32)), torch.from_numpy(y[va])
    C = X.shape[2]
    model = _PostHocGRU(C, hidden_units(C, strict), 1, layers=2 if strict else 1, seed=seed)
    bce = F.binary_cross_entropy_with_logits
    _train(model, lambda i: bce(model(Xt[i], True)[:, 0], yt[i]), len(tr), iterations, batch, gen,
           lambda: bce(model(Xv, True)[:, 0], yv))
    with torch.no_grad():
        pred = model(torch.from_numpy(X[te].astype(np.float32)), True)[:, 0] > 0
    acc = float((pred.numpy() == (y[te] > 0.5)).mean())
    return abs(acc - 0.5)


def predictive_score(real: np.ndarray, synth: np.ndarray, *, iterations: int = 2000, batch: int = 128,
                     seed: int = 0) -> float:
    """Train on synthetic, test on real: mean absolute error of a GRU's next-step prediction of
    every channel from the past of every channel (so it works for one channel too); early stopped
    on a held-out eighth of the synthetic windows."""
    return predictive_scores(real, [synth], iterations=iterations, batch=batch, seed=seed)[0]


def predictive_scores(real: np.ndarray, trains: list[np.ndarray], *, iterations: int = 2000, batch: int = 128,
                      seed: int = 0) -> list[float]:
    """predictive_score of each training set in `trains` (all of one length), the GRUs trained side by
    side as the blocks of one block_diagonal GRU: the same initial weights, batches and held-out rows
    each would have alone, for about the cost of one."""
    gen = torch.Generator().manual_seed(seed)
    m, n, C = len(trains), len(trains[0]), real.shape[2]
    if any(len(t) != n for t in trains):
        raise ValueError("predictive_scores: the training sets differ in length")
    perm = np.random.default_rng(seed).permutation(n)
    S = torch.from_numpy(np.concatenate([np.asarray(t, np.float32)[perm] for t in trains], axis=2))
    S, V = S[:len(S) - len(S) // 8], S[len(S) - len(S) // 8:]
    blocks = [_PostHocGRU(C, hidden_units(C), C, seed=seed) for _ in trains]
    model, parts = block_diagonal(blocks) if m > 1 else (blocks[0], None)

    def l1(x: torch.Tensor) -> torch.Tensor:  # (B, T, m * C) -> each block's next-step MAE (m,)
        err = (model(x[:, :-1], False) - x[:, 1:]).abs()
        return err.reshape(*err.shape[:2], m, C).mean(dim=(0, 1, 3))

    _train(model, lambda i: l1(S[i]).sum(), len(S), iterations, batch, gen, lambda: l1(V), parts)
    with torch.no_grad():
        return l1(torch.from_numpy(np.tile(np.asarray(real, np.float32), (1, 1, m)))).tolist()


def repeated(fn, real: np.ndarray, synth: np.ndarray, repeats: int = 3, seed: int = 0, **kw) -> dict[str, float]:
    """Mean and standard deviation of a seeded metric over `repeats` seeds."""
    return mean_std([fn(real, synth, seed=seed + r, **kw) for r in range(repeats)])


def mean_std(vals: list[float]) -> dict[str, float]:
    """How a metric over several seeds is reported."""
    return {"mean": float(np.mean(vals)), "std": float(np.std(vals))}


def side_by_side(fn: Callable[[Hashable], float], jobs: Iterable[Hashable], workers: int,
                 done: Callable[[int], None] | None = None) -> dict[Hashable, float]:
    """{job: fn(job)}, `workers` jobs at a time on threads, each on one intra-op thread (torch's
    kernels release the GIL). The post-hoc GRUs are small: intra-op threads barely speed one up,
    running them side by side does (three fits on this project's 2-core VM: 3.2 s -> 2.1 s).
    `done(k)` after the k-th job ends."""
    jobs = list(jobs)
    out: dict[Hashable, float] = {}
    if workers <= 1:
        for k, job in enumerate(jobs, 1):
            out[job] = fn(job)
            done and done(k)
        return out
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(workers, thread_name_prefix="posthoc") as pool:
            running = {pool.submit(fn, job): job for job in jobs}
            for k, fut in enumerate(as_completed(running), 1):
                out[running[fut]] = fut.result()
                done and done(k)
    finally:
        torch.set_num_threads(threads)
    return out
