"""Sweeps, validation-based choice, the champion (L3: select on validation, never on test).

A sweep is one MLflow parent run with one nested run per configuration. Its identity (`sweep_key`)
is a digest of the configurations, the fold count and the store generation, so running the same
sweep again resumes it: configurations with a finished (or deterministically failed) run are
skipped. Every sweep also runs the baselines that must be beaten: naive (y = x_1, the lecture's
"one-day shift"), seasonal naive (y = x_7) and the closed-form linear model.

Selection reads only `stage = train` runs and their validation metric; test rows, submissions and
leaderboard scores are out of its reach (it never opens the store's sealed file).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import statistics
import time
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from pipeline import engines, tracking
from pipeline.config import CALENDARS, DEFAULT_ENSEMBLE_METHOD, ModelConfig, Workspace
from pipeline.engines import Engine
from pipeline.ensembles import OOF_LIMIT, Forecasts
from pipeline.errors import ViewcastError
from pipeline.features import LagWindows
from pipeline.store import Splits, ViewsTable
from pipeline.tracking import RunRecord, Stage, SweepPurpose, Tag
from pipeline.train import TrainConfig

GRIDS = ("lecture", "default", "panel")
MODEL_FIELDS = {f.name for f in fields(ModelConfig)}
TRAIN_FIELDS = {f.name for f in fields(TrainConfig)}


@dataclass(frozen=True)
class Candidate:
    """One configuration of a sweep: a name people read, the model and how to train it."""

    name: str
    model: ModelConfig
    train: TrainConfig
    baseline: bool = False

    @property
    def key(self) -> str:
        """Content digest: the same configuration has the same key in every sweep."""
        train, model = asdict(self.train), asdict(self.model)
        if train["seeds"] == 1:  # keys from before bagging existed stay the same
            del train["seeds"]
        for name, before in (("calendar", "none"), ("leaves", 31)):  # and before these fields
            if model[name] == before:
                del model[name]
        payload = json.dumps([model, train], sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def canonical(cfg: ModelConfig) -> ModelConfig:
    """Reset the fields a family ignores, so a grid never trains the same model twice."""
    default = ModelConfig()
    if cfg.model != "hgb":
        cfg = replace(cfg, leaves=default.leaves)
    else:
        cfg = replace(cfg, layers=default.layers, width=default.width)
    if cfg.model in ("linear", "naive"):
        cfg = replace(cfg, layers=default.layers, width=default.width)
    if cfg.model != "relu":
        cfg = replace(cfg, layers=default.layers, batchnorm=False, dropout=0.0)
    if cfg.model == "naive":
        cfg = replace(cfg, target_transform="none", scaling="none", calendar="none")
    return cfg


def config_name(cfg: ModelConfig) -> str:
    """A short run name: relu-2x64-bn-lags56-log1p."""
    family = {
        "relu": f"relu-{cfg.layers}x{cfg.width}" + ("-bn" if cfg.batchnorm else ""),
        "sigmoid": f"sigmoid-{cfg.width}",
        "hgb": f"hgb-{cfg.leaves}leaves",
    }.get(cfg.model, cfg.model)
    transform = "" if cfg.target_transform == "none" else f"-{cfg.target_transform}"
    robust = {"window-median": "-median", "last-week-mean": "-lastweek"}.get(cfg.scaling, "")
    calendar = "-weekday" if cfg.calendar == "weekday" else ""
    return f"{family}-lags{cfg.lags}{transform}{robust}{calendar}"


def how_trained(cfg: ModelConfig, train: TrainConfig) -> str:
    """The run name's training part: -adam-0.003, -lstsq, or -boost-0.05 for trees."""
    if cfg.model == "hgb":
        return f"-boost-{train.lr:g}"
    return "-lstsq" if train.solver == "lstsq" else f"-{train.optimizer}-{train.lr:g}"


def baselines() -> list[Candidate]:
    """What every sweep must beat: naive, seasonal naive and closed-form linear."""
    closed_form = TrainConfig(solver="lstsq", loss="mse")
    return [
        Candidate("naive", ModelConfig(lags=1, model="naive"), TrainConfig(), True),
        Candidate("seasonal-naive", ModelConfig(lags=7, model="naive"), TrainConfig(), True),
        Candidate("linear-lstsq-lags56", ModelConfig(lags=56, model="linear"), closed_form, True),
    ]


def lecture_grid() -> list[Candidate]:
    """The lecture's tables: linear on 1/7/28/56 days; on 56 days sigmoid 100, ReLU 1-4 x 100,
    and one ReLU layer of 10 and of 1000, all fitted by gradient descent on the MAE."""
    train = TrainConfig(optimizer="adam", lr=1e-3, epochs=2000, patience=200)
    models = [ModelConfig(lags=n, model="linear") for n in (1, 7, 28, 56)]
    models.append(ModelConfig(lags=56, model="sigmoid", width=100))
    models += [ModelConfig(lags=56, model="relu", layers=k, width=100) for k in (1, 2, 3, 4)]
    models += [ModelConfig(lags=56, model="relu", layers=1, width=w) for w in (10, 1000)]
    linear_train = replace(train, lr=1e-2)
    return [
        Candidate(config_name(m), canonical(m), linear_train if m.model == "linear" else train)
        for m in models
    ]


def default_grid() -> list[Candidate]:
    """The grid we expect to win on real data, cheapest-to-learn-most first so a time budget
    cuts the least promising end: optimiser and learning rate outermost, then target transform,
    lag window, model family and batch norm, calendar innermost. Every model scales each row by
    its window mean. Why the weekday is in and the hgb family's trees are not (they never won
    on validation folds): bench/README.md, "Issue 12's levers"."""
    out = []
    optimisers = [("adam", 3e-3), ("adam", 1e-3), ("rmsprop", 1e-3)]
    transforms = ["log1p", "none"]
    lags = [28, 56, 7]
    families = [("linear", 1, False), ("relu", 1, False), ("relu", 2, False), ("relu", 2, True)]
    for (opt, lr), transform, n, (family, layers, bn), calendar in itertools.product(
        optimisers, transforms, lags, families, CALENDARS
    ):
        model = ModelConfig(
            lags=n,
            model=family,
            layers=layers,
            width=64,
            batchnorm=bn,
            target_transform=transform,
            scaling="window-mean",
            calendar=calendar,
        )
        train = TrainConfig(optimizer=opt, lr=lr, epochs=600, patience=60)
        out.append(Candidate(f"{config_name(model)}-{opt}-{lr:g}", canonical(model), train))
    return out


PANEL_EPOCH = 2**21  # windows a panel epoch draws: about 8 s for a 3x100 net on 2 cores


def panel_grid() -> list[Candidate]:
    """Global models for panels too large to gather (Kaggle's 145k pages: 80M windows): every
    epoch draws 2M windows in batches of 65,536 (see train.SampledRows); lags 28 and 56 x
    linear, ReLU 2x64 and ReLU 3x100 (bench_train's global model); log1p with window-mean
    scaling, Adam 1e-3, 8 epochs, patience 3."""
    train = TrainConfig(
        lr=1e-3, batch_size=65_536, rows_per_epoch=PANEL_EPOCH, epochs=8, patience=3
    )
    families = [("linear", 1, 64), ("relu", 2, 64), ("relu", 3, 100)]
    out = []
    for n, (family, layers, width) in itertools.product((56, 28), families):
        model = ModelConfig(n, family, layers, width)
        model = canonical(replace(model, target_transform="log1p", scaling="window-mean"))
        out.append(Candidate(f"{config_name(model)}-adam-0.001-sampled", model, train))
    return out


def grid_for(name: str, dev_days: Callable[[], int]) -> tuple[str, list[Candidate]]:
    """The grid a name means for the store: `default` turns into `panel` when its full-batch
    windows could not be gathered (more than FULL_ROWS_LIMIT lag values); `dev_days()` (the
    store's size) is asked for `default` only."""
    from pipeline.train import FULL_ROWS_LIMIT

    if name == "default":
        most = max(c.model.lags for c in default_grid())
        name = "panel" if dev_days() * most > FULL_ROWS_LIMIT else name
    return name, load_grid(name)


def toml_grid(path: Path) -> list[Candidate]:
    """A grid from a TOML file: `[base]` fields shared by all, `[grid]` lists whose product is
    swept. Keys are ModelConfig and TrainConfig fields (lags, model, layers, lr, optimizer...)."""
    try:
        spec = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ViewcastError(f"{path}: cannot read the grid: {err}") from None
    base, grid = spec.get("base", {}), spec.get("grid", {})
    unknown = sorted((set(base) | set(grid)) - MODEL_FIELDS - TRAIN_FIELDS)
    if unknown or not isinstance(grid, dict) or set(spec) - {"base", "grid"}:
        problem = f"unknown keys {', '.join(unknown)}" if unknown else "use [base] and [grid]"
        raise ViewcastError(f"{path}: {problem}")
    axes = {k: v if isinstance(v, list) else [v] for k, v in grid.items()}
    out, seen = [], set()
    for values in itertools.product(*axes.values()):
        settings = base | dict(zip(axes, values, strict=True))
        try:
            model = ModelConfig(**{k: v for k, v in settings.items() if k in MODEL_FIELDS})
            train = TrainConfig(**{k: v for k, v in settings.items() if k in TRAIN_FIELDS})
        except (TypeError, ViewcastError) as err:
            raise ViewcastError(f"{path}: {err}") from None
        candidate = Candidate("", canonical(model), train)
        if candidate.key not in seen:
            seen.add(candidate.key)
            name = config_name(candidate.model) + how_trained(candidate.model, train)
            out.append(replace(candidate, name=name))
    if not out:
        raise ViewcastError(f"{path}: the grid has no configuration")
    return out


def load_grid(name: str) -> list[Candidate]:
    """`lecture`, `default`, `panel`, or the path of a TOML grid file."""
    if name in GRIDS:
        return {"lecture": lecture_grid, "default": default_grid, "panel": panel_grid}[name]()
    path = Path(name)
    if path.suffix != ".toml" or not path.is_file():
        raise ViewcastError(f"--grid must be lecture, default, panel or a .toml file, got {name!r}")
    return toml_grid(path)


# --- the sweep ---------------------------------------------------------------------------------


@dataclass
class SweepReport:
    """What a sweep did: its parent run, and how many configurations ran, were resumed or cut."""

    run_id: str
    total: int
    grid: str = ""  # the grid trained (`default` turns into `panel` on a large store)
    ran: int = 0
    resumed: int = 0
    failed: int = 0
    skipped: int = 0  # left out by the time budget
    seconds: float = 0.0
    train_seconds: float = 0.0  # where the time went: training, MLflow logging, learning curves
    log_seconds: float = 0.0
    plot_seconds: float = 0.0


def sweep_key(
    candidates: list[Candidate], folds: int, generation: str, series: list[str] | None = None
) -> str:
    payload = json.dumps([[c.key for c in candidates], folds, generation, sorted(series or [])])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SweepData:
    """What every configuration of a sweep trains on: the dev days, their splits, the series."""

    dev: ViewsTable
    splits: Splits
    series: list[str] | None
    folds: int
    windows: dict[int, LagWindows] = field(default_factory=dict)

    def lags(self, n: int) -> LagWindows:
        """Window-N rows of the chosen series (built once per N)."""
        from pipeline import features as feats

        if n not in self.windows:
            self.windows[n] = feats.select_series(
                feats.lag_windows(self.dev, self.splits, n), self.series
            )
        return self.windows[n]


def sweep(
    ws: Workspace,
    grid: str,
    candidates: list[Candidate],
    folds: int = 1,
    max_minutes: float | None = None,
    on_step: Callable[[int, int, Candidate, float | None], None] | None = None,
    series: list[str] | None = None,
    purpose: SweepPurpose = SweepPurpose.SELECTION,
    stack: bool = True,
    seeds: int = 1,
    engine: Engine = Engine(),
) -> SweepReport:
    """Train the baselines and the grid as nested runs under one parent (on every split series,
    or the named ones); resume if it exists. Configurations of one shape train together as a
    stack (`stack=False`: one at a time); with `seeds` K each configuration is the mean of K
    seeds; the engine trains the units here or on a Ray cluster (this process alone logs).
    An experiment's sweep (the lecture report's) is never `select`'s default."""
    from pipeline.store import Store

    if folds < 1 or seeds < 1:
        raise ViewcastError(f"--folds and --seeds must be at least 1, got {folds} and {seeds}")
    store = Store(ws)
    data = SweepData(store.read_dev(), store.read_splits(), series, folds)
    if len(data.dev) == 0:
        raise ViewcastError("no series is long enough to split: ingest more days first")
    generation = store.require().name
    base = baselines()
    grid_cands = [with_seeds(c, seeds) for c in candidates if c.key not in {b.key for b in base}]
    candidates = base + grid_cands
    key = sweep_key(candidates, folds, generation, series)
    params = {"grid": grid, "folds": folds, "configs": len(candidates), "seeds": seeds}
    params |= {"series": ",".join(series) if series else "all", "stacked": stack}
    params |= {"store_generation": generation, "max_minutes": max_minutes, "engine": engine.name}
    with engines.opened(engine) as runner:  # a Ray cluster is reached before the run opens
        parent = _open_sweep(ws, key, grid, purpose, params)
        done = _finished_configs(ws, parent)
        resumed = sum(c.key in done for c in candidates)
        report = SweepReport(parent, len(candidates), grid, resumed=resumed)
        todo = [(i, c) for i, c in enumerate(candidates, start=1) if c.key not in done]
        start, per_config, status = time.perf_counter(), [], "KILLED"
        units = plan_units(todo, stack)

        def starting(unit: list[tuple[int, Candidate]]) -> bool:
            # the time budget: start no unit that would likely overrun it
            expected = time.perf_counter() - start
            expected += statistics.median(per_config or [0.0]) * len(unit)
            if max_minutes is not None and per_config and expected > max_minutes * 60:
                return False
            if on_step is not None:
                on_step(unit[0][0] - 1, len(candidates), unit[0][1], None)
            return True

        try:
            waited = time.perf_counter()
            for unit, outcomes in runner.train_units(data, units, stack, starting):
                report.train_seconds += time.perf_counter() - waited
                for i, cand in unit:
                    val_mae = _log_outcome(ws, data, cand, outcomes[cand.key], parent, key, stack)
                    report.ran += val_mae is not None
                    report.failed += val_mae is None
                    if on_step is not None and val_mae is not None:
                        on_step(i, len(candidates), cand, val_mae)
                # a unit's cost, per configuration: its wait (training) and its logging
                per_config += [(time.perf_counter() - waited) / len(unit)] * len(unit)
                waited = time.perf_counter()
            report.skipped = len(todo) - report.ran - report.failed
            status = "FINISHED"
            if stack:
                began = time.perf_counter()
                plot_best(ws, parent)
                report.plot_seconds = time.perf_counter() - began
        finally:
            report.seconds = time.perf_counter() - start
            report.log_seconds = report.seconds - report.train_seconds - report.plot_seconds
            _close_sweep(ws, parent, report, status)
    return report


def _open_sweep(ws: Workspace, key: str, grid: str, purpose: SweepPurpose, params: dict) -> str:
    """The parent run of the sweep with this key: found again (resumed), or started."""
    found = tracking.find_sweep(ws, key)
    if found is not None:
        tracking.set_status(ws, found.run_id, "RUNNING")
        for child in tracking.sweep_children(ws, found.run_id, finished_only=False):
            if child.status == "RUNNING":  # its writer died (kill -9): it trains again below
                reason = "left RUNNING by an interrupted sweep; trained again"
                tracking.kill_run(ws, child.run_id, reason)
        return found.run_id
    tags = {Tag.SWEEP_KEY: key, "grid": grid, Tag.SWEEP_PURPOSE: str(purpose)}
    parent = tracking.create_run(ws, f"sweep {grid}", Stage.SWEEP, tags)
    parent.params(params)
    return parent.run_id


def _close_sweep(ws: Workspace, parent: str, report: SweepReport, status: str) -> None:
    run = tracking.writer(ws, parent)
    run.metrics({"configs_run": report.ran, "configs_skipped": report.skipped})
    run.tags({"complete": str(report.skipped == 0 and status == "FINISHED")})
    tracking.set_status(ws, parent, status)


def with_seeds(cand: Candidate, seeds: int) -> Candidate:
    """The configuration bagged over `seeds` seeds (unchanged for one)."""
    if seeds == 1:
        return cand
    return replace(cand, train=replace(cand.train, seeds=seeds))


def plan_units(todo: list[tuple[int, Candidate]], stack: bool) -> list[list[tuple[int, Candidate]]]:
    """What trains together, in the grid's order: one stack per shape, or one configuration at a
    time (and always for the baselines that do not descend)."""
    from pipeline.stack import stack_key, stackable

    units: list[list[tuple[int, Candidate]]] = []
    by_key: dict[tuple, list[tuple[int, Candidate]]] = {}
    for i, cand in todo:
        if not stack or not stackable(cand.model, cand.train):
            units.append([(i, cand)])
            continue
        shape = stack_key(cand.model, cand.train)
        if shape not in by_key:
            by_key[shape] = []
            units.append(by_key[shape])
        by_key[shape].append((i, cand))
    return units


def _members(cand: Candidate) -> list[tuple[ModelConfig, TrainConfig]]:
    """The trainings of a configuration: one per seed."""
    seeds = range(cand.train.seed, cand.train.seed + cand.train.seeds)
    return [(cand.model, replace(cand.train, seed=s, seeds=1)) for s in seeds]


def train_unit(
    data: SweepData, unit: list[Candidate], stacked: bool
) -> dict[str, list | Exception]:
    """Each configuration's results, one per fold (the mean of its seeds when bagged), or the
    ViewcastError it failed with."""
    from pipeline import features as feats
    from pipeline import stack, train

    out: dict[str, list | Exception] = {c.key: [] for c in unit}
    for k in range(1, data.folds + 1):
        windows = feats.fold(data.lags(unit[0].model.lags), data.splits, k)
        members = [(c.key, m) for c in unit for m in _members(c)]
        if stacked and stack.stackable(*members[0][1]):
            results = stack.fit_stack(windows, [m for _, m in members])
        else:
            results = [_fit_or_error(train.fit, windows, *m) for _, m in members]
        for cand in unit:
            mine = [r for (key, _), r in zip(members, results, strict=True) if key == cand.key]
            failed = next((r for r in mine if isinstance(r, Exception)), None)
            if failed is not None or isinstance(out[cand.key], Exception):
                out[cand.key] = out[cand.key] if isinstance(out[cand.key], Exception) else failed
                continue
            out[cand.key].append(mine[0] if len(mine) == 1 else bag(mine, windows))
    return out


def _fit_or_error(fit, windows, mcfg, tcfg):
    try:
        return fit(windows, mcfg, tcfg)
    except ViewcastError as err:
        return err


def bag(results: list, windows: LagWindows):
    """Seeds of one configuration as one result: the mean of their forecasts (bagging), its MAE,
    the mean curves, and each seed's best epoch."""
    from pipeline.models import EnsembleModel
    from pipeline.train import TrainResult

    model = EnsembleModel([r.model for r in results]).eval()
    scores, val_pred = {}, None
    for split in ("train", "val"):
        rows = windows.rows(split)
        pred = windows.predict(model, rows)
        scores[split] = float(np.abs(pred - windows.y(rows)).mean()) if len(rows) else math.nan
        val_pred = pred if split == "val" else val_pred
    longest = max(r.epochs_run for r in results)
    history = {}
    for name in results[0].history:
        curves = np.full((len(results), longest), np.nan)
        for i, r in enumerate(results):
            curves[i, : len(r.history[name])] = r.history[name]
        history[name] = [float(v) for v in np.nanmean(curves, axis=0)]
    epochs = [r.best_epoch for r in results]
    return TrainResult(
        model,
        history,
        round(statistics.fmean(epochs)),
        longest,
        sum(r.seconds for r in results),
        results[0].device,
        scores["train"],
        scores["val"],
        results[0].rows,
        epochs,
        val_pred,
    )


def _log_outcome(
    ws: Workspace, data: SweepData, cand: Candidate, outcome, parent: str, key: str, stacked: bool
) -> float | None:
    """Log one configuration under the sweep; its validation MAE (the mean over folds), or None
    when it failed (a FAILED run says why)."""
    from pipeline import features as feats

    tags = {Tag.SWEEP_KEY: key, Tag.CONFIG_KEY: cand.key, Tag.BASELINE: str(cand.baseline)}
    if cand.baseline:
        tags[Tag.BASELINE_ROLE] = cand.name
    if isinstance(outcome, Exception):
        tags |= {Tag.STAGE: str(Stage.TRAIN), Tag.ERROR: str(outcome)}
        tracking.log_failure(ws, parent, cand.name, cand.model, tags)
        return None
    first = outcome[0]
    metrics = {f"best_epoch_seed{k}": e for k, e in enumerate(first.seed_epochs)}
    if data.folds > 1:
        metrics |= {f"val_mae_fold{k}": r.val_mae for k, r in enumerate(outcome, 1)}
        metrics["val_mae"] = statistics.fmean(r.val_mae for r in outcome)
    windows = data.lags(cand.model.lags)
    tracking.log_training(
        ws,
        windows,
        cand.model,
        cand.train,
        first,
        feats.data_params(ws, windows) | {"folds": data.folds},
        run_name=cand.name,
        tags=tags | {"stacked": str(stacked)},
        parent_run_id=parent,
        metrics=metrics,
        curve_png=not stacked,
        keep_intervals=data.series is None,  # intervals hold for every series or none
        oof=out_of_fold(data, windows, outcome),
    )
    return metrics.get("val_mae", first.val_mae)


def out_of_fold(data: SweepData, windows: LagWindows, results: list) -> Forecasts | None:
    """A configuration's validation forecasts of every fold (what greedy ensembles are built
    on), or None past OOF_LIMIT forecasts."""
    from pipeline import features as feats

    if len(windows.rows("val")) * len(results) > OOF_LIMIT:
        return None
    targets, folds, preds = [], [], []
    for k, result in enumerate(results, 1):
        fw = feats.fold(windows, data.splits, k)
        rows = fw.rows("val")
        pred = result.val_pred
        if pred is None or len(pred) != len(rows):
            pred = fw.predict(result.model, rows)
        targets.append(fw.target[rows]), folds.append(np.full(len(rows), k, np.int8))
        preds.append(np.asarray(pred, np.float64))
    return Forecasts(np.concatenate(targets), np.concatenate(folds), np.concatenate(preds))


PLOTTED = 10  # learning curves drawn after a stacked sweep: its best runs (others on demand)


def plot_best(ws: Workspace, parent: str, most: int = PLOTTED) -> list[str]:
    """Draw the learning curve of the sweep's `most` best trained runs that lack one."""
    runs = [r for r in tracking.sweep_children(ws, parent) if r.metrics.get("epochs_run", 0) > 0]
    best = sorted(runs, key=lambda r: r.metrics.get("val_mae", math.inf))[:most]
    drawn = []
    for run in best:
        if "learning_curve.png" not in tracking.artifacts(ws, run.run_id):
            tracking.plot_learning_curve(ws, run.run_id)
            drawn.append(run.run_id)
    return drawn


def _finished_configs(ws: Workspace, parent: str) -> set[str]:
    """Configurations of the sweep already done: finished, or failed for a reason that repeats."""
    return {
        r.tags[Tag.CONFIG_KEY]
        for r in tracking.sweep_children(ws, parent, finished_only=False)
        if r.status == "FINISHED" or Tag.ERROR in r.tags
    }


# --- selection ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ranked:
    """One row of the selection table."""

    run_id: str
    name: str
    score: float
    train_mae: float
    baseline: bool


@dataclass(frozen=True)
class Selection:
    sweep_id: str
    metric: str
    ranking: list[Ranked]
    version: str
    note: str = ""

    @property
    def champion(self) -> Ranked:
        return self.ranking[0]


ENSEMBLE_METHODS = ("greedy", "top")


def select(
    ws: Workspace,
    metric: str = "val_mae",
    sweep_id: str | None = None,
    ensemble: int = 0,
    method: str = DEFAULT_ENSEMBLE_METHOD,
) -> Selection:
    """Rank a sweep's finished training runs by a validation metric; register the best as the
    `champion` alias of the workspace's registered model. With `ensemble` K >= 2 one ensemble
    competes as one more run: `greedy`, members chosen by forward selection on the folds'
    validation forecasts (see pipeline.ensembles), or `top`, the mean of the K best
    configurations (a sweep without --folds only)."""
    if not metric.startswith("val_"):
        raise ViewcastError(f"select ranks by a validation metric (val_*), not {metric!r}")
    if method not in ENSEMBLE_METHODS:
        raise ViewcastError(f"--ensemble-method must be greedy or top, got {method!r}")
    sweep_id = sweep_id or tracking.latest_sweep(ws)
    children = [r for r in tracking.sweep_children(ws, sweep_id) if metric in r.metrics]
    runs = [r for r in children if Tag.ENSEMBLE_KEY not in r.tags]  # one competes, below
    if not runs:
        raise ViewcastError(f"sweep {sweep_id} has no finished run with metric {metric!r}")
    note = ""
    if ensemble >= 2:
        folds = tracking.get_run(ws, sweep_id).params.get("folds", "1")
        if metric not in ("val_mae", "val_mae_vs_naive"):
            note = f"no ensemble: it is scored by val_mae and val_mae_vs_naive, not {metric}"
        elif method == "top" and folds != "1":
            note = "no top-K ensemble on a sweep with --folds: use --ensemble-method greedy"
        else:
            build = greedy_run if method == "greedy" else ensemble_run
            extra = build(ws, sweep_id, runs, children, ensemble, metric)
            runs += [extra] if extra is not None and metric in extra.metrics else []
    ranking = sorted(
        (
            Ranked(
                r.run_id,
                r.name,
                r.metrics[metric],
                r.metrics.get("train_mae", math.nan),
                r.baseline,
            )
            for r in runs
        ),
        key=lambda row: (row.score, row.name),
    )
    version = tracking.register_alias(ws, ranking[0].run_id, "champion", {metric: ranking[0].score})
    return Selection(sweep_id, metric, ranking, version, note)


def ensemble_run(
    ws: Workspace,
    sweep_id: str,
    runs: list[RunRecord],
    children: list[RunRecord],
    k: int,
    metric: str = "val_mae",
) -> RunRecord | None:
    """The run of the mean of the k best trained configurations (logged once per member set),
    or None when fewer than two are there. Scored on the dev days only, like every run."""
    singles = [r for r in runs if not r.baseline]
    members = [r.run_id for r in sorted(singles, key=lambda r: r.metrics[metric])[:k]]
    if len(members) < 2:
        return None
    return _ensemble_record(ws, sweep_id, children, members, None, f"ensemble-top{len(members)}")


def greedy_run(
    ws: Workspace,
    sweep_id: str,
    runs: list[RunRecord],
    children: list[RunRecord],
    k: int = 0,
    metric: str = "val_mae",
) -> RunRecord | None:
    """The run of the greedy ensemble built on the folds' validation forecasts of the sweep's
    POOL best trained configurations (`k` only turns it on), or None when it is one member
    (nothing beat the best run alone) or fewer than two runs kept their forecasts."""
    from pipeline import ensembles
    from pipeline.store import Store

    singles = sorted((r for r in runs if not r.baseline), key=lambda r: r.metrics[metric])
    kept = []
    for run in singles[: ensembles.POOL]:
        path = tracking.model_folder(ws, run.run_id) / ensembles.OOF_FILE
        found = ensembles.Forecasts.read(path)
        if found is not None:
            kept.append((run.run_id, found))
    if len(kept) < 2:
        return None
    target, fold, preds = ensembles.aligned([f for _, f in kept])
    y = Store(ws).read_dev().views[target]
    weight = ensembles.fold_weights(fold)
    counts = ensembles.greedy(preds, y, weight)
    chosen = np.flatnonzero(counts)
    if len(chosen) < 2:
        return None
    members = [kept[i][0] for i in chosen]
    weights = [float(c) for c in counts[chosen] / counts.sum()]
    blend = weights @ preds[chosen]
    folds = {}
    if len(np.unique(fold)) > 1:  # the ensemble's val MAE as its members' (the folds' mean)
        folds = {
            f"val_mae_fold{f}": float(np.abs(blend - y)[fold == f].mean()) for f in np.unique(fold)
        }
        folds["val_mae"] = ensembles.error(blend, y, weight)
    name = f"ensemble-greedy{len(members)}"
    return _ensemble_record(ws, sweep_id, children, members, weights, name, folds)


def _ensemble_record(
    ws: Workspace,
    sweep_id: str,
    children: list[RunRecord],
    members: list[str],
    weights: list[float] | None,
    name: str,
    metrics: dict[str, float] | None = None,
) -> RunRecord:
    """The ensemble's run under the sweep (logged once per member set and weights): scored on
    the dev days only, like every run; `metrics` replace what it scores itself."""
    from pipeline import features as feats
    from pipeline.metrics import validation_vs_naive
    from pipeline.models import EnsembleModel
    from pipeline.store import Store
    from pipeline.train import NORMALISATION_ROWS, sample_rows

    identity = ",".join(members) + ("" if weights is None else f":{weights}")
    key = hashlib.sha256(identity.encode()).hexdigest()[:16]
    for run in children:
        if run.tags.get(Tag.ENSEMBLE_KEY) == key:
            return run  # logged by an earlier select
    model = EnsembleModel([tracking.load_model(ws, r) for r in members], weights).eval()
    store = Store(ws)
    windows = feats.lag_windows(store.read_dev(), store.read_splits(), model.cfg.lags)
    parent = tracking.get_run(ws, sweep_id)
    chosen = parent.params.get("series", "all")
    windows = feats.select_series(windows, None if chosen == "all" else chosen.split(","))
    # the train MAE of a sample past 2^20 training windows, as the sampled path reports it
    train_rows = sample_rows(windows.rows("train"), NORMALISATION_ROWS)
    val_rows = windows.rows("val")
    pred = windows.predict(model, val_rows)
    scores = {
        "train_mae": float(abs(windows.predict(model, train_rows) - windows.y(train_rows)).mean()),
        "val_mae": float(abs(pred - windows.y(val_rows)).mean()),
        "val_mae_vs_naive": validation_vs_naive(model, windows, pred),
    } | (metrics or {})
    tags = {Tag.BASELINE: "False", Tag.ENSEMBLE_KEY: key, Tag.CONFIG_KEY: key}
    tags[Tag.SWEEP_KEY] = parent.tags.get(Tag.SWEEP_KEY, "")
    run_id = tracking.log_ensemble(
        ws,
        windows,
        model,
        members,
        scores,
        feats.data_params(ws, windows),
        run_name=name,
        tags=tags,
        parent_run_id=sweep_id,
        val_pred=pred if chosen == "all" else None,
    )
    return tracking.get_run(ws, run_id)
