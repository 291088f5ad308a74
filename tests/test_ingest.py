import re

import numpy as np
import pandas as pd
import pytest

from tsatlas.ingest import gap_runs, ingest_table
from tsatlas.config import IngestConfig
from tsatlas.errors import InputError

from conftest import make_long


def _write(df, path):
    if str(path).endswith(".parquet"):
        df.to_parquet(path, index=False)
    else:
        df.to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_long_table_sorted_regular(tmp_path, suffix):
    df = make_long(n_series=3, steps=50).sample(frac=1, random_state=0)  # shuffled rows
    out = ingest_table(_write(df, tmp_path / f"d.{suffix}"), IngestConfig())
    f = out.frame
    assert out.channels == ["ch0", "ch1"] and out.info["series"] == 3 and len(f) == 150
    assert list(f.columns) == ["series_id", "timestamp", "ch0", "ch1", "label"]
    for _, g in f.groupby("series_id"):
        assert (g["timestamp"].diff().dropna() == pd.Timedelta("1h")).all()
    exp = df.sort_values(["series_id", "timestamp"])["ch1"].to_numpy()
    np.testing.assert_allclose(f["ch1"].to_numpy(), exp)


def test_wide_table_and_integer_steps(tmp_path):
    wide = pd.DataFrame({"step": np.arange(30), "a": np.arange(30.0), "b": -np.arange(30.0)})
    out = ingest_table(_write(wide, tmp_path / "w.csv"), IngestConfig(time_column="step"))
    assert out.channels == ["value"] and sorted(out.frame["series_id"].unique()) == ["a", "b"]
    assert out.frame["timestamp"].dtype == np.int64
    np.testing.assert_allclose(out.frame.loc[out.frame.series_id == "b", "value"], -np.arange(30.0))


def test_single_series_without_time_column(tmp_path):
    df = pd.DataFrame({"Open": np.arange(10.0), "Close": np.arange(10.0) + 1})
    out = ingest_table(_write(df, tmp_path / "stock.csv"), IngestConfig(layout="single"))
    assert out.channels == ["Open", "Close"] and out.frame["series_id"].unique().tolist() == ["stock"]


def test_short_gaps_filled_by_interpolation(tmp_path):
    df = make_long(n_series=1, steps=20, channels=1, label=False)
    df = df.drop(index=[5, 6])            # two missing steps
    df.loc[10, "ch0"] = np.nan            # one blank value
    out = ingest_table(_write(df, tmp_path / "g.csv"), IngestConfig(max_gap=2))
    assert len(out.frame) == 20 and out.info["gaps_filled"] == 3
    v = out.frame["ch0"].to_numpy()
    assert v[5] == pytest.approx(v[4] + (v[7] - v[4]) / 3)
    assert v[10] == pytest.approx((v[9] + v[11]) / 2)


def test_long_gap_is_kept_missing_or_an_error_naming_series_and_column(tmp_path):
    """An outage longer than max_gap stays missing (windows overlapping it are left out later), the
    short gap beside it is filled; long_gaps=error stops instead, naming where."""
    df = make_long(n_series=1, steps=20, channels=1, label=False)
    df.loc[3:8, "ch0"] = np.inf
    df.loc[12, "ch0"] = np.nan
    path = _write(df, tmp_path / "g.csv")
    out = ingest_table(path, IngestConfig())
    v = out.frame["ch0"].to_numpy()
    assert np.isnan(v[3:9]).all() and np.isfinite(np.delete(v, range(3, 9))).all()
    assert out.info["gaps_filled"] == 1 and out.info["gaps_left"]["runs"] == 1 and out.info["gaps_left"]["steps"] == 6
    assert out.info["gaps_left"]["first"].startswith("series 's0', column 'ch0': 6 missing or non-finite steps from 2024-01-01 03:00")
    with pytest.raises(InputError, match=r"g\.csv: series 's0', column 'ch0': 6 missing or non-finite steps from .* exceed ingest\.max_gap=3"):
        ingest_table(path, IngestConfig(long_gaps="error"))


def test_text_in_numeric_channel_names_column_row_value(tmp_path):
    df = make_long(n_series=1, steps=10, label=False).astype({"ch1": object})
    df.loc[4, "ch1"] = "oops"
    with pytest.raises(InputError, match=r"t\.csv: column 'ch1', row 6: value 'oops' is not a number"):
        ingest_table(_write(df, tmp_path / "t.csv"), IngestConfig())


def test_a_time_column_under_another_name_is_named_in_the_error(tmp_path):
    df = make_long(n_series=1, steps=10, label=False)
    df = df.rename(columns={"timestamp": "Datum"}).assign(Datum=lambda d: d["Datum"].dt.strftime("%d.%m.%Y %H:%M"))
    with pytest.raises(InputError, match=r"column 'Datum', row 2: value '01\.01\.2024 00:00' is not a number \(it reads "
                                         r"as a time: set ingest\.time_column=Datum"):
        ingest_table(_write(df, tmp_path / "t.csv"), IngestConfig())
    assert ingest_table(str(tmp_path / "t.csv"), IngestConfig(time_column="Datum")).info["time_format"] == "%d.%m.%Y %H:%M"


def test_a_written_row_index_is_not_a_channel(tmp_path, caplog):
    df = make_long(n_series=2, steps=20, label=False)
    df.to_csv(tmp_path / "i.csv")  # index=True: a first column without a header
    out = ingest_table(str(tmp_path / "i.csv"), IngestConfig())
    assert out.channels == ["ch0", "ch1"]
    assert "left out 1 column(s) without a header (a row index?), the first at position 1" in caplog.text
    wide = pd.DataFrame({"a": np.arange(30.0), "b": -np.arange(30.0)},
                        index=pd.date_range("2024-01-01", periods=30, freq="D"))
    wide.to_csv(tmp_path / "w.csv")  # a time index without a header: the time axis
    out = ingest_table(str(tmp_path / "w.csv"), IngestConfig())
    assert out.info["layout"] == "wide" and out.info["time_column"] == "Unnamed: 0" and out.info["series"] == 2


def test_duplicate_timestamps(tmp_path):
    df = make_long(n_series=1, steps=10, label=False)
    df = pd.concat([df, df.iloc[[3]]])
    with pytest.raises(InputError, match="duplicate timestamp"):
        ingest_table(_write(df, tmp_path / "d.csv"), IngestConfig())


@pytest.mark.parametrize("sep,decimal", [(";", ","), (";", "."), ("\t", "."), ("|", ",")])
def test_separator_and_decimal_comma_are_found(tmp_path, sep, decimal):
    df = make_long(n_series=2, steps=20, label=False)
    path = tmp_path / "d.csv"
    df.to_csv(path, index=False, sep=sep, decimal=decimal)
    assert (decimal == ",") == ("," in path.read_text().splitlines()[1])  # the file is what it claims
    got, want = ingest_table(str(path), IngestConfig()), ingest_table(_write(df, tmp_path / "ref.csv"), IngestConfig())
    assert got.channels == want.channels == ["ch0", "ch1"]
    pd.testing.assert_frame_equal(got.frame, want.frame)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "cp1252", "latin-1"])
def test_spreadsheet_encodings_read_as_utf8(tmp_path, encoding):
    df = make_long(n_series=2, steps=20, label=False).rename(columns={"ch0": "température", "ch1": "débit"})
    df["series_id"] = df["series_id"].map({"s0": "Zürich", "s1": "Besançon"})
    path = tmp_path / "d.csv"
    df.to_csv(path, index=False, sep=";", decimal=",", encoding=encoding)
    got, want = ingest_table(str(path), IngestConfig()), ingest_table(_write(df, tmp_path / "ref.csv"), IngestConfig())
    assert got.channels == ["température", "débit"]
    pd.testing.assert_frame_equal(got.frame, want.frame)


@pytest.mark.parametrize("suffix", ["gz", "bz2", "xz"])
def test_compressed_csv_reads_as_the_plain_one(tmp_path, suffix):
    df = make_long(n_series=2, steps=20, label=False)
    path = tmp_path / f"d.csv.{suffix}"
    df.to_csv(path, index=False, sep=";")  # pandas compresses by the suffix
    got, want = ingest_table(str(path), IngestConfig()), ingest_table(_write(df, tmp_path / "ref.csv"), IngestConfig())
    pd.testing.assert_frame_equal(got.frame, want.frame)


def test_the_file_kind_is_read_from_its_first_bytes(tmp_path):
    """A zip archive of one CSV (as data downloads come), a gzip file without .gz, Parquet without
    .parquet are read; workbooks, archives of several files and JSON are refused saying what to do."""
    import gzip
    import zipfile

    df = make_long(n_series=2, steps=20, label=False)
    want = ingest_table(_write(df, tmp_path / "ref.csv"), IngestConfig()).frame
    with zipfile.ZipFile(tmp_path / "one.zip", "w") as z:
        z.write(tmp_path / "ref.csv", "data/ref.csv")
    (tmp_path / "noext").write_bytes(gzip.compress((tmp_path / "ref.csv").read_bytes()))
    df.to_parquet(tmp_path / "table.dat")
    for name in ("one.zip", "noext", "table.dat"):
        pd.testing.assert_frame_equal(ingest_table(str(tmp_path / name), IngestConfig()).frame, want)

    with zipfile.ZipFile(tmp_path / "two.zip", "w") as z:
        z.write(tmp_path / "ref.csv", "a.csv")
        z.write(tmp_path / "ref.csv", "b.csv")
    with zipfile.ZipFile(tmp_path / "book.xlsx", "w") as z:
        z.writestr("xl/workbook.xml", "<workbook/>")
    (tmp_path / "t.json").write_text(df.to_json(orient="records", date_format="iso"))
    for name, message in (("two.zip", "a zip archive of 2 files (a.csv, b.csv)"), ("book.xlsx", "a spreadsheet workbook"),
                          ("t.json", "JSON; tsatlas reads CSV or Parquet")):
        with pytest.raises(InputError, match=re.escape(f"{name}: {message}")):
            ingest_table(str(tmp_path / name), IngestConfig())


@pytest.mark.parametrize("form", ["%d/%m/%Y %H:%M", "%m/%d/%Y %H:%M", "%d.%m.%Y %H:%M:%S"])
def test_common_time_forms_read_when_only_one_fits(tmp_path, form):
    df = make_long(n_series=2, steps=40, label=False)  # hourly from 2024-01-13: day 13 cannot be a month
    when = df["timestamp"] + pd.Timedelta("12D")
    df["timestamp"] = when.dt.strftime(form)
    out = ingest_table(_write(df, tmp_path / "d.csv"), IngestConfig())
    want = ingest_table(_write(df.assign(timestamp=when), tmp_path / "iso.csv"), IngestConfig())
    pd.testing.assert_frame_equal(out.frame, want.frame)
    assert out.info["time_format"] == form and want.info["time_format"] is None  # the summary and manifest say which


def test_ambiguous_dates_are_an_error_until_the_form_is_given(tmp_path):
    df = make_long(n_series=1, steps=10, label=False)
    days = pd.date_range("2024-01-01", periods=10, freq="D")
    df["timestamp"] = days.strftime("%d/%m/%Y")  # 01/01 .. 10/01: day-first and month-first both read them
    path = _write(df, tmp_path / "a.csv")
    with pytest.raises(InputError, match=r"a\.csv: column 'timestamp': its dates .* read as %d/%m/%Y and as %m/%d/%Y; "
                                         r"set ingest\.time_format"):
        ingest_table(path, IngestConfig())
    out = ingest_table(path, IngestConfig(time_format="%d/%m/%Y"))
    assert (out.frame["timestamp"].dt.tz_convert(None).to_numpy() == days.to_numpy()).all()
    with pytest.raises(InputError, match=r"row 2: '01/01/2024' does not match ingest\.time_format='%Y-%m-%d'"):
        ingest_table(path, IngestConfig(time_format="%Y-%m-%d"))


def test_unreadable_time_says_what_is_read(tmp_path):
    df = make_long(n_series=1, steps=10, label=False)
    df["timestamp"] = pd.date_range("2024-01-01", periods=10, freq="h").strftime("%Y-%m-%d %H:%M").astype(object)
    df.loc[3, "timestamp"] = "yesterday"
    with pytest.raises(InputError, match=r"row 5: 'yesterday' is not a timestamp: neither ISO 8601 .*set ingest\.time_format"):
        ingest_table(_write(df, tmp_path / "t.csv"), IngestConfig())


@pytest.mark.parametrize("freq,step", [("MS", 1), ("ME", 1), ("QS", 3), ("YE", 12)])
def test_calendar_months_are_steps_of_months(tmp_path, freq, step):
    when = pd.date_range("2001-01-01" if freq.endswith("S") else "2001-01-31", periods=40, freq=freq)
    df = pd.DataFrame({"series_id": "s", "date": when.strftime("%Y-%m-%d"), "x": np.arange(40.0)}).drop(index=[7, 8])
    out = ingest_table(_write(df, tmp_path / "m.csv"), IngestConfig())
    first = (when[0].year - 1970) * 12 + when[0].month - 1
    assert out.info["step"] == f"{step} month(s)" and out.info["gaps_filled"] == 2 and "time_unit" in out.info
    np.testing.assert_array_equal(out.frame["timestamp"], first + step * np.arange(40))
    np.testing.assert_allclose(out.frame["x"], np.arange(40.0))  # the two missing months interpolated


def test_business_days_are_steps_of_weekdays(tmp_path):
    when = pd.bdate_range("2024-01-01", periods=60)  # Monday 1 January: weekends are not rows
    df = pd.DataFrame({"series_id": "s", "date": when.strftime("%Y-%m-%d"), "x": np.arange(60.0)}).drop(index=[10])
    out = ingest_table(_write(df, tmp_path / "b.csv"), IngestConfig())
    assert out.info["step"] == "1 weekday(s)" and out.info["gaps_filled"] == 1 and out.info["rows"] == 60
    first = np.busday_count(np.datetime64("1970-01-01"), np.datetime64("2024-01-01"))
    np.testing.assert_array_equal(out.frame["timestamp"], first + np.arange(60))
    np.testing.assert_allclose(out.frame["x"], np.arange(60.0))


def test_dates_written_with_their_time_zones_offsets_are_local_dates(tmp_path):
    """Daily and monthly data written by a program that knows its time zone (2023-03-27
    00:00:00+02:00): in UTC the days are 23 or 25 hours apart across daylight saving and the months
    start on the last evening of the month before; read as local dates they are regular. Hourly
    data keeps UTC, where it is regular across the change."""
    days = pd.date_range("2023-03-20", periods=20, freq="D", tz="Europe/Berlin")
    daily = ingest_table(_write(pd.DataFrame({"series_id": "s", "timestamp": days.astype(str), "x": np.arange(20.0)}),
                                tmp_path / "d.csv"), IngestConfig())
    assert daily.info["step"] == "1 days 00:00:00" and daily.info["rows"] == 20 and daily.info["gaps_filled"] == 0
    assert daily.info["time_format"] == "local wall-clock times, UTC offsets +01:00, +02:00 dropped"
    assert (daily.frame["timestamp"] == pd.date_range("2023-03-20", periods=20, freq="D", tz="UTC")).all()

    months = pd.date_range("2020-01-01", periods=30, freq="MS", tz="Europe/Berlin")
    monthly = ingest_table(_write(pd.DataFrame({"series_id": "s", "timestamp": months.astype(str), "x": np.arange(30.0)}),
                                  tmp_path / "m.csv"), IngestConfig())
    assert monthly.info["step"] == "1 month(s)" and monthly.info["rows"] == 30

    hours = pd.date_range("2023-03-25", periods=72, freq="h", tz="Europe/Berlin")
    hourly = ingest_table(_write(pd.DataFrame({"series_id": "s", "timestamp": hours.astype(str), "x": np.arange(72.0)}),
                                 tmp_path / "h.csv"), IngestConfig())
    assert hourly.info["step"] == "0 days 01:00:00" and hourly.info["rows"] == 72 and hourly.info["time_format"] is None

    typed = ingest_table(_write(pd.DataFrame({"series_id": "s", "timestamp": days, "x": np.arange(20.0)}),
                                tmp_path / "d.parquet"), IngestConfig())  # a Parquet column in the zone itself
    assert typed.info["time_format"] == "local wall-clock times of time zone Europe/Berlin"
    pd.testing.assert_frame_equal(typed.frame, daily.frame)
    typed_hours = ingest_table(_write(pd.DataFrame({"series_id": "s", "timestamp": hours, "x": np.arange(72.0)}),
                                      tmp_path / "h.parquet"), IngestConfig())
    assert typed_hours.info["time_format"] is None and typed_hours.info["rows"] == 72

    utc = ingest_table(_write(pd.DataFrame({"series_id": "s", "timestamp": days.tz_convert("UTC").normalize().astype(str),
                                            "x": np.arange(20.0)}), tmp_path / "u.csv"), IngestConfig())
    assert utc.info["time_format"] is None and utc.info["rows"] == 20


def test_jittered_or_irregular_times_are_averaged_onto_the_grid_when_asked(tmp_path):
    """A logger that writes every minute give or take a few seconds, and twice in one minute: off
    the grid (an error that names ingest.resample), or, with resample=mean, each row at its nearest
    whole minute and the two rows of one minute averaged."""
    when = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(np.arange(30) * 60 + np.tile([0, 3, -2], 10), unit="s")
    df = pd.DataFrame({"series_id": "m", "timestamp": when, "x": np.arange(30.0)})
    df = pd.concat([df, pd.DataFrame({"series_id": ["m"], "timestamp": [when[10] + pd.Timedelta("10s")], "x": [20.0]})])
    path = _write(df, tmp_path / "j.csv")
    with pytest.raises(InputError, match="off the regular grid .* set ingest.resample=mean"):
        ingest_table(path, IngestConfig())
    out = ingest_table(path, IngestConfig(resample="mean"))
    assert out.info["step"] == "0 days 00:01:00" and out.info["rows"] == 30
    assert out.info["resampled"] == {"rows": 31, "grid_times": 30, "shared": 1}
    assert (out.frame["timestamp"] == pd.date_range("2024-01-01", periods=30, freq="1min", tz="UTC")).all()
    expected = np.arange(30.0)
    expected[10] = (10.0 + 20.0) / 2
    np.testing.assert_allclose(out.frame["x"], expected)


def test_off_grid_timestamp_names_the_step(tmp_path):
    df = make_long(n_series=1, steps=20, label=False)
    df.loc[7, "timestamp"] += pd.Timedelta("13min")
    with pytest.raises(InputError, match=r"is off the regular grid \(one step = 01:00:00, the median spacing; set ingest\.freq"):
        ingest_table(_write(df, tmp_path / "g.csv"), IngestConfig())


@pytest.mark.parametrize("content,message", [
    (None, "file not found"),
    ("", "file is empty"),
    ("series_id,timestamp,ch0\n", "no data rows"),
    ("series_id,timestamp\ns,1\n", "no numeric channel"),
])
def test_unusable_files(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputError, match=message):
        ingest_table(str(path), IngestConfig())


def test_gap_runs_against_a_loop():
    rng = np.random.default_rng(1)
    mask = rng.random((50, 3)) < 0.3
    col, start, length = gap_runs(mask)
    expected = []
    for c in range(3):
        r = 0
        while r < 50:
            if mask[r, c]:
                s = r
                while r < 50 and mask[r, c]:
                    r += 1
                expected.append((c, s, r - s))
            else:
                r += 1
    assert list(zip(col.tolist(), start.tolist(), length.tolist())) == expected


def _streamed(path, cfg, tmp_path, monkeypatch, rows=29):
    import pyarrow.parquet as pq

    import tsatlas.ingest as ti
    monkeypatch.setattr(ti, "STREAM_ROWS", rows)  # batches end inside series
    out = str(tmp_path / "out.parquet")
    res = ti.stream_parquet(path, cfg, None, out)
    return res, (pq.read_table(out).to_pandas() if res else None)


def test_streamed_parquet_equals_reading_it_whole(tmp_path, monkeypatch):
    df = make_long(n_series=4, steps=70)
    df = df.drop(index=[5, 6, 150]).reset_index(drop=True)  # gaps to fill, one of them across a batch edge
    df = df.sample(frac=1, random_state=1).sort_values("series_id", kind="stable")  # contiguous, time shuffled
    path = _write(df, tmp_path / "d.parquet")
    cfg = IngestConfig()
    (channels, info), streamed = _streamed(path, cfg, tmp_path, monkeypatch)
    whole = ingest_table(path, cfg)
    assert channels == whole.channels and info["gaps_filled"] == whole.info["gaps_filled"] == 6
    assert info["rows_in"] == whole.info["rows_in"] and info["series"] == 4
    pd.testing.assert_frame_equal(streamed, whole.frame, check_dtype=False)


def test_streaming_skips_row_groups_outside_the_range_and_names_rows_of_later_batches(tmp_path, monkeypatch):
    df = make_long(n_series=2, steps=96)
    path = tmp_path / "d.parquet"
    df.to_parquet(path, index=False, row_group_size=24)
    (_, info), out = _streamed(str(path), IngestConfig(start="2024-01-02", span="1d"), tmp_path, monkeypatch)
    assert info["rows_in"] == 48 and out["timestamp"].min() == pd.Timestamp("2024-01-02", tz="UTC")

    df["ch0"] = df["ch0"].astype(str)
    df.loc[150, "ch0"] = "oops"  # in the sixth batch of 29 rows
    bad = _write(df, tmp_path / "bad.parquet")
    with pytest.raises(InputError, match=r"column 'ch0', row 152: value 'oops'"):
        _streamed(bad, IngestConfig(), tmp_path, monkeypatch)


def test_series_not_contiguous_fall_back_to_reading_whole(tmp_path, monkeypatch):
    df = make_long(n_series=3, steps=40).sample(frac=1, random_state=0)
    res, _ = _streamed(_write(df, tmp_path / "d.parquet"), IngestConfig(), tmp_path, monkeypatch)
    assert res is None


def _stock(n=120, seed=0):
    rng = np.random.default_rng(seed)
    close = 100 + np.cumsum(rng.standard_normal(n))
    return pd.DataFrame({"Open": close + 0.1, "High": close + 1, "Low": close - 1, "Close": close,
                         "Adj_Close": close * 0.98, "Volume": rng.integers(1_000_000, 2_000_000, n)})


def test_a_table_without_time_or_id_column_is_one_series_of_channels(tmp_path, caplog):
    path = tmp_path / "stock.csv"
    _stock().to_csv(path, index=False)
    with caplog.at_level("WARNING", logger="tsatlas"):
        out = ingest_table(str(path), IngestConfig())
    assert out.info["layout"] == "single" and out.info["series"] == 1 and out.info["time_column"] is None
    assert out.channels == ["Open", "High", "Low", "Close", "Adj_Close", "Volume"]
    assert any("read as single" in r.message and "ingest.layout=wide" in r.message for r in caplog.records)


def test_an_integer_step_column_is_the_time_axis_not_a_series(tmp_path, caplog):
    df = _stock()
    df.insert(0, "n", np.arange(len(df)) * 5)
    path = tmp_path / "stock_steps.csv"
    df.to_csv(path, index=False)
    with caplog.at_level("WARNING", logger="tsatlas"):
        out = ingest_table(str(path), IngestConfig())  # a time axis and no id: wide, with a warning
    assert out.info["time_column"] == "n" and out.info["step"] == 5 and out.info["layout"] == "wide"
    assert sorted(out.frame["series_id"].unique()) == sorted(_stock().columns)  # the counter is not a series
    assert any("set ingest.layout=single" in r.message for r in caplog.records)
    single = ingest_table(str(path), IngestConfig(layout="single"))
    assert single.info["series"] == 1 and single.channels == list(_stock().columns)


def test_wide_table_with_ragged_edges_is_trimmed_and_gaps_name_the_users_column(tmp_path):
    t = pd.date_range("2024-01-01", periods=48, freq="1h", tz="UTC")
    df = pd.DataFrame({"timestamp": t, "site_a": np.arange(48.0), "site_b": np.arange(48.0), "site_c": np.nan})
    df.loc[:4, "site_a"] = np.nan     # starts 5 hours later
    df.loc[40:, "site_b"] = np.nan    # ends 8 hours earlier; site_c never reported
    path = tmp_path / "wide.csv"
    df.to_csv(path, index=False)
    out = ingest_table(str(path), IngestConfig(max_gap=3))
    assert out.info["layout"] == "wide" and out.info["gaps_filled"] == 0
    sizes = out.frame.groupby("series_id").size().to_dict()
    assert sizes == {"site_a": 43, "site_b": 40}
    with pytest.raises(InputError, match="wide.csv: no column has a value"):
        ingest_table(_write(df.assign(site_a=np.nan, site_b=np.nan), tmp_path / "wide.csv"), IngestConfig())
    df.to_csv(path, index=False)
    df.loc[20:25, "site_b"] = np.nan  # a real gap inside the series
    df.to_csv(path, index=False)
    with pytest.raises(InputError, match=r"wide\.csv: column 'site_b': 6 missing or non-finite steps") as e:
        ingest_table(str(path), IngestConfig(max_gap=3, long_gaps="error"))
    assert "'value'" not in str(e.value)


def _per_series_files(root, df):
    """One CSV per series of a long table (no id column), in two sub-folders, one of them gzipped,
    with files that are not data beside them."""
    paths = {}
    for i, (sid, g) in enumerate(df.groupby("series_id")):
        rel = f"{'ab'[i % 2]}/{sid}.csv" + (".gz" if i == 0 else "")
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        g.drop(columns=["series_id", "label"]).to_csv(root / rel, index=False)
        paths[sid] = rel.removesuffix(".gz").removesuffix(".csv")
    (root / "_SUCCESS").write_text("")
    (root / ".notes.csv").write_text("not,data\n")
    (root / "README.txt").write_text("Exported from the plant historian, one file per pump.\n")
    return paths


def test_a_folder_of_files_one_series_each(tmp_path):
    df = make_long(n_series=3, steps=50)
    names = _per_series_files(tmp_path / "pile", df)
    out = ingest_table(str(tmp_path / "pile"), IngestConfig())
    assert out.channels == ["ch0", "ch1"] and out.info["files"] == 3 and out.info["layout"] == "single"
    assert sorted(out.frame["series_id"].unique()) == sorted(names.values())  # named by their path in the folder
    one = ingest_table(_write(df, tmp_path / "one.csv"), IngestConfig()).frame
    for sid, name in names.items():
        np.testing.assert_allclose(out.frame.loc[out.frame.series_id == name, ["ch0", "ch1"]].to_numpy(),
                                   one.loc[one.series_id == sid, ["ch0", "ch1"]].to_numpy())


def test_a_folder_of_long_parts_is_one_table(tmp_path):
    df = make_long(n_series=3, steps=60)
    from tsatlas.ingest import ingest_to_file

    parts = tmp_path / "table.parquet"  # a folder named like a file, as Spark writes a dataset
    parts.mkdir()
    t = pd.to_datetime(df["timestamp"])
    cut = t.min() + (t.max() - t.min()) / 2
    df[t <= cut].to_parquet(parts / "part-0.parquet", index=False)  # the same series in both files
    df[t > cut].to_parquet(parts / "part-1.parquet", index=False)
    (parts / "_SUCCESS").write_text("")
    out = ingest_table(str(parts), IngestConfig())
    whole = ingest_table(_write(df, tmp_path / "whole.parquet"), IngestConfig())
    assert out.info["layout"] == "long" and out.info["series"] == 3 and out.info["rows_in"] == len(df)
    pd.testing.assert_frame_equal(out.frame, whole.frame)
    info = ingest_to_file(str(parts), IngestConfig(), str(tmp_path / "series.parquet"))
    assert info["files"] == 2 and pd.read_parquet(tmp_path / "series.parquet").shape == whole.frame.shape


def test_a_folder_whose_files_disagree_names_the_file(tmp_path):
    from tsatlas.ingest import fingerprint

    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.md").write_text("no data")
    with pytest.raises(InputError, match="empty: a folder without CSV or Parquet files"):
        ingest_table(str(tmp_path / "empty"), IngestConfig())
    df = make_long(n_series=2, steps=40)
    _per_series_files(tmp_path / "pile", df)
    before = fingerprint(str(tmp_path / "pile"))
    odd = df[df.series_id == df.series_id.iloc[0]].drop(columns=["series_id", "label"]).rename(columns={"ch1": "chX"})
    odd.to_csv(tmp_path / "pile" / "z.csv", index=False)
    assert fingerprint(str(tmp_path / "pile")) != before  # a new file: the folder is read again
    with pytest.raises(InputError, match=r"pile/z.csv: its columns differ from those of a/s0.csv.gz \(lacks ch1; has chX "
                                         r"besides\); set ingest.channels"):
        ingest_table(str(tmp_path / "pile"), IngestConfig())
    odd.rename(columns={"chX": "ch1"}).assign(timestamp=np.arange(len(odd))).to_csv(tmp_path / "pile" / "z.csv", index=False)
    with pytest.raises(InputError, match="z.csv: its time column 'timestamp' holds numbers, that of a/s0.csv.gz holds times"):
        ingest_table(str(tmp_path / "pile"), IngestConfig())
    (tmp_path / "pile" / "z.csv").unlink()
    late = df[df.series_id == df.series_id.iloc[-1]].drop(columns=["series_id", "label"])
    late.assign(timestamp=pd.to_datetime(late.timestamp).dt.tz_localize(None)).to_csv(tmp_path / "pile" / "b" / "late.csv", index=False)
    with pytest.raises(InputError, match=r"pile: column 'timestamp', row 2 of b/late.csv: .* mixes time zones: it has no UTC "
                                         r"offset, row 2 of a/s0.csv.gz has one"):  # rows of the files, not of the folder
        ingest_table(str(tmp_path / "pile"), IngestConfig())


def test_a_folder_mixing_long_parts_and_single_series_is_refused(tmp_path):
    df = make_long(n_series=2, steps=30)
    (tmp_path / "mixed").mkdir()
    df.to_csv(tmp_path / "mixed" / "a.csv", index=False)
    df[df.series_id == df.series_id.iloc[0]].drop(columns=["series_id", "label"]).to_csv(tmp_path / "mixed" / "b.csv", index=False)
    with pytest.raises(InputError, match=r"mixed/b.csv: has no 'series_id' column and a.csv has one: a folder holds either"):
        ingest_table(str(tmp_path / "mixed"), IngestConfig())
