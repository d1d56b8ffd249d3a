"""Models: pyfunc logging (signature, example, pinned requirements), model folders, aliases."""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

import numpy as np

from pipeline.data.errors import ViewcastError, first_line
from pipeline.data.workspace import Paths
from pipeline.models import infer
from pipeline.models.safe import load_arrays
from pipeline.tracking.connection import connect, session
from pipeline.tracking.records import MODEL_ARTIFACT, REGISTERED_MODEL, Tag

if TYPE_CHECKING:
    from pipeline.models.families import ViewsModel


EXAMPLE_FILE = "example.npz"  # in the model folder: the pyfunc input example (x, days)
# the pyfunc model as code (MLflow's "models from code"), not a pickled PythonModel: loading it
# runs this file from the model's own copy of the serving code, and unpickles nothing
MODEL_CODE = """\
import mlflow

from pipeline.tracking.pyfunc import ViewcastModel

mlflow.models.set_model(ViewcastModel())
"""


def _signature(cfg):
    # lazy: mlflow takes 2 s to import; only a run read or written pays
    from mlflow.models.signature import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    from pipeline.tracking.pyfunc import DATE_COLUMN, HORIZON, lag_columns

    columns = [ColSpec("double", c) for c in lag_columns(cfg.lags)]
    if cfg.calendar != "none":  # the forecast day, for the weekday
        columns.append(ColSpec("string", DATE_COLUMN))
    days = ParamSchema([ParamSpec(HORIZON, "long", 1)])  # views_2..views_H beside `views`
    return ModelSignature(Schema(columns), Schema([ColSpec("double", "views")]), days)


SERVING_CODE = (  # what a pyfunc model runs, as paths inside the package
    "tracking/pyfunc.py",
    "models/infer.py",
    "models/safe.py",
    "models/config.py",
    "data/errors.py",
    "data/calendar.py",
)


def _serving_code(root: Path) -> Path:
    """The modules a pyfunc model runs (SERVING_CODE) as a `pipeline` package under `root`, with
    empty package files: the logged model loads where viewcast is not installed."""
    source = Path(__file__).parents[1]
    package = root / "pipeline"
    for name in SERVING_CODE:
        target = package / name
        target.parent.mkdir(parents=True, exist_ok=True)
        for folder in (package, target.parent):
            (folder / "__init__.py").write_text('"""viewcast\'s inference, copied for MLflow."""\n')
        shutil.copy2(source / name, target)
    return package


@contextmanager
def _no_requirement_check() -> Iterator[None]:
    """MLflow compares a model's pip requirements with the installed packages on every save
    (about 35 ms of package metadata, 40% of a pyfunc model's cost in a sweep). viewcast pins
    the versions this very process imported (`mlflow.__version__`, ...), so the check cannot
    find a mismatch (and its warning is below the level we let MLflow log at): skipped."""
    # lazy: mlflow takes 2 s to import; only a run read or written pays
    from mlflow.utils import environment

    name = "warn_dependency_requirement_mismatches"
    check = getattr(environment, name, None)
    if check is None:  # an MLflow without the check
        yield
        return
    setattr(environment, name, lambda _requirements: None)
    try:
        yield
    finally:
        setattr(environment, name, check)


def log_pyfunc(
    client, run_id: str, folder: Path, cfg, example: tuple, experiment: str | None = None
) -> str:
    """A saved model folder as an MLflow 3 logged model (pyfunc flavour, NumPy inference) of the
    run: signature lag_1..lag_N (and the date, for a calendar model) -> views, an input example
    (`example`: windows and their days), pinned pip requirements. Built with
    the client's logged-model calls (about 0.05 s, against 0.2-0.4 s for `log_model`, which also
    reloads the model to validate the example: the tests load and serve it instead); the id.
    `experiment`: the run's experiment id (read from the run when not given)."""
    # lazy: mlflow takes 2 s to import; only a run read or written pays
    import mlflow
    import pandas as pd
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus
    from mlflow.models import Model

    from pipeline.tracking import pyfunc as serving

    experiment = experiment or client.get_run(run_id).info.experiment_id
    logged = client.create_logged_model(experiment, MODEL_ARTIFACT, source_run_id=run_id)
    x, days = example
    lags = cfg.lags
    frame = pd.DataFrame(x[:, :lags].astype(np.float64), columns=serving.lag_columns(lags))
    if cfg.calendar != "none":
        frame[serving.DATE_COLUMN] = np.asarray(days).astype("datetime64[D]").astype(str)
    requirements = [f"mlflow=={mlflow.__version__}", f"numpy=={np.__version__}"]
    requirements.append(f"pandas=={pd.__version__}")
    if cfg.trees:  # the hgb family's trees, in skops' format
        # lazy: scikit-learn takes 1.7 s to import; only the hgb family needs it
        import sklearn
        import skops

        requirements.append(f"scikit-learn=={sklearn.__version__}")
        requirements.append(f"skops=={skops.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pyfunc"
        meta = Model(artifact_path=MODEL_ARTIFACT, run_id=run_id, model_id=logged.model_id)
        mlflow_logger = logging.getLogger("mlflow")
        level = mlflow_logger.level
        mlflow_logger.setLevel(logging.ERROR)
        code = Path(tmp) / "viewcast_model.py"  # MLflow's models from code: nothing pickled
        code.write_text(MODEL_CODE)
        try:
            with _no_requirement_check():
                mlflow.pyfunc.save_model(
                    path,
                    python_model=str(code),
                    artifacts={serving.MODEL_FOLDER: str(folder)},
                    code_paths=[str(_serving_code(Path(tmp) / "code"))],
                    signature=_signature(cfg),
                    input_example=frame,
                    pip_requirements=requirements,
                    mlflow_model=meta,
                )
        finally:
            mlflow_logger.setLevel(level)
        client.log_model_artifacts(logged.model_id, str(path))
    client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
    return logged.model_id


# --- models and the registry ------------------------------------------------------------------


def model_folder(ws: Paths, run_id: str) -> Path:
    """The folder of a run's logged model: read in place from the workspace's local artifact
    store, downloaded only from a remote one."""
    mlflow = connect(ws)
    try:
        run = mlflow.tracking.MlflowClient().get_run(run_id)
    except Exception:  # MLflow raises several types for an unknown run
        raise ViewcastError(f"no run {run_id!r} in this workspace") from None
    stage = run.data.tags.get(Tag.STAGE, "")
    what = f"is a {stage} run, with no model" if stage else "has no model"
    no_model = f"run {run_id} {what}: give a training run"
    parsed = urlparse(run.info.artifact_uri)
    local = Path(unquote(parsed.path)) / MODEL_ARTIFACT
    if parsed.scheme == "file":
        if not local.is_dir():
            raise ViewcastError(no_model)
        return local
    try:
        folder = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=MODEL_ARTIFACT)
    except Exception as err:  # a server's store raises several types for a missing folder
        first = first_line(err)
        raise ViewcastError(f"{no_model} ({first})") from None
    return Path(folder)


def materialise(ws: Paths, run_id: str) -> str:
    """The run's MLflow pyfunc model, made from its model folder if it has none yet (the
    champion, an ensemble's members, `viewcast model log`, `select --top K`); idempotent: the
    logged model's id."""
    s = session(ws)
    try:
        run = s.client.get_run(run_id)
    except Exception:  # MLflow raises several types for an unknown run
        raise ViewcastError(f"no run {run_id!r} in this workspace") from None
    found = run.data.tags.get(Tag.MODEL_ID)
    if found:
        return found
    folder = model_folder(ws, run_id)
    if not (folder / EXAMPLE_FILE).exists():
        raise ViewcastError(f"run {run_id} has no model folder with an input example to log")
    cfg = infer.load(folder).cfg  # refuses a folder holding a pickle
    example = load_arrays(folder / EXAMPLE_FILE)
    model_id = log_pyfunc(
        s.client, run_id, folder, cfg, (example["x"], example["days"]), run.info.experiment_id
    )
    s.client.set_tag(run_id, Tag.MODEL_ID, model_id)
    return model_id


def load_model(ws: Paths, run_id: str) -> ViewsModel:
    """The exact model a training run logged (torch)."""
    # lazy: torch takes 2 s to import; only the paths that train or load a network pay
    from pipeline.models.families import load

    return load(model_folder(ws, run_id))


def load_predictor(ws: Paths, run_id: str):
    """A run's model for prediction only: NumPy (no torch import) when it has weights.npz."""
    folder = model_folder(ws, run_id)
    if infer.has_weights(folder):
        return infer.load(folder)
    return load_model(ws, run_id)  # logged before weights.npz existed


def alias_run(ws: Paths, alias: str) -> tuple[str, str] | None:
    """(run id, version) behind an alias of the workspace's registered model, or None."""
    # lazy: mlflow takes 2 s to import; only a run read or written pays
    from mlflow.exceptions import MlflowException

    try:
        version = session(ws).client.get_model_version_by_alias(REGISTERED_MODEL, alias)
    except MlflowException:
        return None
    return version.run_id, str(version.version)


def champion_run(ws: Paths) -> str:
    """The run id behind the `champion` alias."""
    found = alias_run(ws, "champion")
    if found is None:
        raise ViewcastError("no champion yet: run `viewcast select` first")
    return found[0]


def register_alias(ws: Paths, run_id: str, alias: str, tags: dict[str, float | str]) -> str:
    """Point an alias of the workspace's registered model at a run's model (a new version only
    when the alias moves to another run); returns the version."""
    # lazy: mlflow takes 2 s to import; only a run read or written pays
    from mlflow.exceptions import MlflowException

    client = session(ws).client
    try:
        current = client.get_model_version_by_alias(REGISTERED_MODEL, alias)
        if current.run_id == run_id:
            return str(current.version)
    except MlflowException:  # no registered model or no alias yet
        if not client.search_registered_models(f"name = '{REGISTERED_MODEL}'"):
            client.create_registered_model(
                REGISTERED_MODEL, description="viewcast: tomorrow's views from the last N days"
            )
    run = client.get_run(run_id)
    model_id = run.data.tags.get(Tag.MODEL_ID)
    logged = {f.path for f in client.list_artifacts(run_id, MODEL_ARTIFACT)}
    if not model_id and f"{MODEL_ARTIFACT}/{EXAMPLE_FILE}" in logged:
        model_id = materialise(ws, run_id)  # a lazy run: its pyfunc model, now
    if model_id:  # the pyfunc model: models:/viewcast@alias loads with mlflow.pyfunc
        version = client.create_model_version(
            REGISTERED_MODEL, f"models:/{model_id}", run_id=run_id, model_id=model_id
        )
    else:  # a run logged before models were pyfunc: its plain folder
        source = f"{run.info.artifact_uri}/{MODEL_ARTIFACT}"
        version = client.create_model_version(REGISTERED_MODEL, source, run_id=run_id)
    for k, v in tags.items():
        text = f"{v:.6g}" if isinstance(v, float) else str(v)
        client.set_model_version_tag(REGISTERED_MODEL, version.version, k, text)
    client.set_registered_model_alias(REGISTERED_MODEL, alias, version.version)
    return str(version.version)
