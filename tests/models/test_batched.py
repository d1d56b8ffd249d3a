"""Stacked training: each member is the configuration trained alone, with its own bookkeeping."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline import jobs, tracking
from pipeline.data import features as feats
from pipeline.data.errors import ViewcastError
from pipeline.data.workspace import Paths
from pipeline.models import device_rows
from pipeline.models.batched import fit_stack, gather_rows, stack_key, stackable
from pipeline.models.config import ModelConfig
from pipeline.models.outcome import CURVE_POINTS
from pipeline.models.train import TrainConfig, fit
from pipeline.search import grids, sweeps
from tests.conftest import RAW, clone_workspace

FAMILIES = {
    "linear": {"model": "linear"},
    "sigmoid": {"model": "sigmoid", "width": 8},
    "relu": {"model": "relu", "layers": 2, "width": 8},
    "relu-bn": {"model": "relu", "layers": 2, "width": 8, "batchnorm": True},
    "relu-weekday": {"model": "relu", "layers": 2, "width": 8, "calendar": "weekday"},
}
OPTIMISERS = [
    ("sgd", 1e-2),
    ("momentum", 1e-2),
    ("adagrad", 1e-2),
    ("rmsprop", 1e-3),
    ("adam", 1e-3),
]


@pytest.fixture(scope="module")
def windows(tmp_path_factory) -> feats.LagWindows:
    """The Coding Train's real daily views, 14-day windows."""
    ws = Paths(tmp_path_factory.mktemp("stack") / "ws")
    jobs.ingest(ws, [(RAW / "codingtrain-2021" / "Totals.csv", "ct")])
    return feats.build(ws, feats.FeatureSpec((14,)))[14]


def flat_weights(result) -> torch.Tensor:
    """Every weight whose gradient is not zero by construction. The bias of a layer that feeds
    batch norm is cancelled by it: its exact gradient is 0, so both trainings move it by rounding
    noise alone (Adagrad turns any noise into steps of size lr), and the moving mean absorbs it."""
    net = result.model.net
    layers = list(net) if isinstance(net, torch.nn.Sequential) else [net]
    cancelled = {
        f"{i}.bias"
        for i, layer in enumerate(layers[:-1])
        if isinstance(layers[i + 1], torch.nn.BatchNorm1d)
    } | {
        f"{i}.running_mean"
        for i, layer in enumerate(layers)
        if isinstance(layer, torch.nn.BatchNorm1d)
    }
    state = net.state_dict()
    return torch.cat(
        [v.flatten() for k, v in state.items() if v.is_floating_point() and k not in cancelled]
    )


def relative_gap(a, b) -> float:
    wa, wb = flat_weights(a), flat_weights(b)
    return ((wa - wb).abs().max() / wa.abs().max()).item()


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_optimiser_in_one_stack_matches_training_alone(windows, family):
    """50 full-batch epochs: one stack of the five optimisers (two target transforms, weight
    decay, different seeds) against each configuration trained alone, weights within 1e-4."""
    configs = []
    for i, (optimizer, lr) in enumerate(OPTIMISERS):
        mcfg = ModelConfig(
            lags=14,
            scaling="window-mean",
            target_transform="log1p" if i % 2 else "none",
            **FAMILIES[family],
        )
        tcfg = TrainConfig(
            optimizer=optimizer, lr=lr, epochs=50, patience=0, weight_decay=1e-3, seed=i
        )
        configs.append((mcfg, tcfg))
    assert len({stack_key(*c) for c in configs}) == 1
    for (mcfg, tcfg), stacked in zip(configs, fit_stack(windows, configs), strict=True):
        alone = fit(windows, mcfg, tcfg)
        assert relative_gap(alone, stacked) < 1e-4, (family, tcfg.optimizer)
        # Adagrad walks a bias cancelled by batch norm by steps of lr on rounding noise (see
        # flat_weights); the moving mean follows it with a lag, so the function moves by ~1e-4
        noise = 1e-3 if mcfg.batchnorm and tcfg.optimizer == "adagrad" else 1e-4
        assert stacked.val_mae == pytest.approx(alone.val_mae, rel=noise), "the same function"
        assert stacked.history["grad_norm"] == pytest.approx(alone.history["grad_norm"], rel=1e-3)
        assert (stacked.best_epoch, stacked.epochs_run) == (alone.best_epoch, alone.epochs_run)


@pytest.mark.parametrize("loss", ["mse", "huber"])
def test_every_loss_stacks_like_training_alone(windows, loss):
    """The stack's per-member loss (reduction "none", each member's mean) is the loss alone."""
    mcfg = ModelConfig(lags=14, model="relu", layers=2, width=8, scaling="window-mean")
    configs = [
        (mcfg, TrainConfig(optimizer=opt, lr=lr, loss=loss, epochs=50, patience=0, seed=i))
        for i, (opt, lr) in enumerate(OPTIMISERS[2:])
    ]
    for (mcfg, tcfg), stacked in zip(configs, fit_stack(windows, configs), strict=True):
        alone = fit(windows, mcfg, tcfg)
        assert relative_gap(alone, stacked) < 1e-4, (loss, tcfg.optimizer)
        assert stacked.history["train_loss"] == pytest.approx(alone.history["train_loss"], rel=1e-4)


def test_small_batches_keep_each_members_own_batch_order_and_schedule(windows):
    base = ModelConfig(lags=14, model="relu", layers=1, width=8)
    configs = [
        (base, TrainConfig(lr=3e-3, batch_size=32, epochs=20, patience=0, seed=s, **extra))
        for s, extra in (
            (0, {}),
            (1, {"schedule": "cosine", "warmup_epochs": 2}),
            (2, {"clip": 0.5}),
        )
    ]
    for (mcfg, tcfg), stacked in zip(configs, fit_stack(windows, configs), strict=True):
        alone = fit(windows, mcfg, tcfg)
        assert relative_gap(alone, stacked) < 1e-4, tcfg
        assert stacked.history["lr"] == pytest.approx(alone.history["lr"])


@pytest.mark.parametrize("calendar", ["none", "weekday"])
def test_sampled_epochs_stack_like_training_alone(windows, monkeypatch, calendar):
    """--rows-per-epoch in a stack (Kaggle scale): each member draws its windows with its own
    generator, fits its normalisation on its own sample and scores its own validation sample,
    as alone; no window matrix is ever built. Weights within 1e-4 after 8 epochs, the same
    curves, the final val MAE and forecasts over every validation window."""

    monkeypatch.setattr(device_rows, "NORMALISATION_ROWS", 150)  # samples smaller than the rows
    monkeypatch.setattr(device_rows, "VALIDATION_ROWS", 25)
    monkeypatch.setattr(device_rows, "SCORE_CHUNK", 11)
    base = ModelConfig(
        lags=14, model="relu", layers=2, width=8, scaling="window-mean", calendar=calendar
    )
    configs = [
        (
            replace(base, target_transform=t),
            TrainConfig(
                lr=lr, batch_size=64, rows_per_epoch=200, epochs=8, patience=0, seed=s, optimizer=o
            ),
        )
        for s, (t, lr, o) in enumerate(
            [("log1p", 3e-3, "adam"), ("none", 1e-3, "rmsprop"), ("log1p", 1e-2, "adagrad")]
        )
    ]
    assert len({stack_key(*c) for c in configs}) == 1 and all(stackable(*c) for c in configs)
    with monkeypatch.context() as m:
        m.setattr(feats.LagWindows, "x", lambda *a: pytest.fail("a window matrix was built"))
        stacked_all = fit_stack(windows, configs)
        alone_all = [fit(windows, *c) for c in configs]
    val = windows.rows("val")
    for stacked, alone in zip(stacked_all, alone_all, strict=True):
        assert relative_gap(alone, stacked) < 1e-4
        assert stacked.history["val_mae"] == pytest.approx(alone.history["val_mae"], rel=1e-4)
        assert stacked.history["train_loss"] == pytest.approx(alone.history["train_loss"], rel=1e-4)
        assert stacked.val_mae == pytest.approx(alone.val_mae, rel=1e-4)
        assert stacked.train_mae == pytest.approx(alone.train_mae, rel=1e-4)
        assert len(stacked.val_pred) == len(val) and stacked.rows == alone.rows
        np.testing.assert_allclose(stacked.val_pred, alone.val_pred, rtol=1e-4)


def test_each_member_stops_early_on_its_own_and_keeps_its_best_weights(windows):
    mcfg = ModelConfig(lags=14, model="relu", layers=1, width=8)
    configs = [
        (mcfg, TrainConfig(lr=3e-2, epochs=150, patience=5, seed=0)),
        (mcfg, TrainConfig(lr=1e-3, epochs=150, patience=0, seed=0)),
    ]
    patient, tireless = fit_stack(windows, configs)
    assert patient.epochs_run < tireless.epochs_run == 150
    assert patient.epochs_run - patient.best_epoch == 5
    assert len(patient.history["val_mae"]) == patient.epochs_run
    # the restored weights are the best epoch's: its curve's minimum is the final val MAE
    assert patient.val_mae == pytest.approx(min(patient.history["val_mae"]), rel=1e-5)
    alone = fit(windows, *configs[1])
    assert relative_gap(alone, tireless) < 1e-4, "a stopped member leaves the others alone"


def test_a_diverging_member_fails_alone(windows):
    mcfg = ModelConfig(lags=14, model="linear")
    calm = TrainConfig(optimizer="sgd", lr=1e-2, loss="mse", epochs=30, patience=0)
    wild = replace(calm, lr=1e6)
    results = fit_stack(windows, [(mcfg, calm), (mcfg, wild), (mcfg, replace(calm, seed=1))])
    assert isinstance(results[1], ViewcastError) and "diverged" in str(results[1])
    for config, stacked in ((calm, results[0]), (replace(calm, seed=1), results[2])):
        assert relative_gap(fit(windows, mcfg, config), stacked) < 1e-4


def test_a_stack_refuses_mixed_shapes(windows):
    configs = [
        (ModelConfig(lags=14, model="linear"), TrainConfig()),
        (ModelConfig(lags=14, model="relu", layers=1), TrainConfig()),
    ]
    with pytest.raises(ViewcastError, match="one shape"):
        fit_stack(windows, configs)


def test_windows_gathered_by_index_are_the_lag_windows(windows):
    values = torch.from_numpy(windows.values.astype(np.float32))  # as fit_stack gathers
    rows = windows.rows("val")
    gathered = gather_rows(values, torch.from_numpy(windows.target[rows]), windows.n)
    np.testing.assert_array_equal(gathered.numpy(), windows.x(rows))


# --- sweeps ---------------------------------------------------------------------------------------

SWEEP_GRID = grids.default_grid()[::3][:8]  # every structure of the grid, cheaply


@pytest.fixture(scope="module")
def two_sweeps(tmp_path_factory) -> tuple[Path, Path]:
    """The Coding Train swept twice with the same configurations: stacked, and one at a time."""
    first = tmp_path_factory.mktemp("stacked") / "ws"
    jobs.ingest(Paths(first), [(RAW / "codingtrain-2021" / "Totals.csv", "ct")])
    second = clone_workspace(first, tmp_path_factory.mktemp("alone") / "ws")
    grid = [replace(c, train=replace(c.train, epochs=150)) for c in SWEEP_GRID]
    sweeps.sweep(Paths(first), "part", grid, stack=True)
    sweeps.sweep(Paths(second), "part", grid, stack=False)
    return first, second


def val_maes(home: Path) -> dict[str, float]:
    ws = Paths(home)
    parent = tracking.latest_sweep(ws)
    return {r.tags["config_key"]: r.metrics["val_mae"] for r in tracking.sweep_children(ws, parent)}


@pytest.mark.slow
def test_a_stacked_sweep_gives_the_one_at_a_time_sweeps_models(two_sweeps):
    stacked, alone = (val_maes(home) for home in two_sweeps)
    assert stacked.keys() == alone.keys() and len(stacked) == len(SWEEP_GRID) + 3
    for key, value in alone.items():
        assert stacked[key] == pytest.approx(value, rel=0.02), key
    assert min(stacked, key=stacked.get) == min(alone, key=alone.get), "the same champion"


def test_a_stacked_sweep_logs_every_member_and_draws_only_the_best(two_sweeps):
    ws = Paths(two_sweeps[0])
    runs = tracking.sweep_children(ws, tracking.latest_sweep(ws))
    trained = [r for r in runs if r.metrics.get("epochs_run", 0) > 0]
    drawn = [r for r in trained if "learning_curve.png" in tracking.artifacts(ws, r.run_id)]
    assert len(drawn) == min(sweeps.PLOTTED, len(trained))
    best = sorted(trained, key=lambda r: r.metrics["val_mae"])[: sweeps.PLOTTED]
    assert {r.run_id for r in drawn} == {r.run_id for r in best}
    for run in trained:
        steps = sorted(tracking.metric_steps(ws, run.run_id, "val_mae_epoch"))
        epochs = int(run.metrics["epochs_run"])
        if epochs <= CURVE_POINTS:
            assert steps == list(range(1, epochs + 1))
        else:  # thinned: evenly spaced, the best and the last among them
            assert len(steps) <= CURVE_POINTS and steps[0] == 1 and steps[-1] == epochs
            assert int(run.metrics["best_epoch"]) in steps
        every = tracking.epoch_curves(ws, run.run_id)  # the model folder's curves file
        assert every["train_loss"][0] == list(range(1, epochs + 1))
        assert {every["val_mae_epoch"][1][s - 1] for s in steps} == set(
            tracking.metric_steps(ws, run.run_id, "val_mae_epoch").values()
        )
        assert {"training", "validation"} == {context for context, _ in run.inputs}
        assert run.tags["stacked"] == "True" and "model" in tracking.artifacts(ws, run.run_id)


@pytest.mark.slow  # a sweep, end to end
def test_seeds_bag_a_configuration_into_the_mean_of_its_seeds(tmp_path: Path):
    ws = Paths(tmp_path / "ws")
    jobs.ingest(ws, [(RAW / "codingtrain-2021" / "Totals.csv", "ct")])
    cand = grids.Candidate(
        "relu",
        ModelConfig(lags=14, model="relu", layers=1, width=8),
        TrainConfig(lr=3e-3, epochs=40, patience=0, seed=5),
    )
    report = sweeps.sweep(ws, "bag", [cand], seeds=3)
    (run,) = [r for r in tracking.sweep_children(ws, report.run_id) if r.name == "relu"]
    assert run.params["train.seeds"] == "3"
    model = tracking.load_model(ws, run.run_id)
    w = feats.build(ws, feats.FeatureSpec((14,)))[14]
    seeds = [fit(w, cand.model, replace(cand.train, seed=s)) for s in (5, 6, 7)]
    epochs = [run.metrics[f"best_epoch_seed{k}"] for k in range(3)]
    assert epochs == [s.best_epoch for s in seeds]
    rows = w.rows("val")
    mean = np.mean([s.model.predict(w.x(rows)) for s in seeds], axis=0)
    np.testing.assert_allclose(model.predict(w.x(rows)), mean, rtol=1e-3)
    assert run.metrics["val_mae"] == pytest.approx(np.abs(mean - w.y(rows)).mean(), rel=1e-3)


@pytest.mark.slow  # a sweep, end to end
def test_a_bagged_champion_refits_each_seed_and_plots_on_demand(tmp_path: Path):
    from pipeline.models.families import EnsembleModel
    from tests.conftest import invoke

    home = tmp_path / "ws"
    ws = Paths(home)
    jobs.ingest(ws, [(RAW / "codingtrain-2021" / "Totals.csv", "ct")])
    cand = grids.Candidate(
        "relu",
        ModelConfig(lags=14, model="relu", layers=1, width=8),
        TrainConfig(lr=3e-3, epochs=30, patience=10),
    )
    report = sweeps.sweep(ws, "bag", [cand], seeds=2)
    (run,) = [r for r in tracking.sweep_children(ws, report.run_id) if r.name == "relu"]
    assert "learning_curve.png" in tracking.artifacts(ws, run.run_id), "among the 10 best"
    naive = next(r for r in tracking.sweep_children(ws, report.run_id) if r.name == "naive")
    refused = invoke(home, "plot", naive.run_id)
    assert refused.exit_code == 2 and "no learning curve" in refused.stderr
    unknown = invoke(home, "plot", "f" * 32)
    assert unknown.exit_code == 2
    assert unknown.stderr == f"viewcast: error: no run '{'f' * 32}' in this workspace\n"

    tracking.register_alias(ws, run.run_id, "champion", {})
    assert invoke(home, "finalize").exit_code == 0
    result = invoke(home, "refit")
    assert result.exit_code == 0, result.output
    production = tracking.load_model(ws, tracking.alias_run(ws, "production")[0])
    assert isinstance(production, EnsembleModel) and len(production.members) == 2
    refit_run = tracking.get_run(ws, tracking.alias_run(ws, "production")[0])
    epochs = [int(run.metrics[f"best_epoch_seed{k}"]) for k in range(2)]
    assert refit_run.params["train.epochs"] == str(max(epochs))
    assert refit_run.params["model.model"] == "relu" and refit_run.params["train.seeds"] == "2"


def test_stopped_members_leave_the_stack_and_the_others_train_on(windows):
    """Members of three optimisers stop at different epochs: the stack is compacted as they do
    (twice or more here), and every member still equals its training alone."""
    mcfg = ModelConfig(lags=14, model="relu", layers=1, width=8)
    configs = [
        (mcfg, TrainConfig(optimizer=o, lr=lr, epochs=120, patience=p, seed=i))
        for i, (o, lr, p) in enumerate(
            [
                ("adam", 3e-2, 3),
                ("rmsprop", 1e-2, 5),
                ("adam", 1e-3, 0),
                ("momentum", 1e-3, 8),
                ("rmsprop", 1e-3, 0),
                ("adagrad", 1e-2, 4),
            ]
        )
    ]
    results = fit_stack(windows, configs)
    assert len({r.epochs_run for r in results}) >= 3, "members stopped at different epochs"
    for config, stacked in zip(configs, results, strict=True):
        alone = fit(windows, *config)
        assert relative_gap(alone, stacked) < 1e-4, config[1]
        assert stacked.epochs_run == alone.epochs_run
