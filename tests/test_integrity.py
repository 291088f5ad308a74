"""Nothing silently wrong: series identity, verified caches, corrupt stages, reserved names,
secrets in URLs, and one-line errors for hostile input."""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pandas as pd
import pytest

from conftest import SETS, error_lines, make_long
from flows.cli import main
from tsatlas import catalog
from tsatlas.config import IngestConfig, WindowsConfig
from tsatlas.errors import InputError
from tsatlas.ingest import ingest_table
from tsatlas.storage import Store


def _manifest(root):
    runs = sorted(os.listdir(os.path.join(root, "runs")))
    return json.load(open(os.path.join(root, "runs", runs[-1], "manifest.json")))


@pytest.mark.parametrize("ids", [["NA", "null"], ["01", "1"], ["nan", "None"]])
def test_series_ids_are_read_as_written(tmp_path, ids):
    df = make_long(n_series=2, steps=30, label=False)
    df["series_id"] = np.repeat(ids, 30)
    path = tmp_path / "ids.csv"
    df.to_csv(path, index=False)
    out = ingest_table(str(path), IngestConfig())
    assert sorted(out.frame["series_id"].unique()) == sorted(ids) and out.info["series"] == 2
    assert out.info["step"] == "0 days 01:00:00"


def test_an_empty_series_id_names_its_row(tmp_path):
    df = make_long(n_series=2, steps=30, label=False)
    df.loc[33, "series_id"] = ""
    path = tmp_path / "blank.csv"
    df.to_csv(path, index=False)
    with pytest.raises(InputError, match=r"blank\.csv: column 'series_id', row 35: empty series id"):
        ingest_table(str(path), IngestConfig())


def test_tampered_windows_cache_is_rebuilt_not_used(tmp_path, monkeypatch):
    from tasks.ingest import ingest_task
    from tasks.windows import windows_task

    cache = tmp_path / "cache"
    monkeypatch.setenv("TSATLAS_CACHE", str(cache))
    data = tmp_path / "d.csv"
    make_long().to_csv(data, index=False)
    root = str(tmp_path / "art")
    ref = windows_task.fn(ingest_task.fn(str(data), root, IngestConfig()), root, WindowsConfig(length=16, stride=8))
    clean = np.array(catalog.read_windows(Store(root), ref)[0].X)
    npy = cache / f"{ref.sha256}.values.npy"
    arr = np.load(npy)
    np.save(npy, arr[::-1])  # the attack of the issue: same size, windows in reverse order
    monkeypatch.setattr(catalog, "_VERIFIED", {})  # a new process: nothing verified yet
    monkeypatch.setattr(catalog, "_WINDOWS", {})
    again = catalog.read_windows(Store(root), ref)[0].X
    np.testing.assert_array_equal(np.asarray(again), clean)
    assert (os.stat(cache).st_mode & 0o777) == 0o700


def test_cache_folder_of_another_user_or_world_writable_is_refused(tmp_path, monkeypatch):
    from tsatlas.errors import StorageError
    from tsatlas.storage import cache_dir

    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    os.chmod(shared, 0o777)
    monkeypatch.setenv("TSATLAS_CACHE", str(shared))
    with pytest.raises(StorageError, match="writable by others"):
        cache_dir()


def test_corrupt_and_truncated_stage_files_are_recomputed(prefect_harness, tiny_csv, tmp_path, capsys):
    root = str(tmp_path / "art")
    assert main(["run", "--data", tiny_csv, "--root", root, *SETS]) == 0
    m1 = _manifest(root)
    win, emb = m1["stages"]["windows"], m1["stages"]["embed"]
    path = os.path.join(root, win["prefix"], "windows.parquet")
    with open(path, "r+b") as f:  # flip one byte in the middle of the windows
        f.seek(os.path.getsize(path) // 2)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0xFF]))
    with open(os.path.join(root, "stages", "embed", emb["key"], "_done.json"), "r+") as f:
        f.truncate(20)  # a half-written reference
    assert main(["run", "--data", tiny_csv, "--root", root, *SETS]) == 0
    m2 = _manifest(root)
    assert m2["stages"]["windows"]["prefix"] != win["prefix"] and m2["stages"]["windows"]["sha256"] == win["sha256"]
    assert m2["stages"]["embed"]["prefix"] != emb["prefix"]
    assert m2["stages"]["ingest"]["prefix"] == m1["stages"]["ingest"]["prefix"]  # sound stages are reused
    assert not any(t["reused"] for t in m1["timings"].values())  # the manifest says which
    # only the two broken stages ran again; their outputs came out identical, so the rest is reused
    assert {s for s, t in m2["timings"].items() if not t["reused"]} == {"windows", "embed"}
    assert all(isinstance(t["seconds"], float) for t in m2["timings"].values())
    store = Store(root)
    for st in m2["stages"].values():  # the new manifest references only sound files
        for name, sha in st["files"].items():
            store.get_bytes(f"{st['prefix']}/{name}", sha)


def test_a_channel_named_like_an_output_column_is_renamed(prefect_harness, tmp_path, capsys):
    df = make_long(channels=2).rename(columns={"ch0": "cluster", "ch1": "timestamp_"})
    df = df.rename(columns={"timestamp_": "window_id"})
    data = tmp_path / "reserved.csv"
    df.to_csv(data, index=False)
    root = str(tmp_path / "art")
    assert main(["run", "--data", str(data), "--root", root, *SETS]) == 0
    m = _manifest(root)
    syn = catalog.read_synthetic(Store(root), catalog.stage_ref(m, "generate")).to_pandas()
    assert list(syn.columns) == ["series_id", "timestamp", "cluster_value", "window_id", "cluster"]
    assert set(syn["cluster"]) <= {0, 1} and abs(syn["cluster_value"].mean()) < 3  # ch0 lives around 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _BasicAuthCSV(BaseHTTPRequestHandler):
    body = b""
    expected = "Basic " + base64.b64encode(b"alice:s3cr3t-PASSWORD").decode()

    def _ok(self) -> bool:
        if self.headers.get("Authorization") != self.expected:
            self.send_response(401)
            self.end_headers()
            return False
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        return True

    def do_HEAD(self):
        self._ok()

    def do_GET(self):
        if self._ok():
            self.wfile.write(self.body)

    def log_message(self, *a):
        pass


def test_a_password_in_the_data_url_is_never_stored_printed_or_a_parameter(prefect_harness, tmp_path, capsys):
    _BasicAuthCSV.body = make_long().to_csv(index=False).encode()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BasicAuthCSV)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://alice:s3cr3t-PASSWORD@127.0.0.1:{server.server_address[1]}/tiny.csv"
    root = str(tmp_path / "art")
    try:
        assert main(["run", "--data", url, "--root", root, "--json", *SETS]) == 0
    finally:
        server.shutdown()
    out = capsys.readouterr()
    assert "s3cr3t-PASSWORD" not in out.out + out.err
    m = json.loads(out.out)
    assert m["data"] == f"http://alice:***@127.0.0.1:{server.server_address[1]}/tiny.csv"
    assert m["stages"]["ingest"]["rows"] == 960  # it did read the file, with the password
    for d, _, files in os.walk(root):
        for f in files:
            assert b"s3cr3t-PASSWORD" not in open(os.path.join(d, f), "rb").read(), f
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:  # what Prefect's database holds of the runs
        runs = client.read_flow_runs(limit=50)
        logs = client.read_logs(limit=200)
    assert runs and not [r for r in runs if "s3cr3t-PASSWORD" in json.dumps(r.parameters, default=str)]
    assert not [lg for lg in logs if "s3cr3t-PASSWORD" in lg.message]


def test_a_refused_connection_is_not_file_not_found(capsys, tmp_path):
    url = f"http://bob:hunter2-PASSWORD@127.0.0.1:{_free_port()}/x.csv"
    assert main(["run", "--data", url, "--root", str(tmp_path / "a"), *SETS]) == 2
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1 and "cannot reach the input" in err[0] and "not found" not in err[0], err
    assert "hunter2-PASSWORD" not in err[0] and "bob:***@" in err[0]


def _hostile(tmp_path):
    base = make_long(n_series=2, steps=60, channels=1, label=False)
    huge = base.copy()
    huge.loc[7, "ch0"] = 1e308
    y2300 = base.copy()
    y2300["timestamp"] = np.tile(pd.date_range("2300-01-01", periods=60, freq="1h").strftime("%Y-%m-%dT%H:%M:%S"), 2)
    cases = {"huge": huge, "y2300": y2300}
    paths = {}
    for name, df in cases.items():
        paths[name] = str(tmp_path / f"{name}.csv")
        df.to_csv(paths[name], index=False)
    return [
        ([paths["huge"]], [], "huge.csv: series 's0', column 'ch0', at 2024-01-01 07:00:00+00:00: value 1e+308 is too large"),
        ([paths["y2300"]], [], "is outside the supported time range"),
        ([paths["huge"]], ["ingest.freq=banana"], "ingest.freq: 'banana' is not a positive time step"),
        ([paths["huge"]], ["ingest.start=notadate"], "ingest.start: 'notadate' is not a date or time"),
        ([paths["huge"]], ["ingest.freq=0h"], "ingest.freq: Value error, '0h' is not a positive time step"),
    ]


def test_hostile_input_is_one_line_and_exit_2(prefect_harness, tmp_path, capsys):
    for data, sets, message in _hostile(tmp_path):
        root = tmp_path / "art"
        extra = [a for s in sets for a in ("--set", s)]
        assert main(["run", "--data", *data, "--root", str(root), *SETS, *extra]) == 2
        err = error_lines(capsys.readouterr().err)
        assert len(err) == 1 and message in err[0], err
        assert not (root / "runs").exists()


def test_cuda_without_a_gpu_and_a_read_only_root_are_one_line(prefect_harness, tiny_csv, tmp_path, capsys):
    import torch

    if not torch.cuda.is_available():
        assert main(["run", "--data", tiny_csv, "--root", str(tmp_path / "a"), *SETS, "--set", "train.device=cuda"]) == 2
        err = error_lines(capsys.readouterr().err)
        assert len(err) == 1 and "train.device=cuda, but torch sees no CUDA device" in err[0], err
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o555)
    try:
        if os.access(ro, os.W_OK):  # root ignores permissions: make the folder a file instead
            os.chmod(ro, 0o755)
            ro.rmdir()
            ro.write_text("not a folder")
        assert main(["run", "--data", tiny_csv, "--root", str(ro), *SETS]) == 2
    finally:
        os.chmod(ro, 0o755) if ro.is_dir() else None
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1 and "cannot write to the artifact root" in err[0], err


def test_a_cluster_of_one_window_still_generates():
    from tsatlas.generation import sample_latent

    rng = np.random.default_rng(0)
    Z = np.concatenate([rng.normal(0, 1, (40, 3)), [[9.0, 9.0, 9.0]]])
    labels = np.r_[np.zeros(40, int), 1]
    z, cl = sample_latent(Z, labels, np.array([5, 4]), components=3, seed=0)
    assert np.bincount(cl).tolist() == [5, 4] and np.allclose(z[cl == 1], 9.0, atol=0.2)


def test_a_diverging_fit_fails_the_stage_and_stores_nothing(tmp_path):
    from tsatlas.autoencoder import RNNAutoencoder
    from tsatlas.errors import NonFiniteLossError
    from tsatlas.stage import run_stage

    store = Store(str(tmp_path))
    X = np.random.default_rng(0).standard_normal((40, 8, 1)).astype(np.float32)
    X[3, 2, 0] = np.nan  # what extreme input becomes after overflow

    def compute(w):
        ae = RNNAutoencoder(hidden=4, latent=2, epochs=2, batch_size=16, min_batches=1).fit(X)
        w.put_bytes("model.pt", ae.to_bytes())

    with pytest.raises(NonFiniteLossError, match="training diverged"):
        run_stage(store, "train", ["x"], {}, compute)
    assert not [f for d, _, fs in os.walk(tmp_path) for f in fs if f in ("model.pt", "_done.json")]
