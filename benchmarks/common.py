"""Helpers for the benchmark scripts: machine description and writing their section of RESULTS.md."""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import statistics
import time

import numpy as np
import torch

RESULTS = os.path.join(os.path.dirname(__file__), "RESULTS.md")


def timed(fn, runs: int, warmup: bool = True) -> float:
    """Median seconds of `runs` calls of fn (after one unmeasured call when `warmup`)."""
    if warmup:
        fn()
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def machine() -> str:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{platform.node() or 'host'}: {os.cpu_count()} CPU cores ({torch.get_num_threads()} torch threads), {gpu}, "
            f"Python {platform.python_version()}, torch {torch.__version__}")


def write_windows(X: np.ndarray, path: str, label: np.ndarray | None = None) -> None:
    """Windows (n, T, C) as a long Parquet table `tsatlas run` reads: one series per window
    (series_id 0..n-1), `step`, channels c0..c{C-1}, and `label` when given (one per window)."""
    import pandas as pd

    n, T, C = X.shape
    cols = {"series_id": np.repeat(np.arange(n), T), "step": np.tile(np.arange(T), n),
            **{f"c{c}": X[:, :, c].ravel() for c in range(C)}}
    if label is not None:
        cols["label"] = np.repeat(label, T)
    pd.DataFrame(cols).to_parquet(path, index=False)


def replace_section(text: str, title: str, section: str) -> str:
    """`text` with the `## {title}` section (up to the next `## ` heading) replaced by `section`,
    or `section` appended when there is none. A date after the title in the old heading is ignored."""
    pattern = re.compile(rf"^## {re.escape(title)}( \(.*\))?\n.*?(?=^## |\Z)", re.M | re.S)
    if pattern.search(text):
        return pattern.sub(lambda _: section, text, count=1)
    return text.rstrip() + "\n\n" + section


def write_results(title: str, body: str) -> None:
    """Replace this benchmark's section of benchmarks/RESULTS.md with the latest run (history: git)."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = f"## {title}\n\n{stamp}. Machine: {machine()}\n\n{body.strip()}\n\n"
    with open(RESULTS, encoding="utf-8") as f:
        text = f.read()
    with open(RESULTS, "w", encoding="utf-8") as f:
        f.write(replace_section(text, title, section).rstrip() + "\n")
