"""Record the bundled example run: the real OpenHands agent on examples/tasks/inventory-report
against the scripted model, with a wall-clock budget that runs out mid-task.

A first run is a continuation of an empty recording: this script writes a run
folder with no exchanges, then continues it live, so the proxy records every
exchange in benchflow's schema. The scripted model holds its answer to turn 3
(a provider that hangs), so the run times out while the agent waits for it,
with turns 0-2 done. Nothing in the written folder is edited by hand.

    python examples/generate.py            # writes examples/runs/inventory-report__timeout
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from benchflow_continue.scripted import ScriptedModel, load_script
from benchflow_continue.session import ContinueOptions, execute, prepare

HERE = Path(__file__).resolve().parent
TASK = "inventory-report"
NAME = f"{TASK}__timeout"
MODEL = "openai/scripted"


async def record(
    out: Path,
    budget: float,
    hold_turn: int,
    latency: float,
    script: Path = HERE / "scripts" / f"{TASK}.json",
    name: str = NAME,
) -> dict:
    server = ScriptedModel(load_script(script), latency=latency, hold_turn=hold_turn)
    os.environ["OPENAI_BASE_URL"] = await server.start()
    empty = Path(tempfile.mkdtemp(prefix="bfc-empty-")) / f"{TASK}__new"
    try:
        (empty / "trajectory").mkdir(parents=True)
        (empty / "trajectory" / "llm_trajectory.jsonl").write_bytes(b"")
        instruction = (HERE / "tasks" / TASK / "instruction.md").read_text()
        (empty / "prompts.json").write_text(json.dumps([instruction]))
        config = {
            "task_path": TASK,
            "agent": "openhands",
            "model": MODEL,
            "environment": "local",
            "timeout_sec": budget,
            "agent_idle_timeout_sec": 600,
            "agent_env": {"LLM_MODEL": MODEL},
        }
        (empty / "config.json").write_text(json.dumps(config, indent=2))
        options = ContinueOptions(
            run_dir=empty,
            tasks_dir=HERE / "tasks",
            model=MODEL,
            timeout=budget,
            output=out,
            name=name,
            record_new=True,
        )
        return await execute(prepare(options), lambda kind, data: print(kind, data, file=sys.stderr))
    finally:
        await server.stop()
        shutil.rmtree(empty.parent, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=HERE / "runs")
    parser.add_argument("--budget", type=float, default=30.0, help="wall-clock budget of the recorded run (s)")
    parser.add_argument("--hold-turn", type=int, default=3, help="the turn the scripted model never answers")
    parser.add_argument("--latency", type=float, default=1.5, help="scripted model latency per answer (s)")
    args = parser.parse_args()
    summary = asyncio.run(record(args.output, args.budget, args.hold_turn, args.latency))
    print(json.dumps(summary, indent=2))
    if summary["error_category"] != "timeout":
        sys.exit(f"expected the recorded run to time out, got {summary['error_category']}: {summary['error']}")


if __name__ == "__main__":
    main()
