"""Ingest throughput on many short series: `ingest_to_file` (read, validate, put on the grid,
write the series table) against reading the same input alone (pyarrow for Parquet, pandas for
CSV), in one run; medians of --runs. The inputs: one long Parquet file, one long CSV file, and a
folder of --files CSV files of one series each (the first --files series, without the id column).

    python benchmarks/ingest.py [--series 20000] [--steps 48] [--files 2000] [--runs 3] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from benchmarks.common import timed, write_results  # noqa: E402
from tsatlas.config import IngestConfig  # noqa: E402
from tsatlas.ingest import ingest_to_file  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--series", type=int, default=20_000)
    ap.add_argument("--steps", type=int, default=48)
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    when = pd.date_range("2024-01-01", periods=a.steps, freq="h", tz="UTC")
    df = pd.DataFrame({"series_id": np.repeat([f"s{i}" for i in range(a.series)], a.steps),
                       "timestamp": np.tile(when, a.series), "x": rng.normal(size=a.series * a.steps),
                       "y": rng.normal(size=a.series * a.steps)})
    rows = []
    with tempfile.TemporaryDirectory() as d:
        files = {"Parquet": os.path.join(d, "in.parquet"), "CSV": os.path.join(d, "in.csv")}
        df.to_parquet(files["Parquet"], index=False)
        df.to_csv(files["CSV"], index=False)
        folder = files[f"CSV folder ({a.files:,} files)"] = os.path.join(d, "folder")
        os.mkdir(folder)
        per_file = df.iloc[:a.files * a.steps].groupby("series_id", sort=False)
        for sid, g in per_file:
            g.drop(columns="series_id").to_csv(os.path.join(folder, f"{sid}.csv"), index=False)
        for kind, path in files.items():
            if kind == "Parquet":
                read, rows_in, series = (lambda p=path: pq.read_table(p).to_pandas()), len(df), a.series
            elif path == folder:
                names = sorted(os.listdir(folder))
                read, rows_in, series = (lambda: [pd.read_csv(os.path.join(folder, n)) for n in names]), a.files * a.steps, a.files
            else:
                read, rows_in, series = (lambda p=path: pd.read_csv(p)), len(df), a.series
            ours = timed(lambda p=path: ingest_to_file(p, IngestConfig(), os.path.join(d, "out.parquet")), a.runs, warmup=False)
            base = timed(read, a.runs, warmup=False)
            rows.append(f"| {kind} | {rows_in:,} | {series:,} | {ours:.2f} | {base:.2f} | {ours / base:.1f}x |")
            print(rows[-1], flush=True)
    table = ["| input | rows | series | ingest s | read alone s | ingest / read |", "|---|---|---|---|---|---|", *rows,
             "", f"{a.series:,} series of {a.steps} hourly steps, 2 channels, UTC timestamps; medians of {a.runs} runs. "
             "ingest = `ingest_to_file` (read, validate, regularise, write the series table; Parquet streamed); "
             "read alone = pyarrow's `read_table(...).to_pandas()` / `pd.read_csv` of the same file (of each file of the "
             "folder, one after the other)."]
    print("\n".join(table))
    if not a.no_write:
        write_results("Ingest of many short series (benchmarks/ingest.py)", "\n".join(table))


if __name__ == "__main__":
    main()
