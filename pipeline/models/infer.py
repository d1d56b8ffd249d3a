"""Torch-free inference: a saved model's forward pass in NumPy, for fast daily forecasts.

`viewcast forecast` runs from a timer; importing torch costs over a second, more than the whole
prediction. Every saved model also holds its weights as weights.npz (see families.save), and this
module replays `ViewsModel.forward` in evaluation mode with them: the same transform, per-row scale
and standardisation, then the layers in `build_net`'s order (batch norm with its moving averages,
dropout as the identity). A test checks it against torch for every family. `paths` draws H days
ahead from a window (a one-day model's predictions fed back, a direct model's days at once), for
forecasts, backtests and a served pyfunc model alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.data.calendar import weekday
from pipeline.models.config import EnsembleConfig, ModelConfig
from pipeline.models.safe import TREES_FILE, check_folder, load_arrays, load_trees

CONFIG_FILE, WEIGHTS_FILE, ENSEMBLE_FILE = "model.json", "weights.npz", "ensemble.json"
BATCHNORM_EPS = 1e-5  # torch.nn.BatchNorm1d's default


@dataclass(frozen=True)
class NumpyModel:
    """A saved ViewsModel as arrays: predict(views windows) -> views of the next day."""

    cfg: ModelConfig
    weights: dict[str, np.ndarray]
    trees: object = None  # hgb: the fitted scikit-learn trees (trees.skops)

    def _transform(self, v: np.ndarray) -> np.ndarray:
        return np.log1p(v) if self.cfg.target_transform == "log1p" else v

    def _untransform(self, v: np.ndarray) -> np.ndarray:
        return np.expm1(v) if self.cfg.target_transform == "log1p" else v

    def _net(self, h: np.ndarray) -> np.ndarray:
        w, cfg = self.weights, self.cfg
        if cfg.model == "hgb":
            return self.trees.predict(h.astype(np.float64))[:, None].astype(np.float32)
        if cfg.model == "linear":
            return h @ w["net.weight"].T + w["net.bias"]
        if cfg.model == "sigmoid":
            h = 1 / (1 + np.exp(-(h @ w["net.0.weight"].T + w["net.0.bias"])))
            return h @ w["net.2.weight"].T + w["net.2.bias"]
        i = 0  # walk the Sequential as build_net lays it out
        for _ in range(cfg.layers):
            h = h @ w[f"net.{i}.weight"].T + w[f"net.{i}.bias"]
            i += 1
            if cfg.batchnorm:
                mean, var = w[f"net.{i}.running_mean"], w[f"net.{i}.running_var"]
                h = (h - mean) / np.sqrt(var + BATCHNORM_EPS) * w[f"net.{i}.weight"]
                h = h + w[f"net.{i}.bias"]
                i += 1
            h = np.maximum(h, 0)
            i += 1 + (cfg.dropout > 0)
        return h @ w[f"net.{i}.weight"].T + w[f"net.{i}.bias"]

    @property
    def reach(self) -> int:
        """Days one pass predicts (a direct model's H; 1 otherwise)."""
        return self.cfg.horizon

    def predict(self, x: np.ndarray, weekday: np.ndarray | None = None) -> np.ndarray:
        """Views of the day after each window (rows of lag_1..lag_N views; `weekday`: that
        day's day of week, Monday = 0, for a model with the weekday calendar)."""
        if self.cfg.model == "naive":
            return np.asarray(x, dtype=np.float32)[:, -1].astype(np.float64)
        return self.predict_days(x, weekday)[:, 0]

    def predict_days(self, x: np.ndarray, weekday: np.ndarray | None = None) -> np.ndarray:
        """(rows, reach): the views of days 1..H after each window (H = 1 for a one-day
        model; `weekday`: day 1's day of week)."""
        x = np.asarray(x, dtype=np.float32)
        if self.cfg.model == "naive":
            return x[:, -1:].astype(np.float64)
        w = self.weights
        if self.cfg.year:  # the recent days and the week a year back; the level: recent days
            x = x[:, list(self.cfg.columns)]
        t = self._transform(x)
        level = t[:, : self.cfg.recent] if self.cfg.year else t
        if self.cfg.scaling == "window-median":  # torch's median: the lower middle value
            middle = (level.shape[1] - 1) // 2
            scale = np.partition(level, middle, axis=1)[:, middle : middle + 1] + np.float32(1)
        elif self.cfg.scaling in ("window-mean", "last-week-mean"):
            days = level if self.cfg.scaling == "window-mean" else level[:, :7]
            scale = days.mean(axis=1, keepdims=True) + np.float32(1)
        else:
            scale = np.ones((len(x), 1), np.float32)
        h = (t / scale - w["x_mean"]) / w["x_std"]
        if self.cfg.calendar == "weekday":
            if weekday is None:
                raise ValueError("this model reads the weekday: pass each row's weekday")
            h = np.concatenate([h, np.eye(7, dtype=np.float32)[np.asarray(weekday)]], axis=1)
        out = self._net(h)
        return self._untransform((out * w["y_std"] + w["y_mean"]) * scale).astype(np.float64)


@dataclass(frozen=True)
class NumpyEnsemble:
    """The (weighted) mean of NumPy members' forecasts (see models.EnsembleModel)."""

    members: tuple[NumpyModel, ...]
    weights: tuple[float, ...] | None = None
    first: tuple[float, ...] | None = None  # day 1's weights where they differ (config.Blend)

    @property
    def cfg(self) -> EnsembleConfig:
        members = tuple(m.cfg for m in self.members)
        return EnsembleConfig(members, weights=self.weights, first=self.first)

    @property
    def day_one(self) -> tuple[float, ...] | None:
        """The weights of a one-day forecast."""
        return self.weights if self.first is None else self.first

    def predict(self, x: np.ndarray, weekday: np.ndarray | None = None) -> np.ndarray:
        preds = [m.predict(x[:, : m.cfg.lags], weekday) for m in self.members]
        return combine(preds, self.day_one)

    @property
    def reach(self) -> int:
        return 1  # its members' own reaches: see paths


def combine(preds: list[np.ndarray], weights: tuple[float, ...] | None) -> np.ndarray:
    """Members' forecasts -> the ensemble's: their mean, or their weighted sum."""
    if weights is None:
        return np.mean(preds, axis=0)
    return np.tensordot(np.asarray(weights), np.asarray(preds), axes=1)


def recursive_paths(model, x: np.ndarray, first_day: np.ndarray, horizon: int) -> np.ndarray:
    """(origins, horizon) forecasts of days first_day .. first_day + horizon - 1 from windows `x`
    (rows of lag_1..lag_N), each prediction fed back as the next day's lag_1; never negative."""
    window = np.array(x, dtype=np.float64)
    out = np.empty((len(window), horizon))
    for k in range(horizon):
        pred = np.maximum(model.predict(window, weekday(first_day + k)), 0.0)
        out[:, k] = pred
        window = np.concatenate([pred[:, None], window[:, :-1]], axis=1)
    return out


def paths(model, x: np.ndarray, first_day: np.ndarray, horizon: int) -> np.ndarray:
    """(origins, horizon) forecasts: a direct model's own days 1..H at once (past its H, its
    last H days fed back as the newest lags and asked again), a one-day model's recursively; an
    ensemble's, the (weighted) mean of its members' paths (a stepwise one's day 1 with its day-1
    weights)."""
    members = getattr(model, "members", None)
    if members is not None:
        found = [paths(m, x[:, : m.cfg.lags], first_day, horizon) for m in members]
        out = combine(found, model.weights)
        if model.first is not None:  # a stepwise model: day 1 blended its own way
            out[:, 0] = combine([f[:, 0] for f in found], model.first)
        return out
    reach = getattr(model, "reach", 1)
    if reach <= 1:
        return recursive_paths(model, x, first_day, horizon)
    window = np.array(x, dtype=np.float64)
    parts, done = [], 0
    while done < horizon:
        block = np.maximum(model.predict_days(window, weekday(first_day + done)), 0.0)
        block = block[:, : horizon - done]
        parts.append(block)
        done += block.shape[1]
        window = np.concatenate([block[:, ::-1], window], axis=1)[:, : x.shape[1]]
    return np.concatenate(parts, axis=1)


def has_weights(folder: Path) -> bool:
    """Whether a saved model (or every member of a saved ensemble) has weights.npz."""
    if (folder / ENSEMBLE_FILE).exists():
        count = json.loads((folder / ENSEMBLE_FILE).read_text())["members"]
        return all(has_weights(folder / f"member-{i}") for i in range(count))
    return (folder / WEIGHTS_FILE).exists()


def load(folder: Path, checked: bool = False) -> NumpyModel | NumpyEnsemble:
    """The model saved in `folder` (model.json + weights.npz), without torch or pickle (a
    folder holding a pickle is refused: pipeline.models.safe)."""
    if not checked:
        check_folder(folder)
    if (folder / ENSEMBLE_FILE).exists():
        spec = json.loads((folder / ENSEMBLE_FILE).read_text())
        members = tuple(load(folder / f"member-{i}", True) for i in range(spec["members"]))
        weights, first = spec.get("weights"), spec.get("first")
        return NumpyEnsemble(
            members,
            None if weights is None else tuple(weights),
            None if first is None else tuple(first),
        )
    cfg = ModelConfig(**json.loads((folder / CONFIG_FILE).read_text()))
    arrays = load_arrays(folder / WEIGHTS_FILE)
    weights = {k: v.astype(np.float32) for k, v in arrays.items()}
    trees = None
    if (folder / TREES_FILE).exists():  # scikit-learn (and skops) imported only here
        trees = load_trees(folder / TREES_FILE)
    return NumpyModel(cfg, weights, trees)
