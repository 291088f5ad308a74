"""`tsatlas backfill`: partitions, bounded concurrency, skip-when-done, finish-what-is-missing."""

from __future__ import annotations

import json

import pytest

from conftest import SETS, make_long
from flows.cli import main
from tsatlas.partitions import count_between, partition_bounds, partition_name
from tsatlas.errors import ConfigError



def test_partitions_are_a_start_and_a_count_and_the_clis_end_must_fit_them():
    assert partition_bounds("2024-01-01", 3, "2d") == [
        ("2024-01-01T00:00:00", "2024-01-03T00:00:00"), ("2024-01-03T00:00:00", "2024-01-05T00:00:00"),
        ("2024-01-05T00:00:00", "2024-01-07T00:00:00")]
    assert partition_name(("2024-01-01T00:00:00", "2024-01-03T00:00:00")) == "20240101T000000--20240103T000000"
    assert count_between("2024-01-01", "2024-01-07", "2d") == 3
    with pytest.raises(ConfigError, match="must be before"):
        count_between("2024-01-05", "2024-01-01", "1d")
    with pytest.raises(ConfigError, match=r"not a whole number of 2d partitions \(2.50\)"):
        count_between("2024-01-01", "2024-01-06", "2d")
    with pytest.raises(ConfigError):
        partition_bounds("2024-01-01", 0, "1d")


def test_a_backfill_with_a_bad_range_stops_before_any_run(tmp_path, capsys):
    args = ["backfill", "--start", "2024-01-05", "--end", "2024-01-01", "--root", str(tmp_path / "art")]
    assert main(args) == 2
    assert "must be before --end" in capsys.readouterr().err
    assert not (tmp_path / "art").exists()


def test_backfill_skips_done_and_finishes_what_is_missing(prefect_harness, tmp_path, capsys):
    full = make_long(steps=144)          # 6 days, hourly, 6 series
    data = tmp_path / "events.parquet"
    # the last two days have not arrived yet: their partition fails
    full[full.timestamp < "2024-01-05"].to_parquet(data, index=False, row_group_size=48)
    root = str(tmp_path / "art")
    args = ["backfill", "--start", "2024-01-01", "--end", "2024-01-07", "--every", "2d", "--data", str(data),
            "--root", root, "--max-concurrency", "2", "--json", *SETS]
    assert main(args) == 2
    assert "1 of 3 partitions failed, first 20240105T000000--20240107T000000" in capsys.readouterr().err

    full.to_parquet(data, index=False, row_group_size=48)  # the late data arrives
    assert main(args) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["state"] for r in rows] == ["skipped (done before)", "skipped (done before)", "completed"]
    m = json.load(open(rows[2]["manifest"]))
    assert m["config"]["ingest"]["start"] == "2024-01-05T00:00:00" and m["config"]["ingest"]["span"] == "2d"
    assert m["summary"]["ingest"]["rows_in"] == 48 * 6   # only the partition's rows were read

    assert main(args) == 0  # nothing left to do
    assert {r["state"] for r in json.loads(capsys.readouterr().out)} == {"skipped (done before)"}

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["tsatlas-backfill"])))
    assert arts and "20240105T000000--20240107T000000" in json.dumps(arts[0].data)


def test_the_partition_of_a_scheduled_run_and_a_dated_data_path():
    from tsatlas.partitions import fill_data_path, scheduled_partition
    assert scheduled_partition("2024-05-02T02:00:00+00:00", "1d") == ("2024-05-01T00:00:00", "2024-05-02T00:00:00")
    assert scheduled_partition("2024-05-02T08:30:00+02:00", "6h") == ("2024-05-02T00:00:00", "2024-05-02T06:00:00")  # 06:30 UTC
    assert fill_data_path("in/{start}.csv", "2024-05-01T00:00:00", "2024-05-02T00:00:00") == "in/2024-05-01.csv"
    assert fill_data_path("all.parquet", None, None) == "all.parquet"
    with pytest.raises(ConfigError, match="has no partition"):
        fill_data_path("in/{start}.csv", None, None)


def test_a_flow_runs_manifest_is_found_by_its_id(tmp_path):
    from tsatlas import catalog
    from tsatlas.storage import Store
    store = Store(str(tmp_path))
    assert catalog.run_of_flow_run(store, "abcdef12-0000-0000-0000-000000000000") is None  # no runs/ yet
    store.put_json("runs/20240101T000000Z-abcdef12/manifest.json", {"run_id": "20240101T000000Z-abcdef12"})
    (tmp_path / "runs" / "20240102T000000Z-abcdef12").mkdir()  # a run that died before its manifest
    store.put_json("runs/20240101T000000Z-99999999/manifest.json", {})
    assert catalog.run_of_flow_run(store, "abcdef12-0000-0000-0000-000000000000") == "20240101T000000Z-abcdef12"
