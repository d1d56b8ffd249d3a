"""What bounds the demo sweep's training on this machine (issue 26's 60-second target).

    .venv/bin/python bench/bench_bound.py                 # about 6 minutes on 2 cores
    .venv/bin/python bench/bench_bound.py --no-processes  # the FLOP count and peak only
    .venv/bin/python bench/bench_bound.py --profile relu-2x64-bn-lags56-log1p-adam-0.003

The demo exports (`viewcast run`'s data) ingested into a fresh workspace; the default grid's
stacks (24 shapes of 6 configurations; the baselines train apart) trained one after another on
fold 1's windows, as `sweep` trains them:
  1. each stack timed, then trained again under torch's FlopCounterMode (matrix products only:
     what the counter counts), so the achieved rate is matrix FLOPs over the timed wall;
  2. the peak this CPU reaches: one 4096 x 4096 float32 product, and the batched product a
     stack's weight gradient is (6 x 64 x 7,287 by 6 x 7,287 x 64), each at torch's threads;
  3. `--processes`: the same stacks split between two processes of one thread each (stack i to
     process i mod 2), started together: what a local pool of workers would give.
Prints a Markdown table; bench/out/bound.json keeps the numbers. `--profile NAME`: instead, the
share of each torch operator in the time of the stack whose first configuration is NAME.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

OUT = ROOT / "bench" / "out"


def stacks(home: Path):
    """The default grid's stacks and the demo's windows of each stack's lag count."""
    from pipeline.data import features as feats
    from pipeline.data.store import Store
    from pipeline.data.workspace import Paths
    from pipeline.search.grids import default_grid
    from pipeline.search.units import plan_units

    store = Store(Paths.resolve(home))
    dev, splits = store.read_dev(), store.read_splits()
    windows = {}
    for unit in plan_units(list(enumerate(default_grid())), True):
        n = unit[0][1].model.lags
        if n not in windows:
            windows[n] = feats.fold(feats.lag_windows(dev, splits, n), splits, 1)
        yield [(c.model, c.train) for _, c in unit], windows[n], unit[0][1].name


def train(home: Path, only: list[int] | None, count_flops: bool) -> dict:
    """Wall seconds of the chosen stacks (all by default), and their matrix FLOPs."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from pipeline.models import batched

    wall, flops, names = 0.0, 0, []
    for i, (configs, windows, name) in enumerate(stacks(home)):
        if only is not None and i not in only:
            continue
        began = time.perf_counter()
        batched.fit_stack(windows, configs)
        wall += time.perf_counter() - began
        names.append(name)
        if count_flops:
            with FlopCounterMode(display=False) as counter:
                batched.fit_stack(windows, configs)
            flops += counter.get_total_flops()
    return {
        "stacks": len(names),
        "wall_s": wall,
        "gflop": flops / 1e9,
        "threads": torch.get_num_threads(),
    }


def peak() -> dict:
    """GFLOPS of one large product and of a stack's weight-gradient product."""
    import torch

    def rate(a, b, flops, repeat):
        for _ in range(2):
            a @ b
        began = time.perf_counter()
        for _ in range(repeat):
            a @ b
        return flops * repeat / (time.perf_counter() - began) / 1e9

    big = torch.randn(4096, 4096)
    acts = torch.randn(6, 7287, 64)
    return {
        "mm_4096": rate(big, big, 2 * 4096**3, 3),
        "bmm_grad_w": rate(acts.transpose(1, 2), acts, 2 * 6 * 64 * 64 * 7287, 30),
    }


def child(home: Path, part: int) -> None:
    """One of two processes: every other stack, one thread."""
    began = time.perf_counter()
    found = train(home, list(range(part, 24, 2)), count_flops=False)
    print(json.dumps(found | {"process_s": time.perf_counter() - began}))


def processes(home: Path) -> dict:
    env = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    began = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--child", str(part), "--home", str(home)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for part in (0, 1)
    ]
    outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    return {"wall_s": time.perf_counter() - began, "parts": outs}


def profile(home: Path, name: str) -> None:
    """torch.profiler's self time of each operator while the named stack trains."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from pipeline.models import batched

    found = [(configs, windows) for configs, windows, first in stacks(home) if first == name]
    if not found:
        raise SystemExit(f"no stack starts with {name!r}")
    configs, windows = found[0]
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        batched.fit_stack(windows, configs)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    print("| operator | share of the stack's time |")
    print("|---|---:|")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:8]:
        print(f"| {e.key} | {100 * e.self_cpu_time_total / total:.1f}% |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--profile", default=None, metavar="NAME")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.home, args.child)
        return
    from pipeline.data.workspace import Paths
    from pipeline.jobs import build

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        ws = Paths.resolve(home)
        build.ingest(ws, build.demo_files(ws))
        if args.profile:
            profile(home, args.profile)
            return
        one = train(home, None, count_flops=True)
        result = {"one_process": one, "peak": peak()}
        if args.processes:
            result["two_processes"] = processes(home)
    OUT.mkdir(exist_ok=True)
    (OUT / "bound.json").write_text(json.dumps(result, indent=1))
    p = result["peak"]
    rate = one["gflop"] / one["wall_s"]
    print("| what | seconds | matrix GFLOP | GFLOPS |")
    print("|---|---:|---:|---:|")
    print(f"| {one['stacks']} stacks, one process of {one['threads']} threads | "
          f"{one['wall_s']:.1f} | {one['gflop']:,.0f} | {rate:.1f} |")  # fmt: skip
    print(f"| one 4096 x 4096 product | | | {p['mm_4096']:.1f} |")
    print(f"| a stack's weight-gradient product (6 x 64 x 7,287 by 6 x 7,287 x 64) | | | "
          f"{p['bmm_grad_w']:.1f} |")  # fmt: skip
    if args.processes:
        two = result["two_processes"]
        parts = " and ".join(f"{q['wall_s']:.1f}" for q in two["parts"])
        print(f"| the same stacks, two processes of one thread (training {parts} s) | "
              f"{two['wall_s']:.1f} | | |")  # fmt: skip
    print(f"\nmatrix products at the peak rate alone: {one['gflop'] / p['mm_4096']:.1f} s")


if __name__ == "__main__":
    main()
