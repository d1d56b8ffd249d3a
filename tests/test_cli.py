"""The CLI: workspace resolution, status, every shipped file, nothing written elsewhere."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from pipeline.cli import app
from tests.conftest import snapshot


def test_every_shipped_export_ingests_and_status_lists_it(cli, raw: Path) -> None:
    files = sorted(raw.glob("*/*.csv"))
    assert len(files) == 6
    result = cli("ingest", *files)
    assert result.exit_code == 0, result.output
    status = json.loads(cli("status", "--json").stdout)
    series = status["series"]
    # Totals x2 share the file name: they merge only because no --series was given, so check
    # the multi-series files and Peyton's gaps instead
    assert sum(name.startswith("Chart data/") for name in series) == 201
    assert sum(name.startswith("Chart_data/") for name in series) == 13
    assert series["views"]["imputed"] == 59 and series["views"]["days"] == 2964
    assert series["views"]["first"] == "2007-12-10" and series["views"]["last"] == "2016-01-20"
    table = cli("status")
    assert table.exit_code == 0 and "Chart data/AD" in table.stdout
    assert f"and {len(series) - 25} more" in table.stdout


def test_home_option_env_var_and_current_folder(tmp_path: Path, raw: Path, monkeypatch) -> None:
    runner = CliRunner()
    data = raw / "codingtrain-2021" / "Totals.csv"
    a, b, c = (tmp_path / n for n in "abc")
    for d in (a, b, c):
        d.mkdir()
    monkeypatch.chdir(c)
    assert runner.invoke(app, ["--home", str(a), "ingest", str(data)]).exit_code == 0
    assert runner.invoke(app, ["ingest", str(data)], env={"VIEWCAST_HOME": str(b)}).exit_code == 0
    monkeypatch.delenv("VIEWCAST_HOME", raising=False)
    assert runner.invoke(app, ["ingest", str(data)]).exit_code == 0
    for d in (a, b, c):
        assert (d / "data" / "store" / "CURRENT").exists(), d


def test_nothing_is_written_outside_the_workspace(
    cli, home: Path, tmp_path: Path, raw: Path, monkeypatch
) -> None:
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert cli("ingest", raw / "wikipedia-kaggle10").exit_code == 0
    assert cli("features", "--lags", "1,7").exit_code == 0
    assert cli("status").exit_code == 0
    assert snapshot(elsewhere) == {}
    assert set(snapshot(home)) >= {"data/features/features.json", "data/store/CURRENT"}


def test_commands_before_ingest_say_what_to_run(cli) -> None:
    for args in (("status",), ("features",)):
        result = cli(*args)
        assert result.exit_code == 2
        assert "run `viewcast ingest FILE` first" in result.stderr


def test_bad_options_are_one_line_errors(cli, raw: Path) -> None:
    cli("ingest", raw / "codingtrain-2021" / "Totals.csv")
    result = cli("features", "--lags", "1,x")
    assert result.exit_code == 2 and "--lags must be comma-separated" in result.stderr
    result = cli("ingest", raw / "codingtrain-2021" / "Totals.csv", "--fill", "spline")
    assert result.exit_code == 2 and "unknown fill rule 'spline'" in result.stderr
