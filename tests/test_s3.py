"""The whole flow against a live S3 server (moto's standalone server over HTTP on loopback)."""

from __future__ import annotations

import json
import logging
import threading
import time

import boto3
import pytest
import s3fs

from conftest import SECRET, TINY, make_long
from tsatlas import catalog
from tsatlas.errors import StorageError
from tsatlas.storage import Store

STAGES = ["ingest", "windows", "train", "embed", "cluster", "generate"]


def _run(data, root, extra=()):
    from flows.pipeline import atlas
    from tsatlas.config import load_config

    sets = [f"{s}.{k}={v}" for s, kv in TINY.items() for k, v in kv.items()] + list(extra)
    cfg = load_config(sets=sets)
    return atlas(data=data, root=root, **cfg.sections())


def _upload(bucket, endpoint):
    key = "input/tiny.parquet"
    fs = s3fs.S3FileSystem(endpoint_url=endpoint)
    with fs.open(f"{bucket}/{key}", "wb") as f:
        make_long().to_parquet(f, index=False)
    return f"s3://{bucket}/{key}"


def _objects(bucket, endpoint):
    c = boto3.client("s3", endpoint_url=endpoint)
    pages = c.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {o["Key"]: c.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for p in pages for o in p.get("Contents", [])}


def _verify(store: Store, manifest: dict) -> None:
    for st in manifest["stages"].values():
        for name, sha in st["files"].items():
            store.get_bytes(f"{st['prefix']}/{name}", sha)  # raises on a checksum mismatch


@pytest.fixture
def captured_logs():
    records: list[str] = []

    class Grab(logging.Handler):
        def emit(self, record):
            records.append(self.format(record))

    h = Grab(level=logging.DEBUG)
    loggers = [logging.getLogger(n) for n in ("", "prefect", "tsatlas", "prefect.task_runs", "prefect.flow_runs")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(h)
        lg.setLevel(logging.DEBUG)
    yield records
    for lg, level in zip(loggers, levels):
        lg.removeHandler(h)
        lg.setLevel(level)


def test_flow_on_s3_skips_when_unchanged_and_leaks_no_secret(prefect_harness, s3, moto_server, captured_logs):
    data = _upload(s3, moto_server.url)
    root = f"s3://{s3}/atlas"
    catalog.forget()
    m = _run(data, root)
    store = Store(root)
    assert m["manifest_uri"] == f"{root}/runs/{m['run_id']}/manifest.json"
    assert store.get_json(f"runs/{m['run_id']}/manifest.json")["stages"] == m["stages"]
    _verify(store, m)
    syn = catalog.read_synthetic(store, catalog.stage_ref(m, "generate")).to_pandas()
    assert len(syn) == m["stages"]["generate"]["rows"] == 12 * 16

    reads = catalog.READS.copy()
    m2 = _run(data, root)
    # nothing recomputed: the same attempt folders; each file downloaded at most once in this
    # process (the second run verifies only what the first one wrote but never read)
    assert {s: m2["stages"][s]["prefix"] for s in STAGES} == {s: m["stages"][s]["prefix"] for s in STAGES}
    again = catalog.READS - reads
    assert set(again.values()) <= {1} and not {"windows/windows.parquet", "train/model.pt"} & set(again), again
    assert m2["plots"] == {k: {**v, "uri": v["uri"].replace(m["run_id"], m2["run_id"])} for k, v in m["plots"].items()}

    blobs = _objects(s3, moto_server.url)
    assert any(k.endswith("manifest.json") for k in blobs)
    assert not [k for k, v in blobs.items() if SECRET.encode() in v]
    assert captured_logs and not [r for r in captured_logs if SECRET in r]
    from prefect.client.orchestration import get_client
    with get_client(sync_client=True) as client:  # the logs Prefect stored for the runs
        stored = client.read_logs(limit=200)
        artifacts = client.read_artifacts(limit=200)
    assert not [lg for lg in stored if SECRET in lg.message]
    assert artifacts and not [a for a in artifacts if SECRET in json.dumps(a.data, default=str)]
    # with an S3 root the figures link to presigned URLs, which a browser opens without credentials
    import re
    import urllib.request

    figures = next(a for a in artifacts if a.key == "tsatlas-figures" and m2["run_id"] in (a.description or ""))
    urls = re.findall(r"\[full size\]\((http[^)]+)\)", figures.data)
    assert len(urls) == len(m["plots"])
    with urllib.request.urlopen(urls[0], timeout=10) as r:
        assert r.read(8) == b"\x89PNG\r\n\x1a\n"


def test_corrupt_artifact_on_s3_is_detected_and_recomputed(prefect_harness, s3, moto_server, tmp_path, monkeypatch):
    data = _upload(s3, moto_server.url)
    root = f"s3://{s3}/atlas"
    m = _run(data, root)
    win = m["stages"]["windows"]
    key = f"atlas/{win['prefix']}/windows.parquet"
    boto3.client("s3", endpoint_url=moto_server.url).put_object(Bucket=s3, Key=key, Body=b"not parquet")
    # another machine: no verified local copy of the windows in its cache, so it reads the store
    monkeypatch.setenv("TSATLAS_CACHE", str(tmp_path / "fresh-cache"))
    catalog.forget()
    m2 = _run(data, root, ["train.epochs=2"])
    # the corrupt stage was noticed on reuse and written again in a new attempt folder
    assert m2["stages"]["windows"]["prefix"] != win["prefix"]
    assert m2["stages"]["windows"]["sha256"] == win["sha256"]  # the same content, recomputed
    assert m2["stages"]["ingest"]["prefix"] == m["stages"]["ingest"]["prefix"]  # the sound stage was reused
    _verify(Store(root), m2)


def _cut_after_windows(bucket, server_url, relay, mend_when=None):
    """Cut the relay once the windows stage is published; mend it when `mend_when()` is true."""
    c = boto3.client("s3", endpoint_url=server_url)

    def watch():
        deadline = time.time() + 120
        while time.time() < deadline:
            listing = c.list_objects_v2(Bucket=bucket, Prefix="atlas/stages/windows/").get("Contents", [])
            if any(o["Key"].endswith("_done.json") for o in listing):
                relay.cut()
                while mend_when is not None and time.time() < deadline:
                    if mend_when():
                        relay.mend()
                        return
                    time.sleep(0.05)
                return
            time.sleep(0.05)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


def _relay_env(monkeypatch, moto_server):
    from s3server import Relay

    relay = Relay(moto_server.port)
    monkeypatch.setenv("AWS_ENDPOINT_URL", relay.url)
    return relay


def _fast_retries(monkeypatch, delays):
    from tasks.cluster import cluster_task
    from tasks.embed import embed_task
    from tasks.generate import generate_task
    from tasks.train import train_task
    from tasks.windows import windows_task

    for t in (windows_task, train_task, embed_task, cluster_task, generate_task):
        monkeypatch.setattr(t, "retry_delay_seconds", delays)


def test_outage_mid_run_is_retried_and_the_run_completes(prefect_harness, s3, moto_server, monkeypatch):
    data = _upload(s3, moto_server.url)
    relay = _relay_env(monkeypatch, moto_server)
    _fast_retries(monkeypatch, [2, 2])
    from tasks.train import train_task
    from tasks.windows import windows_task

    # The outage lasts until Prefect decides to retry the failed task: most often train's first
    # read, sometimes the windows task's last calls after its _done.json is up (a race), so both count.
    failures = []
    for t in (windows_task, train_task):
        def recording(task, task_run, state, decide=t.retry_condition_fn):
            failures.append(str(state.message))
            return decide(task, task_run, state)

        monkeypatch.setattr(t, "retry_condition_fn", recording)
    watcher = _cut_after_windows(s3, moto_server.url, relay, mend_when=lambda: bool(failures))
    try:
        m = _run(data, f"s3://{s3}/atlas")
    finally:
        relay.close()
    watcher.join()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.url)
    _verify(Store(f"s3://{s3}/atlas"), m)
    assert m["metrics"]["train"]["epochs"] == 3
    # the train task failed on the cut connection (which S3 call hits it first is a race) and was retried
    assert failures and ("store unreachable" in failures[0] or "read failed" in failures[0])


def test_outage_past_retries_fails_cleanly(prefect_harness, s3, moto_server, monkeypatch):
    data = _upload(s3, moto_server.url)
    relay = _relay_env(monkeypatch, moto_server)
    _fast_retries(monkeypatch, [0.5, 0.5])
    watcher = _cut_after_windows(s3, moto_server.url, relay)
    try:
        with pytest.raises(StorageError, match=r"s3://.*(unreachable|failed)"):
            _run(data, f"s3://{s3}/atlas")
    finally:
        relay.close()
    watcher.join()
    blobs = _objects(s3, moto_server.url)
    assert not [k for k in blobs if k.endswith("manifest.json")]
    done = {k: json.loads(v) for k, v in blobs.items() if k.endswith("_done.json")}
    assert sorted(d["stage"] for d in done.values()) == ["ingest", "windows"]
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.url)
    store = Store(f"s3://{s3}/atlas")
    for d in done.values():  # what was published is whole
        for name, sha in d["files"].items():
            store.get_bytes(f"{d['prefix']}/{name}", sha)


def test_two_runs_at_once_on_one_root(prefect_harness, s3, moto_server):
    data = _upload(s3, moto_server.url)
    root = f"s3://{s3}/atlas"
    results, errors = [], []

    def go():
        try:
            results.append(_run(data, root))
        except Exception as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 2 and results[0]["run_id"] != results[1]["run_id"]
    store = Store(root)
    for m in results:
        assert store.get_json(f"runs/{m['run_id']}/manifest.json")["run_id"] == m["run_id"]
        _verify(store, m)


def test_credentials_from_a_prefect_block(prefect_harness, s3, moto_server, monkeypatch):
    """No AWS_* variables at all: endpoint and keys come from an AwsCredentials block."""
    from prefect_aws import AwsCredentials
    from prefect_aws.credentials import AwsClientParameters

    data = _upload(s3, moto_server.url)
    AwsCredentials(aws_access_key_id="block-key", aws_secret_access_key=SECRET, region_name="us-east-1",
                   aws_client_parameters=AwsClientParameters(endpoint_url=moto_server.url)).save("tsatlas-test", overwrite=True)
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(var)
    from flows.pipeline import atlas
    from tsatlas.config import load_config

    cfg = load_config(sets=[f"{s}.{k}={v}" for s, kv in TINY.items() for k, v in kv.items()])
    m = atlas(data=data, root=f"s3://{s3}/blocky", credentials="tsatlas-test", **cfg.sections())
    assert m["stages"]["generate"]["uri"].startswith(f"s3://{s3}/blocky/")
    assert SECRET not in json.dumps(m)


def test_a_folder_on_s3_is_read_as_one_table(s3, moto_server):
    from tsatlas.config import IngestConfig
    from tsatlas.ingest import fingerprint, ingest_table

    fs = s3fs.S3FileSystem(endpoint_url=moto_server.url)
    df = make_long(n_series=4, steps=50)
    ids = sorted(df.series_id.unique())
    for i, part in enumerate((ids[:2], ids[2:])):
        with fs.open(f"{s3}/pile/part-{i}.parquet", "wb") as f:
            df[df.series_id.isin(part)].to_parquet(f, index=False)
    fs.pipe(f"{s3}/pile/_SUCCESS", b"")
    out = ingest_table(f"s3://{s3}/pile/", IngestConfig())
    assert out.info["files"] == 2 and out.info["series"] == 4 and out.info["rows_in"] == len(df)
    before = fingerprint(f"s3://{s3}/pile")
    with fs.open(f"{s3}/pile/part-1.parquet", "wb") as f:  # rewritten: the folder is another input
        df[df.series_id.isin(ids[2:3])].to_parquet(f, index=False)
    assert fingerprint(f"s3://{s3}/pile") != before
