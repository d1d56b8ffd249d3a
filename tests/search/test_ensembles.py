"""Greedy ensembles on out-of-fold forecasts, and weighted ensembles saved and served."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pipeline import tracking
from pipeline.data.store import Store
from pipeline.data.workspace import Paths
from pipeline.models import infer
from pipeline.models.config import ModelConfig
from pipeline.models.families import EnsembleModel, ViewsModel, load, save
from pipeline.search import ensembles, selection
from pipeline.search.ensembles import Forecasts

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)


@settings(max_examples=150, deadline=None)
@given(
    st.integers(1, 6).flatmap(
        lambda c: st.integers(1, 30).flatmap(
            lambda r: st.tuples(
                arrays(np.float64, (c, r), elements=finite),
                arrays(np.float64, (r,), elements=finite),
                arrays(np.int8, (r,), elements=st.integers(1, 3)),
            )
        )
    )
)
def test_greedy_is_never_worse_on_its_folds_than_its_best_member(case):
    preds, y, fold = case
    weight = ensembles.fold_weights(fold)
    counts = ensembles.greedy(preds, y, weight)
    singles = [ensembles.error(p, y, weight) for p in preds]
    blend = counts @ preds / counts.sum()
    assert counts.sum() >= 1 and counts[int(np.argmin(singles))] >= 1  # round one: the best
    assert ensembles.error(blend, y, weight) <= min(singles) + 1e-9 * (1 + min(singles))


def test_greedy_finds_the_members_that_cancel_and_stops():
    y = np.array([10.0, 20, 30, 40])
    high, low, decoy = y + 2, y - 2, y + np.array([1.0, -5, 5, -1])  # decoy: MAE 3
    counts = ensembles.greedy(np.array([decoy, high, low]), y, np.full(4, 0.25))
    # round one takes `high` (MAE 2, first of the tie), round two `low` (exact), then nothing helps
    assert counts.tolist() == [0, 1, 1]


def test_fold_weights_give_the_mean_of_the_folds_maes():
    fold = np.array([1, 1, 1, 2, 3, 3], np.int8)
    err = np.array([1.0, 2, 3, 10, 4, 6])
    by_hand = np.mean([err[:3].mean(), 10, 5])
    assert ensembles.error(err, np.zeros(6), ensembles.fold_weights(fold)) == pytest.approx(by_hand)


def test_aligned_keeps_the_days_every_run_forecast(tmp_path: Path):
    a = Forecasts(np.array([5, 6, 7, 5, 6]), np.array([1, 1, 1, 2, 2], np.int8), np.arange(5.0))
    b = Forecasts(np.array([6, 7, 6, 5]), np.array([2, 1, 1, 2], np.int8), np.arange(10.0, 14))
    target, fold, preds = ensembles.aligned([a, b])
    assert list(zip(fold.tolist(), target.tolist(), strict=True)) == [
        (1, 6),
        (1, 7),
        (2, 5),
        (2, 6),
    ]
    assert preds.tolist() == [[1, 2, 3, 4], [12, 11, 13, 10]]
    a.write(tmp_path / "oof.npz")
    back = Forecasts.read(tmp_path / "oof.npz")
    assert back is not None and back.pred.tolist() == a.pred.tolist()
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    assert Forecasts.read(tmp_path / "bad.npz") is None
    assert Forecasts.read(tmp_path / "missing.npz") is None


def test_a_weighted_ensemble_is_saved_and_served_with_its_weights(tmp_path: Path):
    import torch

    members = []
    for seed, lags in ((0, 7), (1, 14)):
        torch.manual_seed(seed)
        members.append(ViewsModel(ModelConfig(lags=lags, model="relu", width=4)).eval())
    model = EnsembleModel(members, [0.75, 0.25]).eval()
    x = np.random.default_rng(0).uniform(10, 100, (9, 14))
    each = [m.predict(x[:, : m.cfg.lags]) for m in members]
    assert model.predict(x) == pytest.approx(0.75 * each[0] + 0.25 * each[1])
    assert model(torch.tensor(x, dtype=torch.float32)).detach().numpy() == pytest.approx(
        model.predict(x), rel=1e-5
    )
    save(model, tmp_path / "m")
    for loaded in (load(tmp_path / "m"), infer.load(tmp_path / "m")):
        assert loaded.cfg.weights == (0.75, 0.25)
        assert loaded.predict(x) == pytest.approx(model.predict(x), rel=1e-5)


@pytest.mark.slow  # a sweep, end to end
def test_select_builds_a_greedy_ensemble_on_the_folds(two_series: Path, tiny_grid: Path, cli):
    """A sweep with --folds 2 keeps every run's forecasts of both folds; the greedy ensemble's
    val_mae is its folds' mean MAE, never above its best member's, and its weighted forecast."""
    ws = Paths(two_series)
    assert cli("sweep", "--grid", tiny_grid, "--folds", "2").exit_code == 0
    top = cli("select", "--ensemble-method", "top")
    assert top.exit_code == 0 and "no top-K ensemble on a sweep with --folds" in top.output
    result = cli("select", "--ensemble-method", "greedy", "--top", "20")
    assert result.exit_code == 0, result.output
    runs = tracking.sweep_children(ws, tracking.latest_sweep(ws))
    singles = [r for r in runs if not r.baseline and "ensemble_key" not in r.tags]
    best = min(r.metrics["val_mae"] for r in singles)
    greedy = [r for r in runs if r.name.startswith("ensemble-greedy")]
    if not greedy:  # one member alone was best: then the builder logs nothing
        pytest.fail(f"no greedy ensemble: {result.output}")
    (ens,) = greedy
    assert ens.metrics["val_mae"] <= best + 1e-6
    assert ens.metrics["val_mae"] == pytest.approx(
        (ens.metrics["val_mae_fold1"] + ens.metrics["val_mae_fold2"]) / 2
    )
    members = ens.params["ensemble.members"].split(",")
    weights = [float(w) for w in ens.params["ensemble.weights"].split(",")]
    assert sum(weights) == pytest.approx(1.0) and len(members) == len(weights) >= 2
    # the folds' forecasts it was built from, weighted, give its fold MAEs
    kept = [Forecasts.read(tracking.model_folder(ws, m) / ensembles.OOF_FILE) for m in members]
    target, fold, preds = ensembles.aligned(kept)
    y = Store(ws).read_dev().views[target]
    blend = np.asarray(weights) @ preds
    for k in (1, 2):
        mae = np.abs(blend - y)[fold == k].mean()
        assert ens.metrics[f"val_mae_fold{k}"] == pytest.approx(mae)
    # the logged model is the weighted mean of the members' (fold 1) models
    model = tracking.load_model(ws, ens.run_id)
    assert model.cfg.weights == pytest.approx(tuple(weights))
    # the ensemble and each member are MLflow pyfunc models (who loads one may load the others)
    import mlflow

    mlflow.set_tracking_uri(ws.tracking_uri)
    for run_id in (ens.run_id, *members):
        assert tracking.Tag.MODEL_ID in tracking.get_run(ws, run_id).tags
    served = mlflow.pyfunc.load_model(
        f"models:/{tracking.get_run(ws, ens.run_id).tags['model_id']}"
    )
    x = np.random.default_rng(0).uniform(10, 100, (5, model.cfg.lags))
    frame = pd.DataFrame(x, columns=[f"lag_{j}" for j in range(1, model.cfg.lags + 1)])
    np.testing.assert_allclose(
        served.predict(frame)["views"].to_numpy(),
        np.maximum(tracking.load_predictor(ws, ens.run_id).predict(x.astype(np.float32)), 0),
        rtol=1e-6,
    )
    assert selection.select(ws, ensemble=5).ranking[0].score <= best + 1e-6
