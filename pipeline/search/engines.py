"""Where a sweep's units (a stack, or one configuration) train: here, one after another
(`local`), or as tasks on a Ray cluster (`ray`). The one door to Ray.

On Ray the sweep's data (the dev days' series array and splits) goes into the object store once;
each unit is a task with its CPU/GPU needs (fractions of a GPU allowed) that builds its windows
from that shared array, trains, and sends its results back. The driver alone writes MLflow, as
the units come back, so a Ray sweep resumes like a local one and logs the same runs.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

from pipeline.data.errors import ViewcastError
from pipeline.search.budget import work

ENGINES = ("local", "ray")


@dataclass(frozen=True)
class Engine:
    """How a sweep trains: `local`, or `ray` at `address` (None: RAY_ADDRESS, else a Ray
    started for this sweep and stopped after it) with each task's CPUs and GPUs."""

    name: str = "local"
    address: str | None = None
    cpus: float = 1.0
    gpus: float = 0.0

    def __post_init__(self) -> None:
        if self.name not in ENGINES:
            raise ViewcastError(f"unknown engine {self.name!r} (choose from {', '.join(ENGINES)})")
        if self.cpus <= 0 or self.gpus < 0:
            raise ViewcastError("--cpus-per-task must be positive and --gpus-per-task not negative")
        if self.name == "local" and self.address:
            raise ViewcastError("--address names a Ray cluster: use it with --engine ray")


@contextmanager
def opened(engine: Engine) -> Iterator[Local | OnRay]:
    """The engine, ready: a Ray cluster is reached (and its resources checked) on entering,
    before the sweep opens a run, and let go on leaving."""
    if engine.name == "local":
        yield Local()
        return
    ray = connect(engine)
    try:
        yield OnRay(ray, engine, capacity(ray.cluster_resources(), engine))
    finally:
        ray.shutdown()


class Local:
    """Units trained here, one after another, in the grid's order."""

    def train_units(self, data, units: list, stacked: bool, starting) -> Iterator:
        """Each unit with its outcomes (config key -> results or the error) and the seconds it
        trained, as they finish. `starting(unit)` is asked before a unit starts; False leaves it
        out (the time budget: a cheaper unit after it may still fit)."""
        # lazy: torch takes 2 s to import; only the paths that train or load a network pay
        from pipeline.search.units import train_unit

        for unit in units:
            if starting(unit):
                began = time.perf_counter()
                outcomes = train_unit(data, [c for _, c in unit], stacked)
                yield unit, outcomes, time.perf_counter() - began


def train_task(data, unit: list, stacked: bool) -> dict:
    """A unit trained on a Ray worker; its models come back on the CPU (the driver may have no
    GPU to unpickle CUDA tensors on)."""
    # lazy: torch takes 2 s to import; only the paths that train or load a network pay
    from pipeline.search.units import train_unit

    outcomes = train_unit(data, unit, stacked)
    for results in outcomes.values():
        for result in [] if isinstance(results, Exception) else results:
            result.model = result.model.cpu()
    return outcomes


@dataclass
class OnRay:
    """Units as Ray tasks, as many at once as the cluster fits, collected as they finish."""

    ray: object
    engine: Engine
    slots: int

    def train_units(self, data, units: list, stacked: bool, starting) -> Iterator:
        """As Local.train_units, in the order the units finish."""
        ray, engine = self.ray, self.engine
        task = ray.remote(num_cpus=engine.cpus, num_gpus=engine.gpus, max_retries=0)(train_task)
        shared = ray.put(replace(data, windows={}))  # the series array, once for every task
        # the costliest first: a long stack sent last would leave the other workers idle
        queue = sorted(units, key=lambda unit: work(unit, data.train_rows(unit)), reverse=True)
        in_flight, sent = {}, {}
        try:
            while queue or in_flight:
                # keep the cluster full, no fuller: units not sent yet obey the time budget
                while queue and len(in_flight) < self.slots:
                    unit = queue.pop(0)
                    if starting(unit):
                        ref = task.remote(shared, [c for _, c in unit], stacked)
                        in_flight[ref], sent[ref] = unit, time.perf_counter()
                if not in_flight:
                    return
                [ref], _ = ray.wait(list(in_flight), num_returns=1)
                unit = in_flight.pop(ref)
                try:
                    outcomes = ray.get(ref)
                except ray.exceptions.RayError as err:
                    why = f"a Ray task failed training {unit[0][1].name}: {_first_line(err)}"
                    raise ViewcastError(why) from err
                yield unit, outcomes, time.perf_counter() - sent.pop(ref)
        finally:
            for ref in in_flight:  # an interrupted sweep: these units train again on resume
                ray.cancel(ref, force=True)


def capacity(resources: dict, engine: Engine) -> int:
    """How many tasks the cluster runs at once with these per-task needs."""
    slots = int(resources.get("CPU", 0) // engine.cpus)
    if engine.gpus:
        if not resources.get("GPU"):
            raise ViewcastError(
                f"--gpus-per-task {engine.gpus}: the Ray cluster has no GPU "
                f"({int(resources.get('CPU', 0))} CPUs)"
            )
        slots = min(slots, int(resources["GPU"] // engine.gpus))
    if slots < 1:
        raise ViewcastError(
            f"no node of the Ray cluster fits a task of {engine.cpus} CPUs and {engine.gpus} GPUs"
        )
    return slots


def connect(engine: Engine):
    """The `ray` module, connected to the engine's cluster (or a Ray started here)."""
    try:
        # lazy: ray is the optional extra of `--engine ray`
        import ray
    except ImportError:
        raise ViewcastError("--engine ray needs Ray: pip install 'viewcast[ray]'") from None
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    address = engine.address or os.environ.get("RAY_ADDRESS")
    if address:
        reachable(address)  # ray.init retries an unreachable cluster for minutes
    options: dict = {"logging_level": "WARNING", "log_to_driver": False}
    if not address:
        options["include_dashboard"] = False  # a Ray of our own, stopped after the sweep
    try:
        ray.init(address=engine.address, **options)
    except (ConnectionError, RuntimeError, ValueError) as err:
        why = f"cannot reach the Ray cluster at {address or 'this machine'}: {_first_line(err)}"
        raise ViewcastError(why) from None
    return ray


def reachable(address: str, timeout: float = 5.0) -> None:
    """Refuse at once a host:port (or ray://host:port) where nothing answers; `auto` (the
    cluster this machine belongs to) is left to Ray."""
    if address == "auto":
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        raise ViewcastError(f"--address {address!r}: give the Ray head as host:port")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as err:
        raise ViewcastError(
            f"cannot reach the Ray cluster at {address}: {err.strerror or err} "
            "(start one with `ray start --head`, or check the address)"
        ) from None


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
