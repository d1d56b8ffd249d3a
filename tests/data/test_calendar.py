"""Calendar inputs: the target day's weekday beside the lags, in training, forecasts and serving."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch

from pipeline import jobs, tracking
from pipeline.data import features as feats
from pipeline.data.errors import ViewcastError
from pipeline.data.workspace import Paths
from pipeline.models.config import ModelConfig
from pipeline.models.families import ViewsModel
from pipeline.models.train import TrainConfig, fit
from pipeline.search import grids, sweeps
from pipeline.serving.forecast import roll_forward
from pipeline.tracking.pyfunc import lag_columns
from tests.conftest import write_totals


def test_weekday_counts_from_monday():
    days = np.array(["1970-01-01", "2026-11-23", "2026-11-27", "2026-11-29"], "datetime64[D]")
    assert feats.weekday(days.astype(np.int64)).tolist() == [3, 0, 4, 6]  # Thu, Mon, Fri, Sun


def test_a_calendar_model_needs_the_weekday():
    model = ViewsModel(ModelConfig(lags=7, model="linear", calendar="weekday"))
    assert model.net.in_features == 7 + 7
    with pytest.raises(ViewcastError, match="weekday"):
        model.predict(np.ones((2, 7)))
    assert model.predict(np.ones((2, 7)), np.array([0, 6])).shape == (2,)
    with pytest.raises(ViewcastError, match="unknown calendar"):
        ModelConfig(calendar="month")


def weekly_views(days: int = 400, seed: int = 0) -> np.ndarray:
    """From Monday 2024-01-01: weekends at 3x the weekday level, with noise (yesterday alone
    cannot tell a Saturday from a Friday, nor a Monday from a Sunday)."""
    rng = np.random.default_rng(seed)
    weekend = pd.date_range("2024-01-01", periods=days, freq="D").day_of_week >= 5
    return np.where(weekend, 300.0, 100.0) + rng.normal(0, 5, days)


@pytest.fixture(scope="module")
def weekly(tmp_path_factory) -> Paths:
    ws = Paths(tmp_path_factory.mktemp("calendar") / "ws")
    path = write_totals(ws.home.parent / "weekly.csv", weekly_views(), start="2024-01-01")
    jobs.ingest(ws, [(path, "weekly")])
    return ws


def test_the_weekday_lets_one_lag_see_the_weekly_cycle(weekly: Paths):
    """With lag 1 alone, a Saturday after a Friday looks like any weekday; the weekday input
    tells it apart: the validation MAE falls to the noise level (5 views of noise: MAE ~4)."""
    windows = feats.build(weekly, feats.FeatureSpec((1,)))[1]
    tcfg = TrainConfig(lr=3e-2, epochs=400, patience=0, seed=0)
    scores = {}
    for calendar in ("none", "weekday"):
        mcfg = ModelConfig(lags=1, model="relu", layers=1, width=16, calendar=calendar)
        scores[calendar] = fit(windows, mcfg, tcfg).val_mae
    assert scores["none"] > 40  # two of seven days jump by 200 views
    assert scores["weekday"] < 10 < scores["none"] / 4


def test_forecasts_feed_each_day_its_weekday():
    """roll_forward passes each forecast day's weekday: a model that reads only the weekday
    forecasts the weekly profile over a horizon of 9 days."""
    model = ViewsModel(ModelConfig(lags=1, model="linear", calendar="weekday")).eval()
    with torch.no_grad():
        model.net.weight.copy_(torch.cat([torch.zeros(1, 1), torch.arange(7.0)[None]], 1))
        model.net.bias.zero_()
    last = np.datetime64("2026-11-27", "D").astype(np.int64)  # a Friday
    _, days, steps, pred = roll_forward(model, [np.array([5.0])], np.array([last]), last + 1, 9)
    assert steps.tolist() == list(range(1, 10))
    assert pred.tolist() == feats.weekday(days).astype(float).tolist()
    assert pred[:3].tolist() == [5.0, 6.0, 0.0]  # Saturday, Sunday, Monday


@pytest.mark.slow  # a sweep, end to end
def test_a_calendar_sweep_serves_with_a_date_column(weekly: Paths, tmp_path: Path):
    """A grid with the weekday calendar: the run is named for it, stacks, and its pyfunc model
    takes the forecast day as a `date` column (its signature and example say so)."""
    grid = tmp_path / "weekday.toml"
    grid.write_text(
        "[base]\nepochs = 30\nlr = 0.01\nwidth = 8\nlayers = 1\n"
        '[grid]\nlags = [7]\nmodel = ["relu"]\ncalendar = ["none", "weekday"]\n'
    )
    candidates = grids.toml_grid(grid)
    assert [c.name for c in candidates] == [
        "relu-1x8-lags7-adam-0.01",
        "relu-1x8-lags7-weekday-adam-0.01",
    ]
    sweeps.sweep(weekly, "weekday", candidates)
    runs = tracking.sweep_children(weekly, tracking.latest_sweep(weekly))
    (run,) = [r for r in runs if r.name.endswith("weekday-adam-0.01")]
    assert run.params["model.calendar"] == "weekday"
    mlflow.set_tracking_uri(weekly.tracking_uri)
    uri = f"models:/{tracking.materialise(weekly, run.run_id)}"
    served = mlflow.pyfunc.load_model(uri)
    assert served.metadata.get_input_schema().input_names() == [*lag_columns(7), "date"]
    ours = tracking.load_model(weekly, run.run_id)
    x = np.full((2, 7), 100.0)
    frame = pd.DataFrame(x, columns=lag_columns(7))
    frame["date"] = ["2026-11-28", "2026-11-30"]  # a Saturday and a Monday
    got = served.predict(frame)["views"].to_numpy()
    np.testing.assert_allclose(got, np.maximum(ours.predict(x, np.array([5, 0])), 0), rtol=1e-5)
    with pytest.raises(Exception, match="date"):
        served.predict(frame.drop(columns="date"))


def test_diagnose_reads_each_training_rows_weekday(weekly: Paths, tmp_path: Path):
    """`viewcast diagnose` on a weekday-calendar run: the loss surface is taken on the training
    rows with their own weekdays (shifted by a day, the same weights fit far worse)."""
    from pipeline.lecture import diagnostics as diag

    grid = tmp_path / "one.toml"
    grid.write_text(
        "[base]\nepochs = 200\nlr = 0.03\nwidth = 8\nlayers = 1\nlags = 1\n"
        '[grid]\nmodel = ["relu"]\ncalendar = ["weekday"]\n'
    )
    sweeps.sweep(weekly, "one", grids.toml_grid(grid))
    (run,) = [
        r
        for r in tracking.sweep_children(weekly, tracking.latest_sweep(weekly))
        if r.name.endswith("weekday-adam-0.03")
    ]
    found = diag.diagnose_run(weekly, run.run_id)
    assert np.isfinite([found.point.min_eigenvalue, found.point.max_eigenvalue]).all()
    model, x, y, days = diag._run_rows(weekly, run.run_id, "mae")
    right, theta = diag.views_loss(model, x, y, "mae", days)
    wrong, _ = diag.views_loss(model, x, y, "mae", (days + 1) % 7)
    assert right(theta).item() < wrong(theta).item() / 3
