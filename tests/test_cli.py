"""`tsatlas run`: the summary, --json, and bad input giving one clear line, a non-zero
exit and no manifest."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import SETS, error_lines, make_long
from flows.cli import main



def _manifests(root):
    return [f for d, _, fs in os.walk(root) for f in fs if f == "manifest.json"]


def test_run_prints_summary_and_json(prefect_harness, tiny_csv, tmp_path, capsys):
    root = str(tmp_path / "art")
    assert main(["run", "--data", tiny_csv, "--root", root, "--seed", "3", *SETS]) == 0
    out = capsys.readouterr().out
    for word in ("960 rows in", "6 series", "114 windows", "3 epochs", "validation", "k=2, sizes",
                 "192 synthetic rows", "discriminative", "nearest-real ratio", "manifest.json"):
        assert word in out
    assert main(["run", "--data", tiny_csv, "--root", root, "--seed", "3", "--json", *SETS]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["config"]["seed"] == 3 and os.path.exists(m["manifest_uri"])


def test_wide_parquet_with_config_file(prefect_harness, tmp_path, capsys):
    long = make_long(n_series=4, steps=120, channels=1, label=False)
    wide = long.pivot(index="timestamp", columns="series_id", values="ch0").reset_index()
    data = tmp_path / "wide.parquet"
    wide.to_parquet(data, index=False)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("windows: {length: 12, stride: 6, scale: series}\ntrain: {hidden: 8, latent: 3, epochs: 2}\n"
                   "cluster: {k: auto, k_max: 4}\ngenerate: {n: 5}\n")
    assert main(["run", "--data", str(data), "--root", str(tmp_path / "a"), "--config", str(cfg), "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["summary"]["ingest"]["series"] == 4 and m["summary"]["windows"]["shape"][1:] == [12, 1]


def _bad_inputs(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    nonum = tmp_path / "nonum.csv"
    nonum.write_text("series_id,timestamp,site\na,2024-01-01,x\na,2024-01-02,y\n")
    short = tmp_path / "short.csv"
    make_long(n_series=2, steps=10).to_csv(short, index=False)
    return [
        (str(tmp_path / "missing.csv"), "missing.csv: file not found"),
        (str(empty), "empty.csv: file is empty"),
        (str(nonum), "nonum.csv: column 'site', row 2: value 'x' is not a number"),
        (str(short), "short.csv: every series is shorter than windows.length=16"),
    ]


def test_bad_input_one_line_nonzero_no_manifest(prefect_harness, tmp_path, capsys):
    for data, message in _bad_inputs(tmp_path):
        root = tmp_path / "art"
        assert main(["run", "--data", data, "--root", str(root), *SETS]) == 2
        err = error_lines(capsys.readouterr().err)
        assert err == [f"tsatlas: error: {err[-1].split('error: ', 1)[1]}"] and message in err[0], err
        assert not _manifests(root)


@pytest.mark.parametrize("args,message", [
    (["--set", "train.epoch=3"], "train.epoch: unknown key"),
    (["--set", "windows.length=zero"], "windows.length"),
])
def test_bad_config_names_the_key(args, message, capsys):
    assert main(["run", *args]) == 2
    assert message in capsys.readouterr().err


def test_version(capsys):
    from tsatlas import __version__

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"tsatlas {__version__}"


def test_console_script_missing_file(tmp_path):
    """The installed command, as a user types it: one line on stderr, exit 2."""
    r = subprocess.run([os.path.join(os.path.dirname(sys.executable), "tsatlas"), "run", "--data", "nope.csv",
                        "--root", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip() == "tsatlas: error: nope.csv: file not found"
    assert not _manifests(tmp_path)


@pytest.mark.skipif(not shutil.which("script"), reason="needs util-linux `script` for a pseudo-terminal")
def test_stage_lines_as_they_happen_piped_and_at_a_terminal(prefect_harness, tiny_csv, tmp_path):
    """Each stage prints a line to stderr as it starts and ends (with its seconds) or is reused,
    and training one per epoch, whether stderr is a terminal or a pipe; stdout keeps the summary."""
    from prefect.settings import PREFECT_API_URL

    exe = os.path.join(os.path.dirname(sys.executable), "tsatlas")
    cmd = [exe, "run", "--data", tiny_csv, "--root", str(tmp_path / "art"), *SETS]
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    piped = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert piped.returncode == 0, piped.stderr[-2000:]
    err = piped.stderr.splitlines()
    for stage in ("ingest", "windows", "train", "embed", "cluster", "generate", "report"):
        assert f"tsatlas: {stage:<8} started" in err and any(ln.startswith(f"tsatlas: {stage:<8} done in ") for ln in err), err
    assert any("epoch 3/3" in ln for ln in err) and "run " in piped.stdout and "tsatlas:" not in piped.stdout
    assert "\x1b[" not in piped.stderr  # no bar drawn into a pipe
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert "tsatlas: train    reused" in again.stderr and "tsatlas: ingest   reused" in again.stderr
    # at a terminal, a fresh root: the same lines, and rich's bars for training epochs and evaluation fits
    cmd[cmd.index("--root") + 1] = str(tmp_path / "art2")
    tty = subprocess.run(["script", "-qc", " ".join(cmd), "/dev/null"], env=env, capture_output=True, text=True,
                         timeout=300)
    assert tty.returncode == 0, tty.stdout[-2000:]
    assert "tsatlas: train    done in" in tty.stdout and "3/3" in tty.stdout and "\x1b[" in tty.stdout


