"""Everything that talks to MLflow: the workspace's SQLite store, training runs, model loading.

Names are the same for every model family, so the UI's compare view lines runs up:
params `model.*`, `train.*`, `data.*`; per-epoch metrics `train_loss`, `val_mae_epoch`, `grad_norm`,
`lr`; final metrics `train_mae`, `val_mae` (the returned, best-epoch model: what selection reads),
`best_epoch`, `epochs_run`, `train_seconds`.
A training run never logs a test metric: test rows are not even opened on this path. Test scores
live only in submission and final runs (see pipeline.holdout).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.config import Workspace
from pipeline.errors import ViewcastError

if TYPE_CHECKING:
    from pipeline.features import LagWindows
    from pipeline.models import ModelConfig, ViewsModel
    from pipeline.train import TrainConfig, TrainResult

EXPERIMENT = "viewcast"
MODEL_ARTIFACT = "model"
REGISTERED_MODEL = "viewcast"
CURVE_NAMES = {"val_mae": "val_mae_epoch"}  # the final `val_mae` is the restored model's


def connect(ws: Workspace):
    """Point MLflow at the workspace's SQLite store (explicitly: never a global default)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow

    for name in ("mlflow", "alembic"):  # schema migrations and store chatter are not for users
        logging.getLogger(name).setLevel(logging.WARNING)

    ws.mlruns.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(ws.tracking_uri)
    mlflow.set_registry_uri(ws.tracking_uri)
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        mlflow.create_experiment(EXPERIMENT, artifact_location=(ws.mlruns / "artifacts").as_uri())
    mlflow.set_experiment(EXPERIMENT)
    return mlflow


def session(ws: Workspace):
    """(mlflow, client, experiment id) of the workspace's store, for code that searches runs."""
    mlflow = connect(ws)
    experiment = mlflow.get_experiment_by_name(EXPERIMENT).experiment_id
    return mlflow, mlflow.tracking.MlflowClient(), experiment


def flat_params(mcfg: ModelConfig, tcfg: TrainConfig, data: dict) -> dict[str, str]:
    """model.*, train.*, data.*: the whole configuration, the same keys for every family."""
    params = {f"model.{k}": v for k, v in asdict(mcfg).items()}
    params |= {f"train.{k}": v for k, v in asdict(tcfg).items()}
    params |= {f"data.{k}": v for k, v in data.items()}
    return {k: str(v) for k, v in params.items()}


def digest(*arrays: np.ndarray) -> str:
    """A short content hash of the data a run saw (MLflow dataset digest)."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).view(np.uint8).data)
    return h.hexdigest()[:16]


def log_training(
    ws: Workspace,
    windows: LagWindows,
    mcfg: ModelConfig,
    tcfg: TrainConfig,
    result: TrainResult,
    data: dict,
    run_name: str | None = None,
    tags: dict[str, str] | None = None,
    parent_run_id: str | None = None,
    metrics: dict[str, float] | None = None,
) -> str:
    """One MLflow run per training: params, curves, final MAE, datasets, PNG and the model."""
    from mlflow.entities import Metric

    mlflow = connect(ws)
    with mlflow.start_run(
        run_name=run_name, parent_run_id=parent_run_id, nested=parent_run_id is not None
    ) as run:
        client = mlflow.tracking.MlflowClient()
        now = int(time.time() * 1000)
        curves = [
            Metric(CURVE_NAMES.get(key, key), float(value), now, epoch)
            for key, values in result.history.items()
            for epoch, value in enumerate(values, start=1)
            if np.isfinite(value)
        ]
        finals = {
            "train_mae": result.train_mae,
            "val_mae": result.val_mae,
            "best_epoch": result.best_epoch,
            "epochs_run": result.epochs_run,
            "train_seconds": result.seconds,
        }
        finals = {k: float(v) for k, v in finals.items() if np.isfinite(v)}
        finals |= {f"rows_{k}": float(v) for k, v in result.rows.items()}
        finals |= {k: float(v) for k, v in (metrics or {}).items()}
        curves += [Metric(k, v, now, 0) for k, v in finals.items()]
        for lo in range(0, len(curves), 1000):  # MLflow's batch limit
            client.log_batch(run.info.run_id, metrics=curves[lo : lo + 1000])
        client.log_batch(
            run.info.run_id,
            params=[mlflow.entities.Param(k, v) for k, v in flat_params(mcfg, tcfg, data).items()],
            tags=[
                mlflow.entities.RunTag(k, str(v))
                for k, v in {"device": result.device, "stage": "train", **(tags or {})}.items()
            ],
        )
        _log_datasets(mlflow, windows, data)
        if result.history:
            with tempfile.TemporaryDirectory() as tmp:
                learning_curve_png(result.history, Path(tmp) / "learning_curve.png")
                mlflow.log_artifact(str(Path(tmp) / "learning_curve.png"))
        _log_model(mlflow, result.model, data)
        return run.info.run_id


def log_ensemble(
    ws: Workspace,
    windows: LagWindows,
    model,
    members: list[str],
    scores: dict[str, float],
    data: dict,
    run_name: str,
    tags: dict[str, str],
    parent_run_id: str | None = None,
) -> str:
    """One MLflow run for an ensemble: its member runs, MAE, datasets and the model."""
    mlflow = connect(ws)
    nested = parent_run_id is not None
    with mlflow.start_run(
        run_name=run_name, parent_run_id=parent_run_id, tags=tags, nested=nested
    ) as run:
        params = {"model.model": "ensemble", "model.lags": model.cfg.lags}
        params |= {"ensemble.size": len(members), "ensemble.members": ",".join(members)}
        params |= {f"data.{k}": v for k, v in data.items()}
        mlflow.log_params({k: str(v) for k, v in params.items()})
        mlflow.log_metrics({k: float(v) for k, v in scores.items() if np.isfinite(v)})
        _log_datasets(mlflow, windows, data)
        _log_model(mlflow, model, data)
        return run.info.run_id


def _log_model(mlflow, model, data: dict) -> None:
    """The model folder (weights, config, the data it saw) as the run's `model/` artifact."""
    from pipeline.models import save

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / MODEL_ARTIFACT
        save(model, folder)
        (folder / "data.json").write_text(json.dumps(data, indent=1))
        mlflow.log_artifacts(str(folder), MODEL_ARTIFACT)


def _log_datasets(mlflow, windows: LagWindows, data: dict) -> None:
    """Training and validation rows as MLflow dataset inputs, with content digests."""
    from mlflow.data.numpy_dataset import from_numpy

    for split in ("train", "val"):
        rows = windows.rows(split)
        if not len(rows):  # a refit on all history has no validation rows
            continue
        with warnings.catch_warnings():  # "file" and "" both map to the local source class
            warnings.filterwarnings("ignore", "The specified dataset source can be interpreted")
            ds = from_numpy(
                features=windows.x(rows),
                targets=windows.y(rows),
                source=data["source"],
                name=f"{split}-lags{windows.n}",
                digest=digest(windows.target[rows], windows.values[windows.target[rows]]),
            )
        mlflow.log_input(ds, context="training" if split == "train" else "validation")


def learning_curve_png(history: dict[str, list[float]], path: Path) -> None:
    """Loss and validation MAE over epochs, with the gradient norm on its own axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = np.arange(1, len(history["train_loss"]) + 1)
    fig, (ax_loss, ax_val, ax_grad) = plt.subplots(3, 1, figsize=(7, 8), sharex=True)
    ax_loss.plot(epochs, history["train_loss"], label="training loss (scaled)")
    ax_loss.set_ylabel("training loss")
    ax_loss.set_yscale("log")
    ax_val.plot(epochs, history["val_mae"], color="tab:orange", label="validation MAE")
    ax_val.set_ylabel("validation MAE (views)")
    ax_grad.plot(epochs, history["grad_norm"], color="tab:green")
    ax_grad.set_ylabel("gradient norm")
    ax_grad.set_yscale("log")
    ax_grad.set_xlabel("epoch")
    fig.suptitle("learning curve")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def model_folder(ws: Workspace, run_id: str) -> Path:
    """The folder of a run's logged model: read in place from the workspace's local artifact
    store, downloaded only from a remote one."""
    from urllib.parse import unquote, urlparse

    mlflow = connect(ws)
    try:
        uri = mlflow.tracking.MlflowClient().get_run(run_id).info.artifact_uri
        parsed = urlparse(uri)
        local = Path(unquote(parsed.path)) / MODEL_ARTIFACT
        if parsed.scheme == "file" and local.is_dir():
            return local
        folder = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=MODEL_ARTIFACT)
    except Exception as err:  # MLflow raises several types for an unknown run
        raise ViewcastError(f"no model logged under run {run_id!r}: {err}") from None
    return Path(folder)


def load_model(ws: Workspace, run_id: str) -> ViewsModel:
    """The exact model a training run logged (torch)."""
    from pipeline.models import load

    return load(model_folder(ws, run_id))


def load_predictor(ws: Workspace, run_id: str):
    """A run's model for prediction only: NumPy (no torch import) when it has weights.npz."""
    from pipeline import infer

    folder = model_folder(ws, run_id)
    if infer.has_weights(folder):
        return infer.load(folder)
    return load_model(ws, run_id)  # logged before weights.npz existed


def alias_run(ws: Workspace, alias: str) -> tuple[str, str] | None:
    """(run id, version) behind an alias of the workspace's registered model, or None."""
    from mlflow.exceptions import MlflowException

    client = connect(ws).tracking.MlflowClient()
    try:
        version = client.get_model_version_by_alias(REGISTERED_MODEL, alias)
    except MlflowException:
        return None
    return version.run_id, str(version.version)
