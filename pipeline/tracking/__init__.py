"""The one door to MLflow: the workspace's store, run records, named queries and run writers.

No module outside this package imports mlflow. Stages ask questions here ("the latest sweep",
"today's submissions", "the run behind the champion alias") and get plain `RunRecord`s back; they
write through `start_run` (a `RunWriter`) or the writers below.

Names are the same for every model family, so the UI's compare view lines runs up:
params `model.*`, `train.*`, `data.*`; per-epoch metrics `train_loss`, `val_mae_epoch`, `grad_norm`,
`lr`; final metrics `train_mae`, `val_mae` (the returned, best-epoch model: what selection reads),
`best_epoch`, `epochs_run`, `train_seconds`.
A training run never logs a test metric: test rows are not even opened on this path. Test scores
live only in submission and final runs (see pipeline.search.holdout).
"""

# ruff: noqa: F401  (the package's public names, re-exported from its modules)
from __future__ import annotations

from pipeline.tracking.connection import (
    Session,
    connect,
    port_taken,
    serve_ui,
    session,
    ui_urls,
)
from pipeline.tracking.queries import (
    all_runs,
    artifacts,
    children,
    ensemble_parts,
    epoch_curves,
    epoch_history,
    find_sweep,
    get_run,
    latest_sweep,
    metric_points,
    metric_steps,
    run_config,
    running_runs,
    runs,
    submissions_today,
    sweep_child,
    sweep_children,
    sweep_parent,
)
from pipeline.tracking.records import (
    BATCH,
    DAILY_EXPERIMENT,
    EXPERIMENT,
    EXPERIMENT_KIND,
    MODEL_ARTIFACT,
    REGISTERED_MODEL,
    RunRecord,
    Stage,
    SweepPurpose,
    Tag,
)
from pipeline.tracking.registry import (
    SERVING_CODE,
    alias_run,
    champion_run,
    load_model,
    load_predictor,
    log_pyfunc,
    materialise,
    model_folder,
    register_alias,
)
from pipeline.tracking.writers import (
    RunWriter,
    create_run,
    digest,
    example_rows,
    flat_params,
    kill_run,
    log_ensemble,
    log_failure,
    log_training,
    set_status,
    start_run,
    writer,
)
