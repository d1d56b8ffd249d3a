"""The lecture's jobs: its grid, studies and diagnostics."""

from __future__ import annotations

from pipeline.data.workspace import Paths
from pipeline.lecture.report import critical_point_sentence as sentence


def experiment(ws: Paths, series, epochs, study_epochs: int, on_config) -> object:
    """The lecture's grid, tables, figures and diagnostics: reports/lecture.md."""
    # lazy: torch takes 2 s to import; only the paths that train or load a network pay
    from pipeline.lecture import experiment as lecture

    return lecture.run(ws, series, epochs, study_epochs, on_config)


def studies(ws: Paths, chosen: tuple[str, ...], series, epochs: int, on_study) -> None:
    """The lecture's studies (L4-L8), appended to reports/lecture.md."""
    # lazy: torch takes 2 s to import; only the paths that train or load a network pay
    from pipeline.lecture.study_runs import run_studies

    run_studies(ws, chosen, series, epochs, on_study)


def diagnose(ws: Paths, run_id: str, loss: str = "mae"):
    """Where a training ended (Hessian eigenvalues) and its gradient norm against the loss."""
    # lazy: torch takes 2 s to import; only the paths that train or load a network pay
    from pipeline.lecture import diagnostics

    return diagnostics.diagnose_run(ws, run_id, loss)


def escape(ws: Paths, run_id: str, loss: str, steps: int, lr: float):
    """L4: the loss along the lowest-curvature eigenvector from where a training ended."""
    # lazy: torch takes 2 s to import; only the paths that train or load a network pay
    from pipeline.lecture import diagnostics

    return diagnostics.escape_run(ws, run_id, loss, steps, lr)


def critical_point_sentence(point) -> str:
    """The lecture's one-sentence reading of a critical point."""
    return sentence(point)
