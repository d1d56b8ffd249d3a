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
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from pipeline import plots, tracking
from pipeline.data import features as feats
from pipeline.data.atomic import atomic_write
from pipeline.data.store import Store
from pipeline.data.workspace import Paths, read_final
from pipeline.lecture import REPORT, STUDIES, diagnostics
from pipeline.lecture import report as lecture_report
from pipeline.models.families import ModelConfig
from pipeline.models.outcome import training_outcome
from pipeline.models.train import TrainConfig, fit
from pipeline.search import grids, holdout, sweeps
from pipeline.search.grids import Candidate
from pipeline.tracking import RunRecord, Stage, SweepPurpose, Tag

FIGURES = "lecture"
GRID_PAGE, STUDY_FOLDER = "lecture-grid.md", "studies"  # the grid's part; the studies' folder
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


def pick(grid: list[Candidate], model: str, lags: int = 56, **fields) -> Candidate:
    """The configuration of the lecture grid with these model fields (found by what it is)."""
    for cand in grid:
        cfg = cand.model
        if (cfg.model, cfg.lags) == (model, lags) and all(
            getattr(cfg, k) == v for k, v in fields.items()
        ):
            return cand
    raise KeyError(f"no {model} on {lags} days with {fields} in the lecture grid")


@dataclass
class LectureRuns:
    """The lecture sweep's runs by configuration, and what scoring them needs."""

    ws: Paths
    runs: dict[str, RunRecord]  # config key -> finished run
    series: list[str]
    scorer: object | None  # a holdout.Holdout once the test is finalized, else None

    def run(self, cand: Candidate) -> RunRecord:
        return self.runs[cand.key]

    def row(self, cand: Candidate) -> Row:
        """A table row: parameters, training and validation MAE, test MAE once finalized, and
        the lowest training loss of any epoch."""
        r = self.runs[cand.key]
        model = tracking.load_model(self.ws, r.run_id)
        test = None
        if self.scorer is not None:  # the test days of the experiment's series
            data = self.scorer.data(model.cfg.lags)
            w, idx = data.windows, data.rows["test"]
            idx = idx[np.isin(w.names[w.code[idx]].astype(str), self.series)]
            test = float(np.abs(w.predict(model, idx) - w.y(idx)).mean())
        params = sum(p.numel() for p in model.net.parameters())
        losses = tracking.epoch_history(self.ws, r.run_id)["train_loss"]
        return Row(
            cand.name,
            r.run_id,
            params,
            r.metrics["train_mae"],
            r.metrics["val_mae"],
            test,
            min(losses, default=None),
        )


def lecture_sweep(
    ws: Paths, series, epochs: int | None, on_step
) -> tuple[list[Candidate], LectureRuns, str]:
    """The lecture grid as a sweep (tagged as the experiment's: `select` never picks it)."""
    grid = grids.lecture_grid()
    if epochs is not None:
        grid = [
            replace(
                c, train=replace(c.train, epochs=epochs, patience=min(c.train.patience, epochs))
            )
            for c in grid
        ]
    sweep = sweeps.sweep(
        ws, "lecture", grid, on_step=on_step, series=series, purpose=SweepPurpose.EXPERIMENT
    )
    runs = {r.tags[Tag.CONFIG_KEY]: r for r in tracking.sweep_children(ws, sweep.run_id)}
    names = series or sorted(Store(ws).read_splits().series)
    scorer = None  # not finalized: the test stays sealed
    if ws.final_report.exists():
        read_final(ws)  # a damaged report is its own line
        scorer = holdout.Holdout(ws)
    return grid, LectureRuns(ws, runs, names, scorer), sweep.run_id


def run(
    ws: Paths,
    series: list[str] | None = None,
    epochs: int | None = None,
    study_epochs: int = 200,
    on_step=None,
) -> LectureReport:
    """Run the lecture grid and the studies; write reports/lecture.md with its figures."""
    grid, lecture, sweep_id = lecture_sweep(ws, series, epochs, on_step)
    report = LectureReport(lecture.series, sweep_id, finalized=lecture.scorer is not None)
    report.linear = [lecture.row(pick(grid, "linear", n)) for n in LINEAR_LAGS]
    seven = tracking.load_model(ws, lecture.run(pick(grid, "linear", 7)).run_id)
    report.weights, report.weights_note = views_weights(seven)
    deep = {c.key: lecture.row(c) for c in grid if c.model.lags == 56}  # linear, sigmoid, ReLU
    report.deep = list(deep.values())
    report.findings = depth_findings(
        [deep[pick(grid, "relu", layers=k, width=100).key] for k in DEPTHS]
    )
    best = min(report.linear + report.deep, key=lambda r: r.val_mae)
    report.best = best.name
    store = Store(ws)
    dev, splits = store.read_dev(), store.read_splits()
    windows56 = feats.select_series(feats.lag_windows(dev, splits, 56), lecture.series)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / FIGURES
        folder.mkdir()
        best_model = tracking.load_model(ws, best.run_id)
        best_windows = feats.select_series(
            feats.lag_windows(dev, splits, best_model.cfg.lags), lecture.series
        )
        plots.forecast_panels(
            validation_panels(best_model, best_windows, best.name),
            "validation period: one-day-ahead forecast of the best model vs actual",
            folder / "validation.png",
        )
        curves = {
            c.name: tracking.epoch_history(ws, lecture.run(c).run_id)
            for c in (
                pick(grid, "linear"),
                *(pick(grid, "relu", layers=k, width=100) for k in (1, 4)),
            )
        }
        lecture_report.grad_vs_loss(curves, folder / "grad_norm.png")
        hessian_models = (
            pick(grid, "linear", 7),
            pick(grid, "relu", layers=1, width=10),
            pick(grid, "sigmoid"),
            pick(grid, "relu", layers=4, width=100),
        )
        report.hessians = _hessians(ws, lecture, hessian_models, dev, splits)
        report.figures = ["validation.png", "grad_norm.png", "optimisers.png"]
        _studies(ws, report, windows56, study_epochs, Path(tmp))
        _publish(Path(tmp), ws.reports)
    assemble(ws)
    return report


def _studies(ws: Paths, report: LectureReport, windows, epochs: int, tmp: Path) -> None:
    """The batch-size and optimiser studies as nested runs of one `experiment lecture` run,
    which also holds the page and its figures."""
    with tracking.start_run(ws, "experiment lecture", Stage.EXPERIMENT) as exp:
        report.batch_study = _batch_study(ws, windows, epochs, exp.run_id)
        report.optimiser_study, histories = _optimiser_study(ws, windows, epochs, exp.run_id)
        lecture_report.optimisers(
            histories,
            "L6: one ReLU layer of 100 on 56 days, six optimisers",
            tmp / FIGURES / "optimisers.png",
        )
        (tmp / REPORT).write_text(lecture_report.lecture_markdown(report, FIGURES))
        exp.artifact(tmp / REPORT)
        exp.artifacts(tmp / FIGURES, FIGURES)
        rows = report.linear + report.deep
        exp.metrics({f"val_mae.{r.name}": r.val_mae for r in rows})
        exp.params({"sweep_run_id": report.sweep_id})


def validation_panels(model, windows, name: str, most: int = 4) -> list:
    """The model's one-day-ahead forecasts over the validation days of the first series."""
    rows = windows.rows("val")
    panels = []
    for code in np.unique(windows.code[rows])[:most]:
        idx = rows[windows.code[rows] == code]
        panels.append(
            plots.Panel(
                str(windows.names[code]),
                windows.day[idx].astype("datetime64[D]"),
                windows.y(idx),
                {name: windows.predict(model, idx)},
            )
        )
    return panels


def _publish(src: Path, reports: Path) -> None:
    """Move the report and its figures into reports/ (figures first, the page last)."""
    reports.mkdir(parents=True, exist_ok=True)
    target = reports / FIGURES
    staging = Path(tempfile.mkdtemp(prefix=".lecture-", dir=reports))
    shutil.copytree(src / FIGURES, staging / FIGURES)
    if target.exists():
        shutil.rmtree(target)
    (staging / FIGURES).rename(target)
    shutil.rmtree(staging, ignore_errors=True)
    text = (src / REPORT).read_text()
    atomic_write(reports / GRID_PAGE, lambda tmp: Path(tmp).write_text(text))


def _hessians(ws, lecture: LectureRuns, models, dev, splits) -> list[tuple[str, str]]:
    """The critical point each model ended at, on its training rows (at most 3,000 of them)."""
    out = []
    for cand in models:
        model = tracking.load_model(ws, lecture.run(cand).run_id)
        w = feats.select_series(feats.lag_windows(dev, splits, model.cfg.lags), lecture.series)
        rows = w.rows("train")[-3000:]
        point = diagnostics.analyse_model(model, w.x(rows), w.y(rows), "mae")
        out.append((cand.name, lecture_report.critical_point_sentence(point)))
    return out


def _study_config(epochs: int, **train):
    mcfg = ModelConfig(**STUDY_MODEL)
    return mcfg, TrainConfig(epochs=epochs, patience=0, seed=0, **train)


def batch_size_study(windows, epochs: int, on_fit=None) -> list[dict]:
    """L5: full batch vs small batches, seconds per epoch (after a one-epoch warm-up) and
    validation MAE, on the CPU and on CUDA when torch sees it. `on_fit(mcfg, tcfg, result)` sees
    each training (the experiment logs them; bench/bench_gpu.py, without MLflow, does not)."""
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
            out.append(
                {
                    "device": device,
                    "batch": size or "full",
                    "epochs": result.epochs_run,
                    "seconds_per_epoch": seconds / max(result.epochs_run, 1),
                    "val_mae": result.val_mae,
                    "train_mae": result.train_mae,
                }
            )
    return out


def _log_study(ws, windows, parent: str, name: Callable[[object], str]):
    """A callback that logs one study training as a nested run of the experiment, named
    `name(tcfg)`."""

    def log(mcfg, tcfg, result) -> None:
        data = feats.data_params(ws, windows)
        outcome = training_outcome(windows, result, data, keep_intervals=False)  # no champion
        tracking.log_training(
            ws,
            windows,
            mcfg,
            tcfg,
            result.model,
            result.device,
            outcome,
            data,
            run_name=name(tcfg),
            parent_run_id=parent,
            stage=Stage.STUDY,
        )

    return log


def _batch_study(ws, windows, epochs: int, parent: str) -> list[dict]:
    """The batch-size study, each training a nested run of the experiment."""
    log = _log_study(
        ws, windows, parent, lambda tcfg: f"batch {tcfg.batch_size or 'full'} {tcfg.device}"
    )
    return batch_size_study(windows, epochs, log)


def _optimiser_study(ws, windows, epochs: int, parent: str):
    """L6: the same model and data under each optimiser; learning curves for one figure."""
    out, histories = [], {}
    for label, optimizer, lr, extra in OPTIMISERS:
        mcfg, tcfg = _study_config(epochs, optimizer=optimizer, lr=lr, **extra)
        result = fit(windows, mcfg, tcfg)
        _log_study(ws, windows, parent, lambda _, label=label: f"optimiser {label}")(
            mcfg, tcfg, result
        )
        histories[label] = result.history
        out.append(
            {
                "optimiser": label,
                "lr": lr,
                "best_epoch": result.best_epoch,
                "train_mae": result.train_mae,
                "val_mae": result.val_mae,
            }
        )
    return out, histories


# --- the rest of the lecture: L4-L8 studies (pipeline/studies.py) -------------------------------


def assemble(ws: Paths) -> None:
    """reports/lecture.md: the grid's page (when the grid has run) and every study section
    written so far, in the lecture's order."""
    grid = ws.reports / GRID_PAGE
    parts = (
        [grid.read_text().rstrip() + "\n"]
        if grid.exists()
        else ["# The lecture's experiments on viewcast\n"]
    )
    sections = [ws.reports / STUDY_FOLDER / f"{n}.md" for n in STUDIES]
    if any(p.exists() for p in sections):
        parts.append("\n## The rest of the lecture (L4-L8)\n")
        parts += [p.read_text() for p in sections if p.exists()]
    text = "".join(parts)
    atomic_write(ws.reports / REPORT, lambda tmp: Path(tmp).write_text(text))
