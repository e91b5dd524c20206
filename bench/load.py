"""Load benchmark: load and validate a large trajectory, time and peak memory.

The trajectory has N exchanges whose requests grow linearly (an agent's context
grows with every turn), so the file grows quadratically: 20,000 exchanges make
about 2 GB. It is written once, streamed, into a temporary folder and removed.
The load runs in a fresh process so its peak memory is its own; the same process
also times bare ``json.loads`` over the same lines, the floor for any loader.

    .venv/bin/python bench/load.py --exchanges 20000 --growth 10
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SYSTEM = {"role": "system", "content": "You are OpenHands agent. " + "Rules of the road. " * 200}


def write_rollout(folder: Path, n: int, growth: int) -> dict[str, float]:
    """A rollout folder whose exchange i carries about ``growth * i`` bytes of context."""
    (folder / "trajectory").mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"agent": "openhands", "model": "openai/bench", "timeout_sec": 60}))
    head = json.dumps(SYSTEM) + ", " + json.dumps({"role": "user", "content": "Do the task."})
    call = {"id": "call_0", "type": "function", "function": {"name": "terminal", "arguments": '{"command": "ls"}'}}
    answer = json.dumps({"role": "assistant", "content": "Looking.", "tool_calls": [call]})
    size, largest = 0, 0
    started = time.perf_counter()
    with open(folder / "trajectory" / "llm_trajectory.jsonl", "w") as f:
        for i in range(n):
            # the context (here one tool result) grows by ``growth`` bytes a turn: linear requests, a quadratic file
            tool = json.dumps({"role": "tool", "tool_call_id": "call_0", "content": "x" * (growth * i)})
            request = '{"body": {"model": "bench", "messages": [' + head + ", " + answer + ", " + tool + "]}}"
            usage = {"prompt_tokens": i, "completion_tokens": 5}
            body = {"model": "bench", "choices": [{"index": 0, "message": json.loads(answer)}], "usage": usage}
            line = f'{{"request": {request}, "response": {json.dumps({"status_code": 200, "body": body})}, "duration_ms": 900.0}}\n'
            f.write(line)
            size += len(line)
            largest = max(largest, len(line))
    return {
        "file_mb": round(size / 1e6, 1),
        "largest_line_kb": round(largest / 1e3, 1),
        "write_s": round(time.perf_counter() - started, 2),
    }


CHILD = """
import json, sys, time
from pathlib import Path
from benchflow_continue.runfolder import load_run_folder
def high_water_kb():  # this process's own peak (ru_maxrss can carry the forking parent's)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
folder = Path(sys.argv[1])
before = high_water_kb()
started = time.perf_counter()
run = load_run_folder(folder)
load_s = time.perf_counter() - started
peak = high_water_kb()
started = time.perf_counter()
with open(folder / "trajectory" / "llm_trajectory.jsonl", "rb") as f:
    for line in f:
        json.loads(line)
parse_s = time.perf_counter() - started
print(json.dumps({"exchanges": len(run.exchanges), "load_s": load_s, "json_parse_s": parse_s,
                  "rss_before_mb": before / 1024, "rss_peak_mb": peak / 1024}))
"""


def run(n: int, growth: int) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="bfc-bench-load-"))
    try:
        folder = tmp / "big__timeout"
        written = write_rollout(folder, n, growth)
        done = subprocess.run([sys.executable, "-c", CHILD, str(folder)], capture_output=True, text=True, check=True)
        measured = json.loads(done.stdout)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    growth_mb = measured["rss_peak_mb"] - measured["rss_before_mb"]
    return {
        **written,
        "exchanges": measured["exchanges"],
        "load_s": round(measured["load_s"], 2),
        "json_parse_s": round(measured["json_parse_s"], 2),
        "load_over_parse": round(measured["load_s"] / measured["json_parse_s"], 2),
        "rss_before_mb": round(measured["rss_before_mb"], 1),
        "rss_peak_mb": round(measured["rss_peak_mb"], 1),
        "rss_growth_mb": round(growth_mb, 1),
        "rss_growth_over_largest_line": round(growth_mb * 1e3 / written["largest_line_kb"], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exchanges", type=int, default=20_000)
    parser.add_argument("--growth", type=int, default=10, help="bytes of context added per exchange")
    args = parser.parse_args()
    print(json.dumps(run(args.exchanges, args.growth), indent=2))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
