"""Shared fixtures: a quiet temporary Prefect home, the Prefect test harness (one per
session: it starts a real local API on SQLite), and tiny seeded datasets."""

from __future__ import annotations

import os
import tempfile

_HOME = tempfile.mkdtemp(prefix="tsatlas-prefect-home-")
os.environ["PREFECT_HOME"] = _HOME
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

# CI must not depend on the luck of the draw: the default profile replays the same examples every
# run. `pytest --hypothesis-profile=explore` draws fresh ones (use it when changing windowing).
settings.register_profile("default", derandomize=True)
settings.register_profile("explore", derandomize=False, max_examples=1000)
settings.load_profile("default")

# Small enough to train in seconds on two CPU cores.
TINY = {
    "windows": {"length": 16, "stride": 8},
    "train": {"hidden": 8, "latent": 4, "epochs": 3, "batch_size": 32, "patience": 2, "min_batches": 1},
    "cluster": {"k": 2},
    "generate": {"n": 12, "eval_iterations": 20, "eval_repeats": 1},
}


# the same, as `tsatlas run` arguments
SETS = [a for s, kv in TINY.items() for k, v in kv.items() for a in ("--set", f"{s}.{k}={v}")]

def error_lines(stderr: str) -> list[str]:
    """stderr without the CLI's progress lines ("tsatlas: ingest   started", warnings): what is
    left of a failed run must be its one error line."""
    return [ln for ln in stderr.strip().splitlines() if not ln.startswith("tsatlas: ") or ln.startswith("tsatlas: error: ")]


# Debian's Chromium, headless, as root, with no network
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def pids_with_env(name: str, values: set[str]) -> list[int]:
    """Processes whose environment sets `name` to one of `values` (read from /proc)."""
    pids = []
    for d in os.listdir("/proc"):
        try:
            with open(f"/proc/{d}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except (OSError, ValueError):
            continue
        if any(e.startswith(f"{name}=".encode()) and e.split(b"=", 1)[1].decode(errors="replace") in values
               for e in env):
            pids.append(int(d))
    return pids


def chromium_page(playwright, executable: str, **kw):
    """A new page in headless Chromium, with console errors and page errors collected in page.errors."""
    browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
    page = browser.new_page(**kw)
    page.errors = []
    page.on("console", lambda msg: page.errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    return browser, page


def make_long(n_series: int = 6, steps: int = 160, channels: int = 2, seed: int = 0, label: bool = True,
              freq: str | None = "1h") -> pd.DataFrame:
    """Two kinds of series (slow sine, fast square wave) with noise; label says which."""
    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    rows = []
    for s in range(n_series):
        kind = s % 2
        base = np.sin(2 * np.pi * t / 40) if kind == 0 else np.sign(np.sin(2 * np.pi * t / 10))
        df = pd.DataFrame({"series_id": f"s{s}",
                           "timestamp": pd.date_range("2024-01-01", periods=steps, freq=freq, tz="UTC") if freq else t})
        for c in range(channels):
            df[f"ch{c}"] = (c + 1) * base + 0.1 * rng.standard_normal(steps) + 10 * c
        if label:
            df["label"] = "sine" if kind == 0 else "square"
        rows.append(df)
    return pd.concat(rows, ignore_index=True)


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture
def tiny_csv(tmp_path):
    path = tmp_path / "tiny.csv"
    make_long().to_csv(path, index=False)
    return str(path)


SECRET = "tsatlas-test-secret-do-not-log"


@pytest.fixture(scope="session")
def moto_server():
    from s3server import MotoServer

    server = MotoServer()
    yield server
    server.stop()


@pytest.fixture
def s3(moto_server, monkeypatch, request):
    """A fresh bucket on the live moto server; AWS_* variables point s3fs at it."""
    import uuid

    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "tsatlas-test-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.url)
    bucket = f"tsatlas-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=moto_server.url).create_bucket(Bucket=bucket)
    return bucket
