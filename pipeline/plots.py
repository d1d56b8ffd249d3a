"""Pictures and tables the product draws: learning curves, forecast panels, the final report.

The stages compute numbers and hand them over; nothing here reads the store or MLflow (the
lecture's own figures and pages are in pipeline.lecture.report). Figures
are written with the Agg backend (no display needed), tables as Markdown rows.
"""

from __future__ import annotations

import functools
import math
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PERIODS = ("val", "public", "private", "test")


def fmt_mae(value: float | None) -> str:
    """A MAE in views for a table: 1,234.5, or '-' when there is none."""
    return "-" if value is None or not math.isfinite(value) else f"{value:,.1f}"


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only, never a window)."""
    # lazy: matplotlib, only when a picture is drawn
    import matplotlib

    matplotlib.use("Agg")
    # lazy: matplotlib, only when a picture is drawn
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path, dpi: int = 90, tight: bool = True) -> None:
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


def learning_curve(
    history: dict[str, list[float]], path: Path, epochs: dict[str, list[int]] | None = None
) -> None:
    """Loss and validation MAE over epochs, with the gradient norm on its own axis. `epochs`:
    each curve's epochs when they are not 1..N (a logged curve thinned to some of its epochs).
    A network's curves are drawn on one figure kept for the process, its lines' data replaced
    (60 ms a picture instead of 165: building three axes and their ticks was most of it; the
    layout is fixed, so the pictures are the same); boosted trees' on a figure of their own."""

    def along(key: str) -> tuple[np.ndarray, list[float]]:
        values = history.get(key, [])
        x = (epochs or {}).get(key) or range(1, len(values) + 1)
        return np.asarray(list(x)), values

    if history.get("grad_norm"):
        with _CURVES_LOCK:
            fig, lines = _curve_figure()
            for line, key in zip(lines, ("train_loss", "val_mae", "grad_norm"), strict=True):
                line.set_data(*along(key))
            for ax in fig.axes:
                ax.relim()
                ax.autoscale_view()
            with warnings.catch_warnings():  # a curve at one value: log axes widen it
                warnings.simplefilter("ignore", UserWarning)
                fig.savefig(path, dpi=80, format="png")
        return
    plt = pyplot()
    fig, axes = plt.subplots(3, 1, figsize=(7, 8), sharex=True)
    _curve_axes(fig, axes)
    axes[0].plot(*along("train_loss"), label="training loss (scaled)")
    axes[1].plot(*along("val_mae"), color="tab:orange")
    # boosted trees: no gradient descent, each epoch one more tree
    axes[2].text(0.5, 0.5, "no gradient: trees", ha="center", transform=axes[2].transAxes)
    save_figure(fig, path, dpi=80, tight=False)  # a fixed layout: drawn for many runs


_CURVES_LOCK = threading.Lock()  # the process's one learning-curve figure: one drawing at a time


def _curve_axes(fig, axes) -> None:
    """The learning curve's fixed layout, labels and log scales."""
    ax_loss, ax_val, ax_grad = axes
    fig.subplots_adjust(left=0.14, right=0.97, top=0.94, bottom=0.07, hspace=0.12)
    ax_loss.set_ylabel("training loss")
    ax_loss.set_yscale("log")
    ax_val.set_ylabel("validation MAE (views)")
    ax_grad.set_ylabel("gradient norm")
    ax_grad.set_xlabel("epoch")
    fig.suptitle("learning curve")


@functools.cache  # one figure for the process, made on first use
def _curve_figure():
    """The learning-curve figure and its three lines (loss, validation MAE, gradient norm)."""
    pyplot()  # the Agg backend
    # lazy: matplotlib, only when a picture is drawn
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 8))  # not pyplot's: nothing closes it behind our back
    axes = fig.subplots(3, 1, sharex=True)
    lines = [
        axes[0].plot([], [], label="training loss (scaled)")[0],
        axes[1].plot([], [], color="tab:orange")[0],
        axes[2].plot([], [], color="tab:green")[0],
    ]
    _curve_axes(fig, axes)
    axes[2].set_yscale("log")
    return fig, lines


def _views_over_dates(ax, title: str) -> None:
    """A series panel's title, views axis and concise date ticks."""
    # lazy: matplotlib, only when a picture is drawn
    import matplotlib.dates as mdates

    ax.set_title(title, fontsize=9)
    ax.set_ylabel("views")
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


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
    plt = pyplot()
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 2.6 * len(panels)), squeeze=False)
    for ax, panel in zip(axes[:, 0], panels, strict=True):
        ax.plot(panel.dates, panel.actual, color="black", label="actual")
        for i, (label, values) in enumerate(panel.forecasts.items()):
            style = {"color": "tab:blue"} if i == 0 else {"color": "gray", "linestyle": "--"}
            ax.plot(panel.dates, values, label=label, **style)
        if panel.marker is not None:
            ax.axvline(panel.marker, color="tab:red", lw=0.8, label=marker_label)
        _views_over_dates(ax, panel.title)
    axes[0, 0].legend(fontsize=8, ncol=4)
    fig.suptitle(title)
    save_figure(fig, path)


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
        _views_over_dates(ax, panel.title)
    axes[0, 0].legend(fontsize=8, ncol=4)
    fig.suptitle(title)
    save_figure(fig, path)


def horizon_figure(steps: list[dict], path: Path, title: str) -> None:
    """A backtest against the horizon: MAE (and MASE on its own axis) above, the coverage of the
    80% and 95% intervals below (per-step conformal solid, sqrt(h) dashed, nominal dotted)."""
    plt = pyplot()
    scored = [row for row in steps if row.get("paths")]
    h = [row["h"] for row in scored]
    fig, (ax_err, ax_cov) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    ax_err.plot(h, [row["mae"] for row in scored], "o-", ms=3, label="MAE (views)")
    ax_err.set_ylabel("MAE (views)")
    ax_mase = ax_err.twinx()
    ax_mase.plot(h, [row["mase"] for row in scored], "s--", ms=2, color="tab:gray", label="MASE")
    ax_mase.set_ylabel("MASE")
    for level, color in ((80, "tab:blue"), (95, "tab:orange")):
        ax_cov.plot(
            h,
            [row[f"coverage_{level}"] for row in scored],
            "o-",
            ms=3,
            color=color,
            label=f"{level}% per-step conformal",
        )
        ax_cov.plot(
            h,
            [row[f"sqrt_coverage_{level}"] for row in scored],
            "--",
            color=color,
            label=f"{level}% sqrt(h)",
        )
        ax_cov.axhline(level, ls=":", color=color, lw=1)
    ax_cov.set_ylabel("coverage (%)")
    ax_cov.set_xlabel("days ahead (h)")
    ax_cov.legend(fontsize=7, ncol=2)
    fig.suptitle(title)
    save_figure(fig, path)


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
        *_scale_free(payload),
    ]
    return "\n".join(lines)


SCALE_FREE_HEADER = ["model", "test MAE", "test SMAPE", "test MASE", "test MAE / naive MAE"]


def _metric_cells(scores: dict) -> list[str]:
    def cell(key: str, digits: str) -> str:
        value = scores.get(key)
        return "-" if value is None or not math.isfinite(value) else format(value, digits)

    return [
        fmt_mae(scores.get("test_mae")),
        cell("test_smape", ".2f"),
        cell("test_mase", ".3f"),
        cell("test_vs_naive", ".3f"),
    ]


def _scale_free(payload: dict, most: int = 25) -> list[str]:
    """The test period in the metrics of forecasting tools, pooled and per series: SMAPE (the
    Kaggle web-traffic metric, 0-200), MASE (over the in-sample seasonal naive) and MAE over the
    naive forecast's (below 1 beats "tomorrow = today")."""
    if "test_smape" not in payload["champion"]:  # a report made before these metrics
        return []
    rows = [[e["name"], *_metric_cells(e)] for e in payload["runs"]]
    rows += [[f"{n} (baseline)", *_metric_cells(s)] for n, s in payload["baselines"].items()]
    per = payload.get("champion_per_series", {})
    biggest = sorted(per, key=lambda name: -per[name].get("test_mae", 0.0))[:most]
    more = f" (the {most} with the largest MAE of {len(per)})" if len(per) > most else ""
    return [
        "## Scale-free scores (test period)",
        "",
        "SMAPE is the Kaggle web-traffic metric (0-200); MASE divides each day's error by its "
        "series' in-sample seasonal naive MAE (mean |y_t - y_t-7| before the test), so each "
        'series counts alike; MAE / naive MAE below 1 beats "tomorrow = today".',
        "",
        *markdown_table(SCALE_FREE_HEADER, rows),
        "",
        f"The champion per series{more}:",
        "",
        *markdown_table(
            ["series", *SCALE_FREE_HEADER[1:]], [[n, *_metric_cells(per[n])] for n in biggest]
        ),
        "",
    ]


# --- the lecture report ---------------------------------------------------------------------------
