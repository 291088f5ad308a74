"""What the generation metrics cost within a run: `tsatlas run` at its defaults (in process, after
a warm-up run that starts Prefect's local API) on data of several window lengths and sizes, each
run into a fresh store so every stage computes. Per case, medians over --runs of: the whole run
(wall), the stages' own seconds (the manifest's timings, ingest to generate), the evaluation's
seconds (`metrics.generate.eval_seconds`), and the evaluation's share of each.

    python benchmarks/eval_share.py [--runs 3] [--cases bundled GunPoint OSULeaf] [--cli | --served]

--cli runs each as a user types it instead: `tsatlas run` in a fresh process (Python's imports
and Prefect's start-up inside the run's wall time), no warm-up. --served runs each as a deployment's
run: a `prefect server start` on loopback, `tsatlas serve` against it, each run of its atlas-serve
deployment created through the REST API (as the UI's Run button does); Prefect starts
every such run in a fresh Python process, so its wall time is read from the run's own states, from
Pending (the runner has taken it) to Completed, without the runner's polling delay before that.

The post-hoc fits run side by side on torch's threads (`eval.workers`): run it as a user runs
tsatlas, with torch's default threads, on a quiet machine.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import numpy as np  # noqa: E402

from benchmarks.common import BIN, api, prefect_server, started, wait_for, write_results, write_windows  # noqa: E402

USER_ENV = dict(os.environ)  # for --cli runs: benchmarks.clustering (the labeled sets) pins OMP threads to 1 on import
STOCKS = os.path.join(os.path.dirname(__file__), "data", "goog_stock.csv")
CASES = ["bundled", "stocks", "UnitTest", "GunPoint", "OSULeaf", "ACSF1", "ACSF1x4"]
REPO = os.path.join(os.path.dirname(__file__), "..")


def _labeled(name: str, tmp: str, stretch: int = 1) -> list[str]:
    """A labeled set (benchmarks/clustering.py) as a long table: one window per series, each
    series interpolated to `stretch` times its length (the longest windows on offer are 1,460 steps)."""
    from benchmarks.clustering import load

    X, y = load(name, raw=True)
    if stretch > 1:
        t, T = np.linspace(0, 1, X.shape[1]), X.shape[1] * stretch
        X = np.stack([[np.interp(np.linspace(0, 1, T), t, ch) for ch in x.T] for x in X]).transpose(0, 2, 1).astype(np.float32)
    T = X.shape[1]
    path = f"{tmp}/{name}x{stretch}.parquet"
    write_windows(X, path)
    return ["--data", path, "--set", f"windows.length={T}", "--set", f"cluster.k={len(np.unique(y))}"]


def args_for(case: str, tmp: str) -> list[str]:
    if case == "bundled":
        return []
    if case == "stocks":  # TimeGAN's Stocks: windows of 24, stride 1
        return ["--data", STOCKS, "--set", "ingest.layout=single", "--set", "windows.stride=1"]
    if case == "ACSF1x4":  # ACSF1's series stretched to 5,840 steps
        return _labeled("ACSF1", tmp, stretch=4)
    return _labeled(case, tmp)


@contextlib.contextmanager
def served() -> Iterator[tuple[str, str]]:
    """(API URL, deployment id): a `prefect server start` on loopback with a fresh home, and `tsatlas
    serve` against it (its atlas-serve deployment), both stopped on exit."""
    with prefect_server(USER_ENV) as (url, env), started([os.path.join(BIN, "tsatlas"), "serve"], env, REPO) as proc:
        name = f"{url}/deployments/name/atlas/atlas-serve"
        dep = wait_for("tsatlas serve", lambda: api(name)[1] if api(name)[0] == 200 else None, proc)
        yield url, dep["id"]


def _parameters(args: list[str], root: str) -> dict:
    """`tsatlas run` arguments (--data, --set) as the atlas flow's parameters."""
    from tsatlas.config import parse_set

    opts = dict(zip(args[::2], args[1::2]))
    sets = [v for k, v in zip(args[::2], args[1::2]) if k == "--set"]
    return {"root": root, **({"data": os.path.abspath(opts["--data"])} if "--data" in opts else {}), **parse_set(sets)}


def _served_run(server: tuple[str, str], args: list[str], root: str) -> tuple[float, dict]:
    """(seconds from Pending to Completed, the manifest) of one run of the served deployment."""
    url, dep = server
    status, run = api(f"{url}/deployments/{dep}/create_flow_run", {"parameters": _parameters(args, root)})
    if status != 201:
        raise RuntimeError(f"eval_share --served: creating a run answered {status}: {run}")
    while (state := api(f"{url}/flow_runs/{run['id']}")[1]["state"])["type"] not in ("COMPLETED", "FAILED", "CRASHED",
                                                                                        "CANCELLED"):
        time.sleep(0.2)
    if state["type"] != "COMPLETED":
        raise RuntimeError(f"eval_share --served: the run ended {state['type']}: {state.get('message')}")
    at = {st["type"]: datetime.fromisoformat(st["timestamp"]) for st in api(f"{url}/flow_run_states/?flow_run_id={run['id']}")[1]}
    (manifest,) = glob.glob(f"{root}/runs/*/manifest.json")
    with open(manifest) as f:
        return (at["COMPLETED"] - at["PENDING"]).total_seconds(), json.load(f)


def run_once(args: list[str], cli: bool = False, server: tuple[str, str] | None = None) -> dict:
    with tempfile.TemporaryDirectory() as root:
        argv = ["run", *args, "--root", root, "--json"]
        t0 = time.perf_counter()
        if server:
            wall, m = _served_run(server, args, root)
        elif cli:
            done = subprocess.run([sys.executable, "-m", "flows.cli", *argv], capture_output=True, text=True, check=True,
                                  env=USER_ENV, cwd=REPO)
            wall, m = time.perf_counter() - t0, json.loads(done.stdout)
        else:
            from flows.cli import main as tsatlas

            out = io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
                assert tsatlas(argv) == 0
            wall, m = time.perf_counter() - t0, json.loads(out.getvalue())
    g = m["metrics"]["generate"]
    stages = sum(t["seconds"] for t in m["timings"].values())
    n, T, C = m["summary"]["windows"]["shape"]
    return {"shape": [n, T, C], "wall": wall, "stages": stages, "generate": m["timings"]["generate"]["seconds"],
            "eval": g["eval_seconds"], "train": m["timings"]["train"]["seconds"], "plan": g["eval"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cases", nargs="+", default=CASES, choices=CASES)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--cli", action="store_true", help="each run a fresh `tsatlas run` process, as typed")
    mode.add_argument("--served", action="store_true", help="each run a served deployment's run, created through the API")
    ap.add_argument("--no-write", action="store_true", help="print the table, leave RESULTS.md alone")
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, (served() if a.served else contextlib.nullcontext()) as server:
        if not a.cli:  # Prefect's API starts here (in process), the disk's caches warm up (served)
            run_once(["--set", "train.epochs=1", "--set", "generate.eval_iterations=10"], server=server)
        for case in a.cases:
            args = args_for(case, tmp)
            runs = [run_once(args, a.cli, server) for _ in range(a.runs)]
            med = {k: statistics.median(r[k] for r in runs) for k in ("wall", "stages", "generate", "eval", "train")}
            row = {"case": case, "shape": runs[0]["shape"], "plan": runs[0]["plan"], **med,
                   "share_wall": med["eval"] / med["wall"], "share_stages": med["eval"] / med["stages"]}
            print(json.dumps(row), flush=True)
            rows.append(row)
    lines = ["| case (windows x T x C) | run, wall s | stages s | train s | evaluation s | share of the run | "
             "share of the stages | plan: windows, patch, hidden, batch, workers |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        p = r["plan"]
        lines.append(f"| {r['case']} ({' x '.join(map(str, r['shape']))}) | {r['wall']:.1f} | {r['stages']:.1f} | "
                     f"{r['train']:.1f} | {r['eval']:.1f} | {r['share_wall']:.0%} | {r['share_stages']:.0%} | "
                     f"{p['windows']}, {p['patch']}, {p.get('hidden', '-')}, {p.get('batch', 128)}, {p.get('workers', 1)} |")
    how, rest = (("`tsatlas run` at its defaults, each a fresh `tsatlas run` process",
                  "Python's imports, Prefect's start-up and orchestration") if a.cli else
                 ("the atlas flow at its defaults, each a run of a served deployment created through the REST API "
                  "(Prefect starts each in a fresh Python process), its wall time from Pending to Completed",
                  "the run process's start, Python's imports and Prefect's orchestration") if a.served else
                 ("`tsatlas run` at its defaults, in process after a warm-up (Prefect's API already up)",
                  "Prefect's orchestration"))
    body = "\n".join(lines) + (f"\n\nMedians of {a.runs} runs per case; {how}, a fresh "
                               "store per run. Stages: the manifest's timings, ingest to generate (the report, "
                               f"{rest} are the rest of the wall time).")
    print(body)
    if not a.no_write:
        write_results("Evaluation's share of a run (benchmarks/eval_share.py" + (" --cli)" if a.cli else " --served)" if a.served
                                                                              else ")"), body)


if __name__ == "__main__":
    main()
