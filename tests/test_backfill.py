"""`tsatlas backfill`: partitions, bounded concurrency, skip-when-done, finish-what-is-missing."""

from __future__ import annotations

import json

import pytest

from conftest import SETS, make_long
from flows.cli import main
from tsatlas.partitions import partition_name, partitions
from tsatlas.errors import ConfigError



def test_partitions_cover_the_range_exactly():
    assert partitions("2024-01-01", "2024-01-06", "2d") == [
        ("2024-01-01T00:00:00", "2024-01-03T00:00:00"), ("2024-01-03T00:00:00", "2024-01-05T00:00:00"),
        ("2024-01-05T00:00:00", "2024-01-06T00:00:00")]
    assert partition_name(("2024-01-01T00:00:00", "2024-01-03T00:00:00")) == "20240101T000000--20240103T000000"
    with pytest.raises(ConfigError):
        partitions("2024-01-05", "2024-01-01", "1d")


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
    assert m["config"]["ingest"]["start"] == "2024-01-05T00:00:00"
    assert m["summary"]["ingest"]["rows_in"] == 48 * 6   # only the partition's rows were read

    assert main(args) == 0  # nothing left to do
    assert {r["state"] for r in json.loads(capsys.readouterr().out)} == {"skipped (done before)"}

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["tsatlas-backfill"])))
    assert arts and "20240105T000000--20240107T000000" in json.dumps(arts[0].data)
