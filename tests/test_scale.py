"""Scale-out on existing engines: torch DDP (gloo, two CPU processes) for training."""

import numpy as np
import pandas as pd

from test_flow import _run
from tsatlas import catalog
from tsatlas.storage import Store


def test_ddp_training_in_two_gloo_processes_through_the_flow(prefect_harness, tiny_csv, tmp_path):
    root = str(tmp_path / "artifacts")
    m = _run(tiny_csv, root, ["train.processes=2", "train.epochs=4", "train.patience=10"])
    tr = m["metrics"]["train"]
    assert tr["processes"] == 2 and tr["device"] == "cpu"
    assert tr["replicas_identical"] is True  # gradients were all-reduced: both replicas ended equal
    assert tr["epochs"] == 4 and np.isfinite(tr["val_loss"])
    hist = pd.DataFrame(catalog.read_history(Store(root), catalog.stage_ref(m, "train")))
    assert hist["train_loss"].iloc[-1] < hist["train_loss"].iloc[0]
    assert m["metrics"]["cluster"]["k"] == 2  # the rest of the flow ran on the DDP-trained model


def test_ddp_refuses_idec_with_a_clear_message(monkeypatch):
    import pytest

    import tsatlas.autoencoder as ta
    monkeypatch.setattr(ta, "world", lambda: (0, 2))
    with pytest.raises(ValueError, match="idec.*torch.distributed"):
        ta.RNNAutoencoder(objective="idec", epochs=1).fit(np.zeros((8, 4, 1), np.float32))


def test_backfill_partitions_run_on_a_local_dask_cluster(prefect_harness, tmp_path, capsys):
    import json
    import os

    from conftest import SETS, make_long
    from flows.cli import main

    data = tmp_path / "events.parquet"
    make_long(steps=96).to_parquet(data, index=False)  # 4 days, hourly
    args = ["backfill", "--start", "2024-01-01", "--end", "2024-01-05", "--every", "2d", "--data", str(data),
            "--root", str(tmp_path / "art"), "--runner", "dask", "--max-concurrency", "2", "--json", *SETS]
    assert main(args) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["state"] for r in rows] == ["completed", "completed"]
    workers = {r["worker"] for r in rows}
    assert all(not w.endswith(f":{os.getpid()}") for w in workers)  # ran in Dask worker processes, not here
    for r in rows:
        assert json.load(open(r["manifest"]))["stages"]["train"]["rows"] > 0
