"""Pictures and tables: every matplotlib figure and every Markdown page the stages write.

The stages compute numbers and hand them over; nothing here reads the store or MLflow. Figures
are written with the Agg backend (no display needed), tables as Markdown rows.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pipeline.diagnostics import CriticalPoint
    from pipeline.experiment import LectureReport, Row

PERIODS = ("val", "public", "private", "test")


def fmt_mae(value: float | None) -> str:
    """A MAE in views for a table: 1,234.5, or '-' when there is none."""
    return "-" if value is None or not math.isfinite(value) else f"{value:,.1f}"


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only, never a window)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path, dpi: int = 90, tight: bool = True) -> None:
    plt = pyplot()
    with warnings.catch_warnings():  # page names in scripts the default font lacks
        warnings.filterwarnings("ignore", "Glyph .* missing from font")
        if tight:
            fig.tight_layout()
        fig.savefig(path, dpi=dpi, format="png")  # also to a temporary name (atomic_write)
    plt.close(fig)


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table's lines."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


# --- training curves --------------------------------------------------------------------------


def learning_curve(history: dict[str, list[float]], path: Path) -> None:
    """Loss and validation MAE over epochs, with the gradient norm on its own axis."""
    plt = pyplot()
    epochs = np.arange(1, len(history["train_loss"]) + 1)
    fig, (ax_loss, ax_val, ax_grad) = plt.subplots(3, 1, figsize=(7, 8), sharex=True)
    fig.subplots_adjust(left=0.14, right=0.97, top=0.94, bottom=0.07, hspace=0.12)
    ax_loss.plot(epochs, history["train_loss"], label="training loss (scaled)")
    ax_loss.set_ylabel("training loss")
    ax_loss.set_yscale("log")
    ax_val.plot(epochs, history["val_mae"], color="tab:orange", label="validation MAE")
    ax_val.set_ylabel("validation MAE (views)")
    ax_grad.plot(epochs, history["grad_norm"], color="tab:green")
    ax_grad.set_ylabel("gradient norm")
    ax_grad.set_yscale("log")
    ax_grad.set_xlabel("epoch")
    fig.suptitle("learning curve")
    _save(fig, path, dpi=80, tight=False)  # a fixed layout: drawn for many runs, it must be cheap


def grad_vs_loss(curves: dict[str, dict[str, list[float]]], path: Path) -> None:
    """Loss and gradient norm on twin axes, one panel per run (L6)."""
    plt = pyplot()
    fig, axes = plt.subplots(len(curves), 1, figsize=(8, 2.8 * len(curves)), squeeze=False)
    for ax, (name, h) in zip(axes[:, 0], curves.items(), strict=True):
        epochs = np.arange(1, len(h["train_loss"]) + 1)
        ax.plot(epochs, h["train_loss"], color="tab:blue", label="training loss")
        ax.set_yscale("log")
        ax.set_ylabel("training loss", color="tab:blue")
        twin = ax.twinx()
        twin.plot(epochs, h["grad_norm"], color="tab:green", label="gradient norm")
        twin.set_yscale("log")
        twin.set_ylabel("gradient norm", color="tab:green")
        ax.set_title(name, fontsize=9)
    axes[-1, 0].set_xlabel("epoch")
    fig.suptitle("L6: a stuck training is not always a small gradient")
    _save(fig, path)


def optimisers(histories: dict[str, dict[str, list[float]]], title: str, path: Path) -> None:
    """Training loss and validation MAE of several trainings, overlaid (L6)."""
    plt = pyplot()
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(11, 4))
    for label, h in histories.items():
        epochs = np.arange(1, len(h["train_loss"]) + 1)
        ax_loss.plot(epochs, h["train_loss"], label=label)
        ax_val.plot(epochs, h["val_mae"], label=label)
    ax_loss.set_yscale("log")
    ax_loss.set_title("training loss (scaled MAE)")
    ax_val.set_yscale("log")
    ax_val.set_title("validation MAE (views)")
    for ax in (ax_loss, ax_val):
        ax.set_xlabel("epoch")
    ax_val.legend(fontsize=8)
    fig.suptitle(title)
    _save(fig, path)


# --- forecasts against actual views -------------------------------------------------------------


@dataclass(frozen=True)
class Panel:
    """One series' days with the actual views and each model's one-day-ahead forecasts."""

    title: str
    dates: np.ndarray  # datetime64[D]
    actual: np.ndarray
    forecasts: dict[str, np.ndarray]  # label -> forecasts on `dates`
    marker: np.datetime64 | None = None  # a vertical line (where the private test starts)


def forecast_panels(panels: list[Panel], title: str, path: Path, marker_label: str = "") -> None:
    """Actual views (black) and forecasts, one panel per series; the first forecast solid, the
    others dashed."""
    import matplotlib.dates as mdates

    plt = pyplot()
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 2.6 * len(panels)), squeeze=False)
    for ax, panel in zip(axes[:, 0], panels, strict=True):
        ax.plot(panel.dates, panel.actual, color="black", label="actual")
        for i, (label, values) in enumerate(panel.forecasts.items()):
            style = {"color": "tab:blue"} if i == 0 else {"color": "gray", "linestyle": "--"}
            ax.plot(panel.dates, values, label=label, **style)
        if panel.marker is not None:
            ax.axvline(panel.marker, color="tab:red", lw=0.8, label=marker_label)
        ax.set_title(panel.title, fontsize=9)
        ax.set_ylabel("views")
        locator = mdates.AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    axes[0, 0].legend(fontsize=8, ncol=4)
    fig.suptitle(title)
    _save(fig, path)


@dataclass(frozen=True)
class BandPanel:
    """One series' recent days and its forecast with conformal bands (level -> lower, upper)."""

    title: str
    dates: np.ndarray  # datetime64[D], the days before the forecast
    actual: np.ndarray
    forecast_dates: np.ndarray
    forecast: np.ndarray
    bands: dict[int, tuple[np.ndarray, np.ndarray]]


def forecast_bands(panels: list[BandPanel], title: str, path: Path) -> None:
    """The recent views (black), the forecast (blue) and its bands (the widest palest), one
    panel per series."""
    import matplotlib.dates as mdates

    plt = pyplot()
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 2.6 * len(panels)), squeeze=False)
    for ax, panel in zip(axes[:, 0], panels, strict=True):
        ax.plot(panel.dates, panel.actual, color="black", lw=1, label="views")
        days = panel.forecast_dates.astype("datetime64[h]")
        if len(days) == 1:  # one day: a band half a day either side, to be seen at all
            days = np.concatenate([days - 12, days + 12])
        for level, (lower, upper) in sorted(panel.bands.items(), reverse=True):
            lower, upper = np.resize(lower, len(days)), np.resize(upper, len(days))
            alpha = 0.15 if level == max(panel.bands) else 0.3
            label = f"{level}% interval"
            ax.fill_between(days, lower, upper, color="tab:blue", alpha=alpha, lw=0, label=label)
        ax.plot(
            panel.forecast_dates, panel.forecast, "o-", color="tab:blue", ms=3, label="forecast"
        )
        ax.set_title(panel.title, fontsize=9)
        ax.set_ylabel("views")
        locator = mdates.AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    axes[0, 0].legend(fontsize=8, ncol=4)
    fig.suptitle(title)
    _save(fig, path)


# --- the final test report ----------------------------------------------------------------------


def final_rows(payload: dict, baselines: tuple[str, ...] | None = None) -> list[list[str]]:
    """The final scores as rows: model, val, public, private and test MAE; the finalized runs
    first (the champion marked), then the baselines (all, or the named ones)."""
    rows = []
    for entry in payload["runs"]:
        star = " (champion)" if entry["run_id"] == payload["champion"]["run_id"] else ""
        rows.append([entry["name"] + star, *(fmt_mae(entry[f"{p}_mae"]) for p in PERIODS)])
    for name, scores in payload["baselines"].items():
        if baselines is None or name in baselines:
            rows.append([f"{name} (baseline)", *(fmt_mae(scores[f"{p}_mae"]) for p in PERIODS)])
    return rows


FINAL_HEADER = ["model", "val MAE", "public MAE", "private MAE", "test MAE"]


def final_markdown(payload: dict, figure: str) -> str:
    """The final scores as a Markdown page."""
    rows = payload["test_rows"]
    lines = [
        "# viewcast: final test report",
        "",
        f"Finalized {payload['finalized_at']} on store {payload['store_generation']}: "
        f"{payload['series']} series, the last {payload['test_days']} days of each sealed "
        "(first half public, second half private). Each test day is predicted one day ahead "
        "from the real previous days. MAE in views.",
        "",
        *markdown_table(FINAL_HEADER, final_rows(payload)),
        "",
        "Runs: "
        + ", ".join(f"{e['name']} `{e['run_id']}`" for e in payload["runs"])
        + f". Test rows: {rows['public']:,} public, {rows['private']:,} private.",
        "",
        f"![forecast vs actual over the test period]({figure})",
        "",
    ]
    return "\n".join(lines)


# --- the lecture report ---------------------------------------------------------------------------


def critical_point_sentence(point: CriticalPoint) -> str:
    """One sentence on where a training ended (L4)."""
    counts = (
        f"; {point.positive} positive, {point.negative} negative, {point.zero} zero eigenvalues "
        f"(minimum ratio {point.minimum_ratio:.2f})"
        if point.positive is not None
        else ""
    )
    return (
        f"{point.kind}: Hessian eigenvalues from {point.min_eigenvalue:.3g} to "
        f"{point.max_eigenvalue:.3g} ({point.method}, {point.parameters:,} parameters){counts}; "
        f"gradient norm {point.grad_norm:.3g}"
    )


def _lecture_table(rows: list[Row], finalized: bool, lowest: bool = False) -> list[str]:
    header = ["model", "parameters", "training MAE", "validation MAE"]
    header += ["test MAE"] * finalized + ["lowest training loss (any epoch, scaled)"] * lowest
    body = []
    for r in rows:
        cells = [r.name, f"{r.params:,}", fmt_mae(r.train_mae), fmt_mae(r.val_mae)]
        cells += [fmt_mae(r.test_mae)] * finalized
        if lowest:
            cells.append(f"{r.lowest_loss:.4g}" if r.lowest_loss is not None else "-")
        body.append(cells)
    return markdown_table(header, body)


def _study_rows(report: LectureReport) -> tuple[list[list[str]], list[list[str]]]:
    """The batch-size and optimiser studies as table rows."""
    batch = [
        [
            str(b["device"]),
            str(b["batch"]),
            str(b["epochs"]),
            f"{b['seconds_per_epoch']:.4f}",
            fmt_mae(b["train_mae"]),
            fmt_mae(b["val_mae"]),
        ]
        for b in report.batch_study
    ]
    optim = [
        [
            o["optimiser"],
            f"{o['lr']:g}",
            str(o["best_epoch"]),
            fmt_mae(o["train_mae"]),
            fmt_mae(o["val_mae"]),
        ]
        for o in report.optimiser_study
    ]
    return batch, optim


def _lecture_tables(report: LectureReport, figures: str) -> list[str]:
    """L1 and L2: the tables, the weights, the findings and the best model's figure."""
    test_note = (
        "The test was finalized, so test MAE is shown."
        if report.finalized
        else "Test MAE is not shown: the test has not been finalized (`viewcast finalize`)."
    )
    weights = [f"{v:.4g}" for v in report.weights.values()]
    return [
        "# The lecture's experiments on viewcast",
        "",
        f"Series: {', '.join(report.series)}. The grid is MLflow sweep `{report.sweep_id}`. "
        f"MAE in views, one day ahead. {test_note}",
        "",
        "## L1: the linear model y = b + sum_j w_j x_j",
        "",
        *_lecture_table(report.linear, report.finalized),
        "",
        f"Weights of the 7-day model{report.weights_note}:",
        "",
        *markdown_table(list(report.weights), [weights]),
        "",
        "## L2: sigmoid and ReLU networks on 56 days",
        "",
        "Training and validation MAE are each model's at the epoch early stopping kept (its best "
        "validation epoch); the last column is the lowest training loss any epoch reached, which "
        "tells whether a model could fit the training days.",
        "",
        *_lecture_table(report.deep, report.finalized, lowest=True),
        "",
        *(f"- {f}" for f in report.findings),
        "",
        f"The best model on validation is **{report.best}**:",
        "",
        f"![validation period]({figures}/validation.png)",
        "",
    ]


def lecture_markdown(report: LectureReport, figures: str) -> str:
    """reports/lecture.md: the tables, the findings and the figures (in the folder `figures`)."""
    batch, optim = _study_rows(report)
    batch_header = ["device", "batch", "epochs", "seconds / epoch", "training MAE"]
    optim_header = ["optimiser", "lr", "best epoch", "training MAE", "validation MAE"]
    lines = [
        *_lecture_tables(report, figures),
        "## Diagnostics",
        "",
        "### Gradient norm and loss over epochs (L6)",
        "",
        f"![gradient norm vs loss]({figures}/grad_norm.png)",
        "",
        "### The Hessian at the end of training (L4)",
        "",
        "Of the training loss (MAE on the scaled training rows) with respect to the parameters.",
        "",
        *(f"- **{name}**: {text}." for name, text in report.hessians),
        "",
        "### Batch size (L5)",
        "",
        *markdown_table([*batch_header, "validation MAE"], batch),
        "",
        "### Optimisers (L6)",
        "",
        *markdown_table(optim_header, optim),
        "",
        f"![optimisers]({figures}/optimisers.png)",
        "",
    ]
    return "\n".join(lines)
