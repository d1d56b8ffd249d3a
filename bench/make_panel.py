"""A Kaggle-shaped panel for the scale benchmarks: a seeded synthetic wide CSV like the Web Traffic
Time Series Forecasting competition's train_2.csv.

    python bench/make_panel.py OUT.csv [--pages 145063] [--days 803] [--start 2015-07-01] [--seed 0]

`Page,<date>,<date>,...`, one row per page: heavy-tailed levels (log-normal, from tens to millions
of views a day), weekly cycles, trends, rare spikes, 5-8% empty cells (a page's own rate), and
about 10% of pages beginning late (empty before their start). Written in chunks of pages, so memory
stays at one chunk whatever the size; prints the size and the time it took.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

CHUNK = 2_000  # pages per chunk


def panel_chunk(rng: np.random.Generator, pages: int, days: int) -> np.ndarray:
    """(pages, days) float views with NaN for empty cells."""
    t = np.arange(days)
    level = rng.lognormal(mean=5.5, sigma=2.2, size=(pages, 1))  # tens to millions
    level = np.clip(level, 5, 5e6)
    weekly = 1 + rng.uniform(0.0, 0.4, (pages, 1)) * np.sin(
        2 * np.pi * (t + rng.integers(0, 7, (pages, 1))) / 7
    )
    trend = np.exp(rng.normal(0, 0.5, (pages, 1)) * t / days)
    spikes = np.where(rng.random((pages, days)) < 0.005, rng.uniform(3, 30, (pages, days)), 1.0)
    noise = rng.lognormal(0, 0.2, (pages, days))
    views = np.round(level * weekly * trend * spikes * noise)
    empty = rng.random((pages, days)) < rng.uniform(0.05, 0.08, (pages, 1))
    late = rng.random(pages) < 0.10
    starts = np.where(late, rng.integers(1, max(days - 60, 2), pages), 0)
    empty |= t[None, :] < starts[:, None]
    views[empty] = np.nan
    return views


def write_panel(
    path: Path, pages: int, days: int, start: str = "2015-07-01", seed: int = 0
) -> None:
    rng = np.random.default_rng(seed)
    dates = (np.datetime64(start) + np.arange(days)).astype(str)
    with path.open("w", newline="") as out:
        out.write("Page," + ",".join(dates) + "\n")
        for lo in range(0, pages, CHUNK):
            k = min(CHUNK, pages - lo)
            views = panel_chunk(rng, k, days)
            empty = np.isnan(views)
            cells = np.where(empty, "", np.where(empty, 0, views).astype(np.int64).astype(str))
            names = [f"Page_{lo + i:06d}_en.wikipedia.org_all-access_all-agents" for i in range(k)]
            out.writelines(f"{n},{','.join(row)}\n" for n, row in zip(names, cells, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--pages", type=int, default=145_063)
    parser.add_argument("--days", type=int, default=803)
    parser.add_argument("--start", default="2015-07-01")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    write_panel(args.out, args.pages, args.days, args.start, args.seed)
    size = args.out.stat().st_size / 2**20
    seconds = time.perf_counter() - started
    print(
        f"{args.out}: {args.pages:,} pages x {args.days} days, {size:,.0f} MiB in {seconds:.1f} s"
    )


if __name__ == "__main__":
    main()
