"""Clustering quality and time on labeled UCR/UEA sets that ship inside PyPI packages, against
the classical methods people would otherwise use.

    pip install -e ".[bench]"
    python -m benchmarks.clustering                 # 5 sets x 5 seeds, two fits at a time
    python -m benchmarks.clustering --sets GunPoint --seeds 1

Each set: train and test merged, every series z-normalised per channel, k = number of classes.
Methods, all in this run, on the same arrays:
  raw-kmeans   scikit-learn KMeans (10 restarts) on the flattened z-normalised series
  kshape       tslearn KShape
  dtw-kmeans   tslearn TimeSeriesKMeans(metric="dtw", max_iter=10, a Sakoe-Chiba band of 10% of the
               length), --dtw-seeds seeds
  tsatlas      the default train config (objective=contrastive) + the cluster stage's K-means
  tsatlas-recon  objective=reconstruction: the plain recurrent autoencoder
  tsatlas-idec   the same pretraining, then train.objective=idec's joint phase
The recon and idec rows come from one fit: the plain model is the idec fit's pretraining
checkpoint, restored through the estimator's resume path, so its time is the pretraining's.

Every fit runs on one CPU thread, --jobs of them at a time, after a warm-up in each worker (numba
compiles tslearn's DTW and KShape on first use: ~7 s that would otherwise land on one fit). One
JSON line per fit goes to --out as it finishes (a stopped run keeps what it did), and the table is
appended to RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
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


def load(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(n, T, C) z-normalised float32 series and their labels; train and test merged."""
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

    from tsatlas.autoencoder import RNNAutoencoder
    X = np.random.default_rng(0).standard_normal((12, 16, 1))
    KMeans(2, n_init=2, random_state=0).fit(X.reshape(12, -1))
    KShape(n_clusters=2, max_iter=2, random_state=0).fit(X)
    TimeSeriesKMeans(n_clusters=2, metric="dtw", max_iter=2, random_state=0).fit(X)
    RNNAutoencoder(hidden=4, latent=2, epochs=2, device="cpu").fit(X.astype(np.float32)).transform(X)


def run_one(method: str, name: str, seed: int, train: dict | None = None) -> list[dict]:
    import torch
    torch.set_num_threads(1)
    X, y = load(name)
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
        return _run_tsatlas(X, y, k, seed, row, train or {})
    else:
        raise ValueError(method)
    return [{**row, "method": method, "seconds": time.perf_counter() - t0, **_scores(y, labels)}]


def _run_tsatlas(X: np.ndarray, y: np.ndarray, k: int, seed: int, row: dict, train: dict) -> list[dict]:
    """Three rows: tsatlas (the train config as given: the defaults unless --set), and from one
    more fit tsatlas-recon and tsatlas-idec. The idec fit's pretraining is a plain reconstruction
    autoencoder; its last pretraining checkpoint, restored through the estimator's resume path,
    gives the recon row, whose time is the pretraining's."""
    import io

    import torch

    from tsatlas.trainer import make_estimator
    from tsatlas.autoencoder import RNNAutoencoder
    from tsatlas.config import ClusterConfig, TrainConfig

    cfg = TrainConfig(**{**train, "device": "cpu"})
    t0 = time.perf_counter()
    default = make_estimator(cfg, seed, ClusterConfig(k=k)).fit(X)  # what the train task fits
    rows = [{**row, "method": "tsatlas", "objective": cfg.objective, "epochs": len(default.history_),
             **_scores(y, _tsatlas_labels(default, X, k, seed)), "seconds": time.perf_counter() - t0}]

    params = make_estimator(cfg.model_copy(update={"objective": "idec"}), seed, ClusterConfig(k=k)).get_params()
    last_pretrain: list[bytes] = []

    def keep(state: dict) -> None:  # the last pretraining checkpoint, serialised as the train task does
        if state["phase"] == 1:
            buf = io.BytesIO()
            torch.save(state, buf)
            last_pretrain[:] = [buf.getvalue()]

    t0 = time.perf_counter()
    idec = RNNAutoencoder(**params).fit(X, on_epoch=keep)
    idec_labels = _tsatlas_labels(idec, X, k, seed)
    idec_seconds = time.perf_counter() - t0

    t1 = time.perf_counter()
    ckpt = torch.load(io.BytesIO(last_pretrain[0]), weights_only=True)
    plain = RNNAutoencoder(**{**params, "objective": "reconstruction"}).fit(X, resume=ckpt)
    plain_labels = _tsatlas_labels(plain, X, k, seed)
    pretrain_seconds = sum(h["seconds"] for h in idec.history_ if h["phase"] == 1)
    epochs = [sum(h["phase"] == p for h in idec.history_) for p in (1, 2)]
    return rows + [
        {**row, "method": "tsatlas-recon", "seconds": pretrain_seconds + time.perf_counter() - t1, "epochs": epochs[0],
         **_scores(y, plain_labels)},
        {**row, "method": "tsatlas-idec", "seconds": idec_seconds, "epochs": sum(epochs), **_scores(y, idec_labels)},
    ]


METHODS = ["raw-kmeans", "kshape", "tsatlas-recon", "tsatlas-idec", "tsatlas", "dtw-kmeans"]


def table(rows: list[dict]) -> str:
    """Median ARI / NMI / seconds per set and method, then the mean over sets."""
    sets = [s for s in SETS if any(r["set"] == s for r in rows)]
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]

    def med(s: str, m: str, key: str) -> float | None:
        v = [r[key] for r in rows if r["set"] == s and r["method"] == m]
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
        lines.append("\nDTW k-means time / tsatlas time: " + ", ".join(f"{s} {d / t:.1f}x" for s, d, t in ratio)
                     + f"; all sets together {sum(d for _, d, _ in ratio) / sum(t for _, _, t in ratio):.1f}x.")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", nargs="+", default=DEFAULT_SETS, choices=SETS)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--dtw-seeds", type=int, default=5, help="fewer to save time: DTW k-means is the slowest")
    ap.add_argument("--methods", nargs="+", default=["raw-kmeans", "kshape", "dtw-kmeans", "tsatlas"])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], metavar="train.KEY=VALUE",
                    help="override a train config key for the tsatlas rows (default: the shipped defaults)")
    ap.add_argument("--out", default=OUT)
    ap.add_argument("--table-only", action="store_true", help="append the table of the rows already in --out")
    args = ap.parse_args()

    from tsatlas.config import load_config
    train = load_config(sets=args.set).train.model_dump(exclude_defaults=True)
    if not args.table_only:
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        open(args.out, "w").close()
        jobs = [(m, s, seed) for seed in range(args.seeds) for s in args.sets for m in args.methods
                if not (m == "dtw-kmeans" and seed >= args.dtw_seeds)]
        # the longest first, so the pool is not left waiting on one at the end
        jobs.sort(key=lambda j: (j[0] != "dtw-kmeans", j[0] != "tsatlas"))
        with ProcessPoolExecutor(args.jobs, initializer=warm_up) as pool:
            futures = {pool.submit(run_one, *j, train): j for j in jobs}
            for f in as_completed(futures):
                for r in f.result():
                    print(json.dumps(r), flush=True)
                    with open(args.out, "a") as fh:
                        fh.write(json.dumps(r) + "\n")
    rows = [json.loads(line) for line in open(args.out) if line.strip()]
    from benchmarks.common import write_results
    write_results("Clustering vs classical baselines on UCR/UEA sets (benchmarks/clustering.py)",
                   f"Fits on one thread each, {args.jobs} at a time. Median over seeds. "
                   f"tsatlas train config: {train or 'the defaults'}.\n\n{table(rows)}\n")
    print(table(rows))


if __name__ == "__main__":
    sys.exit(main())
