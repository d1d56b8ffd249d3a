"""What runs are: stages, tags and the plain records the queries return (no MLflow type leaks)."""

from __future__ import annotations

from types import SimpleNamespace

from pipeline.tracking.records import (
    DAILY_EXPERIMENT,
    EXPERIMENT,
    RunRecord,
    Stage,
    Tag,
    _record,
)


def test_daily_operations_go_to_their_own_experiment() -> None:
    daily = {s for s in Stage if s.experiment == DAILY_EXPERIMENT}
    assert daily == {Stage.FORECAST, Stage.MONITOR}
    assert all(s.experiment == EXPERIMENT for s in Stage if s not in daily)
    assert Stage("sweep") is Stage.SWEEP and str(Stage.TRAIN) == "train"


def test_a_run_becomes_a_plain_record_with_its_dataset_contexts() -> None:
    tag = SimpleNamespace(key="mlflow.data.context", value="validation")
    dataset = SimpleNamespace(tags=[tag], dataset=SimpleNamespace(digest="abc123"))
    run = SimpleNamespace(
        info=SimpleNamespace(
            run_id="r1", run_name=None, status="FINISHED", start_time=None, artifact_uri="file:/a"
        ),
        data=SimpleNamespace(
            tags={Tag.STAGE: "train", Tag.BASELINE: "True", Tag.PARENT: "p1"},
            params={"model.lags": "56"},
            metrics={"val_mae": 12.5},
        ),
        inputs=SimpleNamespace(dataset_inputs=[dataset]),
    )
    record = _record(run)
    assert record == RunRecord(
        "r1",
        "",
        "FINISHED",
        0,
        "file:/a",
        {Tag.STAGE: "train", Tag.BASELINE: "True", Tag.PARENT: "p1"},
        {"model.lags": "56"},
        {"val_mae": 12.5},
        (("validation", "abc123"),),
    )
    assert (record.stage, record.parent_id, record.baseline) == ("train", "p1", True)
