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
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.atomic import atomic_write
from pipeline.config import Workspace
from pipeline.errors import ViewcastError
from pipeline.features import LagWindows, lag_windows
from pipeline.models import ViewsModel
from pipeline.store import Splits, Store

DEFAULT_BUDGET = 5
BUDGET_ENV = "VIEWCAST_SUBMISSIONS_PER_DAY"
PERIODS = ("val", "public", "private", "test")
FINAL_JSON, FINAL_MD, FINAL_PNG = "final.json", "final.md", "final.png"


# --- pure scoring ------------------------------------------------------------------------------


def period_rows(windows: LagWindows, splits: Splits) -> dict[str, np.ndarray]:
    """Row indices of the validation, public, private and whole test period of split series."""
    bounds = np.array(
        [
            [s.val_start, s.test_start, s.private_start, s.test_end + 1]
            if (s := splits.series.get(str(n)))
            else [0, 0, 0, 0]
            for n in windows.names
        ],
        dtype=np.int64,
    ).reshape(-1, 4)[windows.code]
    day = windows.day
    masks = {
        "val": (day >= bounds[:, 0]) & (day < bounds[:, 1]),
        "public": (day >= bounds[:, 1]) & (day < bounds[:, 2]),
        "private": (day >= bounds[:, 2]) & (day < bounds[:, 3]),
        "test": (day >= bounds[:, 1]) & (day < bounds[:, 3]),
    }
    return {k: np.flatnonzero(m) for k, m in masks.items()}


def score(model: ViewsModel, windows: LagWindows, rows: dict[str, np.ndarray]) -> dict[str, float]:
    """MAE in views per period, one day ahead from the real previous days."""
    out = {}
    for period, idx in rows.items():
        err = np.abs(model.predict(windows.x(idx)) - windows.y(idx))
        out[f"{period}_mae"] = float(err.mean()) if len(err) else math.nan
    return out


@dataclass
class TestData:
    """Every day of the store as lag windows of one size, with the period rows."""

    windows: LagWindows
    rows: dict[str, np.ndarray]
    source: str


class Holdout:
    """The scoring side of the store: loads all days once, windows them per lag count."""

    def __init__(self, ws: Workspace) -> None:
        store = Store(ws)
        self.generation = store.require()
        self.splits = store.read_splits()
        self.table = store.read_all()
        self._cache: dict[int, TestData] = {}
        if not self.splits.series:
            raise ViewcastError("no series has a test period yet: ingest longer series")

    def data(self, n: int) -> TestData:
        if n not in self._cache:
            windows = lag_windows(self.table, self.splits, n)
            source = str(self.generation / "sealed.parquet")
            self._cache[n] = TestData(windows, period_rows(windows, self.splits), source)
        return self._cache[n]

    def score(self, model: ViewsModel, periods: tuple[str, ...]) -> dict[str, float]:
        data = self.data(model.cfg.lags)
        return score(model, data.windows, {p: data.rows[p] for p in periods})


# --- MLflow records ----------------------------------------------------------------------------


def _log_test_input(mlflow, data: TestData, period: str) -> None:
    """The scored rows as a dataset input with context test-<period> and a content digest."""
    from mlflow.data.numpy_dataset import from_numpy

    from pipeline.tracking import digest

    rows = data.rows[period]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The specified dataset source can be interpreted")
        ds = from_numpy(
            features=data.windows.x(rows),
            targets=data.windows.y(rows),
            source=data.source,
            name=f"test-{period}-lags{data.windows.n}",
            digest=digest(data.windows.day[rows], data.windows.y(rows)),
        )
    mlflow.log_input(ds, context=f"test-{period}")


def _source_run(client, run_id: str):
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise ViewcastError(f"no run {run_id!r} in this workspace") from None
    if run.data.tags.get("stage") != "train":
        stage = run.data.tags.get("stage")
        raise ViewcastError(f"run {run_id} is not a training run (its stage is {stage})")
    return run


def budget_per_day() -> int:
    """Submissions allowed per UTC day: $VIEWCAST_SUBMISSIONS_PER_DAY, else 5."""
    raw = os.environ.get(BUDGET_ENV, str(DEFAULT_BUDGET))
    try:
        value = int(raw)
    except ValueError:
        raise ViewcastError(f"${BUDGET_ENV} must be a whole number, got {raw!r}") from None
    return value


def submissions_today(client, experiment: str, now: dt.datetime) -> int:
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    since = int(midnight.timestamp() * 1000)
    runs = client.search_runs(
        [experiment],
        f"tags.stage = 'submission' and attributes.start_time >= {since}",
        max_results=10_000,
    )
    return len(runs)


@dataclass(frozen=True)
class Submission:
    run_id: str
    source_run_id: str
    name: str
    val_mae: float
    public_mae: float
    used: int
    budget: int


def submit(ws: Workspace, run_id: str, budget: int | None = None) -> Submission:
    """Score a training run on the public test days; record it as a submission run."""
    from pipeline.tracking import load_model, session

    budget = budget_per_day() if budget is None else budget
    mlflow, client, experiment = session(ws)
    source = _source_run(client, run_id)
    used = submissions_today(client, experiment, dt.datetime.now(dt.UTC))
    if used >= budget:
        raise ViewcastError(
            f"submission budget spent: {used} of {budget} today (UTC); try again after midnight "
            f"UTC (the budget is ${BUDGET_ENV})"
        )
    holdout = Holdout(ws)
    model = load_model(ws, run_id)
    public = holdout.score(model, ("public",))["public_mae"]
    val_mae = source.data.metrics.get("val_mae", math.nan)
    tags = {"stage": "submission", "source_run_id": run_id, "source_run_name": source.info.run_name}
    with mlflow.start_run(run_name=f"submit {source.info.run_name}", tags=tags) as run:
        mlflow.log_metrics({"public_mae": public, "val_mae": val_mae})
        mlflow.log_param("source_run_id", run_id)
        _log_test_input(mlflow, holdout.data(model.cfg.lags), "public")
    return Submission(
        run.info.run_id, run_id, source.info.run_name, val_mae, public, used + 1, budget
    )


def leaderboard(ws: Workspace) -> list[dict]:
    """Every submission, best public MAE first, with the validation MAE it was selected on."""
    from pipeline.tracking import session

    _, client, experiment = session(ws)
    runs = client.search_runs([experiment], "tags.stage = 'submission'", max_results=10_000)
    rows = [
        {
            "submitted": dt.datetime.fromtimestamp(r.info.start_time / 1000, dt.UTC).isoformat(
                timespec="seconds"
            ),
            "run_id": r.data.tags["source_run_id"],
            "name": r.data.tags.get("source_run_name", ""),
            "val_mae": r.data.metrics.get("val_mae", math.nan),
            "public_mae": r.data.metrics["public_mae"],
            "submission_run_id": r.info.run_id,
        }
        for r in runs
    ]
    return sorted(rows, key=lambda row: (row["public_mae"], row["submitted"]))


# --- finalize ----------------------------------------------------------------------------------


def already_final(ws: Workspace, client, experiment: str) -> str | None:
    """Why a finalize must be refused, or None."""
    if ws.final_report.exists():
        return f"already finalized: see {ws.final_report}"
    runs = client.search_runs([experiment], "tags.stage = 'final'", max_results=1)
    if runs:
        return f"already finalized in MLflow run {runs[0].info.run_id}"
    return None


def finalize(ws: Workspace, run_ids: list[str], champion_id: str | None) -> dict:
    """Reveal the private score once: the runs' val/public/private/test MAE, baselines beside."""
    from pipeline.selection import baselines
    from pipeline.tracking import load_model, session

    if not 1 <= len(run_ids) <= 2:
        raise ViewcastError("finalize takes one or two runs (default: the champion)")
    mlflow, client, experiment = session(ws)
    refused = already_final(ws, client, experiment)
    if refused:
        raise ViewcastError(f"{refused}; the private test is revealed once per workspace")
    sources = [_source_run(client, run_id) for run_id in run_ids]
    holdout = Holdout(ws)

    entries, models = [], {}
    for run in sources:
        model = load_model(ws, run.info.run_id)
        entries.append(
            {
                "run_id": run.info.run_id,
                "name": run.info.run_name,
                # what selection ranked by (the mean over folds when the sweep had --folds)
                "selection_score": run.data.metrics.get("val_mae", math.nan),
                **holdout.score(model, PERIODS),  # val_mae: the standard validation days
            }
        )
        models[run.info.run_id] = model
    baseline_scores, baseline_models = {}, {}
    for cand in baselines():
        if cand.model.model != "naive":
            continue  # the closed-form linear baseline needs its sweep run: scored below
        model = ViewsModel(cand.model).eval()
        baseline_scores[cand.name] = holdout.score(model, PERIODS)
        baseline_models[cand.name] = model
    linear = _sweep_baseline(client, experiment, sources[0], "linear-lstsq-lags56")
    if linear is not None:
        model = load_model(ws, linear.info.run_id)
        baseline_scores[linear.info.run_name] = holdout.score(model, PERIODS)

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
    }

    # the record first (MLflow), then the report files: both say the test is spent
    tags = {"stage": "final", "champion_run_id": champion["run_id"]}
    with mlflow.start_run(run_name="final", tags=tags) as run:
        metrics = {f"champion_{k}": v for k, v in champion.items() if k.endswith("_mae")}
        for name, scores in baseline_scores.items():
            metrics |= {f"{name}_{k}": v for k, v in scores.items()}
        mlflow.log_metrics({k: v for k, v in metrics.items() if math.isfinite(v)})
        for period in ("public", "private"):
            _log_test_input(mlflow, holdout.data(models[champion["run_id"]].cfg.lags), period)
        payload["final_run_id"] = run.info.run_id
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            write_report(payload, holdout, models[champion["run_id"]], baseline_models, folder)
            mlflow.log_artifacts(str(folder), "report")
            ws.reports.mkdir(parents=True, exist_ok=True)
            for name in (FINAL_PNG, FINAL_MD, FINAL_JSON):  # final.json last: the commit point
                copy_atomically(folder / name, ws.reports / name)
    payload["report"] = str(ws.reports / FINAL_MD)
    return payload


def _sweep_baseline(client, experiment: str, run, name: str):
    """The named baseline run of the sweep the given run belongs to, if any."""
    parent = run.data.tags.get("mlflow.parentRunId")
    if not parent:
        return None
    runs = client.search_runs(
        [experiment],
        f"tags.mlflow.parentRunId = '{parent}' and attributes.run_name = '{name}' "
        "and attributes.status = 'FINISHED'",
        max_results=1,
    )
    return runs[0] if runs else None


def copy_atomically(src: Path, dst: Path) -> None:
    """Copy a file so that `dst` is the old file or the whole new one, never half."""
    data = src.read_bytes()
    atomic_write(dst, lambda tmp: Path(tmp).write_bytes(data))


def write_report(
    payload: dict,
    holdout: Holdout,
    champion: ViewsModel,
    baselines: dict[str, ViewsModel],
    folder: Path,
) -> None:
    """final.json, final.md and final.png (forecast vs actual over the test period)."""
    (folder / FINAL_JSON).write_text(json.dumps(payload, indent=1))
    plot_test_period(holdout, champion, baselines.get("seasonal-naive"), folder / FINAL_PNG)
    (folder / FINAL_MD).write_text(markdown_report(payload))


def markdown_report(payload: dict) -> str:
    """The final scores as a Markdown page."""
    fmt = lambda v: "-" if v is None or not math.isfinite(v) else f"{v:,.1f}"  # noqa: E731
    lines = [
        "# viewcast: final test report",
        "",
        f"Finalized {payload['finalized_at']} on store {payload['store_generation']}: "
        f"{payload['series']} series, the last {payload['test_days']} days of each sealed "
        "(first half public, second half private). Each test day is predicted one day ahead "
        "from the real previous days. MAE in views.",
        "",
        "| model | run | val MAE | public MAE | private MAE | test MAE |",
        "|---|---|---|---|---|---|",
    ]
    for entry in payload["runs"]:
        star = " (champion)" if entry["run_id"] == payload["champion"]["run_id"] else ""
        lines.append(
            f"| {entry['name']}{star} | `{entry['run_id']}` | {fmt(entry['val_mae'])} | "
            f"{fmt(entry['public_mae'])} | {fmt(entry['private_mae'])} | {fmt(entry['test_mae'])} |"
        )
    for name, s in payload["baselines"].items():
        lines.append(
            f"| {name} (baseline) | | {fmt(s['val_mae'])} | {fmt(s['public_mae'])} | "
            f"{fmt(s['private_mae'])} | {fmt(s['test_mae'])} |"
        )
    rows = payload["test_rows"]
    lines += [
        "",
        f"Test rows: {rows['public']:,} public, {rows['private']:,} private.",
        "",
        f"![forecast vs actual over the test period]({FINAL_PNG})",
        "",
    ]
    return "\n".join(lines)


def plot_test_period(
    holdout: Holdout, champion: ViewsModel, baseline: ViewsModel | None, path: Path, most: int = 6
) -> None:
    """Actual views vs the champion's one-day-ahead forecasts over the test period, per series
    (the `most` series with the most test views)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    data = holdout.data(champion.cfg.lags)
    rows = data.rows["test"]
    w = data.windows
    codes = np.unique(w.code[rows])
    totals = np.array([w.y(rows[w.code[rows] == c]).sum() for c in codes])
    shown = codes[np.argsort(-totals, kind="stable")[:most]]
    fig, axes = plt.subplots(len(shown), 1, figsize=(9, 2.6 * len(shown)), squeeze=False)
    for ax, code in zip(axes[:, 0], shown, strict=True):
        idx = rows[w.code[rows] == code]
        dates = w.day[idx].astype("datetime64[D]")
        ax.plot(dates, w.y(idx), color="black", label="actual")
        ax.plot(dates, champion.predict(w.x(idx)), color="tab:blue", label="champion")
        if baseline is not None:
            base = holdout.data(baseline.cfg.lags)
            bidx = base.rows["test"][base.windows.code[base.rows["test"]] == code]
            ax.plot(dates, baseline.predict(base.windows.x(bidx)), "--", color="gray",
                    label="seasonal naive")  # fmt: skip
        private = holdout.splits.series[str(w.names[code])].private_start
        ax.axvline(np.datetime64(private, "D"), color="tab:red", lw=0.8, label="private starts")
        ax.set_title(str(w.names[code]), fontsize=9)
        ax.set_ylabel("views")
        locator = mdates.AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    axes[0, 0].legend(fontsize=8, ncol=4)
    fig.suptitle("test period: one-day-ahead forecasts vs actual views")
    with warnings.catch_warnings():  # page names in scripts the default font lacks
        warnings.filterwarnings("ignore", "Glyph .* missing from font")
        fig.tight_layout()
        fig.savefig(path, dpi=90)
    plt.close(fig)


def read_final(ws: Workspace) -> dict:
    path = ws.final_report
    if not path.exists():
        raise ViewcastError(f"no final report in {ws.reports}: run `viewcast finalize` first")
    return json.loads(path.read_text())
