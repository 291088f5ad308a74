"""What the generation metrics cost within a run: `tsatlas run` at its defaults (in process, after
a warm-up run that starts Prefect's local API) on data of several window lengths and sizes, each
run into a fresh store so every stage computes. Per case, medians over --runs of: the whole run
(wall), the stages' own seconds (the manifest's timings, ingest to generate), the evaluation's
seconds (`metrics.generate.eval_seconds`), and the evaluation's share of each.

    python benchmarks/eval_share.py [--runs 3] [--cases bundled GunPoint OSULeaf] [--cli]

--cli runs each as a user types it instead: `tsatlas run` in a fresh process (Python's imports
and Prefect's start-up inside the run's wall time), no warm-up.

The post-hoc fits run side by side on torch's threads (`eval.workers`): run it as a user runs
tsatlas, with torch's default threads, on a quiet machine.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import numpy as np  # noqa: E402

from benchmarks.common import write_results, write_windows  # noqa: E402

USER_ENV = dict(os.environ)  # for --cli runs: benchmarks.clustering (the labeled sets) pins OMP threads to 1 on import
STOCKS = os.path.join(os.path.dirname(__file__), "data", "goog_stock.csv")
CASES = ["bundled", "stocks", "UnitTest", "GunPoint", "OSULeaf", "ACSF1"]


def _labeled(name: str, tmp: str) -> list[str]:
    """A labeled set (benchmarks/clustering.py) as a long table: one window per series."""
    from benchmarks.clustering import load

    X, y = load(name, raw=True)
    T = X.shape[1]
    path = f"{tmp}/{name}.parquet"
    write_windows(X, path)
    return ["--data", path, "--set", f"windows.length={T}", "--set", f"cluster.k={len(np.unique(y))}"]


def args_for(case: str, tmp: str) -> list[str]:
    if case == "bundled":
        return []
    if case == "stocks":  # TimeGAN's Stocks: windows of 24, stride 1
        return ["--data", STOCKS, "--set", "ingest.layout=single", "--set", "windows.stride=1"]
    return _labeled(case, tmp)


def run_once(args: list[str], cli: bool = False) -> dict:
    with tempfile.TemporaryDirectory() as root:
        argv = ["run", *args, "--root", root, "--json"]
        t0 = time.perf_counter()
        if cli:
            done = subprocess.run([sys.executable, "-m", "flows.cli", *argv], capture_output=True, text=True, check=True,
                                  env=USER_ENV, cwd=os.path.join(os.path.dirname(__file__), ".."))
            wall, text = time.perf_counter() - t0, done.stdout
        else:
            from flows.cli import main as tsatlas

            out = io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
                assert tsatlas(argv) == 0
            wall, text = time.perf_counter() - t0, out.getvalue()
        m = json.loads(text)
    g = m["metrics"]["generate"]
    stages = sum(t["seconds"] for t in m["timings"].values())
    n, T, C = m["summary"]["windows"]["shape"]
    return {"shape": [n, T, C], "wall": wall, "stages": stages, "generate": m["timings"]["generate"]["seconds"],
            "eval": g["eval_seconds"], "train": m["timings"]["train"]["seconds"], "plan": g["eval"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cases", nargs="+", default=CASES, choices=CASES)
    ap.add_argument("--cli", action="store_true", help="each run a fresh `tsatlas run` process, as typed")
    ap.add_argument("--no-write", action="store_true", help="print the table, leave RESULTS.md alone")
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if not a.cli:  # Prefect's API starts here
            run_once(["--set", "train.epochs=1", "--set", "generate.eval_iterations=10"])
        for case in a.cases:
            args = args_for(case, tmp)
            runs = [run_once(args, a.cli) for _ in range(a.runs)]
            med = {k: statistics.median(r[k] for r in runs) for k in ("wall", "stages", "generate", "eval", "train")}
            row = {"case": case, "shape": runs[0]["shape"], "plan": runs[0]["plan"], **med,
                   "share_wall": med["eval"] / med["wall"], "share_stages": med["eval"] / med["stages"]}
            print(json.dumps(row), flush=True)
            rows.append(row)
    lines = ["| case (windows x T x C) | run, wall s | stages s | train s | evaluation s | share of the run | "
             "share of the stages | plan: windows, patch, workers |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        p = r["plan"]
        lines.append(f"| {r['case']} ({' x '.join(map(str, r['shape']))}) | {r['wall']:.1f} | {r['stages']:.1f} | "
                     f"{r['train']:.1f} | {r['eval']:.1f} | {r['share_wall']:.0%} | {r['share_stages']:.0%} | "
                     f"{p['windows']}, {p['patch']}, {p.get('workers', 1)} |")
    how, rest = (("each a fresh `tsatlas run` process", "Python's imports, Prefect's start-up and orchestration") if a.cli
                 else ("in process after a warm-up (Prefect's API already up)", "Prefect's orchestration"))
    body = "\n".join(lines) + (f"\n\nMedians of {a.runs} runs per case; `tsatlas run` at its defaults, {how}, a fresh "
                               "store per run. Stages: the manifest's timings, ingest to generate (the report, "
                               f"{rest} are the rest of the wall time).")
    print(body)
    if not a.no_write:
        write_results("Evaluation's share of a run (benchmarks/eval_share.py" + (" --cli)" if a.cli else ")"), body)


if __name__ == "__main__":
    main()
