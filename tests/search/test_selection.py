"""Selection: the champion on validation, never on test rows or submissions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline import tracking
from pipeline.data import features as feats
from pipeline.data.store import Store
from pipeline.data.workspace import Paths
from tests.search.conftest import children, the_sweep


def test_select_registers_the_best_validation_run_as_champion(swept: Path, cli):
    parent = the_sweep(swept)
    runs = children(swept, parent.run_id)
    best = min(runs, key=lambda r: r.metrics["val_mae"])
    run_id, version = tracking.alias_run(Paths(swept), "champion")
    assert run_id == best.run_id == tracking.champion_run(Paths(swept))
    # selecting again keeps the same version; the table ranks by val_mae
    result = cli("select", "--top", "3")
    assert result.exit_code == 0
    assert f"version {version}, alias champion" in result.output
    assert "its intervals: calibrated on 3 validation windows" in result.output
    assert best.run_id in result.output
    assert cli("select", "--metric", "test_mae").exit_code == 2


def test_after_finalize_the_champion_stays_the_run_the_test_scored(
    production: Path, tiny_grid: Path, cli
):
    """A new sweep's best would go to production (`refit`) untested, under the report's name:
    select refuses it in one line and the alias stays; selecting the tested champion again
    works."""
    ws = Paths(production)
    tested = json.loads(ws.final_report.read_text())["champion"]
    first_sweep = tracking.latest_sweep(ws)
    before = tracking.alias_run(ws, "champion")
    assert before[0] == tested["run_id"]
    assert cli("sweep", "--grid", tiny_grid).exit_code == 0
    refused = cli("select")
    assert refused.exit_code == 2
    assert refused.stderr.startswith(
        f"viewcast: error: the sealed test was finalized with champion {tested['name']} (run "
        f"{tested['run_id']}): select would make "
    )
    assert len(refused.stderr.strip().splitlines()) == 1
    assert tracking.alias_run(ws, "champion") == before
    assert cli("select", "--sweep", first_sweep).exit_code == 0
    assert tracking.alias_run(ws, "champion")[0] == tested["run_id"]


@pytest.mark.slow  # a sweep, end to end
def test_selection_never_opens_test_rows(two_series: Path, tiny_grid: Path, cli, parquet_opens):
    assert cli("sweep", "--grid", tiny_grid).exit_code == 0
    assert cli("select").exit_code == 0
    assert parquet_opens, "the spy must see the dev reads"
    assert not [p for p in parquet_opens if "sealed" in p]


def test_select_names_a_run_that_is_no_sweep_and_a_bad_ensemble_size(swept: Path, cli):
    parent = the_sweep(swept)
    child = children(swept, parent.run_id)[0]
    before = tracking.alias_run(Paths(swept), "champion")
    for args, line in [
        (("--sweep", "nope"), "no run 'nope' in this workspace"),
        (("--sweep", child.run_id), f"run {child.run_id} is a train run, not a sweep"),
        (("--ensemble", "1"), "--ensemble must be 0 (no ensemble) or at least 2, got 1"),
        (("--ensemble", "-3"), "--ensemble must be 0 (no ensemble) or at least 2, got -3"),
    ]:
        result = cli("select", *args)
        assert result.exit_code == 2 and result.stderr.startswith(f"viewcast: error: {line}")
        assert len(result.stderr.splitlines()) == 1
    assert tracking.alias_run(Paths(swept), "champion") == before  # nothing registered
    result = cli("select", "--sweep", parent.run_id, "--ensemble", "0", "--top", "2")
    assert result.exit_code == 0 and "ensemble" not in result.stdout.split("champion:")[1]


def test_selection_ignores_submissions(swept: Path, cli):
    before = cli("select").output
    parent = the_sweep(swept)
    worst = max(children(swept, parent.run_id), key=lambda r: r.metrics["val_mae"])
    assert cli("submit", worst.run_id).exit_code == 0
    assert cli("submit", "--champion").exit_code == 0
    assert cli("select").output == before


def test_the_ensemble_is_the_mean_of_the_best_configurations(swept: Path, cli):
    from pipeline.models.families import ViewsModel

    ws = Paths(swept)
    parent = the_sweep(swept)
    runs = children(swept, parent.run_id)
    (ens,) = [r for r in runs if "ensemble_key" in r.tags]
    singles = [r for r in runs if r.tags["baseline"] == "False" and r is not ens]
    best = sorted(singles, key=lambda r: r.metrics["val_mae"])[:5]
    members = ens.params["ensemble.members"].split(",")
    assert members == [r.run_id for r in best] and len(members) == 4

    # its val_mae is the MAE of the members' mean forecast on the validation days, by hand
    store = Store(ws)
    dev, splits = store.read_dev(), store.read_splits()
    windows = feats.lag_windows(dev, splits, 14)
    rows = windows.rows("val")
    models = [tracking.load_model(ws, m) for m in members]
    assert all(isinstance(m, ViewsModel) for m in models)
    mean = np.mean([m.predict(windows.x(rows)[:, : m.cfg.lags]) for m in models], axis=0)
    assert ens.metrics["val_mae"] == pytest.approx(np.abs(mean - windows.y(rows)).mean())
    assert tracking.load_model(ws, ens.run_id).predict(windows.x(rows)) == pytest.approx(mean)

    # selecting again logs no second ensemble; --ensemble 0 leaves it out of a new ranking
    assert cli("select").exit_code == 0
    assert len(children(swept, parent.run_id)) == len(runs)
    without = cli("select", "--ensemble", "0", "--top", "20")
    assert without.exit_code == 0 and "ensemble-top4" not in without.output
    assert len(children(swept, parent.run_id)) == len(runs)
    assert "ensemble-top4" in cli("select", "--top", "20").output


def test_select_by_the_scale_free_metric_weighs_every_series_alike(swept: Path, cli):
    """val_mae_vs_naive is the mean over series of (series MAE / naive MAE) on validation: the
    naive baseline scores exactly 1, and the champion it picks is the run with the lowest."""
    from pipeline.data import metrics

    ws = Paths(swept)
    children = tracking.sweep_children(ws, tracking.latest_sweep(ws))
    naive = next(r for r in children if r.tags.get(tracking.Tag.BASELINE_ROLE) == "naive")
    assert naive.metrics["val_mae_vs_naive"] == pytest.approx(1.0)
    result = cli("select", "--metric", "val_mae_vs_naive", "--json")
    assert result.exit_code == 0, result.output
    chosen = json.loads(result.stdout)
    scores = [r["score"] for r in chosen["ranking"]]
    assert scores == sorted(scores) and chosen["metric"] == "val_mae_vs_naive"
    run = tracking.get_run(ws, chosen["champion"]["run_id"])
    model = tracking.load_model(ws, run.run_id)
    store = Store(ws)
    windows = feats.lag_windows(store.read_dev(), store.read_splits(), model.cfg.lags)
    assert metrics.validation_vs_naive(model, windows) == pytest.approx(
        run.metrics["val_mae_vs_naive"]
    )
    assert metrics.mean_ratio_to_naive(
        np.array([2.0, 4, 10, 10]),
        np.array([1.0, 1, 10, 20]),
        np.array([0.0, 0, 10, 10]),
        np.array([0, 0, 1, 1]),
    ) == pytest.approx(((1 + 3) / 2 / 1 + 10 / 10) / 2)
