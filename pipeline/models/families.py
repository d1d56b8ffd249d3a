"""The lecture's models, wrapped so that views go in and views come out.

L1: linear  y = b + sum_j w_j x_j
L2: sigmoid y = b + c^T sigmoid(b + W x), then ReLU networks of `layers` hidden layers
L8: optional batch normalisation (moving averages at evaluation) and dropout
Baselines: naive  y = x_N  (N = 1: yesterday, the lecture's "one-day shift"; N = 7: seasonal naive)

`ViewsModel` holds everything between raw lag windows and views as buffers, so a saved state_dict
plus its `ModelConfig` reproduce predictions exactly:
    views -> target transform (none | log1p) -> per-series scale (none | window mean)
          -> feature standardisation (training statistics) -> net -> back again.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.data.errors import ViewcastError
from pipeline.models.config import EnsembleConfig, ModelConfig
from pipeline.models.infer import combine
from pipeline.models.safe import TREES_FILE, check_folder, load_arrays, load_trees, save_trees

__all__ = ["EnsembleModel", "ModelConfig", "ViewsModel", "build_net", "combine", "load", "save"]

CONFIG_FILE, WEIGHTS_FILE = "model.json", "weights.npz"
ENSEMBLE_FILE = "ensemble.json"


def build_net(cfg: ModelConfig) -> nn.Module:
    """The function with unknowns, on standardised inputs (none for the naive baseline; the
    trees of the hgb family are fitted by scikit-learn, outside torch: see ViewsModel.trees)."""
    if cfg.model in ("naive", "hgb"):
        return nn.Identity()
    outputs = cfg.horizon  # 1, or days 1..H of a direct model
    if cfg.model == "linear":
        return nn.Linear(cfg.inputs, outputs)
    if cfg.model == "sigmoid":
        return nn.Sequential(
            nn.Linear(cfg.inputs, cfg.width), nn.Sigmoid(), nn.Linear(cfg.width, outputs)
        )
    blocks: list[nn.Module] = []
    fan_in = cfg.inputs
    for _ in range(cfg.layers):
        blocks.append(nn.Linear(fan_in, cfg.width))
        if cfg.batchnorm:
            blocks.append(nn.BatchNorm1d(cfg.width))
        blocks.append(nn.ReLU())
        if cfg.dropout:
            blocks.append(nn.Dropout(cfg.dropout))
        fan_in = cfg.width
    blocks.append(nn.Linear(fan_in, outputs))
    return nn.Sequential(*blocks)


class ViewsModel(nn.Module):
    """Lag windows in views (lag_1..lag_N) -> tomorrow's views, with all scaling inside (a
    direct model: the views of days 1..H, one column each; its targets are standardised with one
    mean and deviation over all H days)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.net = build_net(cfg)
        self.trees = None  # hgb: a fitted HistGradientBoostingRegressor on the encoded inputs
        read = len(cfg.columns)  # the lag columns it reads
        if cfg.year:
            self.register_buffer("columns", torch.tensor(cfg.columns), persistent=False)
        for name, size in (("x_mean", read), ("x_std", read), ("y_mean", 1), ("y_std", 1)):
            self.register_buffer(name, torch.zeros(size) if "mean" in name else torch.ones(size))

    # --- the scaled space the net is fitted in ---
    def _transform(self, v: torch.Tensor) -> torch.Tensor:
        return torch.log1p(v) if self.cfg.target_transform == "log1p" else v

    def _untransform(self, v: torch.Tensor) -> torch.Tensor:
        return torch.expm1(v) if self.cfg.target_transform == "log1p" else v

    def scale_of(self, x: torch.Tensor) -> torch.Tensor:
        """Per-row scale: 1, or a level of the (transformed) input window + 1 (for zero days):
        its mean, its median (the lower middle value: a spike moves it little), or the mean of
        its last 7 days (lag_1..lag_7: the current level, not the window's). `x`: the columns
        it reads (`read`); a year of memory takes the level of its recent days."""
        if self.cfg.scaling == "none":
            return torch.ones(x.shape[0], 1, dtype=x.dtype, device=x.device)
        t = self._transform(x[:, : self.cfg.recent] if self.cfg.year else x)
        if self.cfg.scaling == "window-median":
            return t.median(dim=1, keepdim=True).values + 1.0
        if self.cfg.scaling == "last-week-mean":
            t = t[:, :7]
        return t.mean(dim=1, keepdim=True) + 1.0

    def encode(
        self,
        x: torch.Tensor,
        y: torch.Tensor | None = None,
        weekday: torch.Tensor | None = None,
    ):
        """Views -> standardised inputs (and targets), as the net sees them; with the weekday
        calendar, the target days' weekdays (Monday = 0) follow as 7 indicators."""
        x = self.read(x)
        scale = self.scale_of(x)
        xs = (self._transform(x) / scale - self.x_mean) / self.x_std
        if self.cfg.calendar == "weekday":
            if weekday is None:
                raise ViewcastError("this model reads the weekday: pass each row's weekday")
            onehot = F.one_hot(torch.as_tensor(weekday, device=x.device).long(), 7)
            xs = torch.cat([xs, onehot.to(xs.dtype)], dim=1)
        if y is None:
            return xs, None, scale
        ys = (_columns(self._transform(y)) / scale - self.y_mean) / self.y_std
        return xs, ys, scale

    def decode(self, out: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """The net's output -> views: (rows,), or (rows, H) for a direct model."""
        views = self._untransform((out * self.y_std + self.y_mean) * scale)
        return views.squeeze(1) if views.shape[1] == 1 else views

    def read(self, x: torch.Tensor) -> torch.Tensor:
        """The lag columns the model reads (a year of memory: the recent days, then the week a
        year back; its per-row scale is the recent days' level)."""
        return x.index_select(1, self.columns) if self.cfg.year else x

    @torch.no_grad()
    def fit_normalisation(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Feature and target statistics from the training rows only."""
        x = self.read(x)
        scale = self.scale_of(x)
        xs = self._transform(x) / scale
        ys = (_columns(self._transform(y)) / scale).reshape(-1, 1)  # every day alike
        self.x_mean.copy_(xs.mean(0))
        self.x_std.copy_(xs.std(0).clamp_min(1e-6))
        self.y_mean.copy_(ys.mean(0))
        self.y_std.copy_(ys.std(0).clamp_min(1e-6))

    @property
    def reach(self) -> int:
        """Days one forward pass predicts (a direct model's H; 1 otherwise)."""
        return self.cfg.horizon

    @property
    def trainable(self) -> bool:
        """False for the naive baseline, which has no unknowns to fit."""
        return self.cfg.model != "naive"

    def forward(self, x: torch.Tensor, weekday: torch.Tensor | None = None) -> torch.Tensor:
        if not self.trainable:  # y = x_N: the view N days before, as it is
            return x[:, -1]
        xs, _, scale = self.encode(x, None, weekday)
        return self.decode(self.body(xs), scale)

    def body(self, xs: torch.Tensor) -> torch.Tensor:
        """Encoded inputs -> the output in the scaled space: the net, or the trees."""
        if self.trees is None:
            return self.net(xs)
        out = self.trees.predict(xs.detach().cpu().numpy().astype(np.float64))
        return torch.as_tensor(out, dtype=xs.dtype, device=xs.device).unsqueeze(1)

    def predict(self, x: np.ndarray, weekday: np.ndarray | None = None) -> np.ndarray:
        """Views of the day after each window (rows of lag_1..lag_N views; `weekday`: that
        day's day of week, Monday = 0, for a model with the weekday calendar), in evaluation
        mode (a direct model: its day 1)."""
        out = self.predict_days(x, weekday)
        return out[:, 0] if out.ndim == 2 else out

    @torch.no_grad()
    def predict_days(
        self, x: np.ndarray, weekday: np.ndarray | None = None, batch: int = 262_144
    ) -> np.ndarray:
        """The views of days 1..H after each window: (rows, H) for a direct model, (rows,)
        for a one-day model."""
        was_training = self.training
        self.eval()
        device = self.x_mean.device  # buffers: the naive baseline has no parameters
        x = np.ascontiguousarray(x, dtype=np.float32)  # views of reversed windows are fine too
        days = None if weekday is None else torch.as_tensor(np.asarray(weekday, np.int64))
        out = [
            self(
                torch.as_tensor(x[i : i + batch], device=device),
                None if days is None else days[i : i + batch].to(device),
            ).cpu()
            for i in range(0, len(x), batch)
        ]
        self.train(was_training)
        if not out:
            return np.zeros((0, self.reach)) if self.reach > 1 else np.zeros(0)
        return torch.cat(out).numpy().astype(np.float64)


def _columns(y: torch.Tensor) -> torch.Tensor:
    """Targets as (rows, days): one day's (rows,) become one column."""
    return y.unsqueeze(1) if y.dim() == 1 else y


class EnsembleModel(nn.Module):
    """The mean forecast of several trained models (Kaggle's variance reduction), or their
    weighted mean (`weights`, summing to 1: a greedy ensemble): each member reads the first N of
    the lags it was trained on. `first`: other weights for day 1 (a stepwise model, see
    config.Blend)."""

    def __init__(
        self,
        members: list[ViewsModel],
        weights: list[float] | None = None,
        first: list[float] | None = None,
    ) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.weights = None if weights is None else tuple(float(w) for w in weights)
        self.first = None if first is None else tuple(float(w) for w in first)
        self.cfg = EnsembleConfig(
            tuple(m.cfg for m in members), weights=self.weights, first=self.first
        )

    @property
    def day_one(self) -> tuple[float, ...] | None:
        """The weights of a one-day forecast."""
        return self.weights if self.first is None else self.first

    def forward(self, x: torch.Tensor, weekday: torch.Tensor | None = None) -> torch.Tensor:
        outs = [m(x[:, : m.cfg.lags], weekday) for m in self.members]
        preds = torch.stack([o[:, 0] if o.dim() == 2 else o for o in outs])  # day 1
        if self.day_one is None:
            return preds.mean(0)
        return (
            preds * torch.tensor(self.day_one, dtype=preds.dtype, device=preds.device)[:, None]
        ).sum(0)

    def predict(self, x: np.ndarray, weekday: np.ndarray | None = None) -> np.ndarray:
        preds = [m.predict(x[:, : m.cfg.lags], weekday) for m in self.members]
        return combine(preds, self.day_one)

    @property
    def reach(self) -> int:
        return 1  # its members' own reaches: see infer.paths


def save(model: ViewsModel | EnsembleModel, folder: Path) -> None:
    """state_dict as weights.npz + config as JSON (+ trees in skops' format): the exact model,
    bit for bit, with nothing pickled."""
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(model, EnsembleModel):
        for i, member in enumerate(model.members):
            save(member, folder / f"member-{i}")
        spec = {"members": len(model.members)}
        if model.weights is not None:
            spec["weights"] = list(model.weights)
        if model.first is not None:
            spec["first"] = list(model.first)
        (folder / ENSEMBLE_FILE).write_text(json.dumps(spec))
        return
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if model.trees is not None:
        save_trees(model.trees, folder / TREES_FILE)
    # read back by torch (load) and by the torch-free inference (pipeline.models.infer)
    np.savez(folder / WEIGHTS_FILE, **{k: v.numpy() for k, v in state.items()})
    (folder / CONFIG_FILE).write_text(json.dumps(asdict(model.cfg), indent=1))


def load(folder: Path, checked: bool = False) -> ViewsModel | EnsembleModel:
    """Rebuild a saved model on the CPU, in evaluation mode (a folder holding a pickle is
    refused: pipeline.models.safe)."""
    if not checked:
        check_folder(folder)
    if (folder / ENSEMBLE_FILE).exists():
        spec = json.loads((folder / ENSEMBLE_FILE).read_text())
        members = [load(folder / f"member-{i}", True) for i in range(spec["members"])]
        return EnsembleModel(members, spec.get("weights"), spec.get("first")).eval()
    cfg = ModelConfig(**json.loads((folder / CONFIG_FILE).read_text()))
    model = ViewsModel(cfg)
    arrays = load_arrays(folder / WEIGHTS_FILE)
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in arrays.items()})
    if (folder / TREES_FILE).exists():
        model.trees = load_trees(folder / TREES_FILE)
    return model.eval()
