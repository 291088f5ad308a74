"""A finished run's generator (latent, or TimeGAN from the run's stored weights) scored again by
the run's own evaluation (generation.evaluate) with several evaluation seeds and, for latent,
under each `generate.noise`: the same model every time, so rows differ by the seed and the
residual step alone (a run's own score is one seed of a noisy classifier).

    tsatlas run --data benchmarks/data/goog_stock.csv --root /tmp/st --set ingest.layout=single \\
        --set windows.stride=1 --set generate.method=timegan --set generate.evaluate=false
    python benchmarks/rescore.py --root /tmp/st [--run latest] [--seeds 0 1 2] [--noise none nearest]

One JSON line per (noise, seed) on stdout and in --out; a summary (mean ± s.d. over the seeds) on
stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import numpy as np  # noqa: E402

from tsatlas import catalog  # noqa: E402
from tsatlas.config import GenerateConfig  # noqa: E402
from tsatlas.generation import Generator, evaluate  # noqa: E402
from tsatlas.storage import Store  # noqa: E402

KEYS = ("discriminative", "discriminative_strict", "predictive", "predictive_real", "marginal", "autocorrelation",
        "nearest_real_ratio")


def load(root: str, run: str) -> tuple[dict, Generator]:
    store = Store(root)
    manifest = catalog.read_manifest(store, run)
    ref = lambda s: catalog.stage_ref(manifest, s)  # noqa: E731
    cfg = GenerateConfig(**manifest["config"]["generate"])
    win, _, _ = catalog.read_windows(store, ref("windows"))
    ae = catalog.read_model(store, ref("train"), "cpu")
    Z = catalog.read_embeddings(store, ref("embed")).z
    labels = catalog.read_assignments(store, ref("cluster"))
    gan = (catalog.read_timegan(store, ref("generate"), win.X.shape[2], int(labels.max()) + 1, cfg)
           if cfg.method == "timegan" else None)
    return manifest, Generator(cfg.method, cfg, manifest["config"]["seed"], ae, Z, win.X, labels, "cpu", gan=gan)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", required=True)
    ap.add_argument("--run", default="latest")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--noise", nargs="+", default=["none", "residual", "nearest"], help="latent runs")
    ap.add_argument("--strict", action="store_true", help="also the stricter discriminative score")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "rescore.jsonl"))
    args = ap.parse_args()
    manifest, gen = load(args.root, args.run)
    summary = {}
    for noise in args.noise if gen.method == "latent" else [gen.cfg.noise]:
        gen.cfg = gen.cfg.model_copy(update={"noise": noise, "eval_strict": args.strict})
        rows = []
        for seed in args.seeds:
            t = time.perf_counter()
            m = evaluate(gen, gen.X, gen.labels, gen.cfg, seed)
            row = {"run": manifest["run_id"], "data": manifest["data"], "method": gen.method, "noise": noise, "seed": seed,
                   **{k: m[k]["mean"] if isinstance(m.get(k), dict) else m.get(k) for k in KEYS},
                   "seconds": round(time.perf_counter() - t, 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")
        summary[noise] = {k: f"{np.mean([r[k] for r in rows]):.3f} ± {np.std([r[k] for r in rows]):.3f}"
                          for k in KEYS if rows[0].get(k) is not None}
    print(json.dumps(summary, indent=1), file=sys.stderr)


if __name__ == "__main__":
    main()
