"""The lecture's inputs: x_1..x_N = the views of the previous N days; the target is the day's views.

All series' dev days are concatenated into one array `values` (series by series, day by day, a
complete daily index). For window N, ``sliding_window_view(values, N)[:, ::-1]`` is a zero-copy view
whose row r holds values[r+N-1], ..., values[r]: exactly x_1..x_N for the day at position r+N. A day
is a row when its N previous days belong to the same series (the first N days of a series have no
row) and its own views were observed (imputed days may be inputs, never targets).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from pipeline.data.atomic import atomic_write, neutralise, write_text
from pipeline.data.calendar import weekday
from pipeline.data.errors import ViewcastError
from pipeline.data.store import Splits, Store
from pipeline.data.table import ViewsTable
from pipeline.data.workspace import DEFAULT_LAGS, Paths

if TYPE_CHECKING:
    import pandas as pd

Transform = Literal["none", "log1p"]  # applied to every views value
TARGET_TRANSFORMS = get_args(Transform)
SPLIT_NAMES = ("train", "val")
SPEC_FILE = "features.json"
PREDICT_CHUNK = 2**17  # windows scored at a time (56 lags: 57 MB of float64)


@dataclass(frozen=True)
class FeatureSpec:
    """Which lag windows the models see, and the transform applied to every views value."""

    lags: tuple[int, ...] = DEFAULT_LAGS
    target_transform: str = "none"

    def __post_init__(self) -> None:
        if not self.lags or any(n < 1 for n in self.lags):
            raise ViewcastError(f"lag windows must be positive day counts, got {self.lags}")
        if self.target_transform not in TARGET_TRANSFORMS:
            raise ViewcastError(
                f"unknown target transform {self.target_transform!r} "
                f"(choose from {', '.join(TARGET_TRANSFORMS)})"
            )


@dataclass(frozen=True)
class LagWindows:
    """Window-N rows of the dev days: a zero-copy view plus per-row split labels."""

    n: int
    names: np.ndarray  # series ids
    values: np.ndarray  # 1-D float64: every series' dev days, concatenated
    target: np.ndarray  # int64 position in `values` of each row's day
    code: np.ndarray  # int32 series of each row
    day: np.ndarray  # int32 day of each row
    split: np.ndarray  # int8 index into SPLIT_NAMES
    # for a direct model's targets days ahead (see `y_ahead`); None: not known (no bound)
    val_start: np.ndarray | None = None  # int64 per series: the first validation day
    last_day: np.ndarray | None = None  # int64 per series: the last day in `values`
    imputed: np.ndarray | None = None  # bool per value: a filled-in day, never a target

    def __len__(self) -> int:
        return len(self.target)

    @property
    def windows(self) -> np.ndarray:
        """(len(values) - N + 1, N) view: row target-N holds lag_1..lag_N of that target."""
        return sliding_window_view(self.values, self.n)[:, ::-1]

    def subset(self, keep: np.ndarray, split: np.ndarray | None = None) -> LagWindows:
        """The rows where `keep` holds (over the same values), with new split labels if given."""
        labels = self.split if split is None else split
        return replace(
            self,
            target=self.target[keep],
            code=self.code[keep],
            day=self.day[keep],
            split=labels[keep],
        )

    def rows(self, split: str) -> np.ndarray:
        """Row indices of one split ('train' or 'val')."""
        return np.flatnonzero(self.split == SPLIT_NAMES.index(split))

    def count(self, split: str) -> int:
        """How many rows one split has (no index array built)."""
        return int(np.count_nonzero(self.split == SPLIT_NAMES.index(split)))

    def x(self, rows: np.ndarray | None = None) -> np.ndarray:
        """lag_1..lag_N of the given rows, gathered into one (rows, N) array."""
        positions = self.target if rows is None else self.target[rows]
        return self.windows[positions - self.n]

    def y(self, rows: np.ndarray | None = None) -> np.ndarray:
        """The target day's views of the given rows."""
        return self.values[self.target if rows is None else self.target[rows]]

    def y_ahead(self, rows: np.ndarray, days: int) -> np.ndarray:
        """(rows, days): the views of each row's day and of the days - 1 after it (a direct
        model's targets), nan where that day is past the series' last day, was imputed, or, for a
        training row, is a validation day (a training row never learns from one)."""
        ahead = np.arange(days)
        day = self.day[rows].astype(np.int64)[:, None] + ahead
        code = self.code[rows]
        ok = np.ones(day.shape, bool)
        if self.last_day is not None:
            ok &= day <= self.last_day[code][:, None]
        if self.val_start is not None:
            training = (self.split[rows] == 0)[:, None]
            ok &= ~training | (day < self.val_start[code][:, None])
        position = np.where(ok, self.target[rows][:, None] + ahead, 0)
        if self.imputed is not None:
            ok &= ~self.imputed[position]
        return np.where(ok, self.values[position], np.nan)

    def lag1(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Yesterday's views of the given rows (the naive forecast), without gathering windows."""
        return self.values[(self.target if rows is None else self.target[rows]) - 1]

    def weekday(self, rows: np.ndarray | None = None) -> np.ndarray:
        """The target day's day of week of the given rows (Monday = 0)."""
        return weekday(self.day if rows is None else self.day[rows])

    def predict(self, model, rows: np.ndarray | None = None, chunk: int = PREDICT_CHUNK):
        """model.predict over the given rows' windows (and their weekdays), gathered `chunk`
        rows at a time: memory is bounded by the chunk, not by the rows (145k series x 60 days
        is 8.7M windows)."""
        rows = np.arange(len(self)) if rows is None else rows
        out = np.empty(len(rows))
        for lo in range(0, len(rows), chunk):
            part = rows[lo : lo + chunk]
            out[lo : lo + chunk] = model.predict(self.x(part), self.weekday(part))
        return out

    def frame(self) -> pd.DataFrame:
        """An inspectable table: series_id, date, split, y, lag_1..lag_N."""
        import pandas as pd  # only here: the CLI's start-up never pays for pandas

        out = pd.DataFrame(
            {
                "series_id": pd.Categorical.from_codes(self.code, self.names.astype(str)),
                "date": self.day.astype("datetime64[D]").astype("datetime64[s]"),
                "split": pd.Categorical.from_codes(self.split, SPLIT_NAMES),
                "y": self.y(),
            }
        )
        lags = pd.DataFrame(self.x(), columns=[f"lag_{j}" for j in range(1, self.n + 1)])
        return pd.concat([out, lags], axis=1)


def val_starts(names: np.ndarray, splits: Splits) -> np.ndarray:
    """Each series' first validation day (int64). A series too short to split (read only once
    finalize opens every day) gets the smallest int32, before any day: it has no training day,
    and no fold keeps a row of it."""
    unsplit = np.iinfo(np.int32).min
    return np.array(
        [s.val_start if (s := splits.series.get(str(name))) else unsplit for name in names],
        dtype=np.int64,
    )


def lag_windows(dev: ViewsTable, splits: Splits, n: int, only: str | None = None) -> LagWindows:
    """Window-N rows over the dev table; day t's inputs are days t-1..t-N of the same series.
    `only="val"`: the validation rows alone (no training row is indexed: 80M at Kaggle scale)."""
    starts, ends = dev.bounds()
    valid = ~dev.imputed
    first = starts[:, None] + np.arange(n)  # each series' first N days have no window
    valid[first[first < ends[:, None]]] = False
    val_start = val_starts(dev.names, splits).astype(np.int32)
    if only is not None:
        if only != "val":
            raise ViewcastError(f"only='val' or None, got {only!r}")
        valid &= dev.day >= np.repeat(val_start, ends - starts)  # each day's series' start
    target = np.flatnonzero(valid)
    code = dev.code[target]
    day = dev.day[target]
    split = (day >= val_start[code]).view(np.int8)
    last_day = np.where(ends > starts, dev.day[np.maximum(ends - 1, 0)], np.iinfo(np.int32).min)
    return LagWindows(
        n,
        dev.names,
        dev.views,
        target,
        code,
        day,
        split,
        val_start.astype(np.int64),
        last_day.astype(np.int64),
        dev.imputed,
    )


def fold(windows: LagWindows, splits: Splits, k: int) -> LagWindows:
    """Rolling-origin fold k: fold 1 is the standard split; fold k validates on the `val_days`
    days that end where fold k-1's validation starts, trains on every day before them, and drops
    the days after them."""
    if k < 1:
        raise ViewcastError(f"folds are numbered from 1, got {k}")
    if k == 1:
        return windows
    shifted = val_starts(windows.names, splits) - (k - 1) * splits.val_days  # per series
    start = shifted[windows.code]
    keep = windows.day < start + splits.val_days
    moved = replace(windows, val_start=shifted, last_day=shifted + splits.val_days - 1)
    return moved.subset(keep, split=(windows.day >= start).astype(np.int8))


def build(ws: Paths, spec: FeatureSpec) -> dict[int, LagWindows]:
    """Every window of the spec over the workspace's dev days (test days are never read)."""
    store = Store(ws)
    dev, splits = store.read_dev(), store.read_splits()
    if len(dev) == 0:
        raise ViewcastError(
            "no series is long enough to split into train/validation/test: ingest more days "
            f"(each series needs more than {splits.val_days + splits.test_days})"
        )
    return {n: lag_windows(dev, splits, n) for n in spec.lags}


def summarise(windows: dict[int, LagWindows]) -> list[dict]:
    """Rows per window and split, for the CLI table and features.json."""
    return [summary_row(w) for w in windows.values()]


def summary_row(w: LagWindows) -> dict:
    return {
        "window": w.n,
        "series": len(np.unique(w.code)),
        "train_rows": int((w.split == 0).sum()),
        "val_rows": int((w.split == 1).sum()),
    }


def summarise_spec(ws: Paths, spec: FeatureSpec) -> list[dict]:
    """summarise(build(ws, spec)), one window at a time (at Kaggle scale each window's row
    arrays are 1.7 GB; four at once would be 7)."""
    store = Store(ws)
    dev, splits = store.read_dev(), store.read_splits()
    if len(dev) == 0:
        build(ws, spec)  # the same message
    return [summary_row(lag_windows(dev, splits, n)) for n in spec.lags]


def save_spec(ws: Paths, spec: FeatureSpec, summary: list[dict]) -> Path:
    """Record the spec beside the store generation it was built from."""
    ws.features.mkdir(parents=True, exist_ok=True)
    gen = Store(ws).generation()
    payload = {**asdict(spec), "store_generation": gen.name if gen else None, "windows": summary}
    path = ws.features / SPEC_FILE
    write_text(path, json.dumps(payload, indent=1))
    return path


def load_spec(ws: Paths) -> FeatureSpec:
    """The spec the last `viewcast features` recorded."""
    found = recorded_spec(ws)
    if found is None:
        raise ViewcastError(f"no features in {ws.features}: run `viewcast features` first")
    return found[0]


def recorded_spec(ws: Paths) -> tuple[FeatureSpec, bool] | None:
    """The recorded spec and whether it was built from the live store generation (False: the
    store changed since), or None when no spec was recorded."""
    path = ws.features / SPEC_FILE
    if not path.exists():
        return None
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        spec = FeatureSpec(tuple(payload["lags"]), payload["target_transform"])
    except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError, ViewcastError) as err:
        why = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        raise ViewcastError(
            f"{path}: damaged ({why.splitlines()[0][:80]}); `viewcast features` writes it again"
        ) from None
    gen = Store(ws).generation()
    fresh = payload.get("store_generation") == (gen.name if gen else None)
    return spec, fresh


def export(windows: LagWindows, path: Path) -> None:
    """Write the window's rows as parquet or CSV (by extension), atomically."""
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise ViewcastError(f"{path}: export format must be .parquet or .csv")
    frame = windows.frame()
    if suffix == ".parquet":
        atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))
    else:  # a CSV may be opened in a spreadsheet: no series id may run as a formula
        frame["series_id"] = frame["series_id"].astype(str).map(neutralise)
        atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))


def select_series(windows: LagWindows, names: list[str] | None) -> LagWindows:
    """The rows of the named series only (all rows when `names` is empty)."""
    if not names:
        return windows
    unknown = sorted(set(names) - set(windows.names.astype(str)))
    if unknown:
        raise ViewcastError(f"unknown series (not split or not ingested): {', '.join(unknown)}")
    return windows.subset(np.isin(windows.names.astype(str)[windows.code], names))


def data_params(ws: Paths, windows: LagWindows) -> dict:
    """The data.* params of a run: which store generation, series and rows it saw."""
    gen = Store(ws).generation()
    series = np.unique(windows.code)
    names = windows.names[series].astype(str)
    return {
        "store_generation": gen.name if gen else "",
        "source": str(gen / "dev.parquet") if gen else "",
        "series_count": len(series),
        "series": ",".join(names[:5]) + (f",... ({len(names)})" if len(names) > 5 else ""),
        "lags": windows.n,
        "rows_train": int((windows.split == 0).sum()),
        "rows_val": int((windows.split == 1).sum()),
    }
