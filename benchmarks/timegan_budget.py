"""TimeGAN on Stocks (windows of 24, stride 1) at a CPU budget: which variant of the three-phase
training gets furthest in a few minutes. One JSON line per variant on stdout (and in --out).

    python benchmarks/timegan_budget.py [--variants bounded-L3-400 linear-L3-400 bounded-L1-1200 bounded-L1-3000]

Variant names: bounded|linear (the paper's [0, 1] scaling and sigmoid recovery, or standardised
data with a linear recovery), L<layers>, <iterations per phase>, optionally b<batch size> (default 128). Scores: the paper's post-hoc
discriminative |acc - 0.5| and predictive MAE, 1,000 iterations, 2 seeds, synthetic n = real n.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import numpy as np  # noqa: E402

from benchmarks.generation import stocks  # noqa: E402
from tsatlas.gan import GANSchedule, sample_timegan, train_timegan  # noqa: E402
from tsatlas.metrics import discriminative_score, predictive_score, repeated  # noqa: E402


def run(name: str) -> dict:
    scaling, layers, iterations, *rest = name.split("-")
    batch = int(rest[0][1:]) if rest else 128  # e.g. bounded-L3-1000-b256
    X = stocks()
    t0 = time.perf_counter()
    model, hist = train_timegan(X, None, layers=int(layers[1:]), seed=0, device="cpu", bounded=scaling == "bounded",
                                schedule=GANSchedule(iterations=int(iterations), batch_size=batch))
    seconds = time.perf_counter() - t0
    S = sample_timegan(model, np.zeros(len(X), int), X.shape[1], seed=1)
    kw = dict(repeats=2, iterations=1000, seed=0)
    return {"name": name, "train_s": round(seconds, 1), "discriminative": repeated(discriminative_score, X, S, **kw),
            "predictive": repeated(predictive_score, X, S, **kw), "last": hist[-1], "history": hist}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variants", nargs="+", default=["bounded-L3-400", "linear-L3-400", "bounded-L1-1200"])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "timegan_budget.jsonl"))
    args = ap.parse_args()
    for name in args.variants:
        row = run(name)
        print(json.dumps(row), flush=True)
        with open(args.out, "a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
