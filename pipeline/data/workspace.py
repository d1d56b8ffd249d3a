"""Paths paths and frozen settings; nothing runs on import."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from pipeline.data.errors import ViewcastError

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
class Paths:
    """A workspace's folders and tracking URI: everything a run reads and writes (data/, mlruns/,
    reports/). The Python API's `pipeline.Workspace` wraps one (its `.paths`)."""

    home: Path

    @classmethod
    def resolve(cls, home: str | Path | None = None) -> Paths:
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
    def sources(self) -> Path:
        """The registered data sources and what each has pulled (`viewcast pull`)."""
        return self.data / "sources.json"

    @property
    def secrets(self) -> Path:
        """Tokens (mode 0600, in a 0700 folder): never in data/, never sent to MLflow."""
        return self.home / "secrets"

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
        for root in (self.data / "raw", Path(__file__).resolve().parents[2] / "data" / "raw"):
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


def read_final(ws: Paths) -> dict:
    """The sealed test's final scores (reports/final.json), or an error: not finalized yet."""
    path = ws.final_report
    if not path.exists():
        raise ViewcastError(f"no final report in {ws.reports}: run `viewcast finalize` first")
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
        why = "" if isinstance(found, dict) else f"JSON {type(found).__name__}, not an object"
    except (OSError, UnicodeDecodeError, ValueError) as err:
        why = f"{type(err).__name__}: {str(err).splitlines()[0][:80] if str(err) else ''}"
    if why:
        raise ViewcastError(
            f"{path}: damaged ({why}); MLflow's `final` run keeps a copy (artifact "
            "report/final.json) to put back"
        )
    return found
