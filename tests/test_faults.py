"""Bad input, faults and untrusted artifacts: every case ends with one clear line, a
non-zero exit, and no manifest; faults keep what was done and never leave half artifacts."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from conftest import SETS, error_lines, make_long, pids_with_env
from flows.cli import main



def _manifests(root):
    return [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f == "manifest.json"]


def _csv(path, df):
    df.to_csv(path, index=False)
    return str(path)


def _case(tmp_path, name):
    """Write the input of one bad-input case; return (cli args, expected text in the message)."""
    long = make_long(n_series=2, steps=40, channels=1, label=False)
    f = tmp_path / f"{name}.csv"
    if name == "missing":
        return ["--data", str(f)], "missing.csv: file not found"
    if name == "empty":
        f.write_text("")
        return ["--data", str(f)], "empty.csv: file is empty"
    if name == "header_only":
        f.write_text("series_id,timestamp,ch0\n")
        return ["--data", str(f)], "header_only.csv: no data rows"
    if name == "no_numeric":
        f.write_text("series_id,timestamp\na,2024-01-01\n")
        return ["--data", str(f)], "no_numeric.csv: no numeric channel"
    if name == "text_in_channel":
        bad = long.astype({"ch0": object})
        bad.loc[7, "ch0"] = "n/a?"
        return ["--data", _csv(f, bad)], "text_in_channel.csv: column 'ch0', row 9: value 'n/a?' is not a number"
    if name == "long_gap":
        bad = long.copy()
        bad.loc[5:12, "ch0"] = np.nan
        return (["--data", _csv(f, bad), "--set", "ingest.long_gaps=error"],
                "long_gap.csv: series 's0', column 'ch0': 8 missing or non-finite steps")
    if name == "inf_run":
        bad = long.copy()
        bad.loc[45:50, "ch0"] = np.inf
        return (["--data", _csv(f, bad), "--set", "ingest.long_gaps=error"],
                "inf_run.csv: series 's1', column 'ch0': 6 missing or non-finite steps")
    if name == "duplicate_timestamps":
        return ["--data", _csv(f, pd.concat([long, long.iloc[[3]]]))], "series 's0' has duplicate timestamp"
    if name == "mixed_time_zones":
        bad = long.copy()
        bad["timestamp"] = bad["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S")
        bad.loc[0, "timestamp"] = bad.loc[0, "timestamp"] + "Z"
        return ["--data", _csv(f, bad)], "mixed_time_zones.csv: column 'timestamp', row 3"
    if name == "all_series_short":
        return ["--data", _csv(f, long), "--set", "windows.length=50"], "all_series_short.csv: every series is shorter than windows.length=50"
    if name == "k_above_windows":
        return ["--data", _csv(f, long), "--set", "cluster.k=500"], "cluster.k=500 exceeds the number of windows (8)"
    if name == "length_zero":
        return ["--set", "windows.length=0"], "windows.length: Input should be greater than or equal to 2"
    if name == "stride_zero":
        return ["--set", "windows.stride=0"], "windows.stride: Input should be greater than or equal to 1"
    if name == "unknown_scheme":
        return ["--data", _csv(f, long), "--root", "nosuch://bucket/x"], "cannot open store root 'nosuch://bucket/x'"
    if name == "corrupt_parquet":
        p = tmp_path / "corrupt.parquet"
        long.to_parquet(p)
        p.write_bytes(p.read_bytes()[:200])
        return ["--data", str(p)], "corrupt.parquet: not a readable Parquet file"
    if name == "yaml_unknown_key":
        y = tmp_path / "c.yaml"
        y.write_text("train:\n  hiden: 8\n")
        return ["--config", str(y)], "c.yaml: train.hiden: unknown key"
    if name == "yaml_wrong_type":
        y = tmp_path / "c.yaml"
        y.write_text("cluster:\n  k_max: lots\n")
        return ["--config", str(y)], "c.yaml: cluster.k_max: Input should be a valid integer"
    raise AssertionError(name)


CASES = ["missing", "empty", "header_only", "no_numeric", "text_in_channel", "long_gap", "inf_run",
         "duplicate_timestamps", "mixed_time_zones", "all_series_short", "k_above_windows", "length_zero",
         "stride_zero", "unknown_scheme", "corrupt_parquet", "yaml_unknown_key", "yaml_wrong_type"]


@pytest.mark.parametrize("name", CASES)
def test_bad_input_table(prefect_harness, tmp_path, capsys, name):
    args, expected = _case(tmp_path, name)
    root = tmp_path / "art"
    code = main(["run", "--root", str(root), *SETS, *args] if "--root" not in args else ["run", *SETS, *args])
    err = error_lines(capsys.readouterr().err)
    assert code == 2
    assert len(err) == 1 and err[0].startswith("tsatlas: error: ") and expected in err[0], err
    assert not _manifests(root)


def test_short_series_and_outages_skipped_when_others_remain(prefect_harness, tmp_path, capsys):
    """A series shorter than a window is skipped, and an outage (a gap longer than ingest.max_gap)
    is kept missing: the windows that overlap it are left out, the run goes on and says so."""
    df = pd.concat([make_long(n_series=4, steps=80), make_long(n_series=1, steps=10).assign(series_id="tiny")],
                   ignore_index=True)
    df.loc[df.index[(df.series_id == "s1").to_numpy()][30:40], "ch1"] = np.nan
    assert main(["run", "--data", _csv(tmp_path / "d.csv", df), "--root", str(tmp_path / "a"), "--json", *SETS]) == 0
    import json

    out = capsys.readouterr()
    m = json.loads(out.out)
    assert m["summary"]["ingest"]["series"] == 5 and m["summary"]["windows"]["skipped_series"] == 1
    assert m["summary"]["ingest"]["gaps_left"]["runs"] == 1 and m["summary"]["ingest"]["gaps_left"]["steps"] == 10
    assert m["summary"]["windows"]["left_out"] > 0 and "windows overlap missing steps" in out.err


def test_sigkill_during_training_then_rerun_resumes(prefect_harness, tmp_path, tiny_csv, capsys):
    """A real `tsatlas run` process is killed mid-training; running again resumes from its checkpoint."""
    from prefect.settings import PREFECT_API_URL

    root = tmp_path / "art"
    args = ["run", "--data", tiny_csv, "--root", str(root), *SETS, "--set", "train.epochs=150",
            "--set", "train.patience=1000", "--set", "train.hidden=48"]
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    exe = os.path.join(os.path.dirname(sys.executable), "tsatlas")
    proc = subprocess.Popen([exe, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 180
    ckpt = None
    while time.time() < deadline and ckpt is None:
        found = [os.path.join(d, "checkpoint.pt") for d, _, fs in os.walk(root) if "checkpoint.pt" in fs]
        ckpt = found[0] if found else None
        time.sleep(0.1)
    assert ckpt, "training never checkpointed"
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not _manifests(root)

    code = main([*args, "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    import json

    m = json.loads(out.out)
    tr = m["metrics"]["train"]
    assert tr["resumed_from_epoch"] >= 1 and tr["epochs"] == 150


def test_malicious_checkpoint_is_refused_and_never_runs(prefect_harness, tmp_path, tiny_csv, capsys):
    from tsatlas.config import load_config
    from tsatlas.stage import stage_key
    from tsatlas.trainer import train_config

    root = tmp_path / "art"
    assert main(["run", "--data", tiny_csv, "--root", str(root), "--json", *SETS]) == 0
    import json

    m = json.loads(capsys.readouterr().out)
    cfg = load_config(sets=[SETS[i + 1] for i in range(0, len(SETS), 2)] + ["train.epochs=4"])
    key = stage_key("train", [m["stages"]["windows"]["sha256"]], train_config(cfg.train, cfg.seed, None))
    marker = tmp_path / "payload-ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    target = root / "stages" / "train" / key / "checkpoint.pt"
    target.parent.mkdir(parents=True)
    target.write_bytes(pickle.dumps({"epoch": Payload()}))
    assert main(["run", "--data", tiny_csv, "--root", str(root), *SETS, "--set", "train.epochs=4"]) == 2
    err = capsys.readouterr().err
    assert "checkpoint.pt: refused to load checkpoint" in err
    assert not marker.exists()


@pytest.fixture
def tiny_disk(tmp_path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=False)


def test_full_disk_clear_error_and_no_half_artifact(prefect_harness, tmp_path, tiny_csv, tiny_disk, capsys, monkeypatch):
    from tasks.cluster import cluster_task
    from tasks.embed import embed_task
    from tasks.generate import generate_task
    from tasks.ingest import ingest_task
    from tasks.train import train_task
    from tasks.windows import windows_task

    for t in (ingest_task, windows_task, train_task, embed_task, cluster_task, generate_task):
        monkeypatch.setattr(t, "retry_delay_seconds", [0, 0])
    assert main(["run", "--data", tiny_csv, "--root", str(tiny_disk), *SETS]) == 2
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1 and "write failed" in err[0] and "No space left on device" in err[0], err
    assert not _manifests(tiny_disk)
    # nothing half-written: no temp files, and every attempt folder left behind is a published one
    import json

    files = [os.path.join(d, f) for d, _, fs in os.walk(tiny_disk) for f in fs]
    assert not [f for f in files if os.path.basename(f).startswith(".tmp-")]
    published = {json.load(open(f))["prefix"] for f in files if f.endswith("_done.json")}
    for f in files:
        rel = os.path.relpath(f, tiny_disk)
        if not rel.endswith(("_done.json", "checkpoint.pt")):
            assert os.path.dirname(rel) in published, rel


def test_wrong_s3_credentials(prefect_harness, tmp_path, capsys, monkeypatch):
    """A live S3 server that checks credentials (moto with auth on): a clear line, exit 2."""
    import urllib.request

    import boto3
    from s3server import MotoServer

    server = MotoServer()
    try:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "setup-key")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "setup-secret")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        s3 = boto3.client("s3", endpoint_url=server.url)
        s3.create_bucket(Bucket="locked")
        s3.put_object(Bucket="locked", Key="d.csv", Body=make_long(n_series=2, steps=40).to_csv(index=False).encode())
        req = urllib.request.Request(f"{server.url}/moto-api/reset-auth", data=b"0", method="POST",
                                     headers={"Content-Type": "text/plain"})
        urllib.request.urlopen(req, timeout=10)  # from now on only known IAM keys are accepted
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG1")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-value")
        code = main(["run", "--data", "s3://locked/d.csv", "--root", str(tmp_path / "art"), *SETS])
        err = error_lines(capsys.readouterr().err)
    finally:
        server.stop()
    assert code == 2 and len(err) == 1, err
    assert "s3://locked/d.csv: access denied, check the credentials" in err[0]
    assert "wrong-secret-value" not in err[0]
    assert not _manifests(tmp_path / "art")


def test_sigterm_marks_the_run_crashed_and_stops_prefects_temporary_server(tmp_path, tiny_csv):
    """`kill` (SIGTERM) of a `tsatlas run` that started Prefect's temporary API server: the run
    ends Crashed in Prefect's database, the command says so and exits 143, and the server process
    goes with it (a plain SIGTERM exit used to leave it running)."""
    import sqlite3

    home = tmp_path / "prefect-home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"} | {"PREFECT_HOME": str(home)}
    root = tmp_path / "art"
    exe = os.path.join(os.path.dirname(sys.executable), "tsatlas")
    proc = subprocess.Popen([exe, "run", "--data", tiny_csv, "--root", str(root), *SETS, "--set", "train.epochs=150",
                             "--set", "train.patience=1000", "--set", "train.hidden=48"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not [d for d, _, fs in os.walk(root) if "checkpoint.pt" in fs]:  # training has started
        assert time.time() < deadline and proc.poll() is None, "training never checkpointed"
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 143 and "tsatlas: terminated" in err, err[-2000:]

    deadline = time.time() + 30
    while pids_with_env("PREFECT_HOME", {str(home)}) and time.time() < deadline:  # the temporary server
        time.sleep(0.5)
    assert pids_with_env("PREFECT_HOME", {str(home)}) == []
    with sqlite3.connect(home / "prefect.db") as db:
        assert db.execute("select state_type from flow_run").fetchall() == [("CRASHED",)]
    assert not _manifests(root)
