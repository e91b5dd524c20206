"""Discovery time of `batch` on a big jobs folder: N rollouts, each with a sparse trajectory of
SIZE MB (sparse: the disk holds almost nothing), a fifth of them timed out.

    .venv/bin/python bench/discovery.py [--rollouts 10000] [--size-mb 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from benchflow_continue.batch import discover


def build(root: Path, n: int, size_mb: int) -> None:
    config = json.dumps({"agent": "openhands", "task_path": "t", "model": "m", "timeout_sec": 900})
    for i in range(n):
        run = root / f"job-{i % 20}" / f"task-{i % 50}__{i:06d}"
        (run / "trajectory").mkdir(parents=True)
        (run / "config.json").write_text(config)
        category = "timeout" if i % 5 == 0 else None
        (run / "result.json").write_text(
            json.dumps({"task_name": f"task-{i % 50}", "error_category": category, "rewards": {"reward": 0.0}})
        )
        with open(run / "trajectory" / "llm_trajectory.jsonl", "wb") as f:
            f.truncate(size_mb * 1024 * 1024)


def run(rollouts: int, size_mb: int) -> dict:
    root = Path(tempfile.mkdtemp(prefix="bfc-discovery-"))
    try:
        started = time.perf_counter()
        build(root, rollouts, size_mb)
        built = time.perf_counter() - started
        os.sync()
        started = time.perf_counter()
        found = discover(root)
        elapsed = time.perf_counter() - started
        todo = sum(c.state == "todo" for c in found)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {
        "rollouts": rollouts,
        "trajectory_mb": size_mb,
        "build_s": round(built, 2),
        "discovery_s": round(elapsed, 3),
        "to_continue": todo,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rollouts", type=int, default=10_000)
    parser.add_argument("--size-mb", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(run(args.rollouts, args.size_mb), indent=2))


if __name__ == "__main__":
    main()
