"""Scaling curve: time and peak memory of every stage at 10k, 100k and 1M windows.

    python -m benchmarks.scaling                        # 10k and 100k x 3 runs, 1M x 1 run
    python -m benchmarks.scaling --sizes 10000 --runs 1

Data: one channel, series of 8,056 hourly steps (1,000 windows of 64 steps, stride 8, each),
written as a long Parquet table; n windows = n/1000 series. Each stage runs as its plain
function (`task.fn`) in a fresh child process, so its peak memory is its own: the child's peak
RSS minus its RSS after imports. Memory is reported against the float32 windows array
(n x 64 x 4 bytes); the baseline measured in the same run is one numpy copy of that array.
Training is one epoch of a small GRU (hidden 32, latent 8, batch 256): time per epoch is what
scales with n; the epoch count is a property of the data.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

LENGTH, STRIDE, PER_SERIES = 64, 8, 1000
STEPS = LENGTH + (PER_SERIES - 1) * STRIDE
STAGES = ["ingest", "windows", "train", "embed", "cluster", "generate"]


def rss_mb(field: str = "VmRSS") -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


class AnonPeak:
    """Peak anonymous resident memory (RssAnon: heap and other allocations, without the clean,
    reclaimable file pages of memory maps that VmHWM also counts), sampled every 10 ms."""

    def __init__(self) -> None:
        import threading
        self.peak = rss_mb("RssAnon")
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, rss_mb("RssAnon"))

    def stop(self) -> float:
        self._stop.set()
        self._t.join()
        return max(self.peak, rss_mb("RssAnon"))


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def make_data(path: str, n_windows: int) -> None:
    """A long Parquet table: S = n/1000 series of random-walk-plus-seasonal values, one channel."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    S = max(1, n_windows // PER_SERIES)
    rng = np.random.default_rng(0)
    t = np.arange(STEPS)
    with pq.ParquetWriter(path, pa.schema([("series_id", pa.string()), ("timestamp", pa.timestamp("s")),
                                           ("value", pa.float32())])) as w:
        for s in range(S):  # one series per row group
            period = rng.choice([24, 24 * 7, 12])
            v = np.sin(2 * np.pi * t / period) * rng.uniform(0.5, 2) + np.cumsum(rng.normal(0, 0.05, STEPS))
            w.write_table(pa.table({"series_id": pa.array(np.full(STEPS, f"s{s:05d}")),
                                    "timestamp": pa.array((np.datetime64("2020-01-01T00:00:00") + t.astype("timedelta64[h]")).astype("datetime64[s]")),
                                    "value": v.astype(np.float32)}))


def child(stage: str, root: str, data: str, shipped_train: bool = False) -> None:
    """Run one stage on the refs left in root/refs.json; print seconds and memory as JSON."""
    from tasks.cluster import cluster_task
    from tasks.embed import embed_task
    from tasks.generate import generate_task
    from tasks.ingest import ingest_task
    from tasks.windows import windows_task
    from tsatlas.config import ClusterConfig, GenerateConfig, IngestConfig, TrainConfig, WindowsConfig
    from tsatlas.catalog import StageRef
    from tsatlas.storage import Store
    from tsatlas.trainer import train_stage

    refs_path = os.path.join(root, "refs.json")
    refs = {k: StageRef.from_json(v) for k, v in json.load(open(refs_path)).items()} if os.path.exists(refs_path) else {}
    train = TrainConfig(epochs=1, batch_size=256, device="cpu")  # the shipped model and objective
    if not shipped_train:  # what the tables before 2026-11-28 measured: one step per recurrent step, plain MSE
        train = train.model_copy(update={"hidden": 32, "latent": 8, "patch": 1, "objective": "reconstruction"})
    base, anon_base = rss_mb(), rss_mb("RssAnon")
    anon = AnonPeak()
    t0 = time.perf_counter()
    if stage == "ingest":
        ref = ingest_task.fn(data, root, IngestConfig())
    elif stage == "windows":
        ref = windows_task.fn(refs["ingest"], root, WindowsConfig(length=LENGTH, stride=STRIDE))
    elif stage == "train":
        ref = train_stage(Store(root), refs["windows"], train, 0, None)
    elif stage == "embed":
        ref = embed_task.fn(refs["windows"], refs["train"], root, device="cpu")
    elif stage == "cluster":
        ref = cluster_task.fn(refs["embed"], root, ClusterConfig(k=8))
    else:
        ref = generate_task.fn(refs["windows"], refs["train"], refs["embed"], refs["cluster"], root,
                               GenerateConfig(n=100, evaluate=False), 0, device="cpu")
    seconds = time.perf_counter() - t0
    anon_peak = anon.stop()
    refs[stage] = ref
    json.dump({k: v.to_json() for k, v in refs.items()}, open(refs_path, "w"))
    print(json.dumps({"stage": stage, "seconds": seconds, "base_mb": base, "peak_mb": peak_mb(),
                      "anon_base_mb": anon_base, "anon_peak_mb": anon_peak}))


def copy_baseline(n: int, runs: int = 3) -> float:
    """Median seconds of one numpy copy of a float32 (n, 64, 1) array."""
    import numpy as np

    from benchmarks.common import timed
    a = np.random.default_rng(0).standard_normal((n, LENGTH, 1), dtype=np.float32)
    return timed(a.copy, runs, warmup=False)


def run_size(n: int, runs: int, shipped_train: bool = False) -> dict:
    out: dict = {"n": n, "array_mb": n * LENGTH * 4 / 2**20, "copy_s": copy_baseline(n), "stages": {}}
    with tempfile.TemporaryDirectory() as d:
        data = os.path.join(d, "series.parquet")
        make_data(data, n)
        out["input_rows"] = (n // PER_SERIES) * STEPS
        for r in range(runs):
            root = os.path.join(d, f"root{r}")
            os.makedirs(root)
            for stage in STAGES:
                p = subprocess.run([sys.executable, "-m", "benchmarks.scaling", "--child", stage, "--root", root,
                                    "--data", data] + (["--shipped-train"] if shipped_train else []),
                                   capture_output=True, text=True)
                if p.returncode:
                    raise RuntimeError(f"{stage} at n={n}: {p.stderr[-2000:]}")
                res = json.loads(p.stdout.strip().splitlines()[-1])
                out["stages"].setdefault(stage, []).append(res)
                print(n, r, stage, f"{res['seconds']:.2f}s", f"+{res['peak_mb'] - res['base_mb']:.0f} MB", flush=True)
    return out


def table(results: list[dict]) -> str:
    """Per size and stage: median time, time per window, peak memory, and memory against the
    windows array, both in total and as the growth from the previous size (which strips the
    fixed cost of the libraries' buffers and thread pools)."""
    lines = ["| windows | input rows | array MB | stage | median s | us / window | peak MB above imports | "
             "x array | growth from previous size, x array growth | peak anonymous MB above imports | x array |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    prev: dict[str, float] = {}
    prev_array = None
    for res in results:
        n = res["n"]
        for stage, rows in res["stages"].items():
            s = statistics.median(r["seconds"] for r in rows)
            m = statistics.median(r["peak_mb"] - r["base_mb"] for r in rows)
            growth = f"{(m - prev[stage]) / (res['array_mb'] - prev_array):.2f}" if stage in prev else "-"
            a = [r["anon_peak_mb"] - r["anon_base_mb"] for r in rows if "anon_peak_mb" in r]
            anon = f"{statistics.median(a):.0f} | {statistics.median(a) / res['array_mb']:.1f}" if a else "- | -"
            lines.append(f"| {n:,} | {res['input_rows']:,} | {res['array_mb']:.0f} | {stage} | {s:.2f} | "
                         f"{1e6 * s / n:.1f} | {m:.0f} | {m / res['array_mb']:.1f} | {growth} | {anon} |")
            prev[stage] = m
        prev_array = res["array_mb"]
        lines.append(f"| {n:,} | | | *numpy copy of the array (baseline)* | {res['copy_s']:.3f} | "
                     f"{1e6 * res['copy_s'] / n:.2f} | | | | | |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--runs-large", type=int, default=1, help="runs at 1M windows and above")
    ap.add_argument("--child", choices=STAGES)
    ap.add_argument("--root")
    ap.add_argument("--data")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "scaling.json"))
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--shipped-train", action="store_true",
                    help="train with the shipped train defaults (patch=auto, objective=contrastive) instead of GRU 32/8, "
                         "patch 1, plain reconstruction, which the earlier tables measured")
    ap.add_argument("--table-only", action="store_true", help="print the table of the results already in --out")
    a = ap.parse_args()
    if a.table_only:
        print(table(json.load(open(a.out))))
        return
    if a.child:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
        child(a.child, a.root, a.data, a.shipped_train)
        return
    results = [run_size(n, a.runs_large if n >= 1_000_000 else a.runs, a.shipped_train) for n in a.sizes]
    print(table(results))
    if not a.no_write:
        os.makedirs(os.path.dirname(a.out), exist_ok=True)
        json.dump(results, open(a.out, "w"), indent=1)
        from benchmarks.common import write_results
        write_results("Scaling curve (benchmarks/scaling.py)",
                       f"Length {LENGTH}, stride {STRIDE}, one channel; train = one epoch of GRU 32/8, batch 256, "
                       f"{'the shipped patch (auto) and objective (contrastive)' if a.shipped_train else 'patch 1, reconstruction'}, "
                       f"on the CPU; cluster k=8 (MiniBatchKMeans above 50k windows); generate 100 latent samples, "
                       f"no evaluation. Each stage in a fresh process; memory = peak RSS (VmHWM) minus RSS after "
                       f"imports; anonymous = the same for RssAnon sampled every 10 ms, i.e. without the clean file "
                       f"pages of the windows memory map, which the kernel can drop at any time.\n\n"
                       f"{table(results)}\n")


if __name__ == "__main__":
    main()
