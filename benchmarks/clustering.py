"""Clustering quality and time on labeled UCR/UEA sets that ship inside PyPI packages, against
the classical methods people would otherwise use.

    pip install -e ".[bench]"
    python -m benchmarks.clustering                 # 5 sets x 5 seeds, two fits at a time
    python -m benchmarks.clustering --sets GunPoint --seeds 1

Each set: train and test merged, k = number of classes. Methods, all in this run:
  raw-kmeans   scikit-learn KMeans (10 restarts) on the flattened series, z-normalised per series
  kshape       tslearn KShape on the z-normalised series
  dtw-kmeans   tslearn TimeSeriesKMeans(metric="dtw", max_iter=10, a Sakoe-Chiba band of 10% of the
               length) on the z-normalised series, --dtw-seeds seeds
  tsatlas      the shipped pipeline on the raw labeled table, as a user runs it:
               `tsatlas run --data FILE --set windows.length=T --set cluster.k=K`, every other key
               at its default (--set adds overrides); NMI/ARI of its per-series clusters

Every fit runs on one CPU thread, --jobs of them at a time, after a warm-up in each worker (numba
compiles tslearn's DTW and KShape on first use: ~7 s that would otherwise land on one fit; Prefect
starts its local API: ~20 s once per process). One JSON line per fit goes to --out as it finishes
(a stopped run keeps what it did), and the table replaces its section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_v, "1")  # one thread per fit; --jobs fits side by side

import numpy as np  # noqa: E402

# Every labeled classification set that ships offline in a PyPI package: aeon's bundled ones
# (aeon/datasets/data) and tslearn's Trace. JapaneseVowels and PickupGestureWiimoteZ have series of
# unequal length: each series is resampled (linear interpolation) to the set's median length.
SETS = ["ACSF1", "ArrowHead", "BasicMotions", "GunPoint", "ItalyPowerDemand", "JapaneseVowels", "OSULeaf",
        "PickupGestureWiimoteZ", "Trace", "UnitTest"]
DEFAULT_SETS = SETS
OUT = os.path.join(os.path.dirname(__file__), "results", "clustering.jsonl")


def load(name: str, raw: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(n, T, C) float32 series, z-normalised per series and channel unless `raw`, and their
    labels; train and test merged."""
    if name == "Trace":
        from tslearn.datasets import CachedDatasets
        Xtr, ytr, Xte, yte = CachedDatasets().load_dataset("Trace")  # (n, T, 1), shipped in the wheel
        X, y = np.concatenate([Xtr, Xte]), np.concatenate([ytr, yte])
    else:
        from aeon.datasets import load_classification
        X, y = load_classification(name)  # aeon/datasets/data: (n, C, T) or a list of (C, T_i), both splits
        if isinstance(X, list):
            T = int(np.median([x.shape[1] for x in X]))
            X = np.stack([np.stack([np.interp(np.linspace(0, 1, T), np.linspace(0, 1, x.shape[1]), ch) for ch in x])
                          for x in X])
        X = np.asarray(X).transpose(0, 2, 1)
    X = X.astype(np.float64)
    if raw:
        return X.astype(np.float32), np.unique(np.asarray(y), return_inverse=True)[1]
    std = X.std(axis=1, keepdims=True)
    X = (X - X.mean(axis=1, keepdims=True)) / np.where(std > 0, std, 1.0)
    return X.astype(np.float32), np.unique(np.asarray(y), return_inverse=True)[1]


def _scores(y: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
    return {"ari": float(adjusted_rand_score(y, labels)), "nmi": float(normalized_mutual_info_score(y, labels))}


def _tsatlas_labels(ae, X: np.ndarray, k: int, seed: int) -> np.ndarray:
    """The cluster stage's own function on z (one window per series here)."""
    from tsatlas.clustering import cluster_embeddings
    from tsatlas.config import ClusterConfig
    Z = ae.transform(X)
    return cluster_embeddings(Z, Z, ClusterConfig(k=k), seed).labels


def warm_up() -> None:
    """Each worker pays one-time costs (numba compiling tslearn's DTW and KShape, torch's first
    calls) on a tiny array before anything is timed, so no method's time includes them."""
    import torch
    torch.set_num_threads(1)
    from sklearn.cluster import KMeans
    from tslearn.clustering import KShape, TimeSeriesKMeans

    X = np.random.default_rng(0).standard_normal((12, 16, 1))
    KMeans(2, n_init=2, random_state=0).fit(X.reshape(12, -1))
    KShape(n_clusters=2, max_iter=2, random_state=0).fit(X)
    TimeSeriesKMeans(n_clusters=2, metric="dtw", max_iter=2, random_state=0).fit(X)
    tiny = ["train.hidden=4", "train.latent=2", "train.epochs=1", "generate.n=4", "generate.eval_iterations=10"]
    _run_tsatlas(X.astype(np.float32), np.arange(12) % 2, 2, 0, {"set": "warm-up"}, tiny)
    # A pool worker ends without running atexit handlers, where Prefect stops the local API it started
    # in a subprocess: stop it when the worker ends, or it outlives the benchmark (and holds its output).
    from multiprocessing.util import Finalize

    from prefect.server.api.server import SubprocessASGIServer
    Finalize(None, lambda: [srv.stop() for srv in list(SubprocessASGIServer._instances.values())], exitpriority=10)


def run_one(method: str, name: str, seed: int, sets: list[str] | None = None) -> list[dict]:
    import torch
    torch.set_num_threads(1)
    X, y = load(name, raw=method == "tsatlas")
    k = int(y.max() + 1)
    row = {"set": name, "seed": seed, "n": len(X), "T": X.shape[1], "C": X.shape[2], "k": k}
    t0 = time.perf_counter()
    if method == "raw-kmeans":
        from sklearn.cluster import KMeans
        labels = KMeans(k, n_init=10, random_state=seed).fit_predict(X.reshape(len(X), -1))
    elif method == "kshape":
        from tslearn.clustering import KShape
        labels = KShape(n_clusters=k, random_state=seed).fit_predict(X.astype(np.float64))
    elif method == "dtw-kmeans":
        from tslearn.clustering import TimeSeriesKMeans
        band = {"sakoe_chiba_radius": max(1, X.shape[1] // 10)}
        labels = TimeSeriesKMeans(n_clusters=k, metric="dtw", max_iter=10, metric_params=band,
                                  random_state=seed).fit_predict(X.astype(np.float64))
    elif method == "tsatlas":
        return _run_tsatlas(X, y, k, seed, row, sets or [])
    else:
        raise ValueError(method)
    return [{**row, "method": method, "seconds": time.perf_counter() - t0, **_scores(y, labels)}]


class _ClusterClock(io.StringIO):
    """A run's stderr that notes when the cluster stage's "done" line arrives (`at`, perf_counter):
    the time a user waits for the clusters, Prefect's orchestration included."""

    at: float | None = None

    def write(self, s: str) -> int:
        if self.at is None and re.search(r"tsatlas: cluster +done", s):
            self.at = time.perf_counter()
        return super().write(s)


def _run_tsatlas(X: np.ndarray, y: np.ndarray, k: int, seed: int, row: dict, sets: list[str]) -> list[dict]:
    """The shipped pipeline as a user runs it: the labeled set written as a long table (raw
    values, an integer step column, the label column), then `tsatlas run --data FILE --set
    windows.length=T --set cluster.k=K` with every other key at its default (plus --set ones).
    One window per series; NMI/ARI of the per-series clusters against the labels. Seconds: the
    whole run (ingest to report, Prefect's orchestration included); wall_to_clusters, from the
    start until the run logs its cluster stage done (the wait for clusters, orchestration
    included); seconds_to_clusters, the stages up to clustering (the manifest's timings)."""
    import contextlib
    import tempfile

    import pandas as pd

    from flows.cli import main as tsatlas

    n, T, C = X.shape
    with tempfile.TemporaryDirectory() as tmp:
        frame = pd.DataFrame({"series_id": np.repeat([f"s{i:04d}" for i in range(n)], T),
                              "step": np.tile(np.arange(T), n),
                              **{f"c{c}": X[:, :, c].ravel() for c in range(C)}, "label": np.repeat(y, T)})
        data = f"{tmp}/{row['set']}.parquet"
        frame.to_parquet(data, index=False)
        args = ["run", "--data", data, "--root", f"{tmp}/art", "--seed", str(seed), "--json",
                "--set", f"windows.length={T}", "--set", f"cluster.k={k}", *[a for kv in sets for a in ("--set", kv)]]
        out, err = io.StringIO(), _ClusterClock()
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = tsatlas(args)
        seconds = time.perf_counter() - t0
        if code != 0:
            raise RuntimeError(f"tsatlas run failed on {row['set']}: {err.getvalue().strip().splitlines()[-1:]}")
        m = json.loads(out.getvalue())
        series = pd.read_parquet(m["stages"]["cluster"]["uri"].replace("assignments.parquet", "series_assignments.parquet"))
    truth = dict(zip([f"s{i:04d}" for i in range(n)], y))
    cl = m["metrics"]["cluster"]
    to_clusters = sum(m["timings"][s]["seconds"] for s in ("ingest", "windows", "train", "embed", "cluster"))
    return [{**row, "method": "tsatlas", "seconds": seconds, "seconds_to_clusters": to_clusters,
             "wall_to_clusters": err.at - t0,
             "train_seconds": m["metrics"]["train"]["seconds"],
             "epochs": m["metrics"]["train"]["epochs"], "stability_seed_ari": cl.get("stability_seed_ari"),
             **_scores(np.array([truth[s] for s in series["series_id"]]), series["cluster"].to_numpy())}]


METHODS = ["raw-kmeans", "kshape", "tsatlas", "dtw-kmeans"]


def table(rows: list[dict]) -> str:
    """Median ARI / NMI / seconds per set and method, then the mean over sets."""
    sets = [s for s in SETS if any(r["set"] == s for r in rows)]
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]

    def med(s: str, m: str, key: str) -> float | None:
        v = [r[key] for r in rows if r["set"] == s and r["method"] == m and key in r]
        return statistics.median(v) if v else None

    def fmt(v: float | None, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    head = "| set (n x T x C, k) | " + " | ".join(f"{m} ARI / NMI / s" for m in methods) + " |"
    lines = [head, "|" + "---|" * (len(methods) + 1)]
    for s in sets:
        r0 = next(r for r in rows if r["set"] == s)
        cells = [f"{fmt(med(s, m, 'ari'), '.3f')} / {fmt(med(s, m, 'nmi'), '.3f')} / {fmt(med(s, m, 'seconds'), '.1f')}"
                 for m in methods]
        lines.append(f"| {s} ({r0['n']} x {r0['T']} x {r0['C']}, {r0['k']}) | " + " | ".join(cells) + " |")
    means = []
    for m in methods:
        n = [med(s, m, "nmi") for s in sets]
        a = [med(s, m, "ari") for s in sets]
        t = [med(s, m, "seconds") for s in sets]
        ok = all(v is not None for v in n)
        means.append(f"{statistics.mean(a):.3f} / {statistics.mean(n):.3f} / {sum(t):.0f}" if ok else "-")
    lines.append("| **mean over sets** (time: sum) | " + " | ".join(means) + " |")
    counts = {m: len({r["seed"] for r in rows if r["method"] == m}) for m in methods}
    lines.append("\nSeeds per method: " + ", ".join(f"{m} {c}" for m, c in counts.items()) + ".")
    if {"tsatlas", "dtw-kmeans"} <= set(methods):
        ratio = [(s, med(s, "dtw-kmeans", "seconds"), med(s, "tsatlas", "seconds")) for s in sets]
        ratio = [(s, d, t) for s, d, t in ratio if d and t]
        lines.append("\nDTW k-means time / tsatlas time (the whole run): " + ", ".join(f"{s} {d / t:.1f}x" for s, d, t in ratio)
                     + f"; all sets together {sum(d for _, d, _ in ratio) / sum(t for _, _, t in ratio):.1f}x.")
        for key, what in (("wall_to_clusters", "from the start of `tsatlas run` until its cluster stage is done, "
                                               "Prefect's orchestration included"),
                          ("seconds_to_clusters", "the stages ingest to cluster alone")):
            to_c = [(med(s, "dtw-kmeans", "seconds"), med(s, "tsatlas", key)) for s in sets]
            if all(d and t for d, t in to_c):
                lines.append(f"DTW k-means time / tsatlas time to clusters ({what}; all sets together): "
                             f"{sum(d for d, _ in to_c) / sum(t for _, t in to_c):.1f}x.")
    classical = [m for m in ("raw-kmeans", "kshape", "dtw-kmeans") if m in methods]
    if "tsatlas" in methods and classical:
        wins = [s for s in sets if (t := med(s, "tsatlas", "nmi")) is not None
                and all((c := med(s, m, "nmi")) is not None and t > c for m in classical)]
        lines.append(f"tsatlas beats every classical baseline's median NMI on {len(wins)} of {len(sets)} sets"
                     + (f" ({', '.join(wins)})." if wins else "."))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", nargs="+", default=DEFAULT_SETS, choices=SETS)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--dtw-seeds", type=int, default=5, help="fewer to save time: DTW k-means is the slowest")
    ap.add_argument("--methods", nargs="+", default=["raw-kmeans", "kshape", "dtw-kmeans", "tsatlas"])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], metavar="STAGE.KEY=VALUE",
                    help="override a config key for the tsatlas rows (default: the shipped defaults)")
    ap.add_argument("--out", default=OUT)
    ap.add_argument("--table-only", action="store_true", help="append the table of the rows already in --out")
    args = ap.parse_args()

    if not args.table_only:
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        open(args.out, "w").close()
        jobs = [(m, s, seed) for seed in range(args.seeds) for s in args.sets for m in args.methods
                if not (m == "dtw-kmeans" and seed >= args.dtw_seeds)]
        # the longest first, so the pool is not left waiting on one at the end
        jobs.sort(key=lambda j: (j[0] != "dtw-kmeans", j[0] != "tsatlas"))
        with ProcessPoolExecutor(args.jobs, initializer=warm_up) as pool:
            futures = {pool.submit(run_one, *j, args.set): j for j in jobs}
            for f in as_completed(futures):
                for r in f.result():
                    print(json.dumps(r), flush=True)
                    with open(args.out, "a") as fh:
                        fh.write(json.dumps(r) + "\n")
    rows = [json.loads(line) for line in open(args.out) if line.strip()]
    from benchmarks.common import write_results
    write_results("Clustering vs classical baselines on UCR/UEA sets (benchmarks/clustering.py)",
                   f"Fits on one thread each, {args.jobs} at a time. Median over seeds. "
                   f"tsatlas: the shipped defaults{' with ' + ' '.join(args.set) if args.set else ''}.\n\n"
                   f"{table(rows)}\n")
    print(table(rows))


if __name__ == "__main__":
    sys.exit(main())
