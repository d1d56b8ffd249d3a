"""`viewcast experiment lecture`: the lecture's tables, figures and diagnostics as a report.

1. L1: the linear model on 1, 7, 28 and 56 previous days (training and validation MAE, test MAE
   only once the test is finalized) and the 7-day model's weights b, w_1..w_7 in views.
2. L2: on 56 days, sigmoid 100 and ReLU 1-4 layers of 100 (and one layer of 10 and of 1000), with
   sentences where depth overfits (training better, validation worse) and where a deeper model
   trains worse (an optimisation problem, L3).
3. The best model's forecast against the actual views of the validation period.
4. Diagnostics: gradient norm against loss over epochs (L6), the Hessian at the end of training
   (L4), a batch-size study (L5, on the GPU too where there is one) and an optimiser study (L6).
Everything is logged to MLflow: the grid as a sweep, the studies as nested runs of one
`experiment lecture` run, which holds the report and its figures.
"""

from __future__ import annotations

import itertools
import math
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from pipeline.config import Workspace

REPORT, FIGURES = "lecture.md", "lecture"
LINEAR_LAGS = (1, 7, 28, 56)
DEPTHS = (1, 2, 3, 4)
STUDY_MODEL = dict(lags=56, model="relu", layers=1, width=100)
OPTIMISERS = (  # name, optimizer, lr, extra TrainConfig fields
    ("SGD", "sgd", 1e-2, {}),
    ("momentum", "momentum", 1e-2, {"momentum": 0.9}),
    ("Adagrad", "adagrad", 1e-2, {}),
    ("RMSProp", "rmsprop", 1e-3, {}),
    ("Adam", "adam", 1e-3, {}),
    ("Adam + warm-up", "adam", 1e-3, {"warmup_epochs": 0.1, "schedule": "cosine"}),
)
BATCH_SIZES = (0, 256, 32)


@dataclass
class Row:
    name: str
    run_id: str
    params: int
    train_mae: float  # at the epoch early stopping kept
    val_mae: float
    test_mae: float | None = None
    lowest_loss: float | None = None  # the lowest training loss of any epoch (scaled)


@dataclass
class LectureReport:
    series: list[str]
    sweep_id: str
    linear: list[Row] = field(default_factory=list)
    weights: dict[str, float] = field(default_factory=dict)
    weights_note: str = ""
    deep: list[Row] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    best: str = ""
    hessians: list[tuple[str, str]] = field(default_factory=list)
    batch_study: list[dict] = field(default_factory=list)
    optimiser_study: list[dict] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    finalized: bool = False


# --- pure readings of the tables ----------------------------------------------------------------


def views_weights(model) -> tuple[dict[str, float], str]:
    """b, w_1..w_N of a linear ViewsModel in views: y = b + sum_j w_j x_j (exact when it has no
    target transform and no scaling; otherwise the weights of its scaled space)."""
    w = model.net.weight.detach().double().numpy()[0]
    b0 = float(model.net.bias.detach().double().numpy()[0])
    mx, sx = (model.x_mean.double().numpy(), model.x_std.double().numpy())
    my, sy = float(model.y_mean.double()[0]), float(model.y_std.double()[0])
    weights = sy * w / sx
    bias = sy * (b0 - float((w * mx / sx).sum())) + my
    plain = model.cfg.target_transform == "none" and model.cfg.scaling == "none"
    note = "" if plain else " (in the model's transformed and scaled space, not in views)"
    return {"b": bias} | {f"w_{j}": float(v) for j, v in enumerate(weights, 1)}, note


def depth_findings(rows: list[Row]) -> list[str]:
    """L2/L3 sentences from ReLU rows ordered by depth: overfitting and optimisation problems."""
    out = []
    for shallow, deep in itertools.pairwise(rows):
        if deep.train_mae < shallow.train_mae and deep.val_mae > shallow.val_mae:
            out.append(
                f"Overfitting: from {shallow.name} to {deep.name} the training MAE fell "
                f"({shallow.train_mae:,.1f} -> {deep.train_mae:,.1f}) while the validation MAE "
                f"rose ({shallow.val_mae:,.1f} -> {deep.val_mae:,.1f})."
            )
        # L3 compares how well each model can fit the training data: the lowest training loss
        # any epoch reached (early stopping may keep an earlier epoch for validation's sake)
        fit_deep, fit_shallow = deep.lowest_loss, shallow.lowest_loss
        if fit_deep is None or fit_shallow is None:
            fit_deep, fit_shallow = deep.train_mae, shallow.train_mae
        if fit_deep > fit_shallow:
            out.append(
                f"Optimisation problem: {deep.name} never fitted the training days as well as "
                f"{shallow.name} (lowest training loss {fit_deep:.4g} > {fit_shallow:.4g}), though "
                "it can represent every function the shallower one can. This is not overfitting "
                "and not model bias: gradient descent did not find its better parameters (L3)."
            )
    if not out:
        out.append(
            "Every deeper network fitted the training days at least as well as the shallower one "
            "and validated no worse: neither overfitting nor an optimisation problem showed "
            "between these depths."
        )
    return out


# --- the experiment -----------------------------------------------------------------------------


def run(
    ws: Workspace,
    series: list[str] | None = None,
    epochs: int | None = None,
    study_epochs: int = 200,
    on_step=None,
) -> LectureReport:
    """Run the lecture grid and the studies; write reports/lecture.md with its figures."""
    from pipeline import diagnostics, holdout, selection, tracking
    from pipeline import features as feats
    from pipeline.store import Store

    grid = selection.lecture_grid()
    if epochs is not None:
        grid = [
            replace(
                c, train=replace(c.train, epochs=epochs, patience=min(c.train.patience, epochs))
            )
            for c in grid
        ]
    sweep = selection.sweep(ws, "lecture", grid, on_step=on_step, series=series)
    mlflow, client, experiment = tracking.session(ws)
    runs = {r.info.run_name: r for r in selection.sweep_children(client, experiment, sweep.run_id)}
    store = Store(ws)
    dev, splits = store.read_dev(), store.read_splits()
    names = series or sorted(splits.series)
    report = LectureReport(names, sweep.run_id)
    try:
        holdout.read_final(ws)
        report.finalized = True
        scorer = holdout.Holdout(ws)
    except Exception:  # not finalized: the test stays sealed
        scorer = None

    def row(name: str) -> Row:
        r = runs[name]
        model = tracking.load_model(ws, r.info.run_id)
        test = None
        if scorer is not None:  # the test days of the experiment's series
            w, idx = scorer.data(model.cfg.lags).windows, scorer.data(model.cfg.lags).rows["test"]
            idx = idx[np.isin(w.names[w.code[idx]].astype(str), names)]
            test = float(np.abs(model.predict(w.x(idx)) - w.y(idx)).mean())
        params = sum(p.numel() for p in model.net.parameters())
        losses = diagnostics.epoch_history(client, r.info.run_id)["train_loss"]
        return Row(name, r.info.run_id, params, r.data.metrics["train_mae"],
                   r.data.metrics["val_mae"], test, min(losses, default=None))  # fmt: skip

    report.linear = [row(f"linear-lags{n}") for n in LINEAR_LAGS]
    seven = tracking.load_model(ws, runs["linear-lags7"].info.run_id)
    report.weights, report.weights_note = views_weights(seven)
    deep_names = ["sigmoid-100-lags56", *(f"relu-{k}x100-lags56" for k in DEPTHS)]
    deep_names += ["relu-1x10-lags56", "relu-1x1000-lags56"]
    report.deep = [row("linear-lags56"), *(row(n) for n in deep_names)]
    report.findings = depth_findings([r for r in report.deep if r.name.startswith("relu-") and
                                      "x100-" in r.name])  # fmt: skip
    candidates = report.linear + report.deep
    best = min(candidates, key=lambda r: r.val_mae)
    report.best = best.name

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / FIGURES
        folder.mkdir()
        windows56 = feats.select_series(feats.lag_windows(dev, splits, 56), names)
        best_model = tracking.load_model(ws, best.run_id)
        _plot_validation(best_model, feats.select_series(
            feats.lag_windows(dev, splits, best_model.cfg.lags), names), folder / "validation.png",
            best.name)  # fmt: skip
        report.figures.append("validation.png")

        curves = {n: diagnostics.epoch_history(client, runs[n].info.run_id) for n in
                  ("linear-lags56", "relu-1x100-lags56", "relu-4x100-lags56")}  # fmt: skip
        diagnostics.plot_grad_vs_loss(curves, folder / "grad_norm.png")
        report.figures.append("grad_norm.png")

        report.hessians = _hessians(ws, runs, windows56, dev, splits, names)
        with mlflow.start_run(run_name="experiment lecture", tags={"stage": "experiment"}) as exp:
            report.batch_study = _batch_study(ws, windows56, study_epochs, exp.info.run_id)
            report.optimiser_study, histories = _optimiser_study(
                ws, windows56, study_epochs, exp.info.run_id
            )
            _plot_optimisers(histories, folder / "optimisers.png")
            report.figures.append("optimisers.png")
            markdown = render(report)
            (Path(tmp) / REPORT).write_text(markdown)
            mlflow.log_artifact(str(Path(tmp) / REPORT))
            mlflow.log_artifacts(str(folder), FIGURES)
            mlflow.log_metrics({f"val_mae.{r.name}": r.val_mae for r in candidates})
            mlflow.log_param("sweep_run_id", sweep.run_id)
        _publish(Path(tmp), ws.reports)
    return report


def _publish(src: Path, reports: Path) -> None:
    """Move the report and its figures into reports/ (figures first, the page last)."""
    from pipeline.atomic import atomic_write

    reports.mkdir(parents=True, exist_ok=True)
    target = reports / FIGURES
    staging = Path(tempfile.mkdtemp(prefix=".lecture-", dir=reports))
    shutil.copytree(src / FIGURES, staging / FIGURES)
    if target.exists():
        shutil.rmtree(target)
    (staging / FIGURES).rename(target)
    shutil.rmtree(staging, ignore_errors=True)
    text = (src / REPORT).read_text()
    atomic_write(reports / REPORT, lambda tmp: Path(tmp).write_text(text))


def _hessians(ws, runs, windows56, dev, splits, names) -> list[tuple[str, str]]:
    """The critical point each model ended at, on its training rows (at most 3,000 of them)."""
    from pipeline import diagnostics, tracking
    from pipeline import features as feats

    out = []
    for name in ("linear-lags7", "relu-1x10-lags56", "sigmoid-100-lags56", "relu-4x100-lags56"):
        model = tracking.load_model(ws, runs[name].info.run_id)
        w = feats.select_series(feats.lag_windows(dev, splits, model.cfg.lags), names)
        rows = w.rows("train")[-3000:]
        point = diagnostics.analyse_model(model, w.x(rows), w.y(rows), "mae")
        out.append((name, diagnostics.describe(point)))
    return out


def _study_config(epochs: int, **train):
    from pipeline.models import ModelConfig
    from pipeline.train import TrainConfig

    mcfg = ModelConfig(**STUDY_MODEL)
    return mcfg, TrainConfig(epochs=epochs, patience=0, seed=0, **train)


def batch_size_study(windows, epochs: int, on_fit=None) -> list[dict]:
    """L5: full batch vs small batches, seconds per epoch (after a one-epoch warm-up) and
    validation MAE, on the CPU and on CUDA when torch sees it. `on_fit(mcfg, tcfg, result)` sees
    each training (the experiment logs them; bench/bench_gpu.py, without MLflow, does not)."""
    import torch

    from pipeline.train import fit

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    out = []
    for device in devices:
        for size in BATCH_SIZES:
            mcfg, tcfg = _study_config(epochs, batch_size=size, device=device)
            fit(windows, mcfg, replace(tcfg, epochs=1))  # warm-up: first-call costs are not epochs
            started = time.perf_counter()
            result = fit(windows, mcfg, tcfg)
            seconds = time.perf_counter() - started
            if on_fit is not None:
                on_fit(mcfg, tcfg, result)
            out.append({
                "device": device, "batch": size or "full", "epochs": result.epochs_run,
                "seconds_per_epoch": seconds / max(result.epochs_run, 1),
                "val_mae": result.val_mae, "train_mae": result.train_mae,
            })  # fmt: skip
    return out


def _batch_study(ws, windows, epochs: int, parent: str) -> list[dict]:
    """The batch-size study, each training a nested run of the experiment."""
    from pipeline import features as feats
    from pipeline import tracking

    def log(mcfg, tcfg, result) -> None:
        tracking.log_training(
            ws, windows, mcfg, tcfg, result, feats.describe(ws, windows),
            run_name=f"batch {tcfg.batch_size or 'full'} {tcfg.device}", tags={"stage": "study"},
            parent_run_id=parent,
        )  # fmt: skip

    return batch_size_study(windows, epochs, log)


def _optimiser_study(ws, windows, epochs: int, parent: str):
    """L6: the same model and data under each optimiser; learning curves for one figure."""
    from pipeline import features as feats
    from pipeline import tracking
    from pipeline.train import fit

    out, histories = [], {}
    for label, optimizer, lr, extra in OPTIMISERS:
        mcfg, tcfg = _study_config(epochs, optimizer=optimizer, lr=lr, **extra)
        result = fit(windows, mcfg, tcfg)
        tracking.log_training(
            ws, windows, mcfg, tcfg, result, feats.describe(ws, windows),
            run_name=f"optimiser {label}", tags={"stage": "study"}, parent_run_id=parent,
        )  # fmt: skip
        histories[label] = result.history
        out.append({"optimiser": label, "lr": lr, "best_epoch": result.best_epoch,
                    "train_mae": result.train_mae, "val_mae": result.val_mae})  # fmt: skip
    return out, histories


# --- figures ------------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plot_validation(model, windows, path: Path, name: str, most: int = 4) -> None:
    plt = _pyplot()
    rows = windows.rows("val")
    codes = np.unique(windows.code[rows])[:most]
    fig, axes = plt.subplots(len(codes), 1, figsize=(9, 2.6 * len(codes)), squeeze=False)
    for ax, code in zip(axes[:, 0], codes, strict=True):
        idx = rows[windows.code[rows] == code]
        dates = windows.day[idx].astype("datetime64[D]")
        ax.plot(dates, windows.y(idx), color="black", label="actual")
        ax.plot(dates, model.predict(windows.x(idx)), color="tab:blue", label=name)
        ax.set_title(str(windows.names[code]), fontsize=9)
        ax.set_ylabel("views")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("validation period: one-day-ahead forecast of the best model vs actual")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _plot_optimisers(histories: dict[str, dict[str, list[float]]], path: Path) -> None:
    plt = _pyplot()
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
    fig.suptitle("L6: one ReLU layer of 100 on 56 days, six optimisers")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# --- the page -----------------------------------------------------------------------------------


def _fmt(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:,.1f}"


def _table(rows: list[Row], finalized: bool, lowest: bool = False) -> list[str]:
    head = "| model | parameters | training MAE | validation MAE |"
    head += " test MAE |" if finalized else ""
    head += " lowest training loss (any epoch, scaled) |" if lowest else ""
    rule = "|---|---|---|---|" + ("---|" if finalized else "") + ("---|" if lowest else "")
    lines = [head, rule]
    for r in rows:
        line = f"| {r.name} | {r.params:,} | {_fmt(r.train_mae)} | {_fmt(r.val_mae)} |"
        line += f" {_fmt(r.test_mae)} |" if finalized else ""
        if lowest:
            line += f" {r.lowest_loss:.4g} |" if r.lowest_loss is not None else " - |"
        lines.append(line)
    return lines


def render(report: LectureReport) -> str:
    """reports/lecture.md."""
    test_note = (
        "The test was finalized, so test MAE is shown."
        if report.finalized
        else "Test MAE is not shown: the test has not been finalized (`viewcast finalize`)."
    )
    lines = [
        "# The lecture's experiments on viewcast",
        "",
        f"Series: {', '.join(report.series)}. The grid is MLflow sweep `{report.sweep_id}`. "
        f"MAE in views, one day ahead. {test_note}",
        "",
        "## L1: the linear model y = b + sum_j w_j x_j",
        "",
        *_table(report.linear, report.finalized),
        "",
        f"Weights of the 7-day model{report.weights_note}:",
        "",
        "| " + " | ".join(report.weights) + " |",
        "|" + "---|" * len(report.weights),
        "| " + " | ".join(f"{v:.4g}" for v in report.weights.values()) + " |",
        "",
        "## L2: sigmoid and ReLU networks on 56 days",
        "",
        "Training and validation MAE are each model's at the epoch early stopping kept (its best "
        "validation epoch); the last column is the lowest training loss any epoch reached, which "
        "tells whether a model could fit the training days.",
        "",
        *_table(report.deep, report.finalized, lowest=True),
        "",
        *(f"- {f}" for f in report.findings),
        "",
        f"The best model on validation is **{report.best}**:",
        "",
        "![validation period](lecture/validation.png)",
        "",
        "## Diagnostics",
        "",
        "### Gradient norm and loss over epochs (L6)",
        "",
        "![gradient norm vs loss](lecture/grad_norm.png)",
        "",
        "### The Hessian at the end of training (L4)",
        "",
        "Of the training loss (MAE on the scaled training rows) with respect to the parameters.",
        "",
        *(f"- **{name}**: {text}." for name, text in report.hessians),
        "",
        "### Batch size (L5)",
        "",
        "| device | batch | epochs | seconds / epoch | training MAE | validation MAE |",
        "|---|---|---|---|---|---|",
        *(
            f"| {b['device']} | {b['batch']} | {b['epochs']} | {b['seconds_per_epoch']:.4f} | "
            f"{_fmt(b['train_mae'])} | {_fmt(b['val_mae'])} |"
            for b in report.batch_study
        ),
        "",
        "### Optimisers (L6)",
        "",
        "| optimiser | lr | best epoch | training MAE | validation MAE |",
        "|---|---|---|---|---|",
        *(
            f"| {o['optimiser']} | {o['lr']:g} | {o['best_epoch']} | {_fmt(o['train_mae'])} | "
            f"{_fmt(o['val_mae'])} |"
            for o in report.optimiser_study
        ),
        "",
        "![optimisers](lecture/optimisers.png)",
        "",
    ]
    return "\n".join(lines)
