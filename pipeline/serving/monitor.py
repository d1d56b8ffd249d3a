"""Monitoring: live MAE of the one-day-ahead forecasts against ingested actuals, and drift.

Each forecast file data/forecasts/<D>.csv contributes its rows for day D, the one-day-ahead
forecasts, to the live MAE per day and drift; the rows for its later days (a longer horizon) are
scored by day of the forecast (D = 1, D+1 = 2, ...) apart. A row is scored once the store
holds an observed (not imputed) value for its series and day, and counts as inside its 80% and 95%
intervals or not (live coverage: do the intervals hold?). The reference is the champion's
validation MAE; drift is the live MAE of a day above k times it on m consecutive days. Each day
is a point of the monitor run's time series, logged again when its scored series or its live
MAE change (late or revised actuals).
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import tracking
from pipeline.data.atomic import restore
from pipeline.data.errors import ViewcastError, first_line
from pipeline.data.store import Store
from pipeline.data.workspace import Paths
from pipeline.models.intervals import LEVELS
from pipeline.tracking import Stage

DEFAULT_K, DEFAULT_M = 2.0, 3


NEEDED = ["series_id", "date", "forecast"]
DAY_NAME = re.compile(r"\d{4}-\d{2}-\d{2}")  # a forecast file is named for its day D
BOUNDS = [f"{side}_{level}" for level in LEVELS for side in ("lower", "upper")]


def _file_day(stem: str) -> np.datetime64 | None:
    """The day D a forecast file is named for, if it is."""
    try:
        return np.datetime64(stem, "D") if DAY_NAME.fullmatch(stem) else None
    except ValueError:  # 2016-13-45
        return None


def live_errors(ws: Paths) -> pd.DataFrame:
    """series_id, date, forecast, actual, abs_error for every scorable one-day-ahead forecast,
    and in_80, in_95: whether the actual fell inside that interval (nan: the row has none)."""
    return live_scores(ws)[0]


def live_scores(ws: Paths) -> tuple[pd.DataFrame, list[dict]]:
    """live_errors' rows, and the live MAE and coverage of every forecast file's days by day of
    the forecast (h = 1 for day D, 2 for D+1, ...; only rows whose actual is in)."""
    folder = ws.data / "forecasts"
    files = sorted(folder.glob("*.csv")) if folder.exists() else []
    columns = [*NEEDED, "actual", "abs_error", *(f"in_{level}" for level in LEVELS)]
    if not files:
        return pd.DataFrame(columns=columns), []
    later, frames = None, []
    for path in files:
        frame = _read_forecast(path, folder)
        if frame is None:
            continue
        if later is None:  # the store once, after the first forecast file read whole
            later = LaterDays(Actuals(Store(ws).read_all()))
        frames.append(frame[frame["step"] == 1])
        later.add(frame[frame["step"] > 1])
    if later is None:
        return pd.DataFrame(columns=columns), []
    made = pd.concat(frames, ignore_index=True)
    rows, actual = later.actuals.of(made)
    scored = made.iloc[rows].assign(actual=actual)
    scored["abs_error"] = (scored["forecast"] - scored["actual"]).abs()
    for level in LEVELS:
        lower, upper = scored[f"lower_{level}"], scored[f"upper_{level}"]
        inside = (lower <= scored["actual"]) & (scored["actual"] <= upper)
        scored[f"in_{level}"] = inside.astype(float).where(lower.notna() & upper.notna())
    scored = scored[columns].sort_values(["date", "series_id"], ignore_index=True)
    if scored.empty:
        return scored, []
    day_one = {"h": 1, "rows": len(scored), "live_mae": float(scored["abs_error"].mean())}
    day_one |= {f"coverage_{lv}": float(scored[f"in_{lv}"].mean() * 100) for lv in LEVELS}
    return scored, [day_one, *later.rows()]


def _read_forecast(path: Path, folder: Path) -> pd.DataFrame | None:
    """A forecast file's rows with their day of the forecast (`step`, 1 = day D) and day number,
    or None for a file not named for a day (a copy, a note: nothing in it is scored)."""
    try:
        frame = pd.read_csv(path, usecols=lambda c: c in NEEDED + BOUNDS, dtype={"series_id": str})
        lacking = [c for c in NEEDED if c not in frame.columns]
        if lacking:
            raise ValueError(f"no column {lacking[0]!r}")
    except (OSError, UnicodeDecodeError, ValueError) as err:  # pandas' parse errors too
        why = first_line(err, 100)
        raise ViewcastError(
            f"{path}: not a forecast file ({why}); move it out of {folder}"
        ) from None
    first = _file_day(path.stem)
    if first is None:
        return None
    for bound in BOUNDS:  # a file written by hand, or before intervals: none
        frame[bound] = pd.to_numeric(frame.get(bound, np.nan), errors="coerce")
    frame["series_id"] = frame["series_id"].map(restore)  # see atomic.neutralise
    dates = pd.to_datetime(frame["date"], format="%Y-%m-%d", errors="coerce")
    frame["step"] = (dates - pd.Timestamp(first)).dt.days + 1  # a bad date: nan, never scored
    frame["day"] = dates.to_numpy("datetime64[D]").astype(np.int64)
    return frame


class Actuals:
    """The observed (not imputed) views of forecast rows, looked up in the store's arrays by
    series and day: no frame of the store's days is built (a panel holds millions a day)."""

    def __init__(self, table) -> None:
        self.table = table
        self.codes = {name: i for i, name in enumerate(table.names.astype(str))}
        self.starts, self.ends = table.bounds()
        at = np.minimum(self.starts, max(len(table) - 1, 0))
        self.first = table.day[at].astype(np.int64) if len(table) else self.starts

    def of(self, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """The positions of the rows (series_id, day) whose actual is in, and those actuals."""
        code = rows["series_id"].map(self.codes).to_numpy(np.float64)  # nan: not in the store
        known = np.flatnonzero(~np.isnan(code))
        c, day = code[known].astype(np.int64), rows["day"].to_numpy(np.int64)[known]
        pos = self.starts[c] + (day - self.first[c])
        inside = (pos >= self.starts[c]) & (pos < self.ends[c])
        observed = inside & ~self.table.imputed[np.where(inside, pos, 0)]
        return known[observed], self.table.views[pos[observed]]


class LaterDays:
    """Sums of the errors of forecast rows after day D, by day of the forecast: no frame of
    every row is kept (a panel's files hold millions of rows a day ahead, times the horizon)."""

    def __init__(self, actuals: Actuals) -> None:
        self.actuals = actuals
        self.sums: dict[str, np.ndarray] = {}

    def add(self, rows: pd.DataFrame) -> None:
        seen, actual = self.actuals.of(rows)
        step = rows["step"].to_numpy(np.float64)[seen].astype(np.int64)
        self._sum("rows", step, np.ones(len(step)))
        self._sum("abs", step, np.abs(rows["forecast"].to_numpy(np.float64)[seen] - actual))
        for level in LEVELS:
            lower = rows[f"lower_{level}"].to_numpy(np.float64)[seen]
            upper = rows[f"upper_{level}"].to_numpy(np.float64)[seen]
            has = ~np.isnan(lower) & ~np.isnan(upper)
            self._sum(f"n_{level}", step, has.astype(float))
            self._sum(f"in_{level}", step, (has & (lower <= actual) & (actual <= upper)) * 1.0)

    def _sum(self, key: str, step: np.ndarray, values: np.ndarray) -> None:
        found = np.bincount(step, weights=values) if len(step) else np.zeros(0)
        kept = self.sums.get(key, np.zeros(0))
        total = np.zeros(max(len(kept), len(found)))
        total[: len(kept)] += kept
        total[: len(found)] += found
        self.sums[key] = total

    def rows(self) -> list[dict]:
        """One dict a day of the forecast (h >= 2) that has scored rows."""
        n, out = self.sums.get("rows", np.zeros(0)), []
        for h in np.flatnonzero(n):
            found = {"h": int(h), "rows": int(n[h]), "live_mae": float(self.sums["abs"][h] / n[h])}
            for level in LEVELS:
                held, total = self.sums[f"in_{level}"][h], self.sums[f"n_{level}"][h]
                found[f"coverage_{level}"] = float(100 * held / total) if total else math.nan
            out.append(found)
        return out


def drift_run(above: list[bool], dates: list[str], m: int) -> str | None:
    """The first day of the first run of m consecutive calendar days above the threshold."""
    streak, since, previous = 0, None, None
    for date, flag in zip(dates, above, strict=True):
        day = np.datetime64(date, "D")
        consecutive = previous is not None and day - previous == np.timedelta64(1, "D")
        streak = (streak + 1 if consecutive else 1) if flag else 0
        since = date if streak == 1 else since
        previous = day
        if streak >= m:
            return since
    return None


@dataclass
class Monitoring:
    reference_mae: float
    k: float
    m: int
    days: list[dict] = field(default_factory=list)
    series: list[dict] = field(default_factory=list)
    drift_since: str | None = None
    coverage: dict[str, float] = field(default_factory=dict)  # coverage_80: % of actuals inside
    horizons: list[dict] = field(default_factory=list)  # live MAE and coverage by day of forecast
    logged_days: int = 0
    run_id: str | None = None

    @property
    def drift(self) -> bool:
        return self.drift_since is not None


def check_drift(k: float, m: int) -> None:
    """The drift rule's numbers, refused before any work."""
    if not k > 0 or m < 1:
        raise ViewcastError("--drift-ratio must be positive and --drift-days at least 1")


def monitor(ws: Paths, k: float = DEFAULT_K, m: int = DEFAULT_M, log: bool = True) -> Monitoring:
    """Live MAE per day and per series; drift when live MAE > k x validation MAE m days running."""
    check_drift(k, m)
    found = tracking.alias_run(ws, "champion")
    if found is None:
        raise ViewcastError("no champion: run `viewcast select` first")
    reference = tracking.get_run(ws, found[0]).metrics.get("val_mae", math.nan)
    scored, horizons = live_scores(ws)
    result = Monitoring(reference, k, m)
    if scored.empty:
        return result
    result.horizons = horizons  # by day of the forecast (D = 1): do later days hold up as well?
    by_day = scored.groupby("date")["abs_error"].agg(["mean", "size"])
    held = scored.groupby("date")[[f"in_{level}" for level in LEVELS]].mean() * 100
    threshold = k * reference
    result.days = [
        {"date": d, "series": int(n), "live_mae": float(v), "above": bool(v > threshold)}
        | {f"coverage_{level}": float(held.at[d, f"in_{level}"]) for level in LEVELS}
        for d, (v, n) in by_day.iterrows()
    ]
    # over every scored row with an interval (nan: none has one): day one's, as `horizons` has it
    result.coverage = {f"coverage_{lv}": horizons[0][f"coverage_{lv}"] for lv in LEVELS}
    by_series = scored.groupby("series_id")["abs_error"].agg(["mean", "size"])
    result.series = [
        {"series_id": s, "days": int(n), "live_mae": float(v)} for s, (v, n) in by_series.iterrows()
    ]
    result.drift_since = drift_run(
        [d["above"] for d in result.days], [d["date"] for d in result.days], m
    )
    if log:
        result.run_id, result.logged_days = _log(ws, result)
    return result


DAY_MS = 86_400_000  # one point a day, stamped at its midnight (UTC)
HORIZONS_FILE = "horizons.json"  # the live errors by day of the forecast, as of the last monitor


def _log(ws: Paths, result: Monitoring) -> tuple[str, int]:
    """Append the days not logged yet to the workspace's monitor run (a time series by day),
    and log again a day whose count of scored series or live MAE changed since (actuals of some
    series arrived later: another source, a late export; YouTube's provisional days revised),
    one millisecond after its last point, so MLflow's latest value of that day is today's."""
    found = tracking.runs(ws, Stage.MONITOR, most=1)
    if found:
        run = tracking.writer(ws, found[0].run_id)
    else:
        run = tracking.create_run(ws, "monitor", Stage.MONITOR, {})
        tracking.set_status(ws, run.run_id, "FINISHED")
    done = tracking.metric_points(ws, run.run_id, "live_mae")  # day -> (live MAE, stamp)
    counts = tracking.metric_steps(ws, run.run_id, "live_series")
    covered = tracking.metric_steps(ws, run.run_id, "live_coverage_80")  # a day logged before
    new = []
    for d in result.days:
        day = int(np.datetime64(d["date"], "D").astype(np.int64))
        before = done.get(day)
        changed = before is not None and (
            counts.get(day) != d["series"]
            or not math.isclose(before[0], d["live_mae"])
            or (math.isfinite(d["coverage_80"]) and day not in covered)  # logged before coverage
        )
        if before is None:
            new.append((day, d, day * DAY_MS))
        elif changed:
            new.append((day, d, before[1] + 1))
    run.series("live_mae", [(day, d["live_mae"], ms) for day, d, ms in new])
    run.series("live_series", [(day, float(d["series"]), ms) for day, d, ms in new])
    if math.isfinite(result.reference_mae):
        ratios = [(day, d["live_mae"] / result.reference_mae, ms) for day, d, ms in new]
        run.series("live_mae_ratio", ratios)
    for level in LEVELS:  # the days whose rows had intervals
        key = f"coverage_{level}"
        held = [(day, d[key], ms) for day, d, ms in new if math.isfinite(d[key])]
        run.series(f"live_{key}", held)
    if new:
        run.tags({"drift_since": result.drift_since or ""})
    if len(result.horizons) > 1:  # the days after D too: today's table beside the run's curves
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / HORIZONS_FILE
            path.write_text(json.dumps(result.horizons, indent=1))
            run.artifact(path, "monitor")
    return run.run_id, len(new)
