"""TimeGAN on Stocks (windows of 24, stride 1) at a CPU budget: which variant of the three-phase
training gets furthest in a few minutes, scored along the way. One JSON line per variant on
stdout (and in --out).

    python benchmarks/timegan_budget.py --variants L3-1500-mmd30-ema99 L3-1500-mmd0-ema0 [--every 250]

Variant names, tokens joined by '-': L<layers>, <iterations per phase>, then optionally b<batch size>
(default 128), mmd<weight> (default: the shipped gan_mmd), ema<decay x 100> (ema0: off; default
the shipped 0.99), pc0 / pc (without / with the per-channel increments term; default: shipped, on
since 2026-11-29, so rows before then are pc0: their settings say), critic<weight> (the window
critic's weight; default the shipped gan_critic, 10 since 2026-11-29 19:30 UTC, 0 in rows before,
whose settings lack the key), s<training seed> (default 0),
gru / lstm (the networks' cell; default gru), linear (standardised data and a linear recovery
instead of the paper's [0, 1] scaling).
mmd0-critic0-ema0 is the paper's algorithm. Scores: the project's post-hoc discriminative |acc - 0.5|
(metrics.discriminative_score, 1,000 iterations at most, 2 seeds) on the paper's min-max scale
and on standardised channels (as `tsatlas run` scores), every --every joint iterations and at the
end; predictive MAE at the end; synthetic n = real n.
Training seconds exclude the scoring.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.generation import stocks  # noqa: E402
from tsatlas.gan import GANSchedule, sample_timegan, train_timegan  # noqa: E402
from tsatlas.metrics import discriminative_score, predictive_score, repeated  # noqa: E402


def parse(name: str) -> dict:
    out = {"layers": 3, "iterations": GANSchedule.iterations, "batch": 128, "mmd": GANSchedule.mmd, "ema": GANSchedule.ema,
           "seed": 0, "bounded": True, "cell": "gru", "mmd_channels": GANSchedule.mmd_channels, "critic": GANSchedule.critic}
    for tok in name.split("-"):
        if tok.isdigit():
            out["iterations"] = int(tok)
        elif tok in ("pc", "pc0"):
            out["mmd_channels"] = tok == "pc"
        elif tok in ("gru", "lstm"):
            out["cell"] = tok
        elif tok == "linear":
            out["bounded"] = False
        elif tok != "bounded":
            key = next(k for k in ("critic", "mmd", "ema", "L", "b", "s") if tok.startswith(k))
            val = float(tok[len(key):])
            field = {"L": "layers", "b": "batch", "s": "seed"}.get(key, key)
            out[field] = val / 100 if key == "ema" else (val if key in ("mmd", "critic") else int(val))
    return out


def scores(X: np.ndarray, S: np.ndarray) -> dict:
    """The discriminative score on the paper's scale (each channel min-max scaled, as stocks() gives
    it) and on the pipeline's (each channel standardised), which is stricter: the classifier barely
    sees a channel whose values sit near 0 in [0, 1] (Stocks' volume)."""
    mu, sd = X.reshape(-1, X.shape[2]).mean(0), X.reshape(-1, X.shape[2]).std(0)
    kw = dict(repeats=2, iterations=1000, seed=0)
    return {"discriminative": repeated(discriminative_score, X, S, **kw),
            "discriminative_standardised": repeated(discriminative_score, (X - mu) / sd, (S - mu) / sd, **kw)}


def step_sd_ratio(X: np.ndarray, S: np.ndarray) -> list[float]:
    """Per channel, the standard deviation of step-to-step increments, generated over real: below 1,
    the samples are smoother than the data (what a GRU classifier spots first)."""
    return [round(float(v), 3) for v in np.diff(S, axis=1).std((0, 1)) / np.diff(X, axis=1).std((0, 1))]


def run(name: str, every: int, save: str | None = None) -> dict:
    v = parse(name)
    X = stocks()
    curve, scoring = [], 0.0

    def check(it, model):
        nonlocal scoring
        t = time.perf_counter()
        S = sample_timegan(model, np.zeros(len(X), int), X.shape[1], seed=1)
        curve.append({"iteration": it, **scores(X, S), "step_sd": float(np.diff(S, axis=1).std()),
                      "step_sd_ratio": step_sd_ratio(X, S)})
        print(name, json.dumps(curve[-1]), file=sys.stderr, flush=True)
        scoring += time.perf_counter() - t

    t0 = time.perf_counter()
    sched = GANSchedule(iterations=v["iterations"], batch_size=v["batch"], mmd=v["mmd"], ema=v["ema"],
                        mmd_channels=v["mmd_channels"], critic=v["critic"])
    model, hist = train_timegan(X, None, layers=v["layers"], cell=v["cell"], seed=v["seed"], device="cpu", bounded=v["bounded"],
                                schedule=sched, check=check, check_every=every)
    seconds = time.perf_counter() - t0 - scoring
    if save:  # the weights, for a closer look (load with weights_only=True)
        os.makedirs(save, exist_ok=True)
        torch.save(model.state_dict(), os.path.join(save, f"{name}.pt"))
    S = sample_timegan(model, np.zeros(len(X), int), X.shape[1], seed=1)
    return {"name": name, "settings": v, "train_s": round(seconds, 1), "real_step_sd": float(np.diff(X, axis=1).std()),
            **scores(X, S), "predictive": repeated(predictive_score, X, S, repeats=2, iterations=1000, seed=0),
            "curve": curve, "last": hist[-1], "history": hist}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variants", nargs="+", default=["L3-1500", "L3-1500-mmd0-ema0"])
    ap.add_argument("--every", type=int, default=250, help="score every this many joint iterations")
    ap.add_argument("--save", help="folder to write each variant's final weights to (<variant>.pt)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "timegan_budget.jsonl"))
    args = ap.parse_args()
    for name in args.variants:
        row = run(name, args.every, args.save)
        print(json.dumps(row), flush=True)
        with open(args.out, "a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
