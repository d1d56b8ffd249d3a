"""Fixtures of the tracking tests: one trained run."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def trained(cli, home: Path, raw: Path) -> str:
    """`viewcast train` on The Coding Train's daily views; returns the run id."""
    assert cli("ingest", raw / "codingtrain-2021" / "Totals.csv", "--name", "ct").exit_code == 0
    assert cli("features", "--lags", "7,56").exit_code == 0
    model = ("--lags", 56, "--model", "relu", "--layers", 2, "--width", 16)
    optimiser = ("--epochs", 30, "--patience", 10, "--optimizer", "adam", "--lr", "3e-3")
    result = cli("train", *model, *optimiser)
    assert result.exit_code == 0, result.output
    for column in ("train MAE", "val MAE", "epochs run", "best epoch", "seconds", "device"):
        assert column in result.stdout
    run_ids = [w for w in result.stdout.split() if len(w) == 32 and w.isalnum()]
    assert len(run_ids) == 1, result.stdout
    return run_ids[0]
