"""Selection: the champion chosen on validation (L3: select on validation, never on test).

Selection reads only `stage = train` runs and their validation metric; test rows, submissions and
leaderboard scores are out of its reach (it never opens the store's sealed file).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pipeline import tracking
from pipeline.data.errors import ViewcastError
from pipeline.data.workspace import Paths, read_final
from pipeline.models.config import DEFAULT_ENSEMBLE_METHOD, ENSEMBLE_METHODS
from pipeline.search.calibration import calibrate_champion
from pipeline.search.ensembles import ahead, ensemble_run, greedy_run, stepwise_run
from pipeline.tracking import Tag

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
    registered: str = tracking.REGISTERED_MODEL  # the registered model the alias points into
    windows: int = 1  # validation windows the champion's intervals were calibrated on

    @property
    def champion(self) -> Ranked:
        return self.ranking[0]


def select(
    ws: Paths,
    metric: str = "val_mae",
    sweep_id: str | None = None,
    ensemble: int = 0,
    method: str = DEFAULT_ENSEMBLE_METHOD,
    log_models: int = 0,
) -> Selection:
    """Rank a sweep's finished training runs by a validation metric; register the best as the
    `champion` alias of the workspace's registered model. With `ensemble` K >= 2 one ensemble
    competes as one more run: `greedy`, members chosen by forward selection on the folds'
    validation forecasts (see pipeline.ensembles), or `top`, the mean of the K best
    configurations (a sweep without --folds only; the one method for val_mae_h<H>, where the
    members' paths H days ahead are averaged and scored). On val_mae_h<H> each day is chosen on
    its own evidence: when the champion a one-day sweep would give (the best on val_mae among
    the runs without a direct twin's H outputs, same ensemble settings) is another run than the
    best on val_mae_h<H>, the champion is the stepwise model of the two: the first's forecast
    for day 1, the second's for days 2..H. The champion becomes an MLflow pyfunc model
    (registered); with `log_models` K, so do the K best runs (baselines left out). Its
    intervals are calibrated on up to three validation windows (search.calibration). After
    `finalize` the champion stays the run the sealed test scored: another best run is refused."""
    if not metric.startswith("val_"):
        raise ViewcastError(f"select ranks by a validation metric (val_*), not {metric!r}")
    check_ensemble(ensemble, method)
    sweep_id = tracking.sweep_parent(ws, sweep_id) if sweep_id else tracking.latest_sweep(ws)
    every = tracking.sweep_children(ws, sweep_id)  # read once: each ranking filters it
    best, note = _ranked(ws, sweep_id, every, metric, ensemble, method)
    horizon, step = ahead(metric), None
    if horizon > 1:
        one_day = [r for r in every if r.params.get("model.horizon", "1") == "1"]
        day_one = _ranked(ws, sweep_id, one_day, "val_mae", ensemble, method)[0][0]
        if day_one.run_id != best[0].run_id:
            step = stepwise_run(ws, sweep_id, every, day_one, best[0], horizon)
    ranking = sorted((_row(r, metric) for r in best), key=lambda row: (row.score, row.name))
    if step is not None:  # the champion by construction, then the rest as they rank
        ranking.insert(0, _row(step, metric))
        note = "; ".join(filter(None, [note, _stepwise_note(day_one, best[0], metric)]))
    _keep_the_tested_champion(ws, ranking[0])
    version = tracking.register_alias(ws, ranking[0].run_id, "champion", {metric: ranking[0].score})
    for row in [r for r in ranking if not r.baseline][:log_models]:
        tracking.materialise(ws, row.run_id)
    windows = calibrate_champion(ws, ranking[0].run_id, horizon)
    return Selection(sweep_id, metric, ranking, version, note, windows=windows)


def _keep_the_tested_champion(ws: Paths, best: Ranked) -> None:
    """Once the sealed test is finalized the champion is the run it scored: another one would
    go to production (`refit`) without a test score, under the report's name."""
    if not ws.final_report.exists():
        return
    tested = read_final(ws)["champion"]
    if best.run_id != tested["run_id"]:
        raise ViewcastError(
            f"the sealed test was finalized with champion {tested['name']} (run "
            f"{tested['run_id']}): select would make {best.name} the champion, which was never "
            "tested; use a new --home for a fresh sealed test"
        )


def check_ensemble(ensemble: int, method: str) -> None:
    """`--ensemble` K is 0 (none) or K >= 2 members; the method is greedy or top."""
    if ensemble == 1 or ensemble < 0:
        raise ViewcastError(f"--ensemble must be 0 (no ensemble) or at least 2, got {ensemble}")
    if method not in ENSEMBLE_METHODS:
        raise ViewcastError(f"--ensemble-method must be greedy or top, got {method!r}")


def _ranked(
    ws: Paths,
    sweep_id: str,
    every: list[tracking.RunRecord],
    metric: str,
    ensemble: int,
    method: str,
) -> tuple[list[tracking.RunRecord], str]:
    """The sweep's runs (and its ensemble, built and logged if need be) best first on `metric`,
    and a note when no ensemble could compete."""
    children = [r for r in every if metric in r.metrics]
    runs = [r for r in children if Tag.ENSEMBLE_KEY not in r.tags]  # one competes, below
    if not runs:
        raise ViewcastError(f"sweep {sweep_id} has no finished run with metric {metric!r}")
    note = ""
    if ensemble >= 2:
        folds = tracking.get_run(ws, sweep_id).params.get("folds", "1")
        days_ahead = metric.startswith("val_mae_h")
        if metric not in ("val_mae", "val_mae_vs_naive") and not days_ahead:
            note = f"no ensemble: it is scored by val_mae and val_mae_vs_naive, not {metric}"
        elif days_ahead and method != "top":
            note = f"no greedy ensemble on {metric} (it blends one-day forecasts): use top"
        elif method == "top" and folds != "1":
            note = "no top-K ensemble on a sweep with --folds: use --ensemble-method greedy"
        else:
            build = greedy_run if method == "greedy" else ensemble_run
            extra = build(ws, sweep_id, runs, children, ensemble, metric)
            runs += [extra] if extra is not None and metric in extra.metrics else []
    return sorted(runs, key=lambda r: (r.metrics[metric], r.name)), note


def _stepwise_note(first: tracking.RunRecord, later: tracking.RunRecord, metric: str) -> str:
    return (
        f"the champion takes day 1 from {first.name} (the best on val_mae, as without a "
        f"horizon) and days 2..{ahead(metric)} from {later.name} (the best on {metric})"
    )


def _row(run: tracking.RunRecord, metric: str) -> Ranked:
    train_mae = run.metrics.get("train_mae", math.nan)
    return Ranked(run.run_id, run.name, run.metrics[metric], train_mae, run.baseline)
