"""Generation quality on the TimeGAN paper's setup (Sines and Stocks, windows of 24) and on the
bundled 9-channel weather data (--datasets weather), a harder case.

Methods, all measured in the same run:
  timegan   tsatlas's TimeGAN (tsatlas.gan), three phases of --gan-iterations each
  latent    the shipped pipeline: `tsatlas run` at its defaults on the windows (one series each),
            generate.method=latent (a Gaussian mixture in z per cluster, decoded, plus residuals)
  latent-ae the benchmark's own larger autoencoder + one mixture in z, decoded, no residuals
            (how the older rows below were made; opt-in)
  ar        baseline: an AR(2) model per channel with Gaussian residuals
  real      a second random half of the real data (the floor of each metric)
Metrics (tsatlas.metrics), mean and std over --repeats seeds: discriminative |acc - 0.5| (the
paper's post-hoc classifier, and a strict one with two GRU layers of C units), predictive (train
on synthetic, test on real, next-step MAE).

    python benchmarks/generation.py [--datasets sines,stocks,weather] [--gan-iterations 1250] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import numpy as np  # noqa: E402
from sklearn.mixture import GaussianMixture  # noqa: E402

from tsatlas.autoencoder import RNNAutoencoder  # noqa: E402
from tsatlas.gan import GANSchedule, sample_timegan, train_timegan  # noqa: E402
from tsatlas.metrics import discriminative_score, predictive_score, repeated  # noqa: E402

HERE = os.path.dirname(__file__)
PAPER = {  # from the TimeGAN paper (Table 2) and Diffusion-TS (ICLR 2024, Table 1)
    "sines": {"TimeGAN": (0.011, 0.093), "Diffusion-TS": (0.006, None)},
    "stocks": {"TimeGAN": (0.102, 0.038), "Diffusion-TS": (0.067, None)},
    "weather": {},
}


def sines(n: int = 10_000, T: int = 24, C: int = 5, seed: int = 0) -> np.ndarray:
    """As in the paper: sin(f t + p), f and p ~ U(0, 0.1) per sample and channel, mapped to [0, 1]."""
    rng = np.random.default_rng(seed)
    f, p = rng.uniform(0, 0.1, (n, 1, C)), rng.uniform(0, 0.1, (n, 1, C))
    return ((np.sin(f * np.arange(T)[None, :, None] + p) + 1) * 0.5).astype(np.float32)


def stocks(T: int = 24) -> np.ndarray:
    """Per-column MinMax over the whole series, windows of T with stride 1 (time kept forward)."""
    raw = np.loadtxt(os.path.join(HERE, "data", "goog_stock.csv"), delimiter=",", skiprows=1)
    x = (raw - raw.min(0)) / (raw.max(0) - raw.min(0) + 1e-7)
    idx = np.arange(len(x) - T + 1)[:, None] + np.arange(T)
    return x[idx].astype(np.float32)


def weather(T: int = 24) -> np.ndarray:
    """The bundled data (data/weather.csv: three sites, 9 channels, hourly), each channel
    min-max scaled over all sites, windows of T with stride 1 within each site. Harder than
    Stocks: nine channels of different kinds (irradiance, temperature, wind) with a daily cycle."""
    import pandas as pd

    df = pd.read_csv(os.path.join(HERE, "..", "data", "weather.csv"))
    channels = [c for c in df.columns if c not in ("series_id", "timestamp")]
    v = df[channels].to_numpy(np.float64)
    v = (v - v.min(0)) / (v.max(0) - v.min(0) + 1e-7)
    out = []
    for _, idx in df.groupby("series_id", sort=False).indices.items():
        x = v[idx]
        out.append(x[np.arange(len(x) - T + 1)[:, None] + np.arange(T)])
    return np.concatenate(out).astype(np.float32)


def ar_baseline(X: np.ndarray, n: int, seed: int, p: int = 2) -> np.ndarray:
    """Per channel, x_t = a + sum_k b_k x_{t-k} + e fitted by least squares over all windows;
    the first p steps are copied from random real windows."""
    rng = np.random.default_rng(seed)
    _, T, C = X.shape
    out = np.empty((n, T, C), np.float32)
    out[:, :p] = X[rng.integers(0, len(X), n), :p]
    for c in range(C):
        y = X[:, p:, c].reshape(-1)
        A = np.column_stack([np.ones_like(y)] + [X[:, p - k:T - k, c].reshape(-1) for k in range(1, p + 1)])
        coef, *_ = np.linalg.lstsq(A, y, rcond=None)
        sd = np.std(y - A @ coef)
        for t in range(p, T):  # loop over steps (24), vectorised over samples
            out[:, t, c] = coef[0] + sum(coef[k] * out[:, t - k, c] for k in range(1, p + 1)) + rng.normal(0, sd, n)
    return out


def shipped_latent(X: np.ndarray, seed: int, device: str) -> np.ndarray:
    """As many windows as X from `tsatlas run` at its defaults (evaluation off), each window of X
    given as one series of T steps: the pipeline standardises, clusters, samples per cluster and
    maps back to X's units, so the samples compare with X as they are."""
    import contextlib
    import io
    import tempfile

    import pandas as pd

    from benchmarks.common import write_windows
    from flows.cli import main as tsatlas

    n, T, C = X.shape
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "windows.parquet")
        write_windows(X, data)
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            assert tsatlas(["run", "--data", data, "--root", os.path.join(tmp, "store"), "--json", "--seed", str(seed),
                            "--set", f"windows.length={T}", "--set", f"generate.n={n}", "--set", "generate.evaluate=false",
                            "--set", f"train.device={device}"]) == 0
        synth = pd.read_parquet(json.loads(out.getvalue())["stages"]["generate"]["uri"])
    return synth[[f"c{c}" for c in range(C)]].to_numpy(np.float32).reshape(-1, T, C)


def run(name: str, X: np.ndarray, methods: list[str], args) -> list[dict]:
    rng = np.random.default_rng(args.seed)
    perm = rng.permutation(len(X))
    n = len(X)
    rows = []
    for method in methods:
        t0 = time.perf_counter()
        if method == "timegan":
            model, _ = train_timegan(X, hidden=24, layers=3, seed=args.seed, device=args.device,
                                     schedule=GANSchedule(iterations=args.gan_iterations, batch_size=128))
            fit_s = time.perf_counter() - t0
            S = sample_timegan(model, np.zeros(n, np.int64), X.shape[1], seed=args.seed)
        elif method == "latent":
            S = shipped_latent(X, args.seed, args.device)
            fit_s = time.perf_counter() - t0
        elif method == "latent-ae":
            ae = RNNAutoencoder(hidden=64, latent=16, epochs=200, patience=10, batch_size=128, device=args.device,
                                lr=3e-3, patch=1, objective="reconstruction",  # as measured in RESULTS.md
                                random_state=args.seed).fit(X)
            z = ae.transform(X)
            gm = GaussianMixture(n_components=10, covariance_type="full", reg_covar=1e-4, random_state=args.seed).fit(z)
            fit_s = time.perf_counter() - t0
            S = ae.decode(gm.sample(n)[0].astype(np.float32), X.shape[1])
        elif method == "ar":
            S = ar_baseline(X, n, args.seed)
            fit_s = time.perf_counter() - t0
        elif method == "real":  # floor: one half of the real data against the other
            S, fit_s = X[perm[: n // 2]], 0.0
        else:
            raise SystemExit(f"unknown method {method}")
        real = X[perm[n // 2:]] if method == "real" else X
        kw = dict(repeats=args.repeats, seed=args.seed, iterations=args.metric_iterations)
        row = {"dataset": name, "method": method, "train_s": round(fit_s, 1),
               "discriminative": repeated(discriminative_score, real, S, **kw),
               "discriminative_strict": repeated(discriminative_score, real, S, strict=True, **kw),
               "predictive": repeated(predictive_score, real, S, **kw)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def table(rows: list[dict], args) -> str:
    lines = ["| dataset | method | discriminative (lower is better) | strict discriminative | predictive MAE | training s |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        d, p = r["discriminative"], r["predictive"]
        st = r.get("discriminative_strict")
        strict = f"{st['mean']:.3f} ± {st['std']:.3f}" if st else "-"
        lines.append(f"| {r['dataset']} | {r['method']} | {d['mean']:.3f} ± {d['std']:.3f} | {strict} | "
                     f"{p['mean']:.3f} ± {p['std']:.3f} | {r['train_s']} |")
    for ds in sorted({r["dataset"] for r in rows}):
        for ref, (d, p) in PAPER[ds].items():
            lines.append(f"| {ds} | {ref} (published) | {d:.3f} | - | {p if p is not None else '-'} | - |")
    return "\n".join(lines) + (f"\n\nSettings: TimeGAN hidden 24, 3 GRU layers, batch 128, {args.gan_iterations} iterations "
                               f"per phase (the paper: 10,000); post-hoc GRUs {args.metric_iterations} iterations, "
                               f"{args.repeats} seeds; our post-hoc GRUs have max(8, C/2) hidden units (the paper C/2), "
                               f"which makes the discriminative score stricter; the strict column's classifier has two "
                               f"GRU layers of max(8, C) units. `real` is the floor: one random half of the real "
                               f"windows against the other.")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--datasets", default="sines,stocks")
    p.add_argument("--methods", default="real,ar,latent,timegan")
    p.add_argument("--gan-iterations", type=int, default=GANSchedule.iterations, help="per phase (default: the shipped gan_iterations)")
    p.add_argument("--metric-iterations", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--no-write", action="store_true", help="print only; do not append to RESULTS.md")
    args = p.parse_args()
    data = {"sines": sines, "stocks": stocks, "weather": weather}
    rows = []
    for name in args.datasets.split(","):
        rows += run(name, data[name](), args.methods.split(","), args)
    md = table(rows, args)
    print(md)
    out = os.environ.get("OUT")
    if out:
        with open(os.path.join(out, "generation.json"), "w") as f:
            json.dump(rows, f, indent=2)
    if not args.no_write:
        from benchmarks.common import write_results
        names = args.datasets.split(",")
        title = ("Generation: Sines and Stocks (benchmarks/generation.py)" if sorted(names) == ["sines", "stocks"]
                 else f"Generation: {' and '.join(n.capitalize() for n in names)} "
                      f"(benchmarks/generation.py --datasets {args.datasets})")
        write_results(title, md)


if __name__ == "__main__":
    main()
