"""Grids: the lecture's, the default, the panel, TOML files, and which one a store gets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline.data.errors import ViewcastError
from pipeline.search import grids


def test_lecture_grid_is_the_lectures_tables():
    grid = grids.lecture_grid()
    shapes = [(c.model.model, c.model.lags, c.model.layers, c.model.width) for c in grid]
    linear = [(m, n) for m, n, _, _ in shapes if m == "linear"]
    assert linear == [("linear", 1), ("linear", 7), ("linear", 28), ("linear", 56)]
    assert ("sigmoid", 56, 3, 100) in shapes  # layers is unused (canonical) for sigmoid
    relu = sorted((k, w) for m, n, k, w in shapes if m == "relu" and n == 56)
    assert relu == [(1, 10), (1, 100), (1, 1000), (2, 100), (3, 100), (4, 100)]
    assert len({c.key for c in grid}) == len(grid) == 11
    assert all(c.train.loss == "mae" and c.train.solver == "gd" for c in grid)


def test_default_grid_covers_every_axis_without_duplicates():
    grid = grids.default_grid()
    assert len({c.key for c in grid}) == len(grid) == 144
    nets = grid
    assert {c.model.calendar for c in nets} == {"none", "weekday"}
    assert {c.model.lags for c in nets} == {7, 28, 56}
    assert {c.model.model for c in nets} == {"linear", "relu"}
    assert {(c.train.optimizer, c.train.lr) for c in nets} == {
        ("adam", 3e-3),
        ("adam", 1e-3),
        ("rmsprop", 1e-3),
    }
    assert {c.model.target_transform for c in nets} == {"log1p", "none"}
    assert {c.model.batchnorm for c in nets} == {False, True}
    # a time budget cuts the end: the first pass covers every structure with one optimiser
    first = grid[: len(grid) // 3]
    assert {(c.train.optimizer, c.train.lr) for c in first} == {("adam", 3e-3)}
    assert {(c.model.lags, c.model.model, c.model.target_transform) for c in first} == {
        (c.model.lags, c.model.model, c.model.target_transform) for c in grid
    }


def test_toml_grid_is_the_product_without_duplicates(tiny_grid: Path, tmp_path: Path):
    grid = grids.toml_grid(tiny_grid)
    assert [c.name for c in grid] == [
        "linear-lags7-log1p-adam-0.01",
        "relu-1x8-lags7-log1p-adam-0.01",
        "linear-lags14-log1p-adam-0.01",
        "relu-1x8-lags14-log1p-adam-0.01",
    ]
    assert all(c.train.epochs == 40 and c.model.scaling == "window-mean" for c in grid)
    # layers means nothing to a linear model: two layer counts give one linear configuration
    path = tmp_path / "dup.toml"
    path.write_text('[grid]\nmodel = ["linear", "relu"]\nlayers = [1, 2]\nlags = 7\n')
    assert [c.name for c in grids.toml_grid(path)] == [
        "linear-lags7-adam-0.001",
        "relu-1x100-lags7-adam-0.001",
        "relu-2x100-lags7-adam-0.001",
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[grid]\nlayerz = [1]\n", "unknown keys layerz"),
        ("[grid]\nmodel = ['cnn']\n", "unknown model 'cnn'"),
        ("[grid\n", "cannot read the grid"),
        ("[other]\nx = 1\n", "use [base] and [grid]"),
        ("[grid]\nlags = ['seven']\n", "lags must be an integer, got 'seven'"),
        ("[base]\nlr = '0.01'\n[grid]\nlags = [7]\n", "lr must be a number, got '0.01'"),
        ("[grid]\nbatchnorm = [1]\n", "batchnorm must be true or false, got 1"),
        ("[grid]\nepochs = [true]\n", "epochs must be an integer, got True"),
        ("[grid]\nmodel = [3]\n", "model must be a string, got 3"),
    ],
)
def test_bad_grid_file_is_one_clear_line(tmp_path: Path, cli, text: str, problem: str):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ViewcastError, match=re.escape(problem)):
        grids.load_grid(str(path))
    result = cli("sweep", "--grid", path)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"viewcast: error: {path}: ")
    assert "Traceback" not in result.output


def test_a_grid_file_may_give_an_integer_where_a_number_is_expected(tmp_path: Path):
    path = tmp_path / "ints.toml"
    path.write_text("[base]\nlr = 1\nepochs = 5\n[grid]\nlags = [7]\ndropout = [0, 0.5]\n")
    found = grids.load_grid(str(path))
    assert [(c.train.lr, c.model.dropout) for c in found] == [(1, 0), (1, 0.5)]


def test_default_means_the_panel_grid_where_windows_are_too_many_to_gather(monkeypatch):
    from pipeline.models import device_rows

    limit = device_rows.FULL_ROWS_LIMIT
    assert grids.grid_for("default", lambda: limit // 56)[0] == "default"
    assert grids.grid_for("default", lambda: limit // 56 + 1)[0] == "panel"
    unasked = lambda: pytest.fail("the store's size is read for `default` only")  # noqa: E731
    assert grids.grid_for("lecture", unasked)[0] == "lecture"
    panel = grids.panel_grid()
    assert len({c.key for c in panel}) == len(panel) == 6
    assert all(c.train.rows_per_epoch == grids.PANEL_EPOCH for c in panel)
    assert all(c.train.batch_size == 65_536 for c in panel)
    assert {
        (c.model.model, c.model.layers, c.model.width) for c in panel if c.model.lags == 56
    } == {
        ("linear", 3, 100),
        ("relu", 2, 64),
        ("relu", 3, 100),  # linear: canonical defaults
    }


def test_the_strategy_and_year_axes_add_twins_after_each_network():
    """`--horizon 7`: the one-day grid as it was, then each network's direct twin (not the
    baselines, not the trees), so a time budget cuts the twins first; the year axis then adds
    each one's twin that also reads the week a year back. One day and no year leave the grid
    as it was; keys of old configurations do not change."""
    cands = grids.baselines() + grids.default_grid()[:3]
    assert grids.with_direct(cands, 1) == cands
    direct = grids.with_direct(cands, 7)
    assert direct[:6] == cands, "the one-day grid first, unchanged"
    assert [c.model.horizon for c in direct] == [1, 1, 1, 1, 1, 1, 7, 7, 7]
    assert direct[6].name == direct[3].name.replace("-adam", "-direct7-adam")
    assert direct[6].key != direct[3].key and direct[3].key == cands[3].key
    both = grids.with_year(direct)
    assert len(both) == 3 + 12
    twin = both[4]
    assert twin.model.year and twin.model.recent == direct[3].model.lags
    assert twin.model.lags == 367 and "-lags28-year" in twin.name
    assert len({c.key for c in both}) == len(both)
    with pytest.raises(ViewcastError, match="year of memory"):
        grids.ModelConfig(lags=56, recent=7)
    with pytest.raises(ViewcastError, match="no direct"):
        grids.ModelConfig(lags=7, model="naive", horizon=7)
