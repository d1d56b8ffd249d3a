"""The pyfunc flavour: every logged viewcast model is also an MLflow model.

`mlflow.pyfunc.load_model("models:/viewcast@champion")` and `mlflow models serve` load this class.
It wraps the NumPy inference of pipeline.models.infer, so serving needs numpy, pandas and
mlflow, not torch. The logged model carries a copy of this module and the few it imports
(SERVING_CODE in pipeline.tracking, MLflow's `code_paths`), so it loads where viewcast is not
installed.

Input: one row per window, columns lag_1..lag_N (lag_1 = the most recent day's views), as
floats, and for a model with the weekday calendar a `date` column: the day forecast (YYYY-MM-DD).
Output: a `views` column, the forecast of that day (never negative). The parameter `horizon` H
(default 1; `params={"horizon": 7}`, or `"params"` in a served request) adds `views_2`..`views_H`:
the days after it, as `viewcast forecast --horizon H` draws them (a one-day model's predictions
fed back, a direct model's days at once, an ensemble's members' paths blended).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from pipeline.data.calendar import weekday as day_of_week
from pipeline.models.infer import load, paths

MODEL_FOLDER = "model"  # the artifact key: the saved model folder (model.json, weights.npz...)
DATE_COLUMN = "date"  # the forecast day, for models that read its weekday
HORIZON = "horizon"  # the parameter: days ahead, 1 (tomorrow) unless asked


def lag_columns(n: int) -> list[str]:
    """The input columns of a model that sees `n` days: lag_1 (most recent) .. lag_n."""
    return [f"lag_{j}" for j in range(1, n + 1)]


class ViewcastModel(PythonModel):
    """A saved viewcast model (or ensemble) behind MLflow's pyfunc interface."""

    def load_context(self, context) -> None:
        self._model = load(Path(context.artifacts[MODEL_FOLDER]))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        frame = pd.DataFrame(model_input)
        columns = lag_columns(self._model.cfg.lags)
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ValueError(f"input lacks the columns {missing} (lag_1 is the most recent day)")
        x = frame[columns].to_numpy(np.float32)
        asked = (params or {}).get(HORIZON)
        horizon = 1 if asked is None else int(asked)
        if horizon < 1:
            raise ValueError(f"the parameter horizon must be at least 1, got {horizon}")
        days = np.zeros(len(frame), np.int64)  # a model without the calendar ignores the day
        weekday = None
        if self._model.cfg.calendar != "none":
            if DATE_COLUMN not in frame.columns:
                raise ValueError("input lacks the column 'date' (the day forecast, YYYY-MM-DD)")
            days = pd.to_datetime(frame[DATE_COLUMN]).to_numpy("datetime64[D]").astype(np.int64)
            weekday = day_of_week(days)
        out = {"views": np.maximum(self._model.predict(x, weekday), 0.0)}
        if horizon > 1:
            ahead = paths(self._model, x, days, horizon)
            out |= {f"views_{h}": ahead[:, h - 1] for h in range(2, horizon + 1)}
        return pd.DataFrame(out)
