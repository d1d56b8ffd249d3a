"""Jobs: the orchestration of the stages, for the CLI, the Python API, the notebooks and the tests.

A job takes a workspace and plain arguments, calls the stage modules in order and returns what
they produced; it never prints. Where a person waits, a job takes an optional callback (`on_stage`,
`on_step`, `on_epoch`) that the CLI turns into progress bars and tables. Jobs are the only place
that composes stages and takes the workspace lock. The stages are imported when a job runs, so
`viewcast --help` and the daily forecast never import torch or mlflow for nothing.
"""

# ruff: noqa: F401  (the package's public names, re-exported from its modules)
from __future__ import annotations

from pipeline.jobs.build import (
    Ingested,
    SealedTest,
    StageHook,
    Trained,
    champion_or,
    demo_files,
    drop,
    expand,
    features,
    ingest,
    locked,
    made_features,
    run_all,
    run_inputs,
    sweep,
    train_direction,
    train_one,
)
from pipeline.jobs.daily import (
    archive,
    daily,
)
from pipeline.jobs.lecture import (
    critical_point_sentence,
    diagnose,
    escape,
    experiment,
    studies,
)
from pipeline.jobs.pull import (
    Pulled,
    authorize,
    pull,
    sources,
    wikipedia_source,
    youtube_source,
)
from pipeline.jobs.stages import (
    backtest,
    check,
    finalize,
    forecast,
    leaderboard,
    log_models,
    monitor,
    plot,
    refit,
    select,
    submit,
    ui,
)
from pipeline.lecture import REPORT as LECTURE_REPORT  # the CLI's: the lecture's page
from pipeline.lecture import STUDIES  # the CLI's: `experiment --only`
from pipeline.search.engines import Engine  # the CLI builds one for `sweep --engine`
from pipeline.sources.http import CONTACT_ENV  # the CLI's: `pull --contact`
from pipeline.sources.wikipedia import BASE_ENV as WIKIMEDIA_ENV  # the CLI's: `--base-url`
from pipeline.sources.wikipedia import Access, Agent  # the CLI's: `pull wikipedia` choices
from pipeline.sources.youtube import BASE_ENV as YOUTUBE_ENV
