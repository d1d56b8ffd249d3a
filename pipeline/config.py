"""Workspace paths and frozen settings; nothing runs on import."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import ViewcastError

HOME_ENV = "VIEWCAST_HOME"
DEFAULT_TEST_DAYS = 60
DEFAULT_VAL_DAYS = 60
DEFAULT_LAGS = (1, 7, 28, 56)
# the shipped demo data (data/raw, see each folder's SOURCE.md): file -> series id
DEMO_FILES = {
    "codingtrain-2021/Totals.csv": "codingtrain",
    "wholebrainhealth/Totals.csv": "wholebrainhealth",
    "wikipedia-peyton-manning/views.csv": "peyton-manning",
    "wikipedia-kaggle10/wikipedia_traffic_daily.csv": None,  # ten pages, named by the file
}


@dataclass(frozen=True)
class Workspace:
    """One folder holding everything a run reads and writes: data/ and mlruns/."""

    home: Path

    @classmethod
    def resolve(cls, home: str | Path | None = None) -> Workspace:
        """--home wins, then $VIEWCAST_HOME, then the current folder."""
        chosen = home if home is not None else os.environ.get(HOME_ENV) or Path.cwd()
        return cls(Path(chosen).expanduser().resolve())

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def store(self) -> Path:
        """The ingested views: generations of dev + sealed parquet behind a CURRENT pointer."""
        return self.data / "store"

    @property
    def features(self) -> Path:
        return self.data / "features"

    @property
    def mlruns(self) -> Path:
        return self.home / "mlruns"

    @property
    def reports(self) -> Path:
        return self.home / "reports"

    @property
    def final_report(self) -> Path:
        """reports/final.json: written once, by `viewcast finalize`."""
        return self.reports / "final.json"

    @property
    def demo_data(self) -> Path:
        """The workspace's data/raw when it has the demo files, else the source checkout's."""
        for root in (self.data / "raw", Path(__file__).resolve().parents[1] / "data" / "raw"):
            if all((root / name).is_file() for name in DEMO_FILES):
                return root
        return self.data / "raw"

    @property
    def tracking_uri(self) -> str:
        """A team's MLflow tracking server when $MLFLOW_TRACKING_URI names one (http or https),
        else SQLite inside mlruns/ (MLflow 3 refuses the plain file store)."""
        server = os.environ.get(TRACKING_ENV, "")
        if server.startswith(("http://", "https://")):
            return server.rstrip("/")
        return f"sqlite:///{self.mlruns / 'mlflow.db'}"

    @property
    def remote_tracking(self) -> bool:
        """Whether runs, models and artifacts go to a tracking server, not mlruns/."""
        return not self.tracking_uri.startswith("sqlite:")


TRACKING_ENV = "MLFLOW_TRACKING_URI"  # also `viewcast --tracking-uri`
MODEL_FAMILIES = ("linear", "sigmoid", "relu", "naive", "hgb")  # hgb: gradient-boosted trees
SCALINGS = ("none", "window-mean", "window-median", "last-week-mean")
# calendar inputs beside the lags: none, or weekday (the target day's day of week, one-hot)
CALENDARS = ("none", "weekday")


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
        if self.calendar not in CALENDARS:
            raise ViewcastError(
                f"unknown calendar {self.calendar!r} (choose from {', '.join(CALENDARS)})"
            )

    @property
    def trees(self) -> bool:
        """Whether the model is scikit-learn's boosted trees (needs scikit-learn to predict)."""
        return self.model == "hgb"

    @property
    def inputs(self) -> int:
        """The net's inputs: the lags, and 7 weekday indicators with the weekday calendar."""
        return self.lags + (7 if self.calendar == "weekday" else 0)


# the ensemble `select` lets compete: greedy (forward selection on the folds' forecasts) or top
# (the mean of the K best); chosen by bench/bench_ensemble.py on validation days alone
DEFAULT_ENSEMBLE_METHOD = "top"


@dataclass(frozen=True)
class EnsembleConfig:
    """The mean of its members' forecasts (weighted when `weights` are given: a greedy
    ensemble's member counts); each member reads its own first N of the lags."""

    members: tuple[ModelConfig, ...]
    model: str = "ensemble"
    weights: tuple[float, ...] | None = None

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
