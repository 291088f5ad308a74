"""Helpers for the benchmark scripts: machine description and writing their section of RESULTS.md."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

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


# -- a real Prefect server on loopback, for the benchmarks that measure runs as deployments or
#    `tsatlas run` against a server that is already up ---------------------------------------

BIN = os.path.dirname(sys.executable)


def api(url: str, body: dict | None = None) -> tuple[int, object]:
    """One REST call; 429 and 503 (the server's SQLite busy) are retried with backoff, as Prefect's client does."""
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    for attempt in range(6):
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            status, payload = e.code, json.loads(e.read() or b"null")
        except OSError:
            return 0, None
        if status not in (429, 503):
            break
        time.sleep(2 ** attempt)
    return status, payload


def wait_for(what: str, ready, proc: subprocess.Popen, seconds: float = 180) -> object:
    """ready()'s first true value, polled while `proc` lives, for at most `seconds`."""
    deadline = time.time() + seconds
    while not (got := ready()):
        if proc.poll() is not None or time.time() > deadline:
            raise RuntimeError(f"{what} did not come up")
        time.sleep(0.5)
    return got


@contextlib.contextmanager
def started(argv: list[str], env: dict, cwd: str | None = None) -> Iterator[subprocess.Popen]:
    """A background process (its own process group), stopped on exit: SIGTERM, SIGKILL after 30 s."""
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def prefect_server(base_env: dict | None = None) -> Iterator[tuple[str, dict]]:
    """(API URL, the environment that points at it): `prefect server start` on loopback with a fresh home."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api"
    with tempfile.TemporaryDirectory() as home:
        env = {**(base_env or os.environ), "PREFECT_HOME": home, "PREFECT_API_URL": url,
               "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "WARNING"}
        argv = [os.path.join(BIN, "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
        with started(argv, env) as proc:
            wait_for("prefect server", lambda: api(f"{url}/health")[0] == 200, proc)
            yield url, env
