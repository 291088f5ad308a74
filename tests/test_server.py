"""End to end with nobody at the keyboard: a real `prefect server start` on loopback, a process
work pool, `prefect deploy` from deployments/prefect.yaml, a flow run created through the REST
API with non-default parameters (as the UI's Run button does), a worker that runs it, the
parameter form in the real UI in headless Chromium, and `tsatlas serve`."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import TINY, chromium_page, make_long, pids_with_env
from s3server import free_port

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CHROMIUM = shutil.which("chromium")


def _api(url: str, body: dict | None = None, method: str | None = None) -> tuple[int, dict]:
    """One REST call; 429 and 503 (the server's SQLite busy under a loaded machine) are retried
    with backoff, as Prefect's own client does."""
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None,
                                 method=method or ("POST" if body is not None else "GET"),
                                 headers={"Content-Type": "application/json"})
    for attempt in range(6):
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            status, payload = e.code, json.loads(e.read() or b"null")
        if status not in (429, 503):
            break
        time.sleep(2 ** attempt)
    return status, payload


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
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


@pytest.fixture(scope="module")
def server(prefect_server):
    """The server as an operator leaves it after setting up once: a process work pool, the
    variable naming this checkout, and every deployment of deployments/prefect.yaml."""
    _prefect(prefect_server, "work-pool", "create", "tsatlas", "--type", "process")
    _prefect(prefect_server, "variable", "set", "tsatlas_dir", str(REPO))
    _prefect(prefect_server, "deploy", "--prefect-file", "deployments/prefect.yaml", "--all")
    return prefect_server


def _health(api: str) -> int:
    try:
        return _api(f"{api}/health")[0]
    except OSError:
        return 0


def _prefect(server, *args, timeout=180, cwd=REPO, stderr=False):
    r = subprocess.run([str(BIN / "prefect"), "--no-prompt", *args], cwd=cwd, env=server["env"], capture_output=True,
                       text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return r.stdout + r.stderr if stderr else r.stdout


def _first_run(server, tiny_csv, tmp_path) -> tuple[dict, dict]:
    """A run of atlas/atlas with non-default parameters, created through the REST API and run by
    a worker started in another directory (the pull step takes it to the checkout); kept in
    `server` for the test that runs it again."""
    dep = _api(f"{server['api']}/deployments/name/atlas/atlas")[1]
    params = {"data": tiny_csv, "root": str(tmp_path / "art"), **TINY, "train": {**TINY["train"], "epochs": 2}, "seed": 7}
    status, run = _api(f"{server['api']}/deployments/{dep['id']}/create_flow_run", {"parameters": params})
    assert status == 201, run
    _prefect(server, "worker", "start", "--pool", "tsatlas", "--run-once", timeout=600, cwd=tmp_path)
    status, fr = _api(f"{server['api']}/flow_runs/{run['id']}")
    assert fr["state"]["type"] == "COMPLETED", fr["state"]
    server["first_run"] = (dep["id"], params)
    return params, run


def test_deploy_run_from_the_api_and_the_ui_form(server, tiny_csv, tmp_path):
    api = server["api"]
    status, nightly = _api(f"{api}/deployments/name/atlas/atlas-nightly")
    assert status == 200 and nightly["work_pool_name"] == "tsatlas"
    assert nightly["schedules"][0]["schedule"]["cron"] == "0 2 * * *"
    for flow_name, name in (("backfill", "backfill"), ("score", "score")):
        assert _api(f"{api}/deployments/name/{flow_name}/{name}")[0] == 200
    status, dep = _api(f"{api}/deployments/name/atlas/atlas")
    # portable: the pull step reads the checkout's place from a variable when a run starts
    assert dep["pull_steps"] == [{"prefect.deployments.steps.set_working_directory":
                                  {"directory": "{{ prefect.variables.tsatlas_dir }}"}}]
    assert dep["job_variables"]["env"]["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == "30"

    schema = dep["parameter_openapi_schema"]
    assert {"ingest", "windows", "train", "cluster", "generate"} <= set(schema["properties"])
    windows = schema["definitions"]["WindowsConfig"]["properties"]
    assert windows["length"]["minimum"] == 2 and windows["length"]["description"]
    # bad values are refused by the API before a run exists
    for bad in ({"windows": {"length": 0}}, {"cluster": {"k": 1}}, {"train": {"cell": "transformer"}}):
        status, body = _api(f"{api}/deployments/{dep['id']}/create_flow_run", {"parameters": bad})
        assert status == 409, (bad, status, body)

    root = tmp_path / "art"
    params, run = _first_run(server, tiny_csv, tmp_path)
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
        # the run's figures, reached as an operator does: the run's page, its Artifacts tab, the card
        page.goto(f"{server['ui']}/runs/flow-run/{run['id']}")
        page.locator("li.p-tab#artifacts").click(timeout=60_000)
        page.get_by_text("tsatlas-figures", exact=True).first.click(timeout=60_000)
        page.wait_for_url(f"**/artifacts/artifact/{arts[0]['id']}", timeout=60_000)
        page.wait_for_function("document.images.length >= 5 && Array.from(document.images).every(i => i.complete)",
                               timeout=60_000)
        widths = page.evaluate("Array.from(document.images).map(i => i.naturalWidth)")
        browser.close()
    assert len(widths) == 5 and min(widths) > 0
    for section in ("ingest", "windows", "train", "cluster", "generate"):
        assert f"\n{section} (Optional)" in text, section
    assert "Steps per window." in text and "Recurrent cell." in text


def test_serve_and_deploy_on_one_server_leave_each_other_alone(server, tiny_csv, tmp_path):
    """`prefect deploy` ran in the fixture; `tsatlas serve` against the same server registers
    its own deployments (name + "-serve") with the same schedules, time zone and concurrency
    limit, runs them, and on exit leaves the deployed ones as they were: not paused, same pool and limit."""
    api = server["api"]
    deployed = {n: _api(f"{api}/deployments/name/{f}/{n}")[1] for f, n in
                (("atlas", "atlas-nightly"), ("backfill", "backfill"), ("score", "score"))}
    assert all(d and d.get("id") for d in deployed.values())
    proc = subprocess.Popen([str(BIN / "tsatlas"), "serve"], env={**server["env"], "PREFECT_RUNNER_POLL_FREQUENCY": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
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
        dep = _api(f"{api}/deployments/name/atlas/atlas-serve")[1]  # a run, as the UI's Run button starts one
        status, run = _api(f"{api}/deployments/{dep['id']}/create_flow_run",
                           {"parameters": {"data": tiny_csv, "root": str(tmp_path / "art"), **TINY}})
        assert status == 201, run
        fr = _wait_final(api, run["id"])
        assert fr["state"]["type"] == "COMPLETED", fr["state"]
        assert len(list((tmp_path / "art").glob("runs/*/manifest.json"))) == 1
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



SERVE_IN_MEMORY = """
import asyncio
from prefect.runner import Runner
from flows.backfill import backfill
from flows.pipeline import atlas
from flows.score import score

runner = Runner(name="in-memory", query_seconds=1)
for f in (atlas, score, backfill):
    runner.add_flow(f, name="in-memory")  # what `f.serve(name=...)` does, for the three flows in one process
asyncio.run(runner.start())
"""


def test_flows_served_from_a_script_run(prefect_server, tiny_csv, tmp_path):
    """Prefect's own way to serve a flow from a script, `atlas.serve(name=...)`, runs each flow
    run in a spawned process from the pickled flow object (not from its entrypoint, as `tsatlas
    serve` and workers do); the flows' parameter annotations must arrive there as types (postponed,
    as strings, every run failed validation: "`AtlasModel` is not fully defined")."""
    api = prefect_server["api"]
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, "-c", SERVE_IN_MEMORY], cwd=REPO, env=prefect_server["env"], stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deps = {}
        deadline = time.time() + 120
        while len(deps) < 3:
            for flow_name in ("atlas", "score", "backfill"):
                status, dep = _api(f"{api}/deployments/name/{flow_name}/in-memory")
                if status == 200:
                    deps[flow_name] = dep["id"]
            assert time.time() < deadline and proc.poll() is None, (tmp_path / "serve.log").read_text()[-2000:]
            time.sleep(0.5)

        def run(flow_name: str, params: dict) -> dict:
            status, fr = _api(f"{api}/deployments/{deps[flow_name]}/create_flow_run", {"parameters": params})
            assert status == 201, fr
            return _wait_final(api, fr["id"], timeout=300)

        root = str(tmp_path / "art")
        fr = run("atlas", {"data": tiny_csv, "root": root, **TINY})
        assert fr["state"]["type"] == "COMPLETED", fr["state"]
        assert len(list((tmp_path / "art").glob("runs/*/manifest.json"))) == 1
        fr = run("score", {"data": tiny_csv, "root": root})
        assert fr["state"]["type"] == "COMPLETED", fr["state"]
        missing = str(tmp_path / "missing.csv")  # the flow's body runs, and refuses the path
        fr = run("backfill", {"start": "2024-01-01", "partitions": 1, "data": missing, "root": root})
        assert fr["state"]["type"] == "FAILED" and "missing.csv" in fr["state"]["message"], fr["state"]
    finally:
        _stop(proc)
        log.close()


def test_the_api_refuses_bad_flow_parameters_before_a_run_exists(server):
    api = server["api"]
    status, atlas = _api(f"{api}/deployments/name/atlas/atlas-nightly")
    status, bf = _api(f"{api}/deployments/name/backfill/backfill")
    status, sc = _api(f"{api}/deployments/name/score/score")
    for dep in (atlas, bf, sc):  # every parameter of every flow is described
        props = dep["parameter_openapi_schema"]["properties"]
        assert all(p.get("description") for p in props.values()), dep["name"]
    base = {"start": "2024-01-01", "partitions": 31}
    cases = [(atlas, {"seed": -1}), (atlas, {"ingest": {"start": "not-a-date"}}), (atlas, {"ingest": {"freq": "banana"}}),
             (bf, {**base, "every": "-5d"}), (bf, {**base, "max_concurrency": 0}), (bf, {**base, "max_concurrency": -1}),
             (bf, {"start": "not-a-date", "partitions": 3}), (bf, {**base, "deployment": "atlas"}),
             (bf, {**base, "partitions": 0}), (bf, {"start": "2024-01-01"}),
             (atlas, {"partition": "yesterday"}), (sc, {"data": "x.csv", "device": "tpu"}),
             # rules between two keys, in the schema too
             (atlas, {"cluster": {"k_min": 5, "k_max": 3}}), (bf, {**base, "cluster": {"k_min": 12}}),
             (atlas, {"ingest": {"start": "2024-02-01", "end": "2024-01-01"}}), (atlas, {"ingest": {"span": "1d"}}),
             (atlas, {"ingest": {"start": "2024-02-01", "span": "24"}}), (atlas, {"ingest": {"start": "100", "span": "1d"}})]
    for dep, params in cases:
        status, body = _api(f"{api}/deployments/{dep['id']}/create_flow_run", {"parameters": params})
        assert status == 409, (dep["name"], params, status, body)
    from prefect.utilities.schema_tools.validation import validate  # what the server runs, on the stored schema
    for dep, params in [(atlas, {"cluster": {"k_min": 5, "k_max": 5}}), (atlas, {"ingest": {"start": "100", "span": "50"}}),
                        (atlas, {"ingest": {"start": "2024-01-01", "span": "7d"}}), (atlas, {"ingest": {"end": "2024-01-01"}})]:
        assert not validate({**dep["parameters"], **params}, dep["parameter_openapi_schema"]), params  # good ones pass


def _wait_final(api: str, run_id: str, timeout: float = 300, cwd=None) -> dict:
    deadline = time.time() + timeout
    while True:
        fr = _api(f"{api}/flow_runs/{run_id}")[1]
        if fr["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return fr
        assert time.time() < deadline, (f"flow run still {fr['state']['name']} after {timeout} s", _log_tail(cwd))
        time.sleep(1)


def _worker(server, cwd) -> subprocess.Popen:
    """A long-running process worker that polls every second (what an operator leaves running),
    logging to cwd/worker.log (its flow runs' output included; `_log_tail` shows it on failure)."""
    env = {**server["env"], "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_WORKER_PREFETCH_SECONDS": "1"}
    with open(Path(cwd) / "worker.log", "ab") as log:  # the worker keeps its own copy of the descriptor
        return subprocess.Popen([str(BIN / "prefect"), "worker", "start", "--pool", "tsatlas"], cwd=cwd, env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM a worker's or runner's process group; SIGKILL it if it has not exited after 60 s (a
    worker's shutdown can take longer than that, and one left polling would take the next test's runs)."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)


def _log_tail(cwd, lines: int = 60) -> str:
    path = Path(cwd or ".") / "worker.log"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def _flow_run_pids(run_ids: set[str]) -> list[int]:
    """Processes executing any of these flow runs (the worker passes PREFECT__FLOW_RUN_ID)."""
    return pids_with_env("PREFECT__FLOW_RUN_ID", run_ids)


SMALL = {**TINY, "windows": {"length": 16, "stride": 4}}  # a day of hourly data: 3 windows per series


def test_reused_stages_show_as_cached(server, tiny_csv, tmp_path):
    """The same run again: every stage is found in the store, and the UI shows its task as Cached."""
    api = server["api"]
    if "first_run" not in server:  # run without the deploy test: make the first run here
        _first_run(server, tiny_csv, tmp_path)
    dep_id, params = server["first_run"]
    status, run = _api(f"{api}/deployments/{dep_id}/create_flow_run", {"parameters": params})
    assert status == 201, run
    _prefect(server, "worker", "start", "--pool", "tsatlas", "--run-once", timeout=600)
    assert _wait_final(api, run["id"])["state"]["type"] == "COMPLETED"
    status, tasks = _api(f"{api}/task_runs/filter", {"flow_runs": {"id": {"any_": [run["id"]]}}})
    states = {t["task_key"].split("-")[0].removesuffix("_task"): t["state"] for t in tasks}
    for stage in ("ingest", "windows", "train", "embed", "cluster", "generate"):
        assert states[stage]["name"] == "Cached" and states[stage]["type"] == "COMPLETED", (stage, states[stage])
        assert f"reused {stage} " in states[stage]["message"]
    assert states["report"]["name"] == "Completed" and states["manifest"]["name"] == "Completed"


def test_the_nightly_run_reads_the_partition_of_its_scheduled_date(server, tmp_path):
    api = server["api"]
    nightly = _api(f"{api}/deployments/name/atlas/atlas-nightly")[1]
    assert nightly["parameters"]["partition"] == "1d" and "{start}" in nightly["parameters"]["data"]
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    full = make_long(steps=72)
    day = full[(full.timestamp >= "2024-01-02") & (full.timestamp < "2024-01-03")]
    day.to_csv(incoming / "2024-01-02.csv", index=False)
    root = tmp_path / "art"
    params = {"data": str(incoming / "{start}.csv"), "root": str(root), **SMALL}
    # as the scheduler creates it: a run of the nightly deployment due at 02:00 on 2024-01-03
    status, run = _api(f"{api}/deployments/{nightly['id']}/create_flow_run",
                       {"parameters": params, "state": {"type": "SCHEDULED",
                                                        "state_details": {"scheduled_time": "2024-01-03T02:00:00Z"}}})
    assert status == 201, run
    out = _prefect(server, "worker", "start", "--pool", "tsatlas", "--run-once", timeout=600, stderr=True)
    fr = _wait_final(api, run["id"])
    assert fr["state"]["type"] == "COMPLETED", (fr["state"], out[-3000:])
    manifests = list(root.glob("runs/*/manifest.json"))
    assert len(manifests) == 1, (manifests, out[-3000:])
    m = json.loads(manifests[0].read_text())
    assert m["config"]["ingest"]["start"] == "2024-01-02T00:00:00" and m["config"]["ingest"]["span"] == "1d"
    assert m["data"].endswith("incoming/2024-01-02.csv") and m["summary"]["ingest"]["rows_in"] == len(day)


def test_backfill_partitions_are_runs_of_the_atlas_deployment(server, tmp_path):
    api = server["api"]
    backfill = _api(f"{api}/deployments/name/backfill/backfill")[1]
    assert backfill["parameters"]["deployment"] == "atlas/atlas"
    data = tmp_path / "events.parquet"
    make_long(steps=72).to_parquet(data, index=False)
    root = tmp_path / "art"
    params = {"start": "2024-01-01", "partitions": 2, "every": "1d", "data": str(data), "root": str(root), **SMALL}
    worker = _worker(server, tmp_path)
    try:
        runs = []
        for _ in range(2):  # the second backfill finds both partitions done and starts nothing
            status, run = _api(f"{api}/deployments/{backfill['id']}/create_flow_run", {"parameters": params})
            assert status == 201, run
            fr = _wait_final(api, run["id"], timeout=480, cwd=tmp_path)
            assert fr["state"]["type"] == "COMPLETED", (fr["state"], _log_tail(tmp_path))
            runs.append(run["id"])
    finally:
        _stop(worker)
    status, parts = _api(f"{api}/flow_runs/filter", {"flow_runs": {"tags": {"all_": ["tsatlas-backfill"]}},
                                                     "deployments": {"id": {"any_": [
                                                         _api(f"{api}/deployments/name/atlas/atlas")[1]["id"]]}}})
    assert sorted(p["name"] for p in parts) == ["partition-20240101T000000--20240102T000000",
                                                "partition-20240102T000000--20240103T000000"]
    assert all(p["state"]["type"] == "COMPLETED" and p["idempotency_key"].endswith("#1") for p in parts)
    assert all(p["parameters"]["partition"] is None for p in parts)
    assert sorted(p["parameters"]["ingest"]["start"] for p in parts) == ["2024-01-01T00:00:00", "2024-01-02T00:00:00"]
    for run_id, state in zip(runs, ("completed", "skipped (done before)")):
        status, arts = _api(f"{api}/artifacts/filter", {"artifacts": {"key": {"any_": ["tsatlas-backfill"]},
                                                                      "flow_run_id": {"any_": [run_id]}}})
        table = json.loads(arts[0]["data"]) if isinstance(arts[0]["data"], str) else arts[0]["data"]
        assert {r["state"] for r in table} == {state}, table
    assert len(list(root.glob("runs/*/manifest.json"))) == 2


def test_a_killed_backfill_is_marked_crashed(server, tmp_path):
    """SIGKILL the worker and every flow run process of a backfill: the tsatlas automation marks
    the parent and its partition run Crashed once their heartbeats stop, and notifies."""
    api = server["api"]
    received: list[bytes] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *a):
            pass

    hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    block = ("from prefect.blocks.notifications import CustomWebhookNotificationBlock as B; "
             f"B(name='ops', url='http://127.0.0.1:{hook.server_address[1]}/hook', "
             "json_data={'text': '{{body}}'}).save('tsatlas-test-ops', overwrite=True)")
    subprocess.run([sys.executable, "-c", block], env=server["env"], check=True, timeout=120)
    r = subprocess.run([str(BIN / "tsatlas"), "automations", "--within", "45", "--notify",
                        "custom-webhook/tsatlas-test-ops"], env=server["env"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "automation tsatlas-crashed-runs:" in r.stdout, r.stderr

    backfill = _api(f"{api}/deployments/name/backfill/backfill")[1]
    data = tmp_path / "events.parquet"
    make_long(steps=48).to_parquet(data, index=False)
    slow = {**SMALL, "train": {**SMALL["train"], "epochs": 10000, "patience": 1000}}  # runs until killed
    params = {"start": "2024-01-01", "partitions": 1, "every": "1d", "data": str(data), "root": str(tmp_path / "a"),
              **slow}
    status, parent = _api(f"{api}/deployments/{backfill['id']}/create_flow_run", {"parameters": params})
    assert status == 201, parent
    worker = _worker(server, tmp_path)
    try:
        deadline = time.time() + 240
        while True:  # until the partition's own run is training
            status, kids = _api(f"{api}/flow_runs/filter", {"flow_runs": {"parent_flow_run_id": {"any_": [parent["id"]]}}})
            if kids and kids[0]["state"]["type"] == "RUNNING":
                break
            assert time.time() < deadline, "the partition run did not start"
            time.sleep(1)
        time.sleep(5)
        runs = {parent["id"], kids[0]["id"]}
        victims = [worker.pid, *_flow_run_pids(runs)]
        assert len(victims) >= 3, victims  # the worker and both flow run processes
    finally:
        for pid in victims if "victims" in locals() else [worker.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        worker.wait(30)
    for run_id in runs:
        fr = _wait_final(api, run_id, timeout=180)
        assert fr["state"]["type"] == "CRASHED", fr["state"]
        assert "No heartbeat for 45 s" in fr["state"]["message"]
    deadline = time.time() + 60
    while len(received) < 2 and time.time() < deadline:
        time.sleep(1)
    assert len(received) >= 2 and b"marked Crashed" in received[0]
    hook.shutdown()
