"""Continue every timed-out run of a jobs folder: discovery, a bounded pool, a summary.

Discovery reads only ``config.json`` and ``result.json`` of each rollout folder
(never a trajectory), skips the tool's own outputs, and marks runs whose
continuation is already complete as done, so a second batch does nothing but
report and an interrupted one picks up where it stopped.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .agents.base import Agent
from .errors import InputError
from .output import REPLAYED_SUFFIX, SUFFIX, output_name, write_json
from .runfolder import TIMEOUT_CATEGORIES
from .session import ContinueOptions, execute, prepare

__all__ = ["Candidate", "default_concurrency", "discover", "run_batch", "summarize"]

#: how deep below JOBS_DIR rollout folders are looked for (<jobs>/<job>/<task>__<id>)
MAX_DEPTH = 3
OUTPUT_DIR = "continued"


@dataclass
class Candidate:
    path: Path
    task: str
    #: "todo": to continue; "done": a completed continuation exists; "skip": not continuable
    state: str
    reason: str = ""
    reward_before: float | None = None
    outcome: dict[str, Any] = field(default_factory=dict)


def default_concurrency() -> int:
    """What this machine can hold: a continuation takes about a core and 1.5 GB at its peak."""
    try:
        memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        memory_gb = 4.0
    return max(1, min(os.cpu_count() or 1, int(memory_gb // 1.5), 8))


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _rollouts(root: Path, depth: int = 0) -> list[Path]:
    found: list[Path] = []
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return found
    for entry in entries:
        if not entry.is_dir(follow_symlinks=False) or entry.name.startswith("."):
            continue
        if entry.name == OUTPUT_DIR or entry.name.endswith((SUFFIX, REPLAYED_SUFFIX)):
            continue  # this tool's own outputs
        path = Path(entry.path)
        if (path / "config.json").is_file():
            found.append(path)
        elif depth + 1 < MAX_DEPTH:
            found += _rollouts(path, depth + 1)
    return found


def _classify(path: Path, output_for: Callable[[Path], Path], replay_only: bool) -> Candidate:
    config, result = _read(path / "config.json"), _read(path / "result.json")
    task = str((result or {}).get("task_name") or Path(str((config or {}).get("task_path") or path.name)).name)
    if config is None:
        return Candidate(path, task, "skip", "config.json is not a JSON object")
    if (config.get("source") or {}).get("continued_from") if isinstance(config.get("source"), dict) else False:
        return Candidate(path, task, "skip", "a continuation itself")
    if config.get("agent") != "openhands":
        return Candidate(path, task, "skip", f"agent {config.get('agent')!r}, not openhands")
    if result is None:
        return Candidate(path, task, "skip", "no result.json: status unknown")
    category = result.get("error_category")
    rewards = result.get("rewards") if isinstance(result.get("rewards"), dict) else {}
    before = rewards.get("reward") if isinstance(rewards.get("reward"), (int, float)) else None
    if category not in TIMEOUT_CATEGORIES:
        return Candidate(path, task, "skip", f"not a timeout ({category or 'completed'})", before)
    if not (path / "trajectory" / "llm_trajectory.jsonl").is_file():
        return Candidate(path, task, "skip", "no trajectory/llm_trajectory.jsonl", before)
    done = output_for(path) / output_name(path.name, replay_only=replay_only)
    if (done / "result.json").is_file():
        outcome = _read(done / "result.json") or {}
        return Candidate(path, task, "done", f"already continued: {done}", before, outcome)
    return Candidate(path, task, "todo", "", before)


def discover(
    jobs_dir: Path, output: Path | None = None, pattern: str | None = None, replay_only: bool = False
) -> list[Candidate]:
    """Every rollout folder under ``jobs_dir`` with what a batch would do with it."""
    if not jobs_dir.is_dir():
        raise InputError(f"{jobs_dir}: not a folder; pass the jobs folder that holds the rollouts")

    def output_for(path: Path) -> Path:
        return output or jobs_dir / OUTPUT_DIR

    found = [_classify(p, output_for, replay_only) for p in _rollouts(jobs_dir)]
    if pattern:
        found = [c for c in found if fnmatch.fnmatch(c.task, pattern)]
    return found


async def run_batch(
    candidates: list[Candidate],
    template: ContinueOptions,
    jobs_dir: Path,
    *,
    concurrency: int,
    limit: int | None = None,
    on_event: Callable[[str, str, dict[str, Any]], None] = lambda run, kind, data: None,
    agent_factory: Callable[[Path], Agent] | None = None,
) -> list[Candidate]:
    """Continue the ``todo`` candidates, ``concurrency`` at a time; one run's failure never stops the others."""
    todo = [c for c in candidates if c.state == "todo"][:limit]
    gate = asyncio.Semaphore(concurrency)
    output = template.output or jobs_dir / OUTPUT_DIR

    async def one(candidate: Candidate) -> None:
        async with gate:
            name = candidate.path.name
            on_event(name, "phase", {"phase": "preparing"})
            try:
                plan = prepare(replace(template, run_dir=candidate.path, output=output))
                agent = agent_factory(candidate.path) if agent_factory else None
                summary = await execute(plan, lambda kind, data: on_event(name, kind, data), agent)
                candidate.outcome = _read(Path(summary["output"]) / "result.json") or {}
                ran = summary["error"] is None or summary["error_category"] in TIMEOUT_CATEGORIES
                candidate.state = "continued" if ran and summary["rewards"] is not None else "failed"
                candidate.reason = summary["error"] or summary["verifier_error"] or ""
            except InputError as exc:
                candidate.state, candidate.reason = "failed", str(exc)
            on_event(name, "finished", {"state": candidate.state, "reason": candidate.reason})

    await asyncio.gather(*(one(c) for c in todo))
    return candidates


def _reward(outcome: dict[str, Any]) -> float | None:
    rewards = outcome.get("rewards") or {}
    value = rewards.get("reward") if isinstance(rewards, dict) else None
    return float(value) if isinstance(value, (int, float)) else None


def summarize(candidates: list[Candidate], output: Path, elapsed: float) -> dict[str, Any]:
    """Totals and one row per run, written to ``output/summary.json``."""
    rows = []
    live_tokens = saved_tokens = 0
    for c in candidates:
        o = c.outcome  # the continuation's result.json
        cont = o.get("continuation") or {}
        usage = o.get("agent_result") or {}
        live_tokens += (usage.get("live") or {}).get("total_tokens", 0)
        saved_tokens += (usage.get("recorded_prefix") or {}).get("total_tokens", 0)
        rows.append(
            {
                "run": c.path.name,
                "task": c.task,
                "state": c.state,
                "reason": c.reason,
                "replayed": cont.get("replayed_exchanges"),
                "live": cont.get("live_exchanges"),
                "divergences": len(cont.get("divergences") or []),
                "reward_before": c.reward_before,
                "reward_after": _reward(o),
                "sec": (o.get("timing") or {}).get("total"),
            }
        )
    continued = [r for r in rows if r["state"] in ("continued", "done")]
    summary = {
        "runs": len(rows),
        "continued_now": sum(r["state"] == "continued" for r in rows),
        "already_done": sum(r["state"] == "done" for r in rows),
        "failed": sum(r["state"] == "failed" for r in rows),
        "skipped": sum(r["state"] == "skip" for r in rows),
        "not_started": sum(r["state"] == "todo" for r in rows),
        "timed_out_now_passing": sum((r["reward_after"] or 0) >= 1.0 for r in continued),
        "live_tokens": live_tokens,
        "tokens_served_from_recordings": saved_tokens,
        "elapsed_sec": round(elapsed, 1),
        "rows": rows,
    }
    output.mkdir(parents=True, exist_ok=True)
    staging = output / ".summary.json.partial"
    write_json(staging, summary)
    os.replace(staging, output / "summary.json")
    return summary
