"""What a model is before its weights: its family, window, inputs and ensemble members."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from pipeline.data.errors import ViewcastError

# Every choice list is defined once, here (light: the CLI reads them for its choices and help)
Family = Literal["linear", "sigmoid", "relu", "naive", "hgb"]  # hgb: gradient-boosted trees
Scaling = Literal["none", "window-mean", "window-median", "last-week-mean"]
Calendar = Literal["none", "weekday"]
Optimizer = Literal["sgd", "momentum", "adagrad", "rmsprop", "adam"]
Schedule = Literal["constant", "linear", "cosine", "step"]
Loss = Literal["mae", "mse", "huber"]
Solver = Literal["gd", "lstsq"]
Device = Literal["auto", "cpu", "cuda"]
EnsembleMethod = Literal["top", "greedy"]
MODEL_FAMILIES = get_args(Family)
OPTIMIZERS, SCHEDULES = get_args(Optimizer), get_args(Schedule)
LOSSES, SOLVERS, DEVICES = get_args(Loss), get_args(Solver), get_args(Device)
ENSEMBLE_METHODS = get_args(EnsembleMethod)
SCALINGS = get_args(Scaling)
# calendar inputs beside the lags: none, or weekday (the target day's day of week, one-hot)
CALENDARS = get_args(Calendar)
# multi-day forecasts: each prediction fed back as the next day's x_1 (the one-day model used H
# times), or one network whose output layer predicts days 1..H at once
Strategy = Literal["recursive", "direct"]
STRATEGIES = get_args(Strategy)
MAX_DIRECT_DAYS = 366
# a year of memory: lags 361..367 (52 weeks back is day t-364, the same weekday, +-3 days)
YEAR_WEEK = (361, 367)
YEAR_WINDOW = YEAR_WEEK[1]
YEAR_MIN_DAYS = 2 * 365  # the days before validation a series needs for the year's axis


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model before its weights are loaded."""

    lags: int = 56
    model: str = "relu"
    layers: int = 3
    width: int = 100
    batchnorm: bool = False
    dropout: float = 0.0
    target_transform: str = "none"
    scaling: str = "none"
    calendar: str = "none"
    leaves: int = 31  # hgb: leaves per tree (scikit-learn's max_leaf_nodes)
    horizon: int = 1  # days the output layer predicts: 1 (used recursively) or H (direct)
    recent: int = 0  # a year of memory: lag_1..lag_recent and the week a year back (lags = 367)

    def __post_init__(self) -> None:
        if self.model not in MODEL_FAMILIES:
            raise ViewcastError(
                f"unknown model {self.model!r} (choose from {', '.join(MODEL_FAMILIES)})"
            )
        if self.model == "relu" and not 1 <= self.layers <= 6:
            raise ViewcastError(f"--layers must be 1 to 6, got {self.layers}")
        if self.width < 1 or self.lags < 1:
            raise ViewcastError("--width and --lags must be positive")
        if self.scaling not in SCALINGS:
            raise ViewcastError(
                f"unknown scaling {self.scaling!r} (choose from {', '.join(SCALINGS)})"
            )
        if not 0 <= self.dropout < 1:
            raise ViewcastError(f"--dropout must be in [0, 1), got {self.dropout}")
        if self.leaves < 2:
            raise ViewcastError(f"--leaves must be at least 2, got {self.leaves}")
        if not 1 <= self.horizon <= MAX_DIRECT_DAYS:
            raise ViewcastError(
                f"a direct model predicts 1 to {MAX_DIRECT_DAYS} days, got {self.horizon}"
            )
        if self.horizon > 1 and self.model in ("naive", "hgb"):
            raise ViewcastError(f"the {self.model} family has no direct multi-day form")
        if self.recent and (self.lags != YEAR_WINDOW or not 1 <= self.recent <= YEAR_WEEK[0]):
            raise ViewcastError(
                f"a year of memory reads {YEAR_WINDOW} lags and 1 to {YEAR_WEEK[0]} recent days"
            )
        if self.recent and self.model == "naive":
            raise ViewcastError("the naive family reads one lag: no year of memory")
        if self.calendar not in CALENDARS:
            raise ViewcastError(
                f"unknown calendar {self.calendar!r} (choose from {', '.join(CALENDARS)})"
            )

    @property
    def trees(self) -> bool:
        """Whether the model is scikit-learn's boosted trees (needs scikit-learn to predict)."""
        return self.model == "hgb"

    @property
    def direct(self) -> bool:
        """Whether the output layer predicts several days at once (else fed back day by day)."""
        return self.horizon > 1

    @property
    def year(self) -> bool:
        """Whether it reads the same weekday a year back (and its week) besides recent days."""
        return self.recent > 0

    @property
    def columns(self) -> tuple[int, ...]:
        """The lag columns it reads (0 = lag_1): every lag, or lag_1..lag_recent and
        lag_361..lag_367 (day t-364, the same weekday 52 weeks back, and 3 days either side)."""
        if not self.year:
            return tuple(range(self.lags))
        return tuple(range(self.recent)) + tuple(range(YEAR_WEEK[0] - 1, YEAR_WEEK[1]))

    @property
    def inputs(self) -> int:
        """The net's inputs: the lags read, and 7 weekday indicators with the weekday calendar."""
        return len(self.columns) + (7 if self.calendar == "weekday" else 0)


# the ensemble `select` lets compete: greedy (forward selection on the folds' forecasts) or top
# (the mean of the K best); chosen by bench/bench_ensemble.py on validation days alone
DEFAULT_ENSEMBLE_METHOD = "top"


@dataclass(frozen=True)
class Blend:
    """How an ensemble combines its members' forecasts: their mean (`weights` None) or their
    weighted sum; with `first`, day 1 (every one-day forecast, and step 1 of a path) takes those
    weights instead. A stepwise model is one: the day-1 champion's members weighted on day 1,
    the H-day champion's on days 2..H."""

    weights: tuple[float, ...] | None = None
    first: tuple[float, ...] | None = None


@dataclass(frozen=True)
class EnsembleConfig:
    """The mean of its members' forecasts (weighted when `weights` are given: a greedy
    ensemble's member counts; `first`, day 1's weights where they differ: a stepwise model);
    each member reads its own first N of the lags."""

    members: tuple[ModelConfig, ...]
    model: str = "ensemble"
    weights: tuple[float, ...] | None = None
    first: tuple[float, ...] | None = None

    @property
    def trees(self) -> bool:
        return any(m.trees for m in self.members)

    @property
    def calendar(self) -> str:
        """weekday when any member reads the weekday."""
        return "weekday" if any(m.calendar == "weekday" for m in self.members) else "none"

    @property
    def lags(self) -> int:
        """The window the ensemble needs: its longest member's."""
        return max(m.lags for m in self.members)
