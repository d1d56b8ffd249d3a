"""The daily commands in the order a new workspace meets them: each missing stage is one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import RAW


def test_each_daily_command_names_the_stage_it_needs(cli, home: Path) -> None:
    assert cli("ingest", RAW / "codingtrain-2021" / "Totals.csv", "--name", "ct").exit_code == 0
    expected = {
        "refit": "run `viewcast finalize` first",
        "monitor": "run `viewcast select` first",
        "forecast": "no model to forecast with: run `viewcast select` (and `refit`) first",
    }
    for command, words in expected.items():
        result = cli(command)
        assert result.exit_code == 2, (command, result.output)
        assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert "Traceback" not in result.output


def test_the_old_drift_options_still_work_with_a_warning(cli, home: Path) -> None:
    assert cli("ingest", RAW / "codingtrain-2021" / "Totals.csv", "--name", "ct").exit_code == 0
    result = cli("monitor", "--k", "2", "--m", "3")
    assert "--k is deprecated, use --drift-ratio" in result.stderr
    assert "--m is deprecated, use --drift-days" in result.stderr


@pytest.mark.parametrize(
    "args", [("--drift-ratio", "-1"), ("--drift-ratio", "0"), ("--drift-days", "0")]
)
def test_bad_drift_options_are_one_line_naming_them(cli, home: Path, args) -> None:
    result = cli("monitor", *args)
    assert result.exit_code == 2
    assert result.stderr == (
        "viewcast: error: --drift-ratio must be positive and --drift-days at least 1\n"
    )


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (("--drift-ratio", "0"), "--drift-ratio must be positive and --drift-days at least 1"),
        (("--drift-days", "0"), "--drift-ratio must be positive and --drift-days at least 1"),
        (("--horizon", "0"), "--horizon must be at least 1, got 0"),
    ],
)
def test_daily_refuses_bad_numbers_before_it_ingests(cli, home: Path, raw: Path, args, line):
    result = cli("daily", raw / "codingtrain-2021" / "Totals.csv", *args)
    assert result.exit_code == 2 and result.stderr == f"viewcast: error: {line}\n"
    assert not (home / "data").exists(), "nothing ingested"


def test_an_archive_that_is_a_file_is_refused_before_the_export_is_ingested(
    cli, home: Path, raw: Path, tmp_path: Path
) -> None:
    export = tmp_path / "export.csv"
    export.write_bytes((raw / "codingtrain-2021" / "Totals.csv").read_bytes())
    afile = tmp_path / "done"
    afile.write_text("a file")
    result = cli("daily", export, "--archive", afile)
    assert result.exit_code == 2
    assert result.stderr == f"viewcast: error: --archive {afile}: a file, not a folder\n"
    assert export.exists() and not (home / "data").exists(), "not ingested, not moved"
