"""Replay-phase efficiency with the real agent, per sandbox backend.

For a recorded run, the original agent spent, from its first request to the state
at its last recorded exchange (its last tool call done), some wall time of which
the recorded model latency (the sum of ``duration_ms``) is the part a replay need
not wait for: that span minus that latency is the physical limit of a replay that
re-executes every command. Each repetition runs ``--replay-only`` in a fresh
process, through the Python API so the moments are taken where they happen:

- start: the agent is answering, i.e. its first request reached the proxy, timed
  from the start of the process (the container figure: is it up within 15 s?)
- replay: first request to the cut-point (the figure set against the limit)

    .venv/bin/python bench/replay_phase.py --repeat 3 --sandbox local --sandbox podman
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "examples" / "runs" / "inventory-report__timeout"
TASKS = ROOT / "examples" / "tasks"

CHILD = """
import time
t0 = time.monotonic()
import asyncio, json, sys
from pathlib import Path
from benchflow_continue.session import ContinueOptions, execute, prepare
run, tasks, sandbox, out = sys.argv[1:5]
marks = {}
def progress(kind, data):
    if kind == "replay" and "first_request" not in marks:
        marks["first_request"] = time.monotonic() - t0
plan = prepare(ContinueOptions(run_dir=Path(run), tasks_dir=Path(tasks), sandbox=sandbox, replay_only=True, output=Path(out)))
summary = asyncio.run(execute(plan, progress))
print(json.dumps({**marks, "replay_sec": summary["replay_sec"], "digest": summary["workspace_digest_at_cut"]}))
"""


def original_span(run: Path) -> dict[str, float]:
    """The recorded run: first request to its last completed tool call, and its model latency."""
    lines = [json.loads(x) for x in (run / "trajectory" / "llm_trajectory.jsonl").read_text().splitlines() if x.strip()]
    first = datetime.fromisoformat(lines[0]["request"]["timestamp"]).timestamp()
    end = datetime.fromisoformat(lines[-1]["response"]["timestamp"]).timestamp()
    acp = run / "trajectory" / "acp_trajectory.jsonl"
    for raw in acp.read_text().splitlines() if acp.exists() else []:
        event = json.loads(raw)
        update = event.get("update") or {}
        if update.get("sessionUpdate") == "tool_call_update" and update.get("status") == "completed":
            end = max(end, event["timestamp"])
    latency = sum(x.get("duration_ms") or 0 for x in lines) / 1000
    result = json.loads((run / "result.json").read_text())
    return {
        "original_agent_sec": result["timing"]["agent_execution"],
        "original_span_sec": round(end - first, 3),
        "recorded_latency_sec": round(latency, 3),
        "limit_sec": round(end - first - latency, 3),
    }


def run(sandboxes: list[str], repeat: int) -> dict[str, object]:
    original = original_span(RUN)
    rows: dict[str, object] = {"run": RUN.name, **original}
    for sandbox in sandboxes:
        if sandbox != "local" and shutil.which(sandbox) is None:
            rows[sandbox] = "not installed"
            continue
        samples = []
        for _ in range(repeat):
            with tempfile.TemporaryDirectory(prefix="bfc-bench-replay-") as out:
                done = subprocess.run(
                    [sys.executable, "-c", CHILD, str(RUN), str(TASKS), sandbox, out], capture_output=True, text=True
                )
                if done.returncode != 0:
                    raise SystemExit(f"replay on {sandbox} failed: {done.stderr.strip()[-500:]}")
                samples.append(json.loads(done.stdout.strip().splitlines()[-1]))
        replay = statistics.median(s["replay_sec"] for s in samples)
        start = statistics.median(s["first_request"] for s in samples)
        rows[sandbox] = {
            "repeat": repeat,
            "agent_answering_after_sec": round(start, 2),
            "replay_sec": round(replay, 2),
            "replay_over_limit": round(replay / original["limit_sec"], 2),
            "start_plus_replay_sec": round(start + replay, 2),
            "speedup_vs_original_agent_time": round(original["original_agent_sec"] / (start + replay), 2),
            "same_digest": len({s["digest"] for s in samples}) == 1,
        }
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sandbox", action="append", help="local, podman or docker (repeatable; default local)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(run(args.sandbox or ["local"], args.repeat), indent=2))


if __name__ == "__main__":
    main()
