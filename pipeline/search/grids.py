"""Grids: the configurations a sweep trains (lecture, default, panel, or a TOML file), the
baselines every sweep runs, and their names."""

from __future__ import annotations

import hashlib
import itertools
import json
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from pipeline.data.errors import ViewcastError
from pipeline.models import device_rows
from pipeline.models.config import CALENDARS, YEAR_WEEK, YEAR_WINDOW, ModelConfig
from pipeline.models.train import TrainConfig

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
        for name, before in (("calendar", "none"), ("leaves", 31), ("horizon", 1), ("recent", 0)):
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
    direct = f"-direct{cfg.horizon}" if cfg.direct else ""
    lags = f"lags{cfg.recent}-year" if cfg.year else f"lags{cfg.lags}"
    return f"{family}-{lags}{transform}{robust}{calendar}{direct}"


def how_trained(cfg: ModelConfig, train: TrainConfig) -> str:
    """The run name's training part: -adam-0.003, -lstsq, or -boost-0.05 for trees."""
    if cfg.model == "hgb":
        return f"-boost-{train.lr:g}"
    return "-lstsq" if train.solver == "lstsq" else f"-{train.optimizer}-{train.lr:g}"


def with_direct(candidates: list[Candidate], horizon: int) -> list[Candidate]:
    """The grid's strategy axis for forecasts `horizon` days ahead: every configuration as it is
    (recursive: its one-day model fed back), then each network's direct twin, whose output
    layer predicts days 1..H at once (trained alone, on gathered windows; not the baselines,
    the trees or sampled epochs). The twins come after the whole one-day grid, so a time budget
    cuts them first: a sweep for H days trains the one-day configurations first and in the same
    order as a one-day sweep (cheap stacks before twins trained alone; day 1's champion is
    chosen among them). Unchanged for one day."""
    if horizon <= 1:
        return candidates
    twins = []
    for cand in candidates:
        if cand.baseline or cand.model.model in ("naive", "hgb") or cand.train.rows_per_epoch:
            continue
        model = replace(cand.model, horizon=horizon)
        twins.append(
            Candidate(config_name(model) + how_trained(model, cand.train), model, cand.train)
        )
    return candidates + twins


def with_year(candidates: list[Candidate]) -> list[Candidate]:
    """The year-of-memory axis: each network (and tree) followed by its twin that also reads the
    same weekday a year back and its week (lags 361..367; its N recent days the same). For
    series with two years of days before validation (`sweep` decides); not for sampled epochs."""
    out = []
    for cand in candidates:
        out.append(cand)
        m = cand.model
        if cand.baseline or m.model == "naive" or m.year or cand.train.rows_per_epoch:
            continue
        if m.lags > YEAR_WEEK[0]:
            continue
        model = replace(m, lags=YEAR_WINDOW, recent=m.lags)
        out.append(
            Candidate(config_name(model) + how_trained(model, cand.train), model, cand.train)
        )
    return out


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
    epoch draws 2M windows in batches of 65,536 (see device_rows.SampledRows); lags 28 and 56 x
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
    if name == "default":
        most = max(c.model.lags for c in default_grid())
        name = "panel" if dev_days() * most > device_rows.FULL_ROWS_LIMIT else name
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
    for key, value in [*base.items(), *((k, v) for k, vs in axes.items() for v in vs)]:
        wrong = _wrong_type(key, value)
        if wrong:
            raise ViewcastError(f"{path}: {key} must be {wrong}, got {value!r}")
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


DEFAULTS = {f.name: getattr(ModelConfig(), f.name) for f in fields(ModelConfig)} | {
    f.name: getattr(TrainConfig(), f.name) for f in fields(TrainConfig)
}


def _wrong_type(key: str, value) -> str:
    """What a grid file's value for `key` must be, when it is not ("" when it is): the type of
    the field's default (an integer where a float is expected is fine, a boolean never is a
    number)."""
    expected = type(DEFAULTS[key])
    if expected is bool:
        return "" if isinstance(value, bool) else "true or false"
    if isinstance(value, bool):
        return {int: "an integer", float: "a number"}.get(expected, "a string")
    if expected is int:
        return "" if isinstance(value, int) else "an integer"
    if expected is float:
        return "" if isinstance(value, int | float) else "a number"
    return "" if isinstance(value, str) else "a string"


def load_grid(name: str) -> list[Candidate]:
    """`lecture`, `default`, `panel`, or the path of a TOML grid file."""
    if name in GRIDS:
        return {"lecture": lecture_grid, "default": default_grid, "panel": panel_grid}[name]()
    path = Path(name)
    if path.suffix != ".toml" or not path.is_file():
        raise ViewcastError(f"--grid must be lecture, default, panel or a .toml file, got {name!r}")
    return toml_grid(path)
