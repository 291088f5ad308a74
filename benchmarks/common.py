"""Helpers for the benchmark scripts: machine description and appending to RESULTS.md."""

from __future__ import annotations

import datetime as dt
import os
import platform

import torch

RESULTS = os.path.join(os.path.dirname(__file__), "RESULTS.md")


def machine() -> str:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{platform.node() or 'host'}: {os.cpu_count()} CPU cores ({torch.get_num_threads()} torch threads), {gpu}, "
            f"Python {platform.python_version()}, torch {torch.__version__}")


def append_results(title: str, body: str) -> None:
    """Append a dated section to benchmarks/RESULTS.md."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    with open(RESULTS, "a", encoding="utf-8") as f:
        f.write(f"\n## {title} ({stamp})\n\nMachine: {machine()}\n\n{body.strip()}\n")
