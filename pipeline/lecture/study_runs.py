"""The lecture's studies (L4-L8) as MLflow runs, their figures and their section of the report."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from pipeline import tracking
from pipeline.data import features as feats
from pipeline.data.errors import ViewcastError
from pipeline.data.store import Store
from pipeline.data.workspace import Paths
from pipeline.lecture import STUDIES, studies
from pipeline.lecture import report as lecture_report
from pipeline.lecture.experiment import STUDY_FOLDER, assemble
from pipeline.lecture.summaries import flatness, summarise_sharpness
from pipeline.tracking import Stage


def run_studies(
    ws: Paths,
    names: tuple[str, ...],
    series: list[str] | None = None,
    epochs: int = 200,
    on_study: Callable[[str], None] = lambda name: None,
) -> dict:
    """Run the named studies on the lecture's series (56-day windows), each logged as an MLflow
    run (stage experiment) with its numbers and figure; write each section under
    reports/studies/ and rebuild reports/lecture.md."""
    unknown = sorted(set(names) - set(STUDIES))
    if unknown:
        raise ViewcastError(f"unknown study {unknown[0]!r} (choose from {', '.join(STUDIES)})")
    store = Store(ws)
    windows = feats.select_series(
        feats.lag_windows(store.read_dev(), store.read_splits(), 56), series
    )
    folder = ws.reports / STUDY_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    done = {}
    for name in names:
        on_study(name)
        result = studies.RUNNERS[name](windows, epochs)
        result.figures = lecture_report.study_figures(result, folder)
        section = "\n".join(lecture_report.study_markdown(result, STUDY_FOLDER)) + "\n"
        (folder / f"{name}.md").write_text(section)
        (folder / f"{name}.json").write_text(json.dumps(result.numbers, default=float))
        with tracking.start_run(ws, f"study {name}", Stage.EXPERIMENT, {"study": name}) as run:
            run.params({"study": name, "epochs": epochs, "series": ",".join(windows.names)})
            run.metrics(_study_metrics(result))
            for extra in (f"{name}.md", f"{name}.json", *result.figures):
                run.artifact(folder / extra, STUDY_FOLDER)
        done[name] = result
    assemble(ws)
    return done


def _study_metrics(result) -> dict[str, float]:
    """The headline numbers of a study, for the MLflow UI (names MLflow accepts)."""
    raw = _study_numbers(result)
    return {re.sub(r"[^A-Za-z0-9_.]+", "_", k).strip("_"): v for k, v in raw.items()}


def _study_numbers(result) -> dict[str, float]:
    n = result.numbers
    if result.name == "escape":
        e = n["escape"]
        return {"eigenvalue": e["eigenvalue"], "drop": e["drop"], "random_drop": e["random_drop"]}
    if result.name == "sharpness":
        return {
            f"sharpness.batch_{s['batch']}": s["sharpness"] for s in summarise_sharpness(n["rows"])
        }
    if result.name == "landscape":
        return {f"rise.{k}": flatness(d["line"], n["alphas"]) for k, d in n["nets"].items()}
    if result.name == "direction":
        return {f"val_accuracy.{k}": d["val_accuracy"] for k, d in n.items()}
    return {f"final_loss.{k}": d["final"] for k, d in n["runs"].items()}
