"""Pulling against ingesting: `viewcast pull wikipedia` from a local server answering as
Wikimedia's pageviews API (tests/sources/fake_apis.py) against `viewcast ingest` of the same days
as a CSV export, each a fresh `viewcast` process, so start-up is included.

    python bench/bench_pull.py [--articles 10] [--years 10] [--repeat 3]

1. a first pull of N articles x Y years (one request per article, zero days left out by the API);
2. the same days as one long CSV, ingested into another fresh workspace;
3. an incremental pull the next morning (one new day per article);
4. `pull` again the same morning (every article answers 404: nothing new).
Median wall time of `--repeat` runs and the peak memory of the process (ru_maxrss of children).
Results go to bench/out/pull.json and are printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.sources.fake_apis import FakeApis, daily_views, serve

OUT = ROOT / "bench" / "out"
VIEWCAST = [sys.executable, "-m", "pipeline"]


def timed(args: list[str], env: dict) -> tuple[float, float]:
    """Wall seconds and the peak memory (GB) of one `viewcast` process (run in a fresh shell, so
    ru_maxrss is its own)."""
    probe = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        "code = subprocess.run(sys.argv[1:]).returncode; w = time.perf_counter() - t; "
        "print(w, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, *args], env=env, capture_output=True, text=True, check=True
    )
    wall, rss, code = out.stdout.split()[-3:]
    if code != "0":
        raise SystemExit(f"{' '.join(args)} exited {code}")
    return float(wall), int(rss) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=10)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    apis = FakeApis()
    server, root = serve(apis)
    last = np.datetime64("today") - 2  # yesterday "not loaded yet": the next pull adds it
    first = last - 365 * args.years + 1
    titles = [f"Article_{i}" for i in range(args.articles)]
    for i, title in enumerate(titles):
        apis.articles[title] = daily_views(str(first), str(last), seed=i)
    env = os.environ | {
        "VIEWCAST_WIKIMEDIA_URL": f"{root}/wikimedia",
        "VIEWCAST_CONTACT": "bench@viewcast.invalid",
        "NO_PROXY": "127.0.0.1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    rows: dict[str, list[tuple[float, float]]] = {}
    for _ in range(args.repeat):
        tmp = Path(tempfile.mkdtemp(prefix="bench-pull-"))
        for title in titles:  # back to the first morning
            apis.articles[title].pop(str(last + 1), None)
        pulled, ingested = tmp / "pulled", tmp / "ingested"
        rows.setdefault("first pull", []).append(
            timed([*VIEWCAST, "--home", str(pulled), "pull", "wikipedia", *titles], env)
        )
        csv = tmp / "views.csv"
        with csv.open("w") as fh:
            fh.write("series_id,date,views\n")
            for title in titles:
                fh.writelines(f"{title},{d},{v}\n" for d, v in apis.articles[title].items())
        rows.setdefault("ingest of the same days (CSV)", []).append(
            timed([*VIEWCAST, "--home", str(ingested), "ingest", str(csv)], env)
        )
        for title in titles:
            apis.articles[title][str(last + 1)] = 500
        rows.setdefault("next morning: one new day each", []).append(
            timed([*VIEWCAST, "--home", str(pulled), "pull"], env)
        )
        rows.setdefault("again the same morning: nothing new", []).append(
            timed([*VIEWCAST, "--home", str(pulled), "pull"], env)
        )
        shutil.rmtree(tmp)
    server.shutdown()

    days = args.articles * (365 * args.years)
    result = {
        "articles": args.articles,
        "days": days,
        "repeat": args.repeat,
        "rows": {
            name: {
                "wall_s": statistics.median(w for w, _ in runs),
                "peak_gb": max(m for _, m in runs),
            }
            for name, runs in rows.items()
        },
    }
    OUT.mkdir(exist_ok=True)
    (OUT / "pull.json").write_text(json.dumps(result, indent=1))
    print(f"{args.articles} articles x {args.years} years ({days:,} days), median of {args.repeat}")
    print("\n| step | wall (s) | peak memory (GB) |\n|---|---|---|")
    for name, row in result["rows"].items():
        print(f"| {name} | {row['wall_s']:.2f} | {row['peak_gb']:.2f} |")


if __name__ == "__main__":
    main()
