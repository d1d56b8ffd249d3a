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
import statistics
import time
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from pipeline.config import Workspace
from pipeline.errors import ViewcastError
from pipeline.models import ModelConfig
from pipeline.train import TrainConfig

GRIDS = ("lecture", "default")
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
        payload = json.dumps([asdict(self.model), asdict(self.train)], sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def canonical(cfg: ModelConfig) -> ModelConfig:
    """Reset the fields a family ignores, so a grid never trains the same model twice."""
    default = ModelConfig()
    if cfg.model in ("linear", "naive"):
        cfg = replace(cfg, layers=default.layers, width=default.width)
    if cfg.model != "relu":
        cfg = replace(cfg, layers=default.layers, batchnorm=False, dropout=0.0)
    if cfg.model == "naive":
        cfg = replace(cfg, target_transform="none", scaling="none")
    return cfg


def describe(cfg: ModelConfig) -> str:
    """A short run name: relu-2x64-bn-lags56-log1p."""
    family = {
        "relu": f"relu-{cfg.layers}x{cfg.width}" + ("-bn" if cfg.batchnorm else ""),
        "sigmoid": f"sigmoid-{cfg.width}",
    }.get(cfg.model, cfg.model)
    transform = "" if cfg.target_transform == "none" else f"-{cfg.target_transform}"
    return f"{family}-lags{cfg.lags}{transform}"


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
        Candidate(describe(m), canonical(m), linear_train if m.model == "linear" else train)
        for m in models
    ]


def default_grid() -> list[Candidate]:
    """The grid we expect to win on real data, cheapest-to-learn-most first so a time budget
    cuts the least promising end: optimiser and learning rate outermost, then target transform,
    lag window, model family and batch norm. Every model scales each row by its window mean."""
    optimisers = [("adam", 3e-3), ("adam", 1e-3), ("rmsprop", 1e-3)]
    transforms = ["log1p", "none"]
    lags = [28, 56, 7]
    families = [("linear", 1, False), ("relu", 1, False), ("relu", 2, False), ("relu", 2, True)]
    out = []
    for (opt, lr), transform, n, (family, layers, bn) in itertools.product(
        optimisers, transforms, lags, families
    ):
        model = ModelConfig(
            lags=n,
            model=family,
            layers=layers,
            width=64,
            batchnorm=bn,
            target_transform=transform,
            scaling="window-mean",
        )
        train = TrainConfig(optimizer=opt, lr=lr, epochs=600, patience=60)
        out.append(Candidate(f"{describe(model)}-{opt}-{lr:g}", canonical(model), train))
    return out


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
            extra = "-lstsq" if train.solver == "lstsq" else f"-{train.optimizer}-{train.lr:g}"
            out.append(replace(candidate, name=describe(candidate.model) + extra))
    if not out:
        raise ViewcastError(f"{path}: the grid has no configuration")
    return out


def load_grid(name: str) -> list[Candidate]:
    """`lecture`, `default`, or the path of a TOML grid file."""
    if name == "lecture":
        return lecture_grid()
    if name == "default":
        return default_grid()
    path = Path(name)
    if path.suffix != ".toml" or not path.is_file():
        raise ViewcastError(f"--grid must be lecture, default or a .toml file, got {name!r}")
    return toml_grid(path)


# --- the sweep ---------------------------------------------------------------------------------


@dataclass
class SweepReport:
    """What a sweep did: its parent run, and how many configurations ran, were resumed or cut."""

    run_id: str
    total: int
    ran: int = 0
    resumed: int = 0
    failed: int = 0
    skipped: int = 0  # left out by the time budget
    seconds: float = 0.0


def sweep_key(
    candidates: list[Candidate], folds: int, generation: str, series: list[str] | None = None
) -> str:
    payload = json.dumps([[c.key for c in candidates], folds, generation, sorted(series or [])])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def sweep(
    ws: Workspace,
    grid: str,
    candidates: list[Candidate],
    folds: int = 1,
    max_minutes: float | None = None,
    on_step: Callable[[int, int, Candidate, float | None], None] | None = None,
    series: list[str] | None = None,
) -> SweepReport:
    """Train the baselines and the grid as nested runs under one parent (on every split series,
    or the named ones); resume if it exists."""
    from pipeline import features as feats
    from pipeline import tracking
    from pipeline.store import Store
    from pipeline.train import fit

    if folds < 1:
        raise ViewcastError(f"--folds must be at least 1, got {folds}")
    store = Store(ws)
    dev, splits = store.read_dev(), store.read_splits()
    if len(dev) == 0:
        raise ViewcastError("no series is long enough to split: ingest more days first")
    generation = store.require().name
    base = baselines()
    candidates = base + [c for c in candidates if c.key not in {b.key for b in base}]
    key = sweep_key(candidates, folds, generation, series)

    mlflow, client, experiment = tracking.session(ws)
    parent = _find_parent(client, experiment, key)
    if parent is None:
        tags = {"stage": "sweep", "sweep_key": key, "grid": grid, "mlflow.runName": f"sweep {grid}"}
        parent = client.create_run(experiment, tags=tags).info.run_id
        params = {"grid": grid, "folds": folds, "configs": len(candidates)}
        params |= {"series": ",".join(series) if series else "all"}
        params |= {"store_generation": generation, "max_minutes": max_minutes}
        for k, v in params.items():
            client.log_param(parent, k, str(v))
    else:
        client.update_run(parent, status="RUNNING")
    done = _finished_configs(client, experiment, parent)
    report = SweepReport(parent, len(candidates), resumed=sum(c.key in done for c in candidates))

    windows: dict[int, feats.LagWindows] = {}
    start, durations, status = time.perf_counter(), [], "KILLED"
    try:
        for i, cand in enumerate(candidates, start=1):
            if cand.key in done:
                continue
            # the time budget: stop before a configuration that would likely overrun it
            expected = time.perf_counter() - start + statistics.median(durations or [0.0])
            if max_minutes is not None and durations and expected > max_minutes * 60:
                report.skipped = len([c for c in candidates[i - 1 :] if c.key not in done])
                break
            if on_step is not None:
                on_step(i - 1, len(candidates), cand, None)
            began = time.perf_counter()
            n = cand.model.lags
            if n not in windows:
                windows[n] = feats.select_series(feats.lag_windows(dev, splits, n), series)
            tags = {"sweep_key": key, "config_key": cand.key, "baseline": str(cand.baseline)}
            try:
                results = [fit(feats.fold(windows[n], splits, k), cand.model, cand.train)
                           for k in range(1, folds + 1)]  # fmt: skip
            except ViewcastError as err:
                _log_failure(mlflow, parent, cand, tags | {"stage": "train", "error": str(err)})
                report.failed += 1
                continue
            metrics = {}
            if folds > 1:
                metrics = {f"val_mae_fold{k}": r.val_mae for k, r in enumerate(results, 1)}
                metrics["val_mae"] = statistics.fmean(r.val_mae for r in results)
            data = feats.describe(ws, windows[n]) | {"folds": folds}
            tracking.log_training(
                ws, windows[n], cand.model, cand.train, results[0], data,
                run_name=cand.name, tags=tags, parent_run_id=parent, metrics=metrics,
            )  # fmt: skip
            report.ran += 1
            durations.append(time.perf_counter() - began)
            if on_step is not None:
                on_step(i, len(candidates), cand, metrics.get("val_mae", results[0].val_mae))
        status = "FINISHED"
    finally:
        report.seconds = time.perf_counter() - start
        for k, v in {"configs_run": report.ran, "configs_skipped": report.skipped}.items():
            client.log_metric(parent, k, v)
        client.set_tag(parent, "complete", str(report.skipped == 0 and status == "FINISHED"))
        client.set_terminated(parent, status)
    return report


def _find_parent(client, experiment: str, key: str) -> str | None:
    runs = client.search_runs(
        [experiment], f"tags.stage = 'sweep' and tags.sweep_key = '{key}'", max_results=1
    )
    return runs[0].info.run_id if runs else None


def _finished_configs(client, experiment: str, parent: str) -> set[str]:
    """Configurations of the sweep already done: finished, or failed for a reason that repeats."""
    runs = sweep_children(client, experiment, parent, finished_only=False)
    return {
        r.data.tags["config_key"]
        for r in runs
        if r.info.status == "FINISHED" or "error" in r.data.tags
    }


def sweep_children(client, experiment: str, parent: str, finished_only: bool = True) -> list:
    query = f"tags.mlflow.parentRunId = '{parent}' and tags.stage = 'train'"
    if finished_only:
        query += " and attributes.status = 'FINISHED'"
    return client.search_runs([experiment], query, max_results=50_000)


def _log_failure(mlflow, parent: str, cand: Candidate, tags: dict[str, str]) -> None:
    """A configuration that cannot train (diverged, too few rows) is a FAILED run with why."""
    with mlflow.start_run(run_name=cand.name, parent_run_id=parent, tags=tags) as run:
        mlflow.log_params({f"model.{k}": v for k, v in asdict(cand.model).items()})
    mlflow.tracking.MlflowClient().set_terminated(run.info.run_id, "FAILED")


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


def latest_sweep(client, experiment: str) -> str:
    runs = client.search_runs(
        [experiment], "tags.stage = 'sweep'", order_by=["attributes.start_time DESC"], max_results=1
    )
    if not runs:
        raise ViewcastError("no sweep in this workspace yet: run `viewcast sweep` first")
    return runs[0].info.run_id


def select(
    ws: Workspace, metric: str = "val_mae", sweep_id: str | None = None, ensemble: int = 0
) -> Selection:
    """Rank a sweep's finished training runs by a validation metric; register the best as the
    `champion` alias of the workspace's registered model. With `ensemble` K >= 2, the mean of the
    K best configurations is scored on the validation days too and competes as one more run."""
    from pipeline import tracking

    if not metric.startswith("val_"):
        raise ViewcastError(f"select ranks by a validation metric (val_*), not {metric!r}")
    _, client, experiment = tracking.session(ws)
    sweep_id = sweep_id or latest_sweep(client, experiment)
    children = [r for r in sweep_children(client, experiment, sweep_id) if metric in r.data.metrics]
    runs = [r for r in children if "ensemble_key" not in r.data.tags]  # one competes, below
    if not runs:
        raise ViewcastError(f"sweep {sweep_id} has no finished run with metric {metric!r}")
    note = ""
    if ensemble >= 2:
        folds = client.get_run(sweep_id).data.params.get("folds", "1")
        if metric != "val_mae" or folds != "1":
            note = "no ensemble: it is scored on the validation days of a sweep without --folds"
        else:
            extra = ensemble_run(ws, client, sweep_id, runs, children, ensemble)
            runs += [extra] if extra is not None else []
    ranking = sorted(
        (
            Ranked(
                r.info.run_id,
                r.info.run_name,
                r.data.metrics[metric],
                r.data.metrics.get("train_mae", float("nan")),
                r.data.tags.get("baseline") == "True",
            )
            for r in runs
        ),
        key=lambda row: (row.score, row.name),
    )
    version = register_champion(client, ranking[0].run_id, {metric: ranking[0].score})
    return Selection(sweep_id, metric, ranking, version, note)


def ensemble_run(ws: Workspace, client, sweep_id: str, runs: list, children: list, k: int):
    """The run of the mean of the k best trained configurations (logged once per member set),
    or None when fewer than two are there. Scored on the dev days only, like every run."""
    from pipeline import features as feats
    from pipeline import tracking
    from pipeline.models import EnsembleModel
    from pipeline.store import Store

    singles = [r for r in runs if r.data.tags.get("baseline") != "True"]
    members = [r.info.run_id for r in sorted(singles, key=lambda r: r.data.metrics["val_mae"])[:k]]
    if len(members) < 2:
        return None
    key = hashlib.sha256(",".join(members).encode()).hexdigest()[:16]
    for run in children:
        if run.data.tags.get("ensemble_key") == key:
            return run  # logged by an earlier select
    model = EnsembleModel([tracking.load_model(ws, run_id) for run_id in members]).eval()
    store = Store(ws)
    windows = feats.lag_windows(store.read_dev(), store.read_splits(), model.cfg.lags)
    chosen = client.get_run(sweep_id).data.params.get("series", "all")
    windows = feats.select_series(windows, None if chosen == "all" else chosen.split(","))
    scores = {}
    for split, name in (("train", "train_mae"), ("val", "val_mae")):
        rows = windows.rows(split)
        scores[name] = float(abs(model.predict(windows.x(rows)) - windows.y(rows)).mean())
    parent = client.get_run(sweep_id).data.tags
    tags = {"stage": "train", "baseline": "False", "ensemble_key": key, "config_key": key}
    tags["sweep_key"] = parent.get("sweep_key", "")
    run_id = tracking.log_ensemble(
        ws, windows, model, members, scores, feats.describe(ws, windows),
        run_name=f"ensemble-top{len(members)}", tags=tags, parent_run_id=sweep_id,
    )  # fmt: skip
    return client.get_run(run_id)


def register_champion(client, run_id: str, scores: dict[str, float]) -> str:
    """Point the `champion` alias at the run's model."""
    return register_alias(client, run_id, "champion", scores)


def register_alias(client, run_id: str, alias: str, tags: dict[str, float | str]) -> str:
    """Point an alias of the workspace's registered model at a run's model (a new version only
    when the alias moves to another run); returns the version."""
    from mlflow.exceptions import MlflowException

    from pipeline.tracking import MODEL_ARTIFACT, REGISTERED_MODEL

    try:
        current = client.get_model_version_by_alias(REGISTERED_MODEL, alias)
        if current.run_id == run_id:
            return str(current.version)
    except MlflowException:  # no registered model or no alias yet
        if not client.search_registered_models(f"name = '{REGISTERED_MODEL}'"):
            client.create_registered_model(
                REGISTERED_MODEL, description="viewcast: tomorrow's views from the last N days"
            )
    source = f"{client.get_run(run_id).info.artifact_uri}/{MODEL_ARTIFACT}"
    version = client.create_model_version(REGISTERED_MODEL, source, run_id=run_id)
    for k, v in tags.items():
        client.set_model_version_tag(
            REGISTERED_MODEL, version.version, k, f"{v:.6g}" if isinstance(v, float) else str(v)
        )
    client.set_registered_model_alias(REGISTERED_MODEL, alias, version.version)
    return str(version.version)


def champion_run(ws: Workspace) -> str:
    """The run id behind the `champion` alias."""
    from pipeline.tracking import alias_run

    found = alias_run(ws, "champion")
    if found is None:
        raise ViewcastError("no champion yet: run `viewcast select` first")
    return found[0]
