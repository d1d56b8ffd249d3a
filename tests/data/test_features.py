"""Lag features: lag_j(t) == views(t-j), no leakage, zero-copy windows, test rows never opened."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.data import features as feats
from pipeline.data.errors import ViewcastError
from pipeline.data.ingest import read_views
from pipeline.data.store import Splits, Store
from pipeline.data.table import ViewsTable
from pipeline.data.workspace import Paths
from tests.conftest import synthetic_views, write_totals


@pytest.fixture
def ws(home: Path, raw: Path) -> Paths:
    """A workspace holding the Kaggle sample (10 pages) and Peyton Manning (with 59 gaps)."""
    ws = Paths(home)
    Store(ws).ingest(
        [
            read_views(raw / "wikipedia-kaggle10" / "wikipedia_traffic_daily.csv"),
            read_views(raw / "wikipedia-peyton-manning" / "views.csv", "pm"),
        ]
    )
    return ws


def test_lag_j_of_t_is_the_views_of_t_minus_j(ws: Paths) -> None:
    dev = Store(ws).read_dev()
    lookup = {
        (str(dev.names[c]), int(d)): v for c, d, v in zip(dev.code, dev.day, dev.views, strict=True)
    }
    for n in (1, 7, 56):
        w = feats.build(ws, feats.FeatureSpec((n,)))[n]
        x, y = w.x(), w.y()
        assert x.shape == (len(w), n)
        rng = np.random.default_rng(n)
        for row in rng.choice(len(w), 300, replace=False):
            name, day = str(w.names[w.code[row]]), int(w.day[row])
            assert y[row] == lookup[(name, day)]
            for j in range(1, n + 1):
                assert x[row, j - 1] == lookup[(name, day - j)], (name, day, j)


def test_first_n_days_of_each_series_have_no_row(ws: Paths) -> None:
    dev = Store(ws).read_dev()
    starts, _ = dev.bounds()
    w = feats.build(ws, feats.FeatureSpec((28,)))[28]
    for code in range(len(dev.names)):
        first_day = dev.day[starts[code]]
        assert w.day[w.code == code].min() >= first_day + 28


def test_imputed_days_are_inputs_never_targets(ws: Paths) -> None:
    dev = Store(ws).read_dev()
    w = feats.build(ws, feats.FeatureSpec((7,)))[7]
    assert not dev.imputed[w.target].any()
    pm = int(np.flatnonzero(dev.names == "pm")[0])
    assert dev.imputed[dev.code == pm].sum() > 0


def test_windows_of_10k_series_by_1500_days_allocate_under_10_mb() -> None:
    """The lag matrix of 15M days x 56 lags (6.7 GB as a copy) is a view over the one views
    array: building it allocates next to nothing (tracemalloc sees NumPy's allocations)."""
    import tracemalloc

    series, days, n = 10_000, 1_500, 56
    code = np.repeat(np.arange(series, dtype=np.int32), days)
    day = np.tile(np.arange(18_000, 18_000 + days, dtype=np.int32), series)
    names = np.array([f"s{i:05d}" for i in range(series)], dtype=object)
    views = np.random.default_rng(0).random(series * days)
    table = ViewsTable(names, code, day, views, np.zeros(series * days, bool))
    windows = feats.lag_windows(table, Splits(60, 60, {}), n)
    tracemalloc.start()
    x = windows.windows  # lag_1..lag_N of every position
    first_day = windows.x(np.arange(100))  # a batch gathers only its own rows
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert x.shape == (series * days - n + 1, n) and len(windows) == series * (days - n)
    assert peak < 10 * 2**20, f"building the windows allocated {peak / 2**20:.1f} MB"
    t = windows.target[0]
    np.testing.assert_array_equal(first_day[0], views[t - n : t][::-1])


def test_changing_a_day_never_changes_the_features_of_earlier_days() -> None:
    views = synthetic_views(300, seed=4)
    names = np.array(["a"], dtype=object)
    day = np.arange(18000, 18300, dtype=np.int32)
    splits = _splits(day)

    def rows(values: np.ndarray) -> pd.DataFrame:
        table = ViewsTable(names, np.zeros(300, np.int32), day, values, np.zeros(300, bool))
        return feats.lag_windows(table, splits, 28).frame().set_index("date")

    base = rows(views)
    for k in (40, 150, 299):
        changed = views.copy()
        changed[k] += 1e6
        after = rows(changed)
        cut = pd.Timestamp(np.datetime64(int(day[k]), "D"))
        pd.testing.assert_frame_equal(base[base.index < cut], after[after.index < cut])
        assert not base.loc[cut:].equals(after.loc[cut:]), "the change must show from day k on"


def test_split_labels_follow_the_boundaries(ws: Paths) -> None:
    splits = Store(ws).read_splits()
    w = feats.build(ws, feats.FeatureSpec((7,)))[7]
    for code, name in enumerate(w.names):
        s = splits.series[name]
        mine = w.code == code
        assert (w.day[mine & (w.split == 0)] < s.val_start).all()
        val_days = w.day[mine & (w.split == 1)]
        assert val_days.min() == s.val_start and val_days.max() == s.test_start - 1


def test_features_never_open_the_sealed_test_rows(ws: Paths, parquet_opens) -> None:
    windows = feats.build(ws, feats.FeatureSpec((1, 7, 28, 56)))
    assert parquet_opens and all(p.endswith("dev.parquet") for p in parquet_opens), parquet_opens
    splits = Store(ws).read_splits()
    for w in windows.values():
        last_dev = np.array([splits.series[n].test_start for n in w.names])[w.code] - 1
        assert (w.day <= last_dev).all()


def test_log1p_models_fit_log_views_and_predict_views(ws: Paths) -> None:
    """With target transform log1p the closed-form linear model is log1p(y) = b + w.log1p(x):
    its prediction in views is expm1 of that, rebuilt here from the weights by hand."""
    from pipeline.models.families import ModelConfig
    from pipeline.models.train import TrainConfig, fit

    windows = feats.build(ws, feats.FeatureSpec((7,), "log1p"))[7]
    cfg = ModelConfig(lags=7, model="linear", target_transform="log1p")
    model = fit(windows, cfg, TrainConfig(solver="lstsq", loss="mse")).model
    rows = windows.rows("train")
    logs = np.log1p(windows.x(rows))
    design = np.column_stack([logs, np.ones(len(rows))])
    coef = np.linalg.lstsq(design, np.log1p(windows.y(rows)), rcond=None)[0]
    val = windows.rows("val")
    by_hand = np.expm1(np.log1p(windows.x(val)) @ coef[:-1] + coef[-1])
    np.testing.assert_allclose(model.predict(windows.x(val)), by_hand, rtol=2e-3)
    with pytest.raises(ViewcastError, match="unknown target transform"):
        feats.FeatureSpec((7,), "sqrt")


def test_features_command_records_spec_and_exports_train_val_rows(
    cli, home: Path, tmp_path: Path
) -> None:
    views = synthetic_views(300, seed=5)
    cli("ingest", write_totals(tmp_path / "t.csv", views), "--name", "ch")
    out = tmp_path / "x.parquet"
    result = cli("features", "--lags", "7,1", "--target-transform", "log1p", "--export", out)
    assert result.exit_code == 0, result.output
    spec = feats.load_spec(Paths(home))
    assert spec == feats.FeatureSpec((1, 7), "log1p")
    frame = pd.read_parquet(out)
    assert list(frame.columns) == ["series_id", "date", "split", "y"] + [
        f"lag_{j}" for j in range(1, 8)
    ]
    assert set(frame.split) == {"train", "val"}
    assert len(frame) == 300 - 60 - 7  # no test days, and the first 7 days have no row
    assert (frame.loc[frame.split == "val"].shape[0]) == 60
    np.testing.assert_array_equal(frame.y.to_numpy(), views[7:240])
    np.testing.assert_array_equal(frame.lag_7.to_numpy(), views[0:233])
    csv = tmp_path / "x.csv"
    assert cli("features", "--lags", "1,7", "--export", csv, "--window", 1).exit_code == 0
    assert pd.read_csv(csv).shape == (300 - 60 - 1, 5)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("garbage", "JSONDecodeError"),
        ("{}", "KeyError"),
        ('{"lags": 7, "target_transform": "none"}', "TypeError"),
        ('{"lags": [-1], "target_transform": "none"}', "lag windows must be positive"),
    ],
)
def test_a_damaged_spec_file_is_one_line_naming_it(
    cli, home: Path, tmp_path: Path, text: str, why: str
) -> None:
    cli("ingest", write_totals(tmp_path / "t.csv", synthetic_views(300, seed=5)), "--name", "ch")
    assert cli("features", "--lags", "7").exit_code == 0
    path = Paths(home).features / feats.SPEC_FILE
    path.write_text(text)
    result = cli("train", "--epochs", "2")
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"viewcast: error: {path}: damaged (")
    assert why in result.stderr and "`viewcast features` writes it again" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert cli("features", "--lags", "7").exit_code == 0, "features writes it again"
    assert feats.load_spec(Paths(home)) == feats.FeatureSpec((7,), "none")


def _splits(day: np.ndarray):
    from pipeline.data.store import SeriesSplit, Splits

    last = int(day[-1])
    return Splits(60, 60, {"a": SeriesSplit(last - 119, last - 59, last - 29, last)})


def test_validation_windows_alone_are_the_validation_rows_of_all(ws: Paths) -> None:
    """only="val" (the forecast's intervals): the same rows as every window's validation ones,
    over 11 series with gaps (imputed days are never targets there either)."""
    store = Store(ws)
    dev, splits = store.read_dev(), store.read_splits()
    for n in (1, 7, 56):
        every = feats.lag_windows(dev, splits, n)
        val = feats.lag_windows(dev, splits, n, only="val")
        rows = every.rows("val")
        assert len(val) == len(rows) > 0 and (val.split == 1).all()
        assert every.count("val") == len(rows) and val.count("train") == 0
        assert every.count("train") == len(every.rows("train")) > 0
        np.testing.assert_array_equal(val.target, every.target[rows])
        np.testing.assert_array_equal(val.x(), every.x(rows))
        np.testing.assert_array_equal(val.code, every.code[rows])
