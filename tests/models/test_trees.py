"""The hgb family: scikit-learn's boosted trees on the nets' inputs, saved, served, ensembled."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from pipeline import jobs, tracking
from pipeline.data import features as feats
from pipeline.data.errors import ViewcastError
from pipeline.data.workspace import Paths
from pipeline.models import device_rows, infer
from pipeline.models.batched import stackable
from pipeline.models.config import ModelConfig
from pipeline.models.families import EnsembleModel, load, save
from pipeline.models.train import TrainConfig, fit
from pipeline.search import grids, sweeps
from pipeline.tracking.pyfunc import lag_columns
from tests.conftest import RAW

TREES = ModelConfig(
    lags=14,
    model="hgb",
    leaves=15,
    target_transform="log1p",
    scaling="window-mean",
    calendar="weekday",
)
BOOST = TrainConfig(lr=0.05, epochs=400, patience=40, seed=0)


@pytest.fixture(scope="module")
def windows(tmp_path_factory) -> feats.LagWindows:
    """The Coding Train's real daily views, 14-day windows."""
    ws = Paths(tmp_path_factory.mktemp("trees") / "ws")
    jobs.ingest(ws, [(RAW / "codingtrain-2021" / "Totals.csv", "ct")])
    return feats.build(ws, feats.FeatureSpec((14,)))[14]


@pytest.fixture(scope="module")
def boosted(windows):
    return fit(windows, TREES, BOOST)


def test_trees_stop_on_the_validation_windows_and_score_in_views(windows, boosted):
    trees = boosted.model.trees
    assert trees.max_leaf_nodes == 15 and trees.loss == "absolute_error"
    assert boosted.best_epoch == trees.n_iter_ < BOOST.epochs  # stopped by patience
    assert len(boosted.history["train_loss"]) == trees.n_iter_ == len(boosted.history["val_mae"])
    val = windows.rows("val")
    pred = windows.predict(boosted.model, val)
    assert boosted.val_mae == pytest.approx(np.abs(pred - windows.y(val)).mean())
    assert boosted.history["val_mae"][-1] == pytest.approx(boosted.val_mae, rel=1e-5)
    np.testing.assert_allclose(boosted.val_pred, pred, rtol=1e-6)
    median = np.median(windows.y(windows.rows("train")))
    assert boosted.val_mae < 0.8 * np.abs(median - windows.y(val)).mean()  # it learned something


def test_saved_trees_predict_alike_in_torch_numpy_and_an_ensemble(windows, boosted, tmp_path):
    import torch

    x = windows.x(windows.rows("val"))
    day = windows.weekday(windows.rows("val"))
    want = boosted.model.predict(x, day)
    save(boosted.model, tmp_path / "m")
    np.testing.assert_allclose(load(tmp_path / "m").predict(x, day), want, rtol=1e-6)
    np.testing.assert_allclose(infer.load(tmp_path / "m").predict(x, day), want, rtol=1e-5)
    torch.manual_seed(0)
    net = fit(windows, ModelConfig(lags=14, model="relu", layers=1, width=8), TrainConfig(epochs=5))
    mixed = EnsembleModel([boosted.model, net.model], [0.5, 0.5])
    save(mixed, tmp_path / "e")
    both = 0.5 * want + 0.5 * net.model.predict(x)
    assert mixed.cfg.trees and not net.model.cfg.trees
    np.testing.assert_allclose(infer.load(tmp_path / "e").predict(x, day), both, rtol=1e-5)


@pytest.mark.slow  # a sweep, end to end
def test_a_sweep_trains_trees_beside_stacked_nets_and_serves_them(tmp_path: Path):
    """A grid with an hgb configuration: trained alone (trees do not stack), logged like any run,
    its pyfunc model asks for scikit-learn and predicts like viewcast."""
    ws = Paths(tmp_path / "ws")
    jobs.ingest(ws, [(RAW / "codingtrain-2021" / "Totals.csv", "ct")])
    grid = tmp_path / "mixed.toml"
    grid.write_text(
        '[base]\nlags = 14\nepochs = 60\nlr = 0.1\ntarget_transform = "log1p"\nleaves = 7\n'
        'width = 8\nlayers = 1\n[grid]\nmodel = ["hgb", "relu"]\n'
    )
    candidates = grids.toml_grid(grid)
    assert [c.name for c in candidates] == [
        "hgb-7leaves-lags14-log1p-boost-0.1",
        "relu-1x8-lags14-log1p-adam-0.1",
    ]
    report = sweeps.sweep(ws, "mixed", candidates)
    assert report.ran == len(candidates) + 3 and report.failed == 0
    runs = tracking.sweep_children(ws, tracking.latest_sweep(ws))
    (tree,) = [r for r in runs if r.name.startswith("hgb-")]
    assert tree.params["model.leaves"] == "7" and tree.metrics["epochs_run"] <= 60
    assert not stackable(candidates[0].model, candidates[0].train)  # trained alone
    mlflow.set_tracking_uri(ws.tracking_uri)
    files = {p.name for p in tracking.model_folder(ws, tree.run_id).iterdir()}
    assert "trees.skops" in files and not [f for f in files if f.endswith((".pkl", ".pt"))]
    uri = f"models:/{tracking.materialise(ws, tree.run_id)}"
    local = Path(mlflow.artifacts.download_artifacts(uri))
    assert any(
        line.startswith("scikit-learn==")
        for line in (local / "requirements.txt").read_text().splitlines()
    )
    x = np.full((2, 14), 40_000.0)
    frame = pd.DataFrame(x, columns=lag_columns(14))
    got = mlflow.pyfunc.load_model(uri).predict(frame)["views"].to_numpy()
    ours = tracking.load_model(ws, tree.run_id).predict(x)
    np.testing.assert_allclose(got, np.maximum(ours, 0), rtol=1e-6)


def test_trees_refuse_what_they_cannot_do(windows, monkeypatch):

    with pytest.raises(ViewcastError, match="leaves"):
        ModelConfig(model="hgb", leaves=1)
    monkeypatch.setattr(device_rows, "FULL_ROWS_LIMIT", 10)
    with pytest.raises(ViewcastError, match="too many for the hgb family"):
        fit(windows, TREES, BOOST)
