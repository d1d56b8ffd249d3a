"""The lecture's commands: a bad study or experiment name is one line before any work."""

from __future__ import annotations

from pathlib import Path


def test_an_unknown_study_is_refused_before_any_work(cli, home: Path) -> None:
    result = cli("experiment", "lecture", "--only", "bogus")
    assert result.exit_code == 2
    assert "--only 'bogus' is not one of grid, escape, sharpness, landscape" in result.stderr
    assert not (home / "mlruns").exists() and not (home / "reports").exists()


def test_epochs_below_one_are_refused_before_any_work(cli, home: Path) -> None:
    for option, value in [("--epochs", "0"), ("--study-epochs", "-1")]:
        result = cli("experiment", "lecture", option, value)
        assert result.exit_code == 2
        assert result.stderr == f"viewcast: error: {option} must be at least 1, got {value}\n"
        assert not (home / "mlruns").exists() and not (home / "reports").exists()


def test_only_the_lecture_experiment_exists(cli) -> None:
    result = cli("experiment", "other")
    assert result.exit_code == 2 and "'other' is not one of 'lecture'" in result.stderr


def test_diagnose_needs_a_run_that_exists(cli, home: Path) -> None:
    result = cli("diagnose", "nosuchrun")
    assert result.exit_code == 2 and "nosuchrun" in result.stderr
    assert "Traceback" not in result.output
