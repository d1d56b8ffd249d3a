"""The calendar inputs beside the lags: a day's weekday (numpy only: the pyfunc model runs it)."""

from __future__ import annotations

import numpy as np


def weekday(day: np.ndarray) -> np.ndarray:
    """Day numbers (days since 1970-01-01, a Thursday) -> day of week, Monday = 0 (int8): the
    weekday calendar's input, for training (pipeline.data.features), forecasts and the pyfunc
    model."""
    return ((np.asarray(day, np.int64) + 3) % 7).astype(np.int8)
