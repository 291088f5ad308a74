"""End to end with nobody at the keyboard: a real `prefect server start` on loopback, a process
work pool, `prefect deploy` from deployments/prefect.yaml, a flow run created through the REST
API with non-default parameters (as the UI's Run button does), a worker that runs it, the
parameter form in the real UI in headless Chromium, and `tsatlas serve`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import TINY, chromium_page
from s3server import free_port

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CHROMIUM = shutil.which("chromium")


def _api(url: str, body: dict | None = None, method: str | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None,
                                 method=method or ("POST" if body is not None else "GET"),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("prefect-server-home")
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": api, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_SERVER_API_HOST": "127.0.0.1", "PREFECT_SERVER_API_PORT": str(port), "PREFECT_LOGGING_LEVEL": "WARNING"}
    proc = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 120
        while _health(api) != 200:
            assert time.time() < deadline and proc.poll() is None, "prefect server did not start"
            time.sleep(0.5)
        yield {"api": api, "env": env, "ui": f"http://127.0.0.1:{port}"}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _health(api: str) -> int:
    try:
        return _api(f"{api}/health")[0]
    except OSError:
        return 0


def _prefect(server, *args, timeout=180):
    r = subprocess.run([str(BIN / "prefect"), "--no-prompt", *args], cwd=REPO, env=server["env"], capture_output=True,
                       text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return r.stdout


def test_deploy_run_from_the_api_and_the_ui_form(server, tiny_csv, tmp_path):
    api = server["api"]
    _prefect(server, "work-pool", "create", "tsatlas", "--type", "process")
    _prefect(server, "deploy", "--prefect-file", "deployments/prefect.yaml", "--all")
    status, dep = _api(f"{api}/deployments/name/atlas/atlas-nightly")
    assert status == 200 and dep["work_pool_name"] == "tsatlas"
    assert dep["schedules"][0]["schedule"]["cron"] == "0 2 * * *"
    for flow_name, name in (("backfill", "backfill"), ("score", "score")):
        assert _api(f"{api}/deployments/name/{flow_name}/{name}")[0] == 200

    schema = dep["parameter_openapi_schema"]
    assert {"ingest", "windows", "train", "cluster", "generate"} <= set(schema["properties"])
    windows = schema["definitions"]["WindowsConfig"]["properties"]
    assert windows["length"]["minimum"] == 2 and windows["length"]["description"]
    # bad values are refused by the API before a run exists
    for bad in ({"windows": {"length": 0}}, {"cluster": {"k": 1}}, {"train": {"cell": "transformer"}}):
        status, body = _api(f"{api}/deployments/{dep['id']}/create_flow_run", {"parameters": bad})
        assert status == 409, (bad, status, body)

    root = tmp_path / "art"
    params = {"data": tiny_csv, "root": str(root), **TINY, "train": {**TINY["train"], "epochs": 2}, "seed": 7}
    status, run = _api(f"{api}/deployments/{dep['id']}/create_flow_run", {"parameters": params})
    assert status == 201, run
    _prefect(server, "worker", "start", "--pool", "tsatlas", "--run-once", timeout=600)
    status, fr = _api(f"{api}/flow_runs/{run['id']}")
    assert fr["state"]["type"] == "COMPLETED", fr["state"]
    manifests = list(root.glob("runs/*/manifest.json"))
    assert len(manifests) == 1
    m = json.loads(manifests[0].read_text())
    assert m["config"]["seed"] == 7 and m["config"]["train"]["epochs"] == 2 and m["metrics"]["train"]["epochs"] == 2

    if not CHROMIUM:
        pytest.skip("chromium is not installed (.ci/run installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    status, arts = _api(f"{api}/artifacts/filter", {"artifacts": {"key": {"any_": ["tsatlas-figures"]},
                                                                  "flow_run_id": {"any_": [run["id"]]}}})
    assert status == 200 and len(arts) == 1
    with sync_playwright() as p:
        browser, page = chromium_page(p, CHROMIUM, viewport={"width": 1300, "height": 1800})
        page.goto(f"{server['ui']}/deployments/deployment/{dep['id']}/run")
        page.get_by_text("how series are cut into windows and scaled.").wait_for(timeout=60_000)
        text = page.inner_text("body")
        # the run's figures, as the UI shows its markdown artifact
        page.goto(f"{server['ui']}/artifacts/artifact/{arts[0]['id']}")
        page.wait_for_function("document.images.length >= 5 && Array.from(document.images).every(i => i.complete)",
                               timeout=60_000)
        widths = page.evaluate("Array.from(document.images).map(i => i.naturalWidth)")
        browser.close()
    assert len(widths) == 5 and min(widths) > 0
    for section in ("ingest", "windows", "train", "cluster", "generate"):
        assert f"\n{section} (Optional)" in text, section
    assert "Steps per window." in text and "Recurrent cell." in text


def test_serve_and_deploy_on_one_server_leave_each_other_alone(server):
    """`prefect deploy` ran in the test above; `tsatlas serve` against the same server registers
    its own deployments (name + "-serve") with the same schedules, time zone and concurrency
    limit, and on exit leaves the deployed ones as they were: not paused, same pool and limit."""
    api = server["api"]
    deployed = {n: _api(f"{api}/deployments/name/{f}/{n}")[1] for f, n in
                (("atlas", "atlas-nightly"), ("backfill", "backfill"), ("score", "score"))}
    assert all(d and d.get("id") for d in deployed.values()), "run after the deploy test"
    proc = subprocess.Popen([str(BIN / "tsatlas"), "serve"], env=server["env"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 120
        while True:
            status, served = _api(f"{api}/deployments/name/atlas/atlas-nightly-serve")
            if status == 200 and served["status"] == "READY" and _api(f"{api}/deployments/name/score/score-serve")[0] == 200:
                break
            assert time.time() < deadline and proc.poll() is None, "tsatlas serve did not register its deployments"
            time.sleep(0.5)
        assert served["entrypoint"] == "flows/pipeline.py:atlas" and served["work_pool_name"] is None
        sched = served["schedules"][0]["schedule"]
        assert sched["cron"] == "0 2 * * *" and sched["timezone"] == "UTC"
        assert served["concurrency_limit"] == 1 or (served.get("global_concurrency_limit") or {}).get("limit") == 1
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    for (f, n), before in zip((("atlas", "atlas-nightly"), ("backfill", "backfill"), ("score", "score")),
                              deployed.values()):
        after = _api(f"{api}/deployments/name/{f}/{n}")[1]
        assert after["id"] == before["id"] and after["updated"] == before["updated"], n
        assert not after["paused"] and after["work_pool_name"] == "tsatlas" and after["path"] == before["path"], n
    atlas = _api(f"{api}/deployments/name/atlas/atlas-nightly")[1]
    assert atlas["schedules"][0]["schedule"]["timezone"] == "UTC"
    assert atlas["concurrency_limit"] == 1 or (atlas.get("global_concurrency_limit") or {}).get("limit") == 1


def test_the_api_refuses_bad_flow_parameters_before_a_run_exists(server):
    api = server["api"]
    status, atlas = _api(f"{api}/deployments/name/atlas/atlas-nightly")
    status, bf = _api(f"{api}/deployments/name/backfill/backfill")
    status, sc = _api(f"{api}/deployments/name/score/score")
    for dep in (atlas, bf, sc):  # every parameter of every flow is described
        props = dep["parameter_openapi_schema"]["properties"]
        assert all(p.get("description") for p in props.values()), dep["name"]
    base = {"start": "2024-01-01", "end": "2024-02-01"}
    cases = [(atlas, {"seed": -1}), (atlas, {"ingest": {"start": "not-a-date"}}), (atlas, {"ingest": {"freq": "banana"}}),
             (bf, {**base, "every": "-5d"}), (bf, {**base, "max_concurrency": 0}), (bf, {**base, "max_concurrency": -1}),
             (bf, {"start": "not-a-date", "end": "2024-02-01"}), (sc, {"data": "x.csv", "device": "tpu"})]
    for dep, params in cases:
        status, body = _api(f"{api}/deployments/{dep['id']}/create_flow_run", {"parameters": params})
        assert status == 409, (dep["name"], params, status, body)
