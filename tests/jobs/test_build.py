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
    assert "0 of 7 configurations trained" in again.stderr
    assert json.loads(again.stdout)["champion"] == final["champion"]
    assert "the test was finalized on" in again.stderr
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
    assert jobs.run_inputs(ws, None) == ([], ""), "a workspace with series runs on them alone"
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


def _chart(path: Path, days: int, start: str = "2022-01-01", silent: bool = False) -> Path:
    """A YouTube Studio chart export (Date,Traffic source,Views) of two traffic sources, the
    first `days` of the same 400; with `silent` a third whose views are all zero."""
    import numpy as np
    import pandas as pd

    dates = pd.date_range(start, periods=days).strftime("%Y-%m-%d")
    views = {"Search": synthetic_views(400, seed=5), "Direct": synthetic_views(400, seed=6)}
    if silent:
        views["Playlists"] = np.zeros(days)
    rows = [(d, src, int(v[i])) for i, d in enumerate(dates) for src, v in views.items()]
    pd.DataFrame(rows, columns=["Date", "Traffic source", "Views"]).to_csv(path, index=False)
    return path


def test_a_reexport_under_another_file_name_is_not_a_second_copy(home: Path, cli) -> None:
    """The same channel exported again as `full.csv` would store every traffic source twice
    (`early/Search` and `full/Search`): refused before anything is written, by `ingest` and by
    `run`, naming the --name that adds its days to the stored series instead."""
    from tests.conftest import snapshot

    ws = Paths(home)
    early = _chart(home.parent / "early.csv", 200, silent=True)
    assert cli("ingest", early).exit_code == 0
    full = _chart(home.parent / "full.csv", 230, silent=True)
    data = snapshot(ws.data)
    line = (
        f"viewcast: error: {full}: its series 'full/Search' repeats the stored 'early/Search' "
        "day for day (140 days compared: the same export under another file name); give --name "
        "'early' to add its days to the stored series, or drop the stored one first\n"
    )
    for command in ("ingest", "run"):
        refused = cli(command, full)
        assert refused.exit_code == 2 and refused.stderr == line, refused.output
        assert snapshot(ws.data) == data, "nothing written"
    blank = cli("run", full, "--name", " ")  # run passes --name on to the ingest
    assert blank.exit_code == 2 and "--name must not be empty" in blank.stderr
    done = cli("ingest", full, "--name", "early", "--json")
    assert done.exit_code == 0, done.output
    assert sorted(Store(ws).read_manifest()["series"]) == [
        "early/Direct",
        "early/Playlists",
        "early/Search",
    ]


def test_new_series_that_share_no_views_with_the_stored_ones_go_in(home: Path, cli) -> None:
    """Another channel's export, a series that repeats a stored one on fewer than 28 days, and
    a silent series (all zeros: alike everywhere) are new series, not copies."""
    import numpy as np

    ws = Paths(home)
    assert cli("ingest", _chart(home.parent / "early.csv", 200)).exit_code == 0
    other = home.parent / "other.csv"
    _chart(other, 230, start="2022-03-01")  # other views on early's days
    assert cli("ingest", other).exit_code == 0
    assert cli("ingest", _chart(home.parent / "short.csv", 27)).exit_code == 0  # 27 days alike
    quiet = write_totals(home.parent / "quiet.csv", np.zeros(200), start="2022-01-01")
    again = write_totals(home.parent / "quiet (1).csv", np.zeros(200), start="2022-01-01")
    assert cli("ingest", quiet).exit_code == 0 and cli("ingest", again).exit_code == 0
    names = Store(ws).read_manifest()["series"]
    assert {"other/Search", "short/Search", "quiet", "quiet (1)"} <= set(names)


@pytest.mark.parametrize("slices", [64, 0])
def test_a_copy_of_one_stored_series_among_many_is_found(home: Path, monkeypatch, slices) -> None:
    """70 stored series and a Totals export repeating one of them: found by row ranges (few
    twins) and by one pass over the rows (many), the same series either way."""
    import numpy as np
    import pandas as pd

    from pipeline.data import names

    monkeypatch.setattr(names._Dev, "SLICES", slices)
    ws = Paths(home)
    dates = pd.date_range("2022-01-01", periods=150).strftime("%Y-%m-%d")
    views = {f"s{i:02d}": synthetic_views(150, seed=100 + i).astype(int) for i in range(70)}
    rows = [(n, d, v[j]) for n, v in views.items() for j, d in enumerate(dates)]
    long = home.parent / "panel.csv"
    pd.DataFrame(rows, columns=["series_id", "date", "views"]).to_csv(long, index=False)
    jobs.ingest(ws, [(long, None)])
    copy = home.parent / "copy.csv"
    write_totals(copy, views["s42"][:100].astype(float), start="2022-01-01")
    with pytest.raises(ViewcastError, match=r"'copy' repeats the stored 's42' day for day \(90 "):
        jobs.ingest(ws, [(copy, None)])
    fresh = write_totals(home.parent / "fresh.csv", np.arange(100.0), start="2022-01-01")
    assert jobs.ingest(ws, [(fresh, None)]).report.added == {"fresh": 100}
