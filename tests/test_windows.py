import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tsatlas.windowing import cut, from_table, make_windows, scaler_table, to_table, window_starts
from tsatlas.config import WindowsConfig
from tsatlas.errors import InputError


def _series(lengths, C=2, seed=0):
    rng = np.random.default_rng(seed)
    bounds = np.r_[0, np.cumsum(lengths)]
    return rng.normal(5, 3, (bounds[-1], C)), bounds, np.array([f"s{i}" for i in range(len(lengths))])


def _naive(values, bounds, T, stride):
    out = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        s = a
        while s + T <= b:
            out.append(values[s:s + T])
            s += stride
    return np.array(out, dtype=np.float32).reshape(-1, T, values.shape[1])


@pytest.mark.parametrize("T,stride", [(4, 1), (5, 3), (7, 7), (10, 20)])
def test_windows_match_a_naive_loop(T, stride):
    values, bounds, ids = _series([23, 9, 40])
    values = values.astype(np.float32)
    starts, series = window_starts(bounds, T, stride)
    np.testing.assert_array_equal(cut(values, bounds, T, stride), _naive(values, bounds, T, stride))
    np.testing.assert_array_equal(cut(values, bounds, T, stride)[:, 0], values[starts])
    assert np.all(starts + T <= bounds[series + 1])  # never crosses into the next series


@pytest.mark.parametrize("scope", ["global", "series", "window", "none"])
def test_scaler_round_trip_and_statistics(scope):
    values, bounds, ids = _series([30, 50])
    w, _ = make_windows(values, bounds, ids, WindowsConfig(length=5, stride=5, scale=scope))
    np.testing.assert_allclose(w.original_units(), _naive(values, bounds, 5, 5), rtol=1e-5, atol=1e-4)
    if scope == "window":
        np.testing.assert_allclose(w.X.mean(axis=1), 0, atol=1e-5)
        np.testing.assert_allclose(w.X.std(axis=1), 1, atol=1e-4)
    if scope == "series":  # stride == length covers each series exactly
        for s, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
            np.testing.assert_allclose(w.loc[w.series == s][0], values[a:b].mean(axis=0), rtol=1e-5)
            np.testing.assert_allclose(w.scale[w.series == s][0], values[a:b].std(axis=0), rtol=1e-4)


def test_short_series_skipped_with_warning_all_short_is_an_error():
    values, bounds, ids = _series([30, 3])
    w, warnings = make_windows(values, bounds, ids, WindowsConfig(length=5, stride=5))
    assert len(w.X) == 6 and len(warnings) == 1 and "'s1'" in warnings[0]
    with pytest.raises(InputError, match="every series is shorter than windows.length=50"):
        make_windows(values, bounds, ids, WindowsConfig(length=50))


@pytest.mark.parametrize("scope", ["global", "series", "window", "none"])
def test_windows_overlapping_missing_steps_are_left_out_and_statistics_skip_them(scope):
    """An outage kept missing at ingest (NaN rows): no window overlaps it, the others are the
    windows of the gap-free data, and the scaling statistics are those of the values present."""
    values, bounds, ids = _series([30, 50])
    gappy = values.copy()
    gappy[40:44, 1] = np.nan  # series s1, its rows 10-13, channel 1: the windows starting at 10 only
    cfg = WindowsConfig(length=5, stride=5, scale=scope)
    w, _ = make_windows(gappy, bounds, ids, cfg)
    full, _ = make_windows(values, bounds, ids, cfg)
    kept = ~((full.series == 1) & (full.start == 10))
    assert w.left_out == 1 and len(w.X) == len(full.X) - 1 and not np.isnan(w.X).any()
    np.testing.assert_array_equal(w.start, full.start[kept])
    if scope in ("window", "none"):
        np.testing.assert_allclose(w.X, full.X[kept], rtol=1e-6)
    if scope == "global":
        np.testing.assert_allclose(w.loc[0], np.nanmean(gappy, axis=0), rtol=1e-6)
        np.testing.assert_allclose(w.scale[0], np.nanstd(gappy, axis=0), rtol=1e-5)
    if scope == "series":
        s1 = gappy[30:80]
        np.testing.assert_allclose(w.loc[w.series == 1][0], np.nanmean(s1, axis=0), rtol=1e-6)
        np.testing.assert_allclose(w.scale[w.series == 1][0], np.nanstd(s1, axis=0), rtol=1e-5)
    np.testing.assert_allclose(w.original_units(), _naive(values, bounds, 5, 5)[kept], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("scope", ["global", "series", "window", "none"])
def test_table_round_trip(scope):
    values, bounds, ids = _series([30, 50], C=3)
    w, _ = make_windows(values, bounds, ids, WindowsConfig(length=6, stride=4, scale=scope))
    t = to_table(w, None, bounds, ["a", "b", "c"], scope)
    scaler = scaler_table(w, scope)
    # loc/scale per window only where they differ per window; otherwise one row per scope
    assert ("loc" in t.column_names) == (scope == "window")
    assert len(scaler) == {"global": 1, "series": 2, "window": 0, "none": 0}[scope]
    w2, channels = from_table(t, scaler=scaler)
    assert channels == ["a", "b", "c"]
    np.testing.assert_array_equal(w2.X, w.X)
    np.testing.assert_array_equal(w2.loc, w.loc)
    np.testing.assert_array_equal(w2.scale, w.scale)
    np.testing.assert_array_equal(w2.series_ids[w2.series], ids[w.series])


@settings(max_examples=60, deadline=None)
@given(lengths=st.lists(st.integers(1, 40), min_size=1, max_size=4), T=st.integers(2, 12), stride=st.integers(1, 9),
       C=st.integers(1, 3), scope=st.sampled_from(["global", "series", "window", "none"]),
       scale=st.floats(1e-3, 1e6))
def test_property_any_shape_round_trips_and_stays_finite(lengths, T, stride, C, scope, scale):
    values, bounds, ids = _series(lengths, C)
    values = values * scale
    values[: min(5, len(values)), 0] = 7.0  # a constant stretch
    if max(lengths) < T:
        with pytest.raises(InputError):
            make_windows(values, bounds, ids, WindowsConfig(length=T, stride=stride, scale=scope))
        return
    w, _ = make_windows(values, bounds, ids, WindowsConfig(length=T, stride=stride, scale=scope))
    naive = _naive(values, bounds, T, stride)
    assert w.X.shape == naive.shape and np.isfinite(w.X).all()
    # float32 round trip: the error scales with the largest magnitude the scaler saw (the whole input),
    # not with each element, so a tiny value next to a large one only gets the absolute bound.
    np.testing.assert_allclose(w.original_units(), naive, rtol=1e-4, atol=1e-5 * np.abs(values).max())


@pytest.mark.parametrize("scale", ["global", "series", "window", "none"])
def test_streamed_stage_equals_the_whole_table_in_memory(tmp_path, monkeypatch, scale):
    import tasks.windows
    import tsatlas.windowing as tw
    from conftest import make_long
    from tasks.ingest import ingest_task
    from tsatlas import catalog
    from tsatlas.config import IngestConfig
    from tsatlas.storage import Store

    monkeypatch.setenv("TSATLAS_CACHE", str(tmp_path / "cache"))
    df = make_long(n_series=5, steps=90, channels=2)
    df.loc[df.series_id == "s2", "ch1"] += 1e4  # a far offset: global statistics must combine batches exactly
    df.loc[df.index[(df.series_id == "s3").to_numpy()][20:30], "ch0"] = np.nan  # an outage, kept missing at ingest
    data = tmp_path / "in.parquet"
    df.to_parquet(data, index=False)
    root = str(tmp_path / "art")
    ing = ingest_task.fn(str(data), root, IngestConfig())
    cfg = WindowsConfig(length=16, stride=5, scale=scale)
    monkeypatch.setattr(tw, "BATCH_ROWS", 37)         # batches end inside series: carries and multi-batch series
    monkeypatch.setattr(tw, "GROUP_BYTES", 16 * 2 * 4 * 7)  # row groups of 7 windows: the memory map is built piecewise
    ref = tasks.windows.windows_task.fn(ing, root, cfg)
    w, channels, ids = catalog.read_windows(Store(root), ref)
    assert isinstance(w.X, np.memmap) and not w.X.flags.writeable

    table = pq.read_table(catalog.series_path(Store(root), ing))
    values, bounds, sids = tw._values(table, channels)
    whole, _ = make_windows(values, bounds, sids, cfg)
    assert ref.shape == list(whole.X.shape) and ids.column("window_id").to_pylist() == list(range(len(whole.X)))
    assert ref.facts["left_out"] == whole.left_out == 5  # the windows of 16 steps starting 5, 10, .., 25 overlap rows 20-29
    np.testing.assert_allclose(w.X, whole.X, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(w.original_units(), whole.original_units(), rtol=1e-5, atol=1e-3)
    pf = pq.ParquetFile(catalog.local_path(Store(root), ref, catalog.WINDOWS))
    assert pf.num_row_groups > 3 and pf.metadata.row_group(0).num_rows == 8  # 7 + 1: written, and read back, in pieces
