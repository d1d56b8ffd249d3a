"""The product's pictures and tables: learning curves, forecast bands, the final report's rows."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from pipeline import plots

PNG = b"\x89PNG\r\n\x1a\n"


def test_a_learning_curve_is_a_png_even_without_a_gradient(tmp_path: Path) -> None:
    curves = {"train_loss": [3.0, 2.0, 1.5], "val_mae": [30.0, 25.0, 26.0], "grad_norm": [1, 2, 3]}
    plots.learning_curve(curves, tmp_path / "nets.png")
    trees = {"train_loss": [3.0, 2.0], "val_mae": [30.0, 29.0]}  # boosted trees: no gradient
    plots.learning_curve(trees, tmp_path / "trees.png")
    for name in ("nets.png", "trees.png"):
        data = (tmp_path / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 5_000


def test_learning_curves_on_the_reused_figure_carry_nothing_from_the_run_before(
    tmp_path: Path,
) -> None:
    """One figure serves every network's curve: a long run with a wide range drawn between two
    drawings of a short one leaves the short one's picture byte for byte the same."""
    short = {"train_loss": [3.0, 2.0, 1.5], "val_mae": [30.0, 25.0, 26.0], "grad_norm": [1, 2, 3]}
    n = 600
    wide = {
        "train_loss": list(np.geomspace(1e4, 1e-3, n)),
        "val_mae": list(np.linspace(1e5, 10, n)),
        "grad_norm": list(np.geomspace(1e-6, 1e3, n)),
    }
    plots.learning_curve(short, tmp_path / "a.png")
    plots.learning_curve(wide, tmp_path / "wide.png", {"val_mae": list(range(1, 2 * n, 2))})
    plots.learning_curve(short, tmp_path / "b.png")
    first, wide_png, again = ((tmp_path / f).read_bytes() for f in ("a.png", "wide.png", "b.png"))
    assert first == again and first != wide_png


def test_forecast_bands_are_drawn_per_series(tmp_path: Path) -> None:
    days = np.arange("2021-01-01", "2021-03-01", dtype="datetime64[D]")
    history = np.linspace(100, 200, len(days))
    future = np.arange("2021-03-01", "2021-03-08", dtype="datetime64[D]")
    forecast = np.full(len(future), 210.0)
    band = plots.BandPanel(
        "channel", days, history, future, forecast, {80: (forecast - 10, forecast + 10)}
    )
    plots.forecast_bands([band], "forecast", tmp_path / "f.png")
    assert (tmp_path / "f.png").read_bytes().startswith(PNG)


def test_tables_show_mae_with_separators_and_a_dash_when_missing() -> None:
    assert plots.fmt_mae(1234.5) == "1,234.5" and plots.fmt_mae(math.nan) == "-"
    assert plots.markdown_table(["a", "b"], [["1", "2"]]) == ["| a | b |", "|---|---|", "| 1 | 2 |"]
