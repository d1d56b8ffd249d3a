"""The CLI: workspace resolution, status, every shipped file, nothing written elsewhere."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pipeline import tracking
from pipeline.cli import app
from pipeline.data import features, ingest, table
from pipeline.data.workspace import Paths
from pipeline.models import config
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


def test_a_home_that_is_a_file_or_a_negative_wait_is_refused(tmp_path: Path, raw: Path) -> None:
    runner = CliRunner()
    afile = tmp_path / "afile"
    afile.write_text("not a workspace")
    data = raw / "codingtrain-2021" / "Totals.csv"
    for args, env in [
        (["--home", str(afile), "ingest", str(data)], {}),
        (["ingest", str(data)], {"VIEWCAST_HOME": str(afile)}),
    ]:
        result = runner.invoke(app, args, env=env)
        assert result.exit_code == 2 and f"{afile} is a file, not a folder" in result.output
    assert afile.read_text() == "not a workspace"
    result = runner.invoke(app, ["--home", str(tmp_path / "ws"), "--wait", "-1", "status"])
    assert result.exit_code == 2 and "seconds, 0 or more; got -1" in result.output
    assert not (tmp_path / "ws").exists()


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
    for args, line in [
        (("--max-bytes", "-1"), "--max-bytes must be positive, got -1"),
        (("--name", " "), "--name must not be empty: leave it out to name the series by file"),
    ]:
        result = cli("ingest", raw / "codingtrain-2021" / "Totals.csv", *args)
        assert result.exit_code == 2 and result.stderr == f"viewcast: error: {line}\n"
    cli("ingest", raw / "codingtrain-2021" / "Totals.csv")
    result = cli("features", "--lags", "1,x")
    assert result.exit_code == 2 and "--lags must be comma-separated" in result.stderr
    result = cli("ingest", raw / "codingtrain-2021" / "Totals.csv", "--fill", "spline")
    assert result.exit_code == 2 and "'spline' is not one of 'linear', 'ffill', 'zero'" in (
        result.stderr
    )
    for minutes in ("0", "-1"):
        result = cli("sweep", "--max-minutes", minutes)
        assert result.exit_code == 2
        assert result.stderr == f"viewcast: error: --max-minutes must be positive, got {minutes}\n"
    for port in ("0", "99999"):
        result = cli("ui", "--port", port)
        assert result.exit_code == 2
        assert result.stderr == f"viewcast: error: --port must be 1 to 65535, got {port}\n"
    with socket.socket() as taken:  # something else listens there: MLflow's server exited 0
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("ui", "--port", port)
        assert result.exit_code == 2
        assert result.stderr == (
            f"viewcast: error: port {port} on 127.0.0.1 is taken: give another --port\n"
        )
    result = cli("select", "--top", "0")  # refused before any sweep is looked for
    assert (
        result.exit_code == 2
        and result.stderr == "viewcast: error: --top must be at least 1, got 0\n"
    )


def test_run_refuses_a_bad_option_before_it_ingests_anything(cli, home: Path, raw: Path) -> None:
    export = raw / "codingtrain-2021" / "Totals.csv"
    bad_grid = home.parent / "bad.toml"
    bad_grid.write_text("[grid]\nlr = ['fast']\n")
    for args, line in [
        (("--seeds", "0"), "--folds, --seeds and --horizon must be at least 1, got 1, 0, 1"),
        (("--max-minutes", "0"), "--max-minutes must be positive, got 0"),
        (("--ensemble", "1"), "--ensemble must be 0 (no ensemble) or at least 2, got 1"),
        (("--grid", "nope"), "--grid must be lecture, default, panel or a .toml file"),
        (("--grid", bad_grid), f"{bad_grid}: lr"),
    ]:
        result = cli("run", export, *args)
        assert result.exit_code == 2, (args, result.output)
        assert result.stderr.startswith(f"viewcast: error: {line}"), result.stderr
        assert not (home / "data").exists() and not (home / "mlruns").exists(), args


def test_version_short_help_and_completion(cli) -> None:
    from importlib.metadata import version

    result = cli("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"viewcast {version('viewcast')}"
    for args in (("-h",), ("train", "-h"), ("--help",)):
        result = cli(*args)
        assert result.exit_code == 0 and "Usage:" in result.stdout, args
    assert "--install-completion" in cli("-h").stdout


def test_choices_are_listed_and_a_bad_value_is_refused_before_any_work(cli, home: Path) -> None:
    helped = cli("train", "-h").stdout
    assert "relu" in helped and "rmsprop" in helped and "cosine" in helped
    result = cli("train", "--model", "rnn")  # an empty workspace: no complaint about features
    assert result.exit_code == 2
    assert "'rnn' is not one of 'linear', 'sigmoid', 'relu', 'naive'" in result.stderr
    assert "features" not in result.stderr and not (home / "mlruns").exists()


@pytest.mark.parametrize(
    ("command", "option", "choices"),
    [
        ("ingest", "--format", ingest.FORMATS),
        ("ingest", "--fill", table.FILL_RULES),
        ("features", "--target-transform", features.TARGET_TRANSFORMS),
        ("train", "--model", config.MODEL_FAMILIES),
        ("train", "--scaling", config.SCALINGS),
        ("train", "--calendar", config.CALENDARS),
        ("train", "--optimizer", config.OPTIMIZERS),
        ("train", "--schedule", config.SCHEDULES),
        ("train", "--loss", config.LOSSES),
        ("train", "--solver", config.SOLVERS),
        ("train", "--device", config.DEVICES),
        ("select", "--ensemble-method", config.ENSEMBLE_METHODS),
    ],
)
def test_each_choice_list_is_the_modules_in_the_help_and_the_refusal(
    cli, command: str, option: str, choices: tuple[str, ...]
) -> None:
    """One list per choice, defined where it is validated: --help shows it, and a bad value is
    refused before any work with every choice named."""
    words = " ".join(cli(command, "--help").stdout.split())
    assert f"{option} <{'|'.join(choices)}>" in words
    result = cli(command, *(["nope.csv"] if command == "ingest" else []), option, "bogus")
    assert result.exit_code == 2
    assert all(f"'{c}'" in result.stderr for c in choices), result.stderr


def test_train_takes_lags_in_the_same_form_as_features(cli, raw: Path, home: Path) -> None:
    cli("ingest", raw / "codingtrain-2021" / "Totals.csv")
    assert cli("features", "--lags", "7,28").exit_code == 0
    result = cli("train", "--lags", "7,28")
    assert result.exit_code == 2 and "train takes one window" in result.stderr
    result = cli("train", "--lags", "7", "--model", "linear", "--solver", "lstsq", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)  # stdout holds the JSON alone: the table went to stderr
    assert payload["model"]["lags"] == 7 and payload["val_mae"] > 0 and len(payload["run_id"]) == 32
    # named as a sweep names the configuration (not MLflow's random name), for the UI
    assert tracking.get_run(Paths(home), payload["run_id"]).name == "linear-lags7-lstsq"


@pytest.mark.slow  # a sweep, end to end
def test_train_rows_per_epoch_on_a_panel_logs_a_normal_run(cli, raw: Path, home: Path) -> None:
    """A global model over the 10 Wikipedia pages with sampled epochs: an ordinary run (params,
    curves, val_mae_vs_naive, a loadable model) whose val MAE is the model's on every
    validation window."""
    from pipeline.data import features as feats

    cli("ingest", raw / "wikipedia-kaggle10")
    assert cli("features", "--lags", "14").exit_code == 0
    result = cli(
        *("train", "--lags", "14", "--layers", "1", "--width", "8", "--epochs", "3"),
        *("--batch-size", "64", "--rows-per-epoch", "500", "--json"),
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    ws = Paths(home)
    run = tracking.get_run(ws, payload["run_id"])
    assert run.params["train.rows_per_epoch"] == "500" and run.metrics["val_mae_vs_naive"] > 0
    windows = feats.build(ws, feats.FeatureSpec((14,)))[14]
    rows = windows.rows("val")
    model = tracking.load_model(ws, payload["run_id"])
    expected = np.abs(windows.predict(model, rows) - windows.y(rows)).mean()
    assert run.metrics["val_mae"] == pytest.approx(expected, rel=1e-5)
    assert cli("train", "--rows-per-epoch", "-1").exit_code == 2


def test_json_of_sweep_ingest_select_submit(cli, swept: Path, raw: Path, tiny_grid: Path) -> None:
    swept_again = json.loads(cli("sweep", "--grid", tiny_grid, "--json").stdout)
    assert (swept_again["total"], swept_again["resumed"], swept_again["ran"]) == (7, 7, 0)
    assert swept_again["run_id"] == tracking.latest_sweep(Paths(swept))
    ingested = json.loads(cli("ingest", raw / "codingtrain-2021" / "Totals.csv", "--json").stdout)
    assert ingested["files"][0][1:] == [365, 1] and ingested["added"] == {"Totals": 365}
    chosen = json.loads(cli("select", "--json").stdout)
    assert chosen["champion"]["run_id"] == chosen["ranking"][0]["run_id"]
    assert chosen["version"] and chosen["metric"] == "val_mae"
    submitted = json.loads(cli("submit", "--json").stdout)
    assert submitted["source_run_id"] == chosen["champion"]["run_id"]
    assert submitted["public_mae"] > 0 and submitted["used"] == 1


def test_old_option_names_are_hidden_deprecated_aliases(cli, raw: Path) -> None:
    assert "--series" not in cli("ingest", "-h").stdout and "--name" in cli("ingest", "-h").stdout
    assert (
        "--k " not in cli("monitor", "-h").stdout and "--drift-ratio" in cli("monitor", "-h").stdout
    )
    totals = raw / "codingtrain-2021" / "Totals.csv"
    result = cli("ingest", totals, totals, "--series", "ct")  # two files: still one warning
    assert result.exit_code == 0
    warning = "viewcast: warning: --series is deprecated, use --name"
    assert result.stderr.count(warning) == 1
    assert '"ct"' in cli("status", "--json").stdout
    result = cli("ingest", raw / "codingtrain-2021" / "Totals.csv", "--name", "ct")
    assert "deprecated" not in result.stderr
    monitored = cli("monitor", "--k", "2", "--m", "3")
    assert "--k is deprecated, use --drift-ratio" in monitored.stderr
    assert "--m is deprecated, use --drift-days" in monitored.stderr
