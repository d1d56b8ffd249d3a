"""The sealed test: submissions to a public leaderboard, and one final reveal of the private score.

Only this module scores on the store's sealed days (refit and forecasts read them as history, once
the test is spent or to predict the days after them). Every test day is predicted one day ahead
from the real previous days (L1's setting), so a model's test MAE is the MAE of "tomorrow" on each
day of the test period. The first half of each series' test days is public, the second half private.

Every scoring is an MLflow run: a submission (`stage = submission`, dataset context `test-public`)
or the final (`stage = final`, contexts `test-public` and `test-private`). Submissions have a daily
budget, like Kaggle's; finalize runs once per workspace.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline import plots as reports
from pipeline import tracking
from pipeline.data.atomic import atomic_write
from pipeline.data.errors import ViewcastError
from pipeline.data.features import LagWindows, lag_windows
from pipeline.data.metrics import errors, grouped_errors, seasonal_scale
from pipeline.data.store import Splits, Store
from pipeline.data.workspace import Paths
from pipeline.models.families import ViewsModel
from pipeline.search.grids import baselines
from pipeline.tracking import Stage

DEFAULT_BUDGET = 5
BUDGET_ENV = "VIEWCAST_SUBMISSIONS_PER_DAY"
PERIODS = ("val", "public", "private", "test")
FINAL_JSON, FINAL_MD, FINAL_PNG = "final.json", "final.md", "final.png"


# --- pure scoring ------------------------------------------------------------------------------


PERIOD_BOUNDS = {"val": (0, 1), "public": (1, 2), "private": (2, 3), "test": (1, 3)}


def period_rows(windows: LagWindows, splits: Splits) -> dict[str, np.ndarray]:
    """Row indices of the validation, public, private and whole test period of split series.
    The rows are in (series, day) order, so each series' period is one run of rows, found by a
    binary search: nothing per row but one sort key (Kaggle scale: 96M rows, 145k series)."""
    bounds = np.array(  # val_start, test_start, private_start, end (exclusive) of each series
        [
            [s.val_start, s.test_start, s.private_start, s.test_end + 1]
            if (s := splits.series.get(str(n)))
            else [0, 0, 0, 0]
            for n in windows.names
        ],
        dtype=np.int64,
    ).reshape(-1, 4)
    if not len(windows):
        return {period: np.zeros(0, np.int64) for period in PERIOD_BOUNDS}
    first, span = int(windows.day.min()), int(windows.day.max()) - int(windows.day.min()) + 2
    key = windows.code.astype(np.int64) * span + (windows.day - first)
    if np.any(key[1:] <= key[:-1]):
        raise ValueError("period_rows needs windows in (series, day) order")
    base = np.arange(len(windows.names), dtype=np.int64) * span
    edge = np.searchsorted(key, base[:, None] + np.clip(bounds - first, 0, span - 1))
    return {p: _runs(edge[:, a], edge[:, b]) for p, (a, b) in PERIOD_BOUNDS.items()}


def _runs(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The indices lo[i]..hi[i]-1 of every i, concatenated."""
    length = np.maximum(hi - lo, 0)
    before = np.cumsum(length) - length
    return np.repeat(lo - before, length) + np.arange(length.sum())


def score(
    model: ViewsModel,
    windows: LagWindows,
    rows: dict[str, np.ndarray],
    scale: np.ndarray | None = None,
) -> dict[str, float]:
    """MAE in views per period, one day ahead from the real previous days; with `scale` (each
    series' seasonal naive MAE, by window code) also SMAPE, MASE and the ratio to naive."""
    out = {}
    for period, idx in rows.items():
        actual, pred = windows.y(idx), windows.predict(model, idx)
        if scale is None:
            err = np.abs(pred - actual)
            out[f"{period}_mae"] = float(err.mean()) if len(err) else math.nan
            continue
        found = errors(pred, actual, windows.lag1(idx), scale[windows.code[idx]])
        out |= {f"{period}_{k}": v for k, v in found.items()}
    return out


def series_scores(
    model: ViewsModel, windows: LagWindows, rows: np.ndarray, scale: np.ndarray, period: str
) -> dict[str, dict[str, float]]:
    """Per series: the period's MAE, SMAPE, MASE and ratio to naive."""
    code = windows.code[rows]
    pred, actual, naive = windows.predict(model, rows), windows.y(rows), windows.lag1(rows)
    groups, found = grouped_errors(pred, actual, naive, scale[code], code)
    columns = {f"{period}_{k}": v.tolist() for k, v in found.items()}
    names = windows.names[groups].astype(str)
    return {name: {k: v[i] for k, v in columns.items()} for i, name in enumerate(names)}


@dataclass
class TestData:
    """Every day of the store as lag windows of one size, with the period rows."""

    windows: LagWindows
    rows: dict[str, np.ndarray]
    source: str


class Holdout:
    """The scoring side of the store: loads all days once, windows them per lag count."""

    def __init__(self, ws: Paths) -> None:
        store = Store(ws)
        self.generation = store.require()
        self.splits = store.read_splits()
        self.table = store.read_all()
        self._cache: dict[int, TestData] = {}
        self._scales: dict[str, float] = {}  # series -> seasonal naive MAE before its test
        if not self.splits.series:
            raise ViewcastError("no series has a test period yet: ingest longer series")

    def data(self, n: int) -> TestData:
        if n not in self._cache:
            windows = lag_windows(self.table, self.splits, n)
            source = str(self.generation / "sealed.parquet")
            self._cache[n] = TestData(windows, period_rows(windows, self.splits), source)
        return self._cache[n]

    def scale(self, windows: LagWindows) -> np.ndarray:
        """Each series' in-sample seasonal naive MAE (its days before the test), by window
        code: MASE's denominator."""
        if not self._scales:
            starts, ends = self.table.bounds()
            for s, name in enumerate(self.table.names.astype(str)):
                split = self.splits.series.get(name)
                days = self.table.day[starts[s] : ends[s]]
                views = self.table.views[starts[s] : ends[s]]
                before = views[days < split.test_start] if split else views[:0]
                self._scales[name] = seasonal_scale(before)
        return np.array([self._scales.get(str(n), math.nan) for n in windows.names])

    def score(self, model: ViewsModel, periods: tuple[str, ...]) -> dict[str, float]:
        data = self.data(model.cfg.lags)
        rows = {p: data.rows[p] for p in periods}
        return score(model, data.windows, rows, self.scale(data.windows))

    def per_series(self, model: ViewsModel, period: str = "test") -> dict[str, dict[str, float]]:
        data = self.data(model.cfg.lags)
        return series_scores(
            model, data.windows, data.rows[period], self.scale(data.windows), period
        )


# --- MLflow records ----------------------------------------------------------------------------


def _log_test_input(run: tracking.RunWriter, data: TestData, period: str) -> None:
    """The scored rows as a dataset input with context test-<period> and a content digest."""
    rows = data.rows[period]
    w = data.windows
    key = tracking.digest(w.day[rows], w.y(rows))
    # MLflow reads only the shape and dtype: a zero-copy stand-in (145k series: 4M windows)
    x = np.broadcast_to(w.values[:1], (len(rows), w.n))
    run.dataset(x, w.y(rows), data.source, f"test-{period}-lags{w.n}", key, f"test-{period}")


def _source_run(ws: Paths, run_id: str) -> tracking.RunRecord:
    run = tracking.get_run(ws, run_id)
    if run.stage != Stage.TRAIN:
        raise ViewcastError(f"run {run_id} is not a training run (its stage is {run.stage})")
    return run


def budget_per_day() -> int:
    """Submissions allowed per UTC day: $VIEWCAST_SUBMISSIONS_PER_DAY, else 5."""
    raw = os.environ.get(BUDGET_ENV, str(DEFAULT_BUDGET))
    try:
        value = int(raw)
    except ValueError:
        raise ViewcastError(f"${BUDGET_ENV} must be a whole number, got {raw!r}") from None
    return value


@dataclass(frozen=True)
class Submission:
    run_id: str
    source_run_id: str
    name: str
    val_mae: float
    public_mae: float
    used: int
    budget: int


def submit(ws: Paths, run_id: str, budget: int | None = None) -> Submission:
    """Score a training run on the public test days; record it as a submission run."""
    budget = budget_per_day() if budget is None else budget
    source = _source_run(ws, run_id)
    used = tracking.submissions_today(ws, dt.datetime.now(dt.UTC))
    if used >= budget:
        raise ViewcastError(
            f"submission budget spent: {used} of {budget} today (UTC); try again after midnight "
            f"UTC (the budget is ${BUDGET_ENV})"
        )
    holdout = Holdout(ws)
    model = tracking.load_model(ws, run_id)
    scored = holdout.score(model, ("public",))
    public = scored["public_mae"]
    val_mae = source.metrics.get("val_mae", math.nan)
    tags = {tracking.Tag.SOURCE_RUN: run_id, "source_run_name": source.name}
    with tracking.start_run(ws, f"submit {source.name}", Stage.SUBMISSION, tags) as run:
        run.metrics(scored | {"val_mae": val_mae})
        run.params({"source_run_id": run_id})
        _log_test_input(run, holdout.data(model.cfg.lags), "public")
    return Submission(run.run_id, run_id, source.name, val_mae, public, used + 1, budget)


def leaderboard(ws: Paths) -> list[dict]:
    """Every submission, best public MAE first, with the validation MAE it was selected on."""
    rows = [
        {
            "submitted": dt.datetime.fromtimestamp(r.start_time / 1000, dt.UTC).isoformat(
                timespec="seconds"
            ),
            "run_id": r.tags[tracking.Tag.SOURCE_RUN],
            "name": r.tags.get("source_run_name", ""),
            "val_mae": r.metrics.get("val_mae", math.nan),
            "public_mae": r.metrics["public_mae"],
            "public_smape": r.metrics.get("public_smape", math.nan),
            "public_mase": r.metrics.get("public_mase", math.nan),
            "public_vs_naive": r.metrics.get("public_vs_naive", math.nan),
            "submission_run_id": r.run_id,
        }
        for r in tracking.runs(ws, Stage.SUBMISSION)
    ]
    return sorted(rows, key=lambda row: (row["public_mae"], row["submitted"]))


# --- finalize ----------------------------------------------------------------------------------


def already_final(ws: Paths) -> str | None:
    """Why a finalize must be refused, or None."""
    if ws.final_report.exists():
        return f"already finalized: see {ws.final_report}"
    runs = tracking.runs(ws, Stage.FINAL, most=1)
    if runs:
        return f"already finalized in MLflow run {runs[0].run_id}"
    return None


def _score_baselines(
    ws: Paths, holdout: Holdout, sweep_id: str | None
) -> tuple[dict[str, dict], dict[str, ViewsModel]]:
    """Every period's MAE of the baselines: the naive ones computed here, the trained one (the
    closed-form linear model) read from the sweep the finalized run belongs to, found by its
    configuration key."""
    scores, models = {}, {}
    for cand in baselines():
        if cand.model.model == "naive":
            model = ViewsModel(cand.model).eval()
            models[cand.name] = model
        else:
            run = tracking.sweep_child(ws, sweep_id, cand.key) if sweep_id else None
            if run is None:
                continue
            model = tracking.load_model(ws, run.run_id)
        scores[cand.name] = holdout.score(model, PERIODS)
    return scores, models


def finalize(ws: Paths, run_ids: list[str], champion_id: str | None) -> dict:
    """Reveal the private score once: the runs' val/public/private/test MAE, baselines beside."""
    if not 1 <= len(run_ids) <= 2:
        raise ViewcastError("finalize takes one or two runs (default: the champion)")
    refused = already_final(ws)
    if refused:
        raise ViewcastError(f"{refused}; the private test is revealed once per workspace")
    sources = [_source_run(ws, run_id) for run_id in run_ids]
    holdout = Holdout(ws)
    entries, models = [], {}
    for run in sources:
        models[run.run_id] = tracking.load_model(ws, run.run_id)
        entries.append(
            {
                "run_id": run.run_id,
                "name": run.name,
                # what selection ranked by (the mean over folds when the sweep had --folds)
                "selection_score": run.metrics.get("val_mae", math.nan),
                **holdout.score(models[run.run_id], PERIODS),  # the standard validation days
            }
        )
    baseline_scores, baseline_models = _score_baselines(ws, holdout, sources[0].parent_id)
    champion = next((e for e in entries if e["run_id"] == champion_id), entries[0])
    data = holdout.data(1)
    payload = {
        "finalized_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "store_generation": holdout.generation.name,
        "series": len(holdout.splits.series),
        "test_days": holdout.splits.test_days,
        "test_rows": {p: len(data.rows[p]) for p in ("public", "private", "test")},
        "champion": champion,
        "runs": entries,
        "baselines": baseline_scores,
        # per series, the champion's test scores (SMAPE, MASE and the ratio to naive are
        # scale-free: a panel's big series do not decide them)
        "champion_per_series": holdout.per_series(models[champion["run_id"]]),
    }
    panels = period_panels(
        holdout, models[champion["run_id"]], baseline_models.get("seasonal-naive")
    )
    _record_final(ws, payload, holdout, models[champion["run_id"]], panels)
    payload["report"] = str(ws.reports / FINAL_MD)
    return payload


def _record_final(ws: Paths, payload: dict, holdout: Holdout, champion, panels) -> None:
    """The record first (MLflow), then the report files: both say the test is spent."""
    entry = payload["champion"]
    scores = ("_mae", "_smape", "_mase", "_vs_naive")
    metrics = {f"champion_{k}": v for k, v in entry.items() if k.endswith(scores)}
    for name, scores in payload["baselines"].items():
        metrics |= {f"{name}_{k}": v for k, v in scores.items()}
    tags = {"champion_run_id": entry["run_id"]}
    with tracking.start_run(ws, "final", Stage.FINAL, tags) as run:
        run.metrics(metrics)
        for period in ("public", "private"):
            _log_test_input(run, holdout.data(champion.cfg.lags), period)
        payload["final_run_id"] = run.run_id
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            (folder / FINAL_JSON).write_text(json.dumps(payload, indent=1))
            reports.forecast_panels(
                panels,
                "test period: one-day-ahead forecasts vs actual views",
                folder / FINAL_PNG,
                "private starts",
            )
            (folder / FINAL_MD).write_text(reports.final_markdown(payload, FINAL_PNG))
            run.artifacts(folder, "report")
            ws.reports.mkdir(parents=True, exist_ok=True)
            for name in (FINAL_PNG, FINAL_MD, FINAL_JSON):  # final.json last: the commit point
                copy_atomically(folder / name, ws.reports / name)


def copy_atomically(src: Path, dst: Path) -> None:
    """Copy a file so that `dst` is the old file or the whole new one, never half."""
    data = src.read_bytes()
    atomic_write(dst, lambda tmp: Path(tmp).write_bytes(data))


def period_panels(
    holdout: Holdout, champion: ViewsModel, baseline: ViewsModel | None, most: int = 6
) -> list[reports.Panel]:
    """The champion's (and the seasonal naive's) one-day-ahead forecasts over the test period of
    the `most` series with the most test views."""
    data = holdout.data(champion.cfg.lags)
    rows, w = data.rows["test"], data.windows
    totals = np.bincount(w.code[rows], weights=w.y(rows), minlength=len(w.names))
    codes = np.flatnonzero(np.bincount(w.code[rows], minlength=len(w.names)))
    panels = []  # the series with test rows, most test views first (one pass: 145k series)
    for code in codes[np.argsort(-totals[codes], kind="stable")[:most]]:
        idx = rows[w.code[rows] == code]
        forecasts = {"champion": w.predict(champion, idx)}
        if baseline is not None:
            base = holdout.data(baseline.cfg.lags)
            bidx = base.rows["test"][base.windows.code[base.rows["test"]] == code]
            forecasts["seasonal naive"] = base.windows.predict(baseline, bidx)
        name = str(w.names[code])
        private = np.datetime64(holdout.splits.series[name].private_start, "D")
        panels.append(
            reports.Panel(name, w.day[idx].astype("datetime64[D]"), w.y(idx), forecasts, private)
        )
    return panels
