"""Building models through the jobs: ingest and train without the CLI, the main job on a user's
own series, features made when missing or stale, series dropped from the store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline import jobs, tracking
from pipeline.data.errors import ViewcastError
from pipeline.data.features import FeatureSpec
from pipeline.data.store import Store
from pipeline.data.workspace import DEMO_FILES, Paths
from pipeline.models.train import TrainConfig
from tests.conftest import synthetic_views, write_totals


def test_jobs_ingest_and_train_without_the_cli(home: Path, cli):
    ws = Paths(home)
    path = write_totals(home.parent / "a.csv", synthetic_views(300, seed=3))
    with pytest.raises(ViewcastError, match="--test-days must be at least 2"):
        jobs.ingest(ws, [(path, "a")], test_days=1)  # the library refuses what the CLI does
    assert Store(ws).generation() is None, "a refused ingest writes nothing"
    done = jobs.ingest(ws, [(path, "a")])
    assert done.files == [(path, 300, 1)] and done.report.added == {"a": 300}
    jobs.features(ws, FeatureSpec((7,), "log1p"))
    trained = jobs.train_one(ws, {"lags": 7, "model": "linear"}, TrainConfig(solver="lstsq"))
    assert trained.model.target_transform == "log1p", "the recorded spec is the default"
    run = tracking.get_run(ws, trained.run_id)
    assert run.metrics["val_mae"] == pytest.approx(trained.result.val_mae)
    assert run.params["model.target_transform"] == "log1p"
    assert cli("ingest", path, "--name", "a", "--test-days", "1").exit_code == 2


@pytest.mark.slow  # end to end: `viewcast run`
def test_run_is_the_whole_job_and_reruns_safely(home: Path, tiny_grid: Path, cli):
    files = [
        write_totals(home.parent / f"{name}.csv", synthetic_views(300, seed=seed))
        for seed, name in ((0, "alpha"), (1, "beta"))
    ]
    result = cli("run", *files, "--grid", tiny_grid, "--max-minutes", "5")
    assert result.exit_code == 0, result.output
    out = result.output
    for stage in ("1. ingest", "2. features", "3. sweep", "4. select", "5. sealed test"):
        assert stage in out
    assert "7 of 7 configurations trained" in out
    for row in ("(champion)", "naive (baseline)", "seasonal-naive (baseline)"):
        assert row in out
    final = json.loads((home / "reports" / "final.json").read_text())
    assert final["series"] == 2 and final["champion"]["run_id"] in out

    again = cli("run", *files, "--grid", tiny_grid, "--json")
    assert again.exit_code == 0, again.output
    assert "store unchanged" in again.stderr  # --json: the tables went to stderr
    # finalized: no sweep, no select, so the champion stays the run the test scored
    assert "3. sweep" not in again.stderr and "4. select" not in again.stderr
    assert json.loads(again.stdout)["champion"] == final["champion"]
    assert "the test was finalized on" in again.stderr and "keeps its champion" in again.stderr
    assert tracking.champion_run(Paths(home)) == final["champion"]["run_id"]
    assert json.loads((home / "reports" / "final.json").read_text()) == final

    # a damaged report stops `run` before any work: nothing is submitted or finalized again
    ws = Paths(home)
    submissions = len(tracking.runs(ws, tracking.Stage.SUBMISSION))
    ws.final_report.write_text("[1]")
    damaged = cli("run", *files, "--grid", tiny_grid)
    assert damaged.exit_code == 2
    assert damaged.stderr.startswith(f"viewcast: error: {ws.final_report}: damaged (")
    assert "1. ingest" not in damaged.output
    assert len(tracking.runs(ws, tracking.Stage.SUBMISSION)) == submissions
    assert len(tracking.runs(ws, tracking.Stage.FINAL)) == 1


def test_train_right_after_ingest_makes_the_features_it_needs(home: Path, cli) -> None:
    """Each stage makes what it needs, like make: no `viewcast features` before `train`."""
    path = write_totals(home.parent / "mine.csv", synthetic_views(300, seed=5))
    assert cli("ingest", path, "--name", "mine").exit_code == 0
    result = cli("train", "--lags", "7", "--model", "linear", "--solver", "lstsq")
    assert result.exit_code == 0, result.output
    assert "features: none recorded yet, made them (lags 1,7,28,56)" in result.stdout
    recorded = json.loads((home / "data" / "features" / "features.json").read_text())
    assert recorded["lags"] == [1, 7, 28, 56] and recorded["windows"][0]["series"] == 1
    again = cli("train", "--lags", "7", "--model", "linear", "--solver", "lstsq")
    assert again.exit_code == 0 and "features:" not in again.stdout, "fresh: nothing made"
    one = cli("train", "--lags", "1", "--model", "linear", "--solver", "lstsq")
    assert "linear on 1 day (closed-form least squares)" in one.stdout
    more = write_totals(home.parent / "more.csv", synthetic_views(300, seed=6))
    assert cli("ingest", more, "--name", "more").exit_code == 0
    stale = cli("train", "--lags", "7", "--model", "linear", "--solver", "lstsq")
    assert "the store changed since they were recorded, made them again" in stale.stdout
    recorded = json.loads((home / "data" / "features" / "features.json").read_text())
    assert recorded["windows"][0]["series"] == 2


def test_run_chooses_the_workspaces_own_series_and_the_demo_only_when_empty(tmp_path: Path) -> None:
    ws = Paths(tmp_path / "ws")
    files, note = jobs.run_inputs(ws, None)
    assert [p.name for p, _ in files] == [Path(name).name for name in DEMO_FILES]
    assert note == f"no data yet: running on the demo exports in {ws.demo_data}"
    own = write_totals(tmp_path / "mine.csv", synthetic_views(300, seed=7))
    jobs.ingest(ws, [(own, "mine")])
    running = f"no export given: running on the 1 series already in {ws.store}"
    assert jobs.run_inputs(ws, None) == ([], running), "a workspace runs on its series alone"
    assert jobs.run_inputs(ws, [(own, "mine")]) == ([(own, "mine")], "")
    with_demo, note = jobs.run_inputs(ws, None, demo=True)
    assert len(with_demo) == len(DEMO_FILES) and note == "", "--demo: an explicit choice"
    jobs.drop(ws, ["mine"])  # a store that held data and holds none now is not a new workspace
    with pytest.raises(ViewcastError) as err:
        jobs.run_inputs(ws, None)
    assert str(err.value) == (
        f"the store in {ws.store} holds no series (all dropped): give exports to run on, or "
        "--demo for the demo data"
    )
    assert jobs.run_inputs(ws, [(own, "mine")]) == ([(own, "mine")], "")


@pytest.mark.slow  # end to end: a user's own export through run, refit and forecast
def test_a_users_export_and_run_forecast_that_series_alone(home: Path, tiny_grid: Path, cli):
    """The README's walkthrough with one's own export: run never mixes the demo data in."""
    path = write_totals(home.parent / "mychannel.csv", synthetic_views(300, seed=8))
    assert cli("ingest", path, "--name", "mychannel").exit_code == 0
    result = cli("run", "--grid", tiny_grid, "--max-minutes", "1")
    assert result.exit_code == 0, result.output
    assert "demo" not in result.output
    assert "no export given: running on the 1 series already in" in result.output
    assert "1. ingest" not in result.output, "nothing to ingest: no stage for it"
    assert result.output.count("2. features") == 1
    assert list(Store(Paths(home)).read_manifest()["series"]) == ["mychannel"]
    assert cli("refit").exit_code == 0
    forecast = cli("forecast", "--json")
    assert forecast.exit_code == 0, forecast.output
    rows = json.loads(forecast.stdout)["forecasts"]
    assert {row["series_id"] for row in rows} == {"mychannel"}


@pytest.mark.slow  # ingests the demo exports (13 series) and sweeps a tiny grid
def test_an_empty_workspace_runs_on_the_demo_and_says_so(home: Path, tiny_grid: Path, cli):
    result = cli("run", "--grid", tiny_grid, "--max-minutes", "0.01")  # the baselines, then stop
    assert result.exit_code == 0, result.output
    assert "no data yet: running on the demo exports in" in result.stdout
    assert len(Store(Paths(home)).read_manifest()["series"]) == 13


def test_an_unzipped_studio_export_folder_ingests_its_days_and_leaves_the_table_out(
    tmp_path: Path, cli
) -> None:
    export = tmp_path / "studio"
    export.mkdir()
    write_totals(export / "Totals.csv", synthetic_views(200, seed=3))
    (export / "Table data.csv").write_text("Content,Views\nTotal,100\nabc,100\n")
    result = cli("ingest", export, "--name", "mych")
    assert result.exit_code == 0, result.output
    assert f"left out {export / 'Table data.csv'}: YouTube Studio's table of totals" in (
        result.stdout
    )
    assert list(Store(Paths(tmp_path / "ws")).read_manifest()["series"]) == ["mych"]
    alone = cli("ingest", export / "Table data.csv")
    assert alone.exit_code == 2
    assert "ingest the Totals.csv or Chart data.csv of the same export" in alone.stderr
