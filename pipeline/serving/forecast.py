"""Daily forecasts: refit the champion on all history, forecast day D with conformal intervals.

- `refit`: the champion's configuration trained on every observed day (training, validation and
  test), for the epoch count its early stopping found; registered with the alias `production`.
- `forecast`: day D (default: the day after the last ingested day) for every series, from the days
  before D only. Horizons above one feed each prediction back as the next day's x_1, or read a
  direct model's H days at once (models.infer.paths). A series whose data ends before D-1 is
  first rolled forward the same way over its missing days (its rows' steps, and so their
  intervals, count from its last day).
- Intervals are split-conformal per step h: per series, the quantiles of the champion's absolute
  errors h days ahead, forecast from each of its validation days (out of sample; the production
  model has seen those days; see intervals.validation_intervals). A series with too few errors at a
  step (the 95% level needs 19) uses the pooled relative errors of all series at that step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from pipeline import plots as reports
from pipeline import tracking
from pipeline.data import features as feats
from pipeline.data.atomic import atomic_write, neutralise
from pipeline.data.errors import ViewcastError, first_line
from pipeline.data.store import Store
from pipeline.data.table import concat
from pipeline.data.workspace import Paths, read_final
from pipeline.models.infer import paths
from pipeline.models.intervals import (
    CALIBRATED_FILE,
    INTERVALS_FILE,
    LEVELS,
    SCORE_BUDGET,
    Intervals,
    dev_key,
    read_intervals,
    spliced,
    validation_intervals,
    write_intervals,
)
from pipeline.serving.painter import Painter
from pipeline.tracking import Stage, Tag

MAX_ROLL_DAYS = 366  # a series silent for longer than this is left out of a forecast


def iso(day: int) -> str:
    return str(np.datetime64(int(day), "D"))


def parse_day(text: str) -> int:
    """A --date: strictly YYYY-MM-DD, a real calendar day between 2005 and 2100."""
    problem = ViewcastError(f"--date must be a day YYYY-MM-DD (2005-2100), got {text!r}")
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise problem
    try:
        day = np.datetime64(text, "D")
    except ValueError:
        raise problem from None
    if str(day) != text or not 2005 <= int(text[:4]) <= 2100:  # 2021-02-30 is no day
        raise problem
    return int(day.astype(np.int64))


# --- refit --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Refit:
    run_id: str
    version: str
    source_run_id: str
    epochs: int
    rows: int
    train_mae: float


def refit(ws: Paths) -> Refit:
    """Train the champion's configuration on all history; alias the result `production`.
    An ensemble champion refits each of its members."""
    # lazy: torch takes 2 s to import; only the paths that train or load a network pay
    from pipeline.models.families import EnsembleModel

    read_final(ws)  # refit spends the test days: only after the private score is out
    champion = tracking.champion_run(ws)
    run = tracking.get_run(ws, champion)
    store = Store(ws)
    table, splits = store.read_all(), store.read_splits()
    tags = {Tag.SOURCE_RUN: champion}
    name = f"refit {run.name}"
    source = {"source": str(store.require()), "refit_of": champion}
    if run.params.get("model.model") == "ensemble":
        members, blend = tracking.ensemble_parts(run)
        fitted = [_refit_one(ws, tracking.get_run(ws, m), table, splits) for m in members]
        model = EnsembleModel([f[0] for f in fitted], blend.weights, blend.first).eval()
        windows = _all_rows(feats.lag_windows(table, splits, model.cfg.lags))
        train_mae = float(np.abs(windows.predict(model) - windows.y()).mean())
        data = feats.data_params(ws, windows) | source
        run_id = tracking.log_ensemble(
            ws,
            windows,
            model,
            members,
            {"train_mae": train_mae},
            data,
            name,
            tags,
            stage=Stage.REFIT,
        )
        epochs = max(f[1] for f in fitted)
    else:
        model, epochs, windows, result, tcfg = _refit_one(ws, run, table, splits)
        train_mae = result.train_mae
        data = feats.data_params(ws, windows) | source
        from pipeline.models.outcome import training_outcome  # torch: the refit trains

        outcome = training_outcome(windows, result, data)
        run_id = tracking.log_training(
            ws,
            windows,
            tracking.run_config(run)[0],
            tcfg,
            result.model,
            result.device,
            outcome,
            data,
            run_name=name,
            tags=tags,
            stage=Stage.REFIT,
        )
    version = tracking.register_alias(
        ws, run_id, "production", {"source_run_id": champion, "epochs": str(epochs)}
    )
    return Refit(run_id, version, champion, epochs, len(windows), train_mae)


def _all_rows(windows):
    """Every observed day as a training row (refit has no validation days: a direct model's
    targets run up to the last day)."""
    return replace(windows, split=np.zeros_like(windows.split), val_start=None)


def _refit_one(ws: Paths, run, table, splits):
    """One trained configuration again, on every observed day, for its best epoch count (each
    seed of a bagged configuration for its own)."""
    # lazy: torch takes 2 s to import; only the paths that train or load a network pay
    from pipeline.models.families import EnsembleModel
    from pipeline.models.train import fit

    mcfg, tcfg = tracking.run_config(run)
    windows = _all_rows(feats.lag_windows(table, splits, mcfg.lags))
    # the epoch count early stopping chose (0 for the closed form and the naive baselines)
    epochs = [int(run.metrics.get(f"best_epoch_seed{k}", -1)) for k in range(tcfg.seeds)]
    if tcfg.seeds == 1 or min(epochs) < 0:
        epochs = [int(run.metrics.get("best_epoch", 0))] * tcfg.seeds
    results = [
        fit(
            windows,
            mcfg,
            replace(tcfg, seed=tcfg.seed + k, seeds=1, epochs=e, patience=0, restore_best=False),
        )
        for k, e in enumerate(epochs)
    ]
    tcfg = replace(tcfg, epochs=max(epochs), patience=0, restore_best=False)
    if len(results) == 1:
        return results[0].model, epochs[0], windows, results[0], tcfg
    result = replace(results[0], model=EnsembleModel([r.model for r in results]).eval())
    result.train_mae = float(np.abs(windows.predict(result.model) - windows.y()).mean())
    return result.model, max(epochs), windows, result, tcfg


# --- intervals ---------------------------------------------------------------------------------


def champion_intervals(
    ws: Paths, run_id: str, dev, splits, dev_file: Path, horizon: int = 1
) -> Intervals:
    """The champion's intervals for steps 1..horizon on these dev days: the ones `select`
    calibrated on several validation windows and logged beside its model (search.calibration:
    60 days where the store's size allows, at least 28, or the selection's horizon if longer). A
    longer horizon keeps those steps and takes the later ones from one window (`_one_window`)."""
    key = dev_key(dev_file)
    folder = tracking.model_folder(ws, run_id)
    calibrated = read_intervals(folder / CALIBRATED_FILE, dev.names, key)  # however many steps
    if calibrated is not None and calibrated.horizons >= horizon:
        return calibrated
    found = _one_window(ws, run_id, folder, dev, splits, key, horizon)
    # a longer horizon than select calibrated: its steps as calibrated, the later from one window
    return found if calibrated is None else spliced(calibrated, found)


def _one_window(ws: Paths, run_id: str, folder: Path, dev, splits, key: str, horizon: int):
    """One window's intervals for steps 1..horizon: kept in data/forecasts/.intervals/ (per
    champion and dev-days hash), else the ones its training run logged with its model (one step:
    computed from the validation forecasts it made anyway), else scored here on the validation
    days (8M validation windows of 145k series: about 15 s a step on 2 cores) and kept."""
    path = ws.data / "forecasts" / ".intervals" / f"{run_id}-{key}.npz"
    found = read_intervals(path, dev.names, key, horizon)
    if found is None:
        logged = folder / INTERVALS_FILE
        found = read_intervals(logged, dev.names, key, horizon)
        if found is None:
            model = tracking.load_predictor(ws, run_id)
            found = validation_intervals(model, dev, splits, horizon)
        write_intervals(path, found, key)
    return found


# --- forecast -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ForecastModel:
    model: object  # infer.NumpyModel (or a torch ViewsModel for models saved without weights.npz)
    run_id: str
    version: str
    alias: str


def production_model(ws: Paths) -> ForecastModel:
    """The `production` model, or the champion when nothing was refit yet."""
    for alias in ("production", "champion"):
        found = tracking.alias_run(ws, alias)
        if found is not None:
            run_id, version = found
            return ForecastModel(tracking.load_predictor(ws, run_id), run_id, version, alias)
    raise ViewcastError("no model to forecast with: run `viewcast select` (and `refit`) first")


def roll_forward(model, history: list[np.ndarray], last: np.ndarray, first: int, horizon: int):
    """Predict days first..first+horizon-1 for each series from its views up to day `last[s]`
    (a series that ends before first - 1 is forecast over its missing days too: see
    infer.paths, recursive or direct). Returns (series index, day, step, forecast) arrays;
    a row's step is its days ahead of its series' last day (1: the day after), which sets its
    interval."""
    n = model.cfg.lags
    total = first - 1 - last + horizon  # days forecast from each series' last day
    windows = np.stack([h[-n:][::-1] for h in history]) if history else np.zeros((0, n))
    out_s, out_day, out_step, out_pred = [], [], [], []
    for days in np.unique(total):  # series that end on the same day, forecast together
        group = np.flatnonzero(total == days)
        found = paths(model, windows[group], last[group] + 1, int(days))[:, -horizon:]
        out_s.append(np.repeat(group, horizon))
        out_day.append(np.tile(np.arange(first, first + horizon), len(group)))
        out_step.append(np.tile(np.arange(days - horizon + 1, days + 1), len(group)))
        out_pred.append(found.reshape(-1))
    series, day = _cat(out_s, np.int64), _cat(out_day, np.int64)
    order = np.lexsort((series, day))  # day by day, series in order within a day
    return (
        series[order],
        day[order],
        _cat(out_step, np.int64)[order],
        _cat(out_pred, np.float64)[order],
    )


def _cat(parts: list[np.ndarray], dtype) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)


@dataclass(frozen=True)
class Forecast:
    path: Path
    date: str
    rows: int
    written: bool
    skipped: list[str]
    run_id: str | None
    model_run_id: str
    model_version: str
    unbounded_from: str | None = None  # rows from this date on have no interval (too far ahead)
    horizon: int = 1  # days ahead asked
    held: int | None = None  # days ahead the existing file holds (not written)
    late: int = 0  # series whose last day is before D - 1, forecast from it (intervals too)
    late_days: int = 0  # the most days missing before D among them


def forecast_path(ws: Paths, day: int) -> Path:
    return ws.data / "forecasts" / f"{iso(day)}.csv"


def forecast(ws: Paths, date: str | None = None, horizon: int = 1, force: bool = False) -> Forecast:
    """Forecast day D..D+horizon-1 for every series from the days before D; write the CSV and
    the picture."""
    with Painter() as painter:
        return _forecast(ws, date, horizon, force, painter)


def check_horizon(horizon: int) -> None:
    if horizon < 1:
        raise ViewcastError(f"--horizon must be at least 1, got {horizon}")


def _forecast(ws: Paths, date: str | None, horizon: int, force: bool, paint) -> Forecast:
    check_horizon(horizon)
    asked = parse_day(date) if date else None  # a bad --date is refused before any work
    store = Store(ws)
    dev, splits = store.read_dev(), store.read_splits()
    table = concat(dev, store.read_sealed())  # every day, each file read once
    starts, ends = table.bounds()
    last_day = np.where(ends > starts, table.day[np.maximum(ends - 1, 0)], np.iinfo(np.int32).min)
    day = asked if asked is not None else int(last_day.max()) + 1
    _guard_sealed_test(ws, splits, day)
    path = forecast_path(ws, day)
    chosen = production_model(ws)
    if path.exists() and not force:
        # the file and its run go together: a crash between them (kill -9) left the file alone
        recorded = tracking.runs(ws, Stage.FORECAST, f"tags.forecast_date = '{iso(day)}'")
        run_id = recorded[0].run_id if recorded else _relog(ws, path, day)
        run = recorded[0] if recorded else tracking.get_run(ws, run_id)
        held = int(run.params.get("horizon", 1))
        return Forecast(
            path, iso(day), 0, False, [], run_id, chosen.run_id, chosen.version, None, horizon, held
        )

    history, last, names, skipped = histories_before(table, day, chosen.model.cfg.lags)
    if not names:  # nothing is written: no empty file, no picture of nothing
        raise ViewcastError(
            f"nothing to forecast from {iso(day)}: every series has fewer than "
            f"{chosen.model.cfg.lags} days before it or is silent for more than {MAX_ROLL_DAYS} "
            f"days (the last day ingested is {iso(int(last_day.max()))})"
        )
    last = np.array(last, np.int64)
    idx, days, steps, pred = roll_forward(chosen.model, history, last, day, horizon)
    missing = day - 1 - last  # days each series lacks before D
    champion = tracking.alias_run(ws, "champion")
    if champion is None:
        raise ViewcastError("no champion: run `viewcast select` first")
    # the champion's errors, out of sample (the production model has seen the validation days)
    dev_file = store.require() / "dev.parquet"
    intervals = champion_intervals(
        ws, champion[0], dev, splits, dev_file, reach(horizon, steps, dev, splits)
    )
    series = np.array(names, dtype=object)[idx] if len(idx) else np.array([], dtype=object)
    frame = forecast_frame(series, days, steps, pred, intervals)
    frame["model_version"] = chosen.version
    frame["run_id"] = chosen.run_id
    atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False, float_format="%.3f"))
    panels, title = picture(
        frame, dict(zip(names, history, strict=True)), dict(zip(names, last, strict=True)), day
    )
    atomic_write(path.with_suffix(".png"), lambda tmp: paint(panels, title, tmp))
    run_id = _log_forecast(ws, path, day, horizon, chosen, len(frame))
    return Forecast(
        path,
        iso(day),
        len(frame),
        True,
        skipped,
        run_id,
        chosen.run_id,
        chosen.version,
        unbounded_from(frame),
        horizon,
        late=int((missing > 0).sum()),
        late_days=int(missing.max(initial=0)),
    )


PICTURE_DAYS, PICTURE_PANELS = 90, 6


def picture(frame, history: dict[str, np.ndarray], last: dict[str, int], day: int):
    """The forecast picture's panels and title: each series' last 90 days, its forecast and the
    80%/95% bands (the six series with the most views over those days when there are more)."""
    recent = {name: views[-PICTURE_DAYS:] for name, views in history.items()}
    top = sorted(recent, key=lambda name: -float(np.nansum(recent[name])))[:PICTURE_PANELS]
    panels = []
    for name in top:
        rows = frame[frame["series_id"] == neutralise(name)]
        views = recent[name]
        dates = np.arange(last[name] - len(views) + 1, last[name] + 1).astype("datetime64[D]")
        bands = {
            lv: (rows[f"lower_{lv}"].to_numpy(), rows[f"upper_{lv}"].to_numpy()) for lv in LEVELS
        }
        when = rows["date"].to_numpy().astype("datetime64[D]")
        panels.append(
            reports.BandPanel(name, dates, views, when, rows["forecast"].to_numpy(), bands)
        )
    more = (
        f" (the {len(top)} of {len(history)} series with the most views)"
        if len(history) > len(top)
        else ""
    )
    return panels, f"forecast from {iso(day)}{more}"


def reach(horizon: int, steps: np.ndarray, dev, splits) -> int:
    """How many steps ahead a forecast's intervals reach: the horizon, or its farthest row (a
    series that ended before D - 1 is further ahead of its data) as far as the validation days
    score and SCORE_BUDGET affords (a large panel's rows past that get no interval)."""
    affordable = SCORE_BUDGET // max(len(dev), 1)
    return max(horizon, min(int(steps.max(initial=1)), splits.val_days, affordable))


def histories_before(table, day: int, n: int):
    """Each series' views strictly before `day` (so later days never change a forecast of it),
    its last day, and the series left out (shorter than the window, or silent too long)."""
    starts, ends = table.bounds()
    history, last, names, skipped = [], [], [], []
    for s, name in enumerate(table.names.astype(str)):
        views = table.views[starts[s] : ends[s]][table.day[starts[s] : ends[s]] < day]
        end = int(table.day[starts[s]]) + len(views) - 1
        if len(views) < n or day - 1 - end > MAX_ROLL_DAYS:
            skipped.append(name)
            continue
        history.append(views)
        last.append(end)
        names.append(name)
    return history, last, names, skipped


def forecast_frame(
    series: np.ndarray, days: np.ndarray, steps: np.ndarray, pred: np.ndarray, intervals
):
    """The forecast rows with their conformal bounds at each level, each step its own (a row
    further ahead than the intervals reach has none)."""
    # lazy: pandas takes 0.7 s to import; kept off the CLI's start-up
    import pandas as pd

    frame = pd.DataFrame(
        {
            "series_id": [neutralise(str(name)) for name in series],  # CSV opened in a spreadsheet
            "date": days.astype("datetime64[D]").astype(str),
            "forecast": pred,
        }
    )
    within = np.asarray(steps) <= intervals.horizons
    for level in LEVELS:
        width = np.full(len(frame), np.nan)
        width[within] = intervals.half_width(level, series[within], steps[within], pred[within])
        # too few out-of-sample errors that far ahead: no interval (an empty cell), not inf
        width = np.where(np.isfinite(width), width, np.nan)
        frame[f"lower_{level}"] = np.maximum(pred - width, 0.0)
        frame[f"upper_{level}"] = pred + width
    return frame


def unbounded_from(frame) -> str | None:
    """The first date of a forecast frame with a row left without an interval, if any."""
    bounds = frame[[f"{side}_{lv}" for lv in LEVELS for side in ("lower", "upper")]]
    missing = bounds.isna().any(axis=1).to_numpy()
    return str(frame["date"][missing].min()) if missing.any() else None


def _guard_sealed_test(ws: Paths, splits, day: int) -> None:
    """Before finalize, a forecast of a test day (and monitoring it) would score the sealed test
    outside the leaderboard's record: refuse it."""
    test_end = max((s.test_end for s in splits.series.values()), default=None)
    if test_end is None or day > test_end or ws.final_report.exists():
        return
    raise ViewcastError(
        f"{iso(day)} is not after the sealed test period (it ends {iso(test_end)}): forecasting "
        "it before `viewcast finalize` would score the test outside the leaderboard"
    )


def _relog(ws: Paths, path: Path, day: int) -> str:
    """The MLflow run of a forecast file whose run is missing, made from the file itself."""
    # lazy: pandas takes 0.7 s to import; kept off the CLI's start-up
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype={"series_id": str})
        made_by = ForecastModel(
            None,
            str(frame["run_id"].iloc[0]),
            str(frame["model_version"].iloc[0]),
            "as recorded in the file",
        )
    except (OSError, UnicodeDecodeError, ValueError, KeyError, IndexError) as err:
        why = first_line(err, 100)
        raise ViewcastError(
            f"{path}: not a forecast file viewcast wrote ({why}); `forecast --force` writes it "
            "again"
        ) from None
    return _log_forecast(ws, path, day, frame["date"].nunique(), made_by, len(frame))


def _log_forecast(ws: Paths, path: Path, day: int, horizon: int, chosen, rows: int) -> str:
    tags = {
        "forecast_date": iso(day),
        "model_version": chosen.version,
        "model_run_id": chosen.run_id,
        "model_alias": chosen.alias,
    }
    name = f"forecast {iso(day)}"
    with tracking.start_run(ws, name, tracking.Stage.FORECAST, tags) as run:
        run.params({"horizon": horizon, "date": iso(day)})
        run.metrics({"series": rows / horizon})
        run.artifact(path, "forecast")
        if path.with_suffix(".png").exists():
            run.artifact(path.with_suffix(".png"), "forecast")
    return run.run_id
