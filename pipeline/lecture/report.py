"""The lecture's figures and pages: gradient norms, optimisers, escapes, studies, its report.

Drawn with the product's helpers (pipeline.plots); the numbers come from the lecture's modules.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import numpy as np

from pipeline.lecture.summaries import flatness, summarise_sharpness
from pipeline.plots import fmt_mae, markdown_table, pyplot, save_figure

if TYPE_CHECKING:
    from pipeline.lecture.diagnostics import CriticalPoint
    from pipeline.lecture.experiment import LectureReport, Row


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
    save_figure(fig, path)


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
    save_figure(fig, path)


def escape_figure(escape, stay: list[float], leave: list[float], title: str, path: Path) -> None:
    """L4: the loss along the lowest-curvature eigenvector and a random direction; with the
    descent curves from the trained and the escaped point beside it when there are any."""
    plt = pyplot()
    panels = 2 if stay else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 3.6), squeeze=False)
    ax = axes[0, 0]
    label = f"eigenvector u (eigenvalue {escape.eigenvalue:.3g})"
    ax.plot(escape.etas, escape.along, color="tab:red", label=label)
    ax.plot(escape.etas, escape.random, color="gray", linestyle="--", label="a random direction")
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xlabel("step length eta")
    ax.set_ylabel("L(theta + eta d) - L(theta)")
    ax.legend(fontsize=8)
    if stay:
        ax = axes[0, 1]
        ax.plot(stay, label="from the trained point")
        ax.plot(leave, label="from the escaped point")
        ax.set_xlabel("gradient descent step")
        ax.set_ylabel("training loss")
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    save_figure(fig, path)


# --- forecasts against actual views -------------------------------------------------------------


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


# --- the lecture's studies (L4-L8) ----------------------------------------------------------------


def _verdict(holds: bool, claim: str) -> str:
    return (
        f"This is what the lecture says ({claim})."
        if holds
        else (f"The data does not show what the lecture says here ({claim}).")
    )


def study_figures(result, folder: Path) -> list[str]:
    """One figure per study, drawn from its numbers; the file names."""
    plt = pyplot()
    n, name = result.numbers, result.name
    path = folder / f"{name}.png"
    if name == "escape":
        e = SimpleNamespace(**n["escape"])
        escape_figure(e, n["stay"], n["leave"], "L4: the loss around the trained point", path)
        return [path.name]
    if name == "sharpness":
        fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 3.6))
        labels = [str(r["batch"]) for r in n["rows"]]
        ax.scatter(labels, [r["sharpness"] for r in n["rows"]], color="tab:red")
        ax.set_xlabel("batch size")
        ax.set_ylabel("top Hessian eigenvalue (sharpness)")
        summary = summarise_sharpness(n["rows"])
        bx.bar([str(s["batch"]) for s in summary], [s["val_mae"] for s in summary])
        bx.set_xlabel("batch size")
        bx.set_ylabel("validation MAE (views, mean over seeds)")
        fig.suptitle("L5: sharpness and validation MAE by batch size")
    elif name == "landscape":
        nets, alphas = n["nets"], np.asarray(n["alphas"])
        fig, axes = plt.subplots(1, 1 + len(nets), figsize=(4 * (1 + len(nets)), 3.6))
        for label, d in nets.items():
            axes[0].plot(alphas, d["line"], label=label)
        axes[0].set_xlabel("alpha (filter-normalised direction)")
        axes[0].set_ylabel("training loss (scaled MAE)")
        axes[0].legend(fontsize=7)
        planes = [np.asarray(d["plane"]) for d in nets.values()]
        levels = np.linspace(min(p.min() for p in planes), max(p.max() for p in planes), 20)
        for ax, (label, d) in zip(axes[1:], nets.items(), strict=True):
            ax.contour(alphas, alphas, np.asarray(d["plane"]), levels=levels)  # one scale
            ax.set_title(label, fontsize=9)
        fig.suptitle("L6: the error surface around the trained weights")
    elif name == "direction":
        fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 3.6))
        for loss, d in n.items():
            ax.plot(d["history"]["train_accuracy"], label=f"{loss}: training")
            bx.plot(d["history"]["val_accuracy"], label=f"{loss}: validation")
        any_run = next(iter(n.values()))
        bx.axhline(any_run["majority_accuracy"], color="gray", ls="--", label="majority class")
        bx.axhline(any_run["persistence_accuracy"], color="black", ls=":", label="same as today")
        for a in (ax, bx):
            a.set_xlabel("epoch")
            a.set_ylabel("accuracy")
            a.legend(fontsize=7)
        fig.suptitle("L7: cross-entropy vs MSE on the probabilities, from the same start")
    else:  # batchnorm
        fig, ax = plt.subplots(1, 1, figsize=(7, 3.6))
        for label, d in n["runs"].items():
            ax.plot(range(1, len(d["curve"]) + 1), d["curve"], label=f"{label} (lr {d['lr']:g})")
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("training loss (scaled MAE)")
        ax.legend(fontsize=8)
        fig.suptitle("L8: a deep sigmoid network with and without batch normalisation")
    save_figure(fig, path)
    return [path.name]


def study_markdown(result, figures: str) -> list[str]:
    """A study's section: a table and sentences computed from its numbers."""
    writers = {
        "escape": _escape_md,
        "sharpness": _sharpness_md,
        "landscape": _landscape_md,
        "direction": _direction_md,
        "batchnorm": _batchnorm_md,
    }
    lines = ["", *writers[result.name](result.numbers)]
    return [*lines, "", *(f"![{result.name}]({figures}/{f})" for f in result.figures)]


def _escape_md(n: dict) -> list[str]:
    e = n["escape"]
    curvature = (
        "negative: the point has a descent direction."
        if e["eigenvalue"] < 0
        else "not negative: there is no saddle direction to escape along."
    )
    text = (
        f"The study network's lowest Hessian eigenvalue at the end of training is "
        f"{e['eigenvalue']:.4g} ({e['method']}), {curvature} The gradient norm there is "
        f"{e['grad_norm']:.3g} (zero at a critical point). A step of {e['best_eta']:+.3g} "
        f"along its eigenvector changes the training loss by {-e['drop']:+.4g}; the best step "
        f"of the same length along a random direction by {-e['random_drop']:+.4g}."
    )
    if n["stay"]:
        stay, leave = n["stay"][-1], n["leave"][-1]
        text += (
            f" After {len(n['stay']) - 1} gradient-descent steps the loss is {leave:.4g} from "
            f"the escaped point and {stay:.4g} from the trained one. "
            + _verdict(e["drop"] > 0 and leave < stay, "moving along u lowers the loss")
        )
    return ["### L4: escaping a saddle", "", text]


def _sharpness_md(n: dict) -> list[str]:
    summary = summarise_sharpness(n["rows"])
    full, small = summary[0], summary[-1]
    flatter = small["sharpness"] < full["sharpness"]
    better = small["val_mae"] < full["val_mae"]
    rows = [
        [
            str(s["batch"]),
            str(s["seeds"]),
            f"{s['sharpness']:.4g} ± {s['sharpness_sd']:.2g}",
            fmt_mae(s["train_mae"]),
            fmt_mae(s["val_mae"]),
        ]
        for s in summary
    ]
    header = ["batch", "seeds", "sharpness (top eigenvalue)", "train MAE", "val MAE"]
    text = (
        f"Batches of {small['batch']} ended {'flatter' if flatter else 'sharper'} than the full "
        f"batch (top eigenvalue {small['sharpness']:.4g} vs {full['sharpness']:.4g}) with a "
        f"{'lower' if better else 'higher'} validation MAE ({fmt_mae(small['val_mae'])} vs "
        f"{fmt_mae(full['val_mae'])}). "
        + _verdict(flatter and better, "small batches find flatter minima that generalise better")
    )
    return ["### L5: small batches, flat minima", "", *markdown_table(header, rows), "", text]


def _landscape_md(n: dict) -> list[str]:
    nets = n["nets"]
    rise = {k: flatness(d["line"], n["alphas"]) for k, d in nets.items()}
    rows = [
        [k, f"{d['loss']:.4g}", f"{rise[k]:.3g}", fmt_mae(d["val_mae"])] for k, d in nets.items()
    ]
    header = ["network", "training loss", "rise at alpha = ±0.5 (relative)", "val MAE"]
    deep, shallow, deep_bn = rise["deep (4x100)"], rise["shallow (1x100)"], rise["deep + BN"]
    text = (
        f"Along filter-normalised directions the deep network's loss rises "
        f"{'faster' if deep > shallow else 'no faster'} than the shallow one's ({deep:.3g} vs "
        f"{shallow:.3g}), and batch norm makes the deep network's surface "
        f"{'flatter' if deep_bn < deep else 'no flatter'} ({deep_bn:.3g}). "
        + _verdict(deep_bn < deep, "normalisation smooths the error surface")
    )
    return ["### L6: the error surface", "", *markdown_table(header, rows), "", text]


def _direction_md(n: dict) -> list[str]:
    ce, mse = n["ce"], n["mse"]
    quarter = max(len(ce["history"]["train_accuracy"]) // 4, 1) - 1
    early_ce = ce["history"]["train_accuracy"][quarter]
    early_mse = mse["history"]["train_accuracy"][quarter]
    beats = ce["val_accuracy"] > max(ce["majority_accuracy"], ce["persistence_accuracy"])
    rows = [
        [
            k,
            f"{d['train_accuracy']:.3f}",
            f"{d['val_accuracy']:.3f}",
            f"{d['majority_accuracy']:.3f}",
            f"{d['persistence_accuracy']:.3f}",
        ]
        for k, d in n.items()
    ]
    header = ["loss", "train accuracy", "val accuracy", "majority class", "same as today"]
    text = (
        f"Classes: down below a change of {ce['cuts'][0]:+.3f}, up above {ce['cuts'][1]:+.3f} in "
        f"ln(1 + views) (the training days' tertiles). The cross-entropy classifier "
        f"{'beats' if beats else 'does not beat'} both baselines on validation. A quarter of "
        f"the way through training, cross-entropy had {early_ce:.3f} training accuracy and MSE "
        f"on the probabilities {early_mse:.3f}. "
        + _verdict(early_ce > early_mse, "cross-entropy is easier to optimise than MSE")
    )
    title = "### L7: classification of tomorrow's direction"
    return [title, "", *markdown_table(header, rows), "", text]


def _batchnorm_md(n: dict) -> list[str]:
    runs = n["runs"]
    plain, bn, fast = (runs[k] for k in ("no batch norm", "batch norm", "batch norm, 5x lr"))
    rows = [
        [k, f"{d['lr']:g}", f"{d['final']:.4g}", f"{d['sharpness']:.4g}"] for k, d in runs.items()
    ]
    header = ["network", "lr", "final training loss", "sharpness (top eigenvalue)"]
    quarter = max(len(bn["curve"]) // 4, 1) - 1  # "faster": lower a quarter of the way through
    text = (
        f"With batch norm the deep sigmoid network ends at a training loss of "
        f"{bn['final']:.4g} against {plain['final']:.4g} without. "
        + _verdict(bn["final"] < plain["final"], "batch norm trains a deep network better")
        + f" A quarter of the way through training, batch norm at 5x the learning rate is at "
        f"{fast['curve'][quarter]:.4g} against {bn['curve'][quarter]:.4g} at the base rate "
        f"(and ends at {fast['final']:.4g}). "
        + _verdict(
            fast["curve"][quarter] < bn["curve"][quarter],
            "a larger learning rate then trains faster",
        )
        + f" Its top Hessian eigenvalue is {bn['sharpness']:.4g} with batch norm and "
        f"{plain['sharpness']:.4g} without. "
        + _verdict(bn["sharpness"] < plain["sharpness"], "a smoother error surface")
    )
    return ["### L8: batch normalisation", "", *markdown_table(header, rows), "", text]
