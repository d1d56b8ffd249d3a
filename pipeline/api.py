"""A small Python API: the CLI's stages as methods of a workspace, results as plain objects and
pandas DataFrames.

    from pipeline import Workspace

    vc = Workspace("/tmp/ws")
    vc.ingest(frame, name="mychannel")  # a DataFrame (date, views) or export paths
    vc.pull("R (programming language)")  # or pull a Wikipedia article's daily views
    vc.run(max_minutes=1)  # features, sweep, select, submit, finalize
    vc.refit()
    vc.forecast(horizon=7)  # a DataFrame: series_id, date, forecast, lower_80 ... upper_95

Each method that writes holds the workspace lock, as the CLI's commands do, so a notebook and a
timer never write at the same time (a busy workspace raises LockedError after `wait` seconds).
Errors are `pipeline.data.errors.ViewcastError`s with the same one-line messages as the CLI's.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline import jobs
from pipeline.data import workspace as config
from pipeline.data.atomic import restore
from pipeline.data.errors import InputError, ViewcastError, first_line
from pipeline.data.features import FeatureSpec
from pipeline.data.store import Store

if TYPE_CHECKING:
    import pandas as pd


class Workspace:
    """One workspace folder (data/ and mlruns/), as `viewcast --home DIR` sees it."""

    def __init__(self, home: str | Path | None = None, wait: float = 5.0) -> None:
        self.paths = config.Paths.resolve(Path(home) if home is not None else None)
        if self.paths.home.exists() and not self.paths.home.is_dir():
            raise ViewcastError(f"{self.paths.home} is a file, not a workspace folder")
        if not wait >= 0:
            raise ViewcastError(f"wait: seconds, 0 or more; got {wait:g}")
        self.wait = wait

    def __repr__(self) -> str:
        return f"Workspace({str(self.paths.home)!r})"

    def _lock(self):
        return jobs.locked(self.paths, self.wait)

    # --- data -------------------------------------------------------------------------------

    def ingest(
        self,
        source: str | Path | pd.DataFrame | Iterable[str | Path],
        name: str | None = None,
        fill: str = "linear",
    ):
        """Export files (or folders of them), or a DataFrame with `date` and `views` columns
        (and `series_id` for several series; else `name`), into the store. The store's report:
        days added, updated and imputed per series. (YouTube Studio's table of totals in a
        folder is left out, as `viewcast ingest` does.)"""
        # lazy: pandas takes 0.7 s to import; kept off the CLI's start-up
        import pandas as pd

        if isinstance(source, pd.DataFrame):
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / f"{name or 'frame'}.csv"
                _frame_export(source, name).to_csv(path, index=False)
                try:
                    return self.ingest(path, None, fill)  # the ids are in the file
                except InputError as err:  # told about the frame, not a temporary file
                    raise ViewcastError(_about_frame(err)) from None
        paths = [source] if isinstance(source, str | Path) else list(source)
        files = [(path, name) for path in jobs.expand([Path(p) for p in paths])]
        with self._lock():
            return jobs.ingest(self.paths, files, fill=fill).report

    def pull(self, *articles: str, project: str = "en.wikipedia", youtube: bool = False):
        """Pull Wikipedia articles' daily views (and the authorised YouTube channel's with
        `youtube=True`) into the store, registering them; with nothing named, every registered
        source. Each source's outcome (days, last day, revisions) as a list."""
        wanted = [
            jobs.wikipedia_source(a, project, "all-access", "user", None, None) for a in articles
        ]
        if youtube:
            wanted.append(jobs.youtube_source("MINE", None, None))
        with self._lock():
            return jobs.pull(self.paths, wanted or None).sources

    def status(self) -> pd.DataFrame:
        """One row per series: first and last date, days, imputed days, split boundaries."""
        # lazy: pandas takes 0.7 s to import; kept off the CLI's start-up
        import pandas as pd

        manifest = Store(self.paths).read_manifest()
        frame = pd.DataFrame.from_dict(manifest["series"], orient="index")
        return frame.rename_axis("series_id").reset_index()

    def history(self) -> pd.DataFrame:
        """The training and validation days (series_id, date, views, imputed); the sealed test
        days are never returned."""
        # lazy: pandas takes 0.7 s to import; kept off the CLI's start-up
        import pandas as pd

        dev = Store(self.paths).read_dev()
        return pd.DataFrame(
            {
                "series_id": dev.names.astype(str)[dev.code],
                "date": dev.day.astype("datetime64[D]"),
                "views": dev.views,
                "imputed": dev.imputed,
            }
        )

    # --- the stages -------------------------------------------------------------------------

    def features(self, lags: Iterable[int] = (1, 7, 28, 56), target_transform: str = "none"):
        """Lag windows of the train/validation days; the recorded spec's rows per window."""
        with self._lock():
            spec = FeatureSpec(tuple(sorted(set(lags))), target_transform)
            return jobs.features(self.paths, spec)[0]

    def sweep(self, grid: str = "default", max_minutes: float | None = None, seeds: int = 1):
        """A grid (lecture, default or a TOML file) as nested MLflow runs; what it did."""
        with self._lock():
            return jobs.sweep(self.paths, grid, max_minutes=max_minutes, seeds=seeds)

    def select(self, ensemble: int = 5):
        """The champion on validation MAE (alias `champion`), with the ranking."""
        with self._lock():
            return jobs.select(self.paths, ensemble=ensemble)

    def finalize(self) -> dict:
        """The one reveal of the champion's private test score (final.json's content)."""
        with self._lock():
            return jobs.finalize(self.paths)

    def run(
        self,
        grid: str = "default",
        max_minutes: float = 5.0,
        ensemble: int = 5,
        seeds: int = 1,
    ) -> dict:
        """`viewcast run` on what was ingested: features, sweep, select, submit, finalize; the
        final report's numbers."""
        if Store(self.paths).generation() is None:
            raise ViewcastError("nothing ingested yet: call ingest(...) first")
        with self._lock():
            files: list = []  # nothing more to ingest
            done = jobs.run_all(
                self.paths, files, grid, max_minutes, ensemble=ensemble, seeds=seeds
            )
        return done.payload

    def refit(self):
        """The champion's configuration on all history, registered as `production`."""
        with self._lock():
            return jobs.refit(self.paths)

    def forecast(
        self, date: str | None = None, horizon: int = 1, force: bool = False
    ) -> pd.DataFrame:
        """Days D..D+horizon-1 for every series with 80%/95% intervals (also written to
        data/forecasts/<D>.csv and .png, and logged), as a DataFrame."""
        # lazy: pandas takes 0.7 s to import; kept off the CLI's start-up
        import pandas as pd

        with self._lock():
            done = jobs.forecast(self.paths, date, horizon, force)
        frame = pd.read_csv(done.path, dtype={"series_id": str})
        frame["series_id"] = frame["series_id"].map(restore)
        return frame


def _frame_export(frame: pd.DataFrame, name: str | None) -> pd.DataFrame:
    """A DataFrame as the `long` export format (series_id, date, views)."""
    # lazy: pandas takes 0.7 s to import; kept off the CLI's start-up
    import pandas as pd

    missing = {"date", "views"} - set(frame.columns)
    if missing:
        raise ViewcastError(f"the DataFrame lacks the columns {sorted(missing)}")
    if "series_id" not in frame.columns and not name:
        raise ViewcastError("name the series: ingest(frame, name=...) or a series_id column")
    out = frame[["date", "views"]].copy()
    out.insert(0, "series_id", frame["series_id"] if "series_id" in frame.columns else name)
    try:
        out["date"] = pd.to_datetime(out["date"]).dt.strftime("%Y-%m-%d")
    except (ValueError, TypeError, OverflowError) as err:  # pandas' date parse errors too
        why = first_line(err)
        raise ViewcastError(f"the DataFrame's date column: {why}") from None
    return out


def _about_frame(err: InputError) -> str:
    """An ingest error about a DataFrame's temporary CSV, told about the frame: line N of the
    file (its header is line 1) is the frame's row N - 2, counted from 0."""
    if err.line is None or err.line < 2:
        return f"the DataFrame: {err.problem}"
    return f"the DataFrame's row {err.line - 2} (counted from 0): {err.problem}"
