"""Run every benchmark once, print a table, write bench/results/latest.json.

bench/run.sh      # sets up benchflow's own environment for the side-by-side, then runs this
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import discovery  # noqa: E402
import load  # noqa: E402
import proxy_latency  # noqa: E402
import replay_phase  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--benchflow-python")
    args = parser.parse_args()
    proxy = proxy_latency.run(500, 400, args.benchflow_python)
    found = discovery.run(10_000, 5)
    loaded = load.run(20_000, 10)
    from benchflow_continue.sandbox.container import engine_answers

    sandboxes = ["local"] + [e for e in ("podman", "docker") if engine_answers(e)]
    replay = replay_phase.run(sandboxes, 3)
    results = {
        "taken_at": datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "proxy": proxy,
        "discovery": found,
        "load": loaded,
        "replay_phase": replay,
    }
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    print(
        f"replay proxy, {proxy['exchanges']} exchanges, requests 2 KB .. {proxy['max_request_kb']} KB, divergence checking on"
    )
    print(f"{'':24}{'p50 ms':>10}{'p99 ms':>10}{'total s':>10}{'p50 200KB':>11}")
    for mode in ("json", "sse"):
        for who in ("floor", "ours", "ours-file", "benchflow"):
            row = proxy.get(f"{who}_{mode}")
            if row:
                print(
                    f"{who + ' ' + mode:24}{row['p50_ms']:>10.2f}{row['p99_ms']:>10.2f}{row['total_s']:>10.2f}"
                    f"{row['p50_200kb_ms']:>11.2f}"
                )
        if f"benchflow_{mode}" in proxy:
            ours, theirs = proxy[f"ours_{mode}"], proxy[f"benchflow_{mode}"]
            print(
                f"{'  benchflow / ours':24}{theirs['p50_ms'] / ours['p50_ms']:>10.2f}{theirs['p99_ms'] / ours['p99_ms']:>10.2f}{theirs['total_s'] / ours['total_s']:>10.2f}"
            )
    if not args.benchflow_python:
        print("(benchflow's proxy could not be installed here: our figures alone)")
    print(
        f"batch discovery: {found['rollouts']} rollouts with {found['trajectory_mb']} MB sparse trajectories in {found['discovery_s']:.2f} s"
    )
    print(
        f"load: {loaded['exchanges']} exchanges, {loaded['file_mb']} MB (largest line {loaded['largest_line_kb']} KB) "
        f"in {loaded['load_s']:.2f} s ({loaded['load_over_parse']:.2f}x bare json.loads); "
        f"peak RSS {loaded['rss_peak_mb']} MB, +{loaded['rss_growth_mb']} MB while loading"
    )
    print(
        f"replay phase, {replay['run']}: original {replay['original_span_sec']} s from first request to the cut state, "
        f"{replay['recorded_latency_sec']} s of it model latency: limit {replay['limit_sec']} s"
    )
    print(f"{'':24}{'answering s':>12}{'replay s':>10}{'/ limit':>10}{'speed-up':>10}")
    for sandbox in sandboxes:
        row = replay[sandbox]
        print(
            f"{sandbox:24}{row['agent_answering_after_sec']:>12.2f}{row['replay_sec']:>10.2f}"
            f"{row['replay_over_limit']:>10.2f}{row['speedup_vs_original_agent_time']:>10.2f}"
        )
    print(f"wrote {HERE / 'results' / 'latest.json'}")


if __name__ == "__main__":
    main()
