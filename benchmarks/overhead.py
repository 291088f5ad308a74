"""The cost of orchestration: the atlas flow through Prefect (ephemeral API, in process)
against the very same stage functions called as plain functions (`task.fn`), each run into a
fresh store root so every stage computes.

    python benchmarks/overhead.py [--runs 3] [--epochs 10] [--cli]

--cli: `tsatlas run` as typed, each a fresh process, without PREFECT_API_URL (it starts a temporary
Prefect API for itself) against with a `prefect server start` already up on loopback, the two
alternating.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
USER_ENV = dict(os.environ)  # for --cli: as the user's shell has it
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="tsatlas-bench-prefect-"))
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def table(what: str, times: dict[str, list[float]]) -> str:
    """One row per path: its median and every run, in seconds."""
    runs = len(next(iter(times.values())))
    rows = "".join(f"| {name} | {statistics.median(t):.2f} | {', '.join(f'{x:.2f}' for x in t)} |\n"
                   for name, t in times.items())
    return f"| {what} | median s ({runs} runs) | runs |\n|---|---|---|\n" + rows


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--cli", action="store_true", help="tsatlas run processes, without and with a server up")
    p.add_argument("--no-write", action="store_true")
    a = p.parse_args()
    sets = [f"train.epochs={a.epochs}", "train.patience=1000", "generate.eval_iterations=100"]
    if a.cli:
        return cli(a, sets)

    from flows.pipeline import atlas
    from tasks.cluster import cluster_task
    from tasks.embed import embed_task
    from tasks.generate import generate_task
    from tasks.ingest import ingest_task
    from tasks.manifest import manifest_task
    from tasks.report import report_task
    from tasks.train import train_task
    from tasks.windows import windows_task
    from tsatlas.config import load_config
    from tsatlas.ingest import BUNDLED_DATA, resolve_data

    cfg = load_config(sets=sets)
    data = resolve_data(BUNDLED_DATA)
    kw = cfg.sections()

    def plain(root: str) -> None:
        ing = ingest_task.fn(data, root, cfg.ingest)
        win = windows_task.fn(ing, root, cfg.windows)
        model = train_task.fn(win, root, cfg.train, cfg.seed)
        emb = embed_task.fn(win, model, root)
        clu = cluster_task.fn(emb, root, cfg.cluster, cfg.seed)
        syn = generate_task.fn(win, model, emb, clu, root, cfg.generate, cfg.seed)
        refs = {"ingest": ing, "windows": win, "train": model, "embed": emb, "cluster": clu, "generate": syn}
        report = report_task.fn("plain", refs, cfg.seed, root)
        manifest_task.fn("plain", data, cfg, refs, report, root)

    def flow(root: str) -> None:
        atlas(data=data, root=root, **kw)

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        flow(d)  # starts the ephemeral API and warms imports
    first = time.perf_counter() - t0
    times: dict[str, list[float]] = {"plain": [], "prefect": []}
    for _ in range(a.runs):
        for name, fn in (("plain", plain), ("prefect", flow)):
            with tempfile.TemporaryDirectory() as d:
                t = time.perf_counter()
                fn(d)
                times[name].append(time.perf_counter() - t)
            print(name, round(times[name][-1], 2), flush=True)
    mp, mf = statistics.median(times["plain"]), statistics.median(times["prefect"])
    body = (table("path", {"stages as plain functions": times["plain"], "atlas flow through Prefect": times["prefect"]})
            + f"\nOrchestration cost: {mf - mp:.2f} s ({(mf - mp) / mp:.0%}); both paths run the same eight stage "
            f"functions (six stages, report, manifest). First flow call of the process (ephemeral API "
            f"start + imports): {first:.1f} s. Bundled data, train.epochs={a.epochs} (no early stop), "
            f"generate.eval_iterations=100, a fresh root per run.")
    print(body)
    if not a.no_write:
        from benchmarks.common import write_results
        write_results("Orchestration overhead (benchmarks/overhead.py)", body)


def cli(a: argparse.Namespace, sets: list[str]) -> None:
    from benchmarks.common import BIN, prefect_server, write_results

    def run(env: dict) -> float:
        with tempfile.TemporaryDirectory() as root:
            t = time.perf_counter()
            subprocess.run([os.path.join(BIN, "tsatlas"), "run", "--root", root, *[x for kv in sets for x in ("--set", kv)]],
                           env=env, check=True, capture_output=True)
            return time.perf_counter() - t

    times: dict[str, list[float]] = {"temporary": [], "server": []}
    with prefect_server(USER_ENV) as (_, server_env):
        for _ in range(a.runs):
            for name, env in (("temporary", USER_ENV), ("server", server_env)):
                times[name].append(run(env))
                print(name, round(times[name][-1], 2), flush=True)
    mt, ms = statistics.median(times["temporary"]), statistics.median(times["server"])
    body = (table("`tsatlas run`", {"without PREFECT_API_URL (a temporary API per run)": times["temporary"],
                                    "with a `prefect server start` already up": times["server"]})
            + f"\nThe temporary API costs {mt - ms:.1f} s a run. Each run a fresh `tsatlas run` process (imports "
            f"included), the two alternating; bundled data, train.epochs={a.epochs} (no early stop), "
            f"generate.eval_iterations=100, a fresh root per run.")
    print(body)
    if not a.no_write:
        write_results("`tsatlas run` with and without a Prefect server up (benchmarks/overhead.py --cli)", body)


if __name__ == "__main__":
    main()
