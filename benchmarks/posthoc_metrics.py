"""How long the post-hoc discriminator must train: the discriminative score of the pipeline's
latent samples (and the real-vs-real floor) under three training settings, in one run.

  old    Adam 1e-3, at most 20 passes over the windows and 500 iterations (shipped until 2026-11-28)
  paper  Adam 1e-3, 2,000 iterations (TimeGAN's setting)
  new    tsatlas.metrics as shipped: Adam 1e-2, at most 500 iterations, early stopped

Cases: a default `tsatlas run` on the bundled data, on ItalyPowerDemand (aeon) and on Stocks
(windows of 24, stride 1), whose evaluation inputs are captured; and sines with their noise
removed (the over-smooth samples an autoencoder tends to make). JSON in --out.

    python benchmarks/posthoc_metrics.py [--out benchmarks/results/posthoc_metrics.json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import tsatlas.generation as generation  # noqa: E402
import tsatlas.metrics as metrics  # noqa: E402

NEW = metrics._train


def _old_iterations(windows: int) -> int:
    """The shipped plan until 2026-11-28: 20 passes over 2 x `windows`, batch 128, 50 to 500 iterations."""
    return min(500, max(50, -(-20 * 2 * windows // 128)))


def _old_train(model, loss_fn, n, iterations, batch, gen, val_loss=None) -> int:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(iterations):
        idx = torch.randint(0, n, (min(batch, n),), generator=gen)
        loss = loss_fn(idx)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return iterations


def captured(args: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(real, latent samples) as the run's own evaluation sees them."""
    from flows.cli import main

    seen = []
    real_scores = generation.discriminative_score, generation.predictive_score
    generation.discriminative_score = lambda r, s, **kw: seen.append((r, s)) or 0.0
    generation.predictive_score = lambda r, s, **kw: 0.0
    try:
        with tempfile.TemporaryDirectory() as root, contextlib.redirect_stdout(io.StringIO()):
            assert main([*args, "--root", root, "--json"]) == 0
    finally:
        generation.discriminative_score, generation.predictive_score = real_scores
    return seen[0]


def sines() -> tuple[np.ndarray, np.ndarray]:
    """1,000 sines of random period and phase with noise (sd 0.3), and the same without it."""
    rng, t = np.random.default_rng(0), np.arange(24)
    clean = np.sin(2 * np.pi * (t / rng.uniform(8, 24, (1000, 1)) + rng.uniform(0, 1, (1000, 1))))[..., None]
    return (clean + 0.3 * rng.standard_normal(clean.shape)).astype(np.float32), clean.astype(np.float32)


def cases() -> list[tuple[str, np.ndarray, np.ndarray, int]]:
    """(name, real, other, the old plan's iterations: those of the run's own evaluation for both of
    a data set's cases)."""
    from benchmarks.clustering import load
    from benchmarks.common import write_windows

    noisy, clean = sines()
    out = [("sines, noise removed", noisy[:500], clean[500:], _old_iterations(500)),
           ("sines, real vs real", noisy[:500], noisy[500:], _old_iterations(500))]
    X, y = load("ItalyPowerDemand", raw=True)
    T = X.shape[1]
    with tempfile.TemporaryDirectory() as tmp:
        italy = f"{tmp}/italy.parquet"
        write_windows(X[:, :, :1], italy)
        runs = {"bundled": ["run"],
                "ItalyPowerDemand": ["run", "--data", italy, "--set", f"windows.length={T}", "--set", "cluster.k=2"],
                "stocks": ["run", "--data", "benchmarks/data/goog_stock.csv", "--set", "ingest.layout=single",
                           "--set", "windows.stride=1"]}
        for name, args in runs.items():
            real, latent = captured(args)  # real: the evaluation's sample, at most generation.EVAL_MAX windows
            old_iterations = _old_iterations(len(real))
            p = np.random.default_rng(0).permutation(len(real))
            h = len(real) // 2
            out += [(f"{name}, latent", real, latent, old_iterations),
                    (f"{name}, real vs real", real[p[:h]], real[p[h:]], old_iterations)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "posthoc_metrics.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name, a, b, old_iterations in cases():
        row = {"case": name, "n": len(a)}
        ran: list[int] = []
        counting = lambda *x: ran.append(NEW(*x)) or ran[-1]  # noqa: E731
        for label, train, iterations in (("old", _old_train, old_iterations), ("paper", _old_train, 2000),
                                         ("new", counting, 500)):
            metrics._train = train
            t0 = time.perf_counter()
            d = [metrics.discriminative_score(a, b, iterations=iterations, seed=k) for k in range(3)]
            row[label] = {"disc": round(float(np.mean(d)), 3), "sd": round(float(np.std(d)), 3),
                          "s": round((time.perf_counter() - t0) / 3, 2), "iters": ran[:] if label == "new" else iterations}
        metrics._train = NEW
        print(json.dumps(row), flush=True)
        rows.append(row)
    with open(args.out, "w") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
