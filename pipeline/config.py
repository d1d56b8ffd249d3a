"""Workspace paths and frozen settings; nothing runs on import."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HOME_ENV = "VIEWCAST_HOME"
DEFAULT_TEST_DAYS = 60
DEFAULT_VAL_DAYS = 60
DEFAULT_LAGS = (1, 7, 28, 56)


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
    def tracking_uri(self) -> str:
        """MLflow 3 refuses the plain file store: SQLite inside mlruns/."""
        return f"sqlite:///{self.mlruns / 'mlflow.db'}"
