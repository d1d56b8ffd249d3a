"""What runs are: their stage, tags and the plain records every query returns."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass


EXPERIMENT = "viewcast"  # model training: sweeps, trainings, submissions, the lecture report
DAILY_EXPERIMENT = "viewcast-daily"  # daily operations (forecast, monitor: one run a day each)
# what MLflow 3's UI reads to open an experiment on its runs table, not the GenAI overview
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
MODEL_ARTIFACT = "model"
REGISTERED_MODEL = "viewcast"
BATCH = 1000  # MLflow's limit of metrics per log_batch


class Stage(StrEnum):
    """What a run is (its `stage` tag): how every query finds runs."""

    SWEEP = "sweep"  # the parent run of a grid
    TRAIN = "train"  # one trained configuration (a sweep child, `viewcast train`, an ensemble)
    SUBMISSION = "submission"  # a public test score
    FINAL = "final"  # the one reveal of the private score
    REFIT = "refit"  # the champion's configuration on all history
    FORECAST = "forecast"  # one day's forecast file
    MONITOR = "monitor"  # live MAE, one point a day
    EXPERIMENT = "experiment"  # the lecture report
    STUDY = "study"  # a training inside the lecture report's studies
    BACKTEST = "backtest"  # a rolling-origin backtest of a run, per horizon
    DROP = "drop"  # series dropped from the store after the sealed test was finalized (--force)

    @property
    def experiment(self) -> str:
        """The MLflow experiment its runs go to."""
        return DAILY_EXPERIMENT if self in (Stage.FORECAST, Stage.MONITOR) else EXPERIMENT


class SweepPurpose(StrEnum):
    """Why a sweep ran: `select` takes the latest selection sweep by default."""

    SELECTION = "selection"
    EXPERIMENT = "experiment"  # the lecture report's grid


class Tag:
    """Tag keys the stages write and the queries read."""

    STAGE = "stage"
    SWEEP_KEY = "sweep_key"  # content digest of a sweep: the same sweep resumes
    SWEEP_PURPOSE = "sweep_purpose"  # a SweepPurpose
    CONFIG_KEY = "config_key"  # content digest of a configuration
    BASELINE = "baseline"  # "True" for the baselines every sweep trains
    BASELINE_ROLE = "baseline_role"  # naive | seasonal-naive | linear-lstsq
    ENSEMBLE_KEY = "ensemble_key"
    SOURCE_RUN = "source_run_id"
    MODEL_ID = "model_id"  # the run's MLflow logged model (pyfunc), what the registry points at
    ERROR = "error"
    PARENT = "mlflow.parentRunId"


@dataclass(frozen=True)
class RunRecord:
    """What the stages read of an MLflow run (no MLflow types leave this module)."""

    run_id: str
    name: str
    status: str
    start_time: int  # milliseconds since the epoch
    artifact_uri: str
    tags: dict[str, str]
    params: dict[str, str]
    metrics: dict[str, float]
    inputs: tuple[tuple[str, str], ...] = ()  # (context, digest) of each dataset input

    @property
    def stage(self) -> str | None:
        return self.tags.get(Tag.STAGE)

    @property
    def parent_id(self) -> str | None:
        return self.tags.get(Tag.PARENT)

    @property
    def baseline(self) -> bool:
        return self.tags.get(Tag.BASELINE) == "True"


def _record(run) -> RunRecord:
    inputs = tuple(
        (next((t.value for t in i.tags if t.key.endswith("context")), ""), i.dataset.digest)
        for i in (run.inputs.dataset_inputs if run.inputs else [])
    )
    return RunRecord(
        run.info.run_id,
        run.info.run_name or "",
        run.info.status,
        int(run.info.start_time or 0),
        run.info.artifact_uri,
        dict(run.data.tags),
        dict(run.data.params),
        dict(run.data.metrics),
        inputs,
    )
