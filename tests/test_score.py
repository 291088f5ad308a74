"""`tsatlas score`: new data through a trained run."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq

from conftest import SETS, make_long
from flows.cli import main



def test_score_new_data_with_the_latest_run(prefect_harness, tiny_csv, tmp_path, capsys):
    root = str(tmp_path / "art")
    assert main(["run", "--data", tiny_csv, "--root", root, "--json", *SETS]) == 0
    run = json.loads(capsys.readouterr().out)

    new = make_long(n_series=3, steps=96, seed=5)
    new.loc[new.series_id == "s2", ["ch0", "ch1"]] *= 8  # one series far from anything seen in training
    path = tmp_path / "new.csv"
    new.to_csv(path, index=False)
    assert main(["score", "--data", str(path), "--root", root, "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["model_run"] == run["run_id"] and r["windows"] == 3 * 11
    scores = pq.read_table(r["uri"]).to_pandas()
    assert len(scores) == r["windows"] and set(scores["cluster"]) <= set(range(run["metrics"]["cluster"]["k"]))
    flagged = scores.groupby("series_id")["anomaly"].mean()
    assert flagged["s2"] == 1.0 and flagged.drop("s2").max() < 0.5
    assert r["anomalies"] == int(scores["anomaly"].sum())
    assert len(r["new_share"]) == len(r["train_share"]) and np.isclose(sum(r["new_share"]), 1.0)

    assert main(["score", "--data", str(path), "--root", root]) == 0  # the human summary
    assert "anomalies" in capsys.readouterr().out

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    keys = ["tsatlas-score-summary", "tsatlas-score-clusters"]
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys)))
    assert {a.key for a in found} == set(keys)
    assert any(r["score_id"] in a.data for a in found if a.key == "tsatlas-score-summary")


def test_score_reads_the_models_channels_by_name(prefect_harness, tiny_csv, tmp_path, capsys):
    root = str(tmp_path / "art")
    assert main(["run", "--data", tiny_csv, "--root", root, *SETS]) == 0
    capsys.readouterr()
    new = make_long(n_series=2, steps=60, channels=3)  # ch0, ch1 as trained, and ch2
    plain, shuffled, missing = (tmp_path / f"{n}.csv" for n in ("plain", "shuffled", "missing"))
    new.drop(columns="ch2").to_csv(plain, index=False)
    new[["ch2", "ch1", "series_id", "ch0", "timestamp"]].to_csv(shuffled, index=False)
    new.drop(columns="ch1").to_csv(missing, index=False)
    scored = []
    for path in (plain, shuffled):
        assert main(["score", "--data", str(path), "--root", root, "--json"]) == 0
        scored.append(pq.read_table(json.loads(capsys.readouterr().out)["uri"]).to_pandas())
    assert scored[0].equals(scored[1])  # column order and the extra column change nothing
    assert main(["score", "--data", str(missing), "--root", root]) == 2
    assert "missing.csv: channel column 'ch1' not found" in capsys.readouterr().err
    coarse = tmp_path / "coarse.csv"  # the same series, sampled every 2 hours instead of every hour
    make_long(n_series=2, steps=60, freq="2h").to_csv(coarse, index=False)
    assert main(["score", "--data", str(coarse), "--root", root]) == 2
    assert "coarse.csv: rows are 02:00:00 apart, the model was trained on data 01:00:00 apart" in capsys.readouterr().err


def test_scoring_the_training_data_flags_about_one_percent_and_new_data_is_put_on_the_grid(
        prefect_harness, tiny_csv, tmp_path, capsys):
    import pandas as pd

    root = str(tmp_path / "art")
    assert main(["run", "--data", tiny_csv, "--root", root, "--json", *SETS]) == 0
    run = json.loads(capsys.readouterr().out)
    assert run["summary"]["windows"]["grid"] == {"period": 8 * 3600 * 10**9, "phase": 0, "share": 1.0}
    assert main(["score", "--data", tiny_csv, "--root", root, "--json"]) == 0
    same = json.loads(capsys.readouterr().out)
    assert same["windows"] == 114 and same["anomalies"] <= 2  # the 99th percentile of these very windows

    shifted = pd.read_csv(tiny_csv).groupby("series_id").apply(lambda g: g.iloc[3:], include_groups=False)
    path = tmp_path / "shifted.csv"
    shifted.reset_index(level=0).to_csv(path, index=False)  # each series starts 3 hours into a window
    assert main(["score", "--data", str(path), "--root", root, "--json"]) == 0
    out = capsys.readouterr()
    r = json.loads(out.out)
    assert "starts off the training windows' grid: skipped the first 30 rows (6 series)" in out.err
    starts = pq.read_table(r["uri"]).to_pandas()["start"]
    assert (pd.to_datetime(starts).dt.hour % 8 == 0).all()  # the training windows' phase
    assert r["windows"] == 6 * 18 and r["anomalies"] <= 2


def test_series_seen_in_training_on_their_own_phase_keep_it():
    """Stations in three time zones, each starting at its local midnight: training windows start at
    05:00, 06:00 and 10:00 UTC; new data is cut where each station's training windows were, a
    station not seen in training on the common phase."""
    import pandas as pd

    from tsatlas.scoring import align_to_grid
    from tsatlas.windowing import window_grid

    hour, day = 3600 * 10**9, 24 * 3600 * 10**9
    ids = np.array(["miami", "greensboro", "sand_point", "key_west"])
    grid = window_grid(np.array([[day, 5 * hour], [day, 6 * hour], [day, 10 * hour], [day, 5 * hour]]), ids)
    assert grid == {"period": day, "phase": 5 * hour, "share": 0.5,
                    "series_phase": {"greensboro": 6 * hour, "sand_point": 10 * hour}}
    assert "series_phase" not in window_grid(np.array([[day, 5 * hour]] * 2), ids[:2])

    times = pd.date_range("2024-03-01", periods=48, freq="1h", tz="UTC")
    new = pd.concat([pd.DataFrame({"series_id": s, "timestamp": times, "x": 0.0})
                     for s in ("miami", "greensboro", "sand_point", "new_station")], ignore_index=True)
    kept = align_to_grid(new, grid, "new.csv")
    first = kept.groupby("series_id", sort=False)["timestamp"].first().dt.hour.to_dict()
    assert first == {"miami": 5, "greensboro": 6, "sand_point": 10, "new_station": 5}


def test_new_data_is_read_as_the_training_data_was():
    from tsatlas.scoring import reading_config

    trained_cfg = {"resample": "mean", "freq": None, "start": "2024-01-01", "span": "30d", "end": None}
    cfg = reading_config(trained_cfg, {"layout": "long", "channels": ["a", "b"], "step": "0 days 00:00:30"})
    assert cfg.freq == "30000000000ns" and cfg.channels == ["a", "b"] and cfg.start is None and cfg.span is None
    months = reading_config(trained_cfg, {"layout": "long", "channels": ["a"], "step": "1 month(s)", "time_unit": "month numbers"})
    assert months.freq is None  # a calendar's step is not a duration
    wide = reading_config({}, {"layout": "wide", "channels": ["value"], "step": "0 days 01:00:00"})
    assert wide.channels is None and wide.freq is None  # a wide table's columns are its series; no resampling
