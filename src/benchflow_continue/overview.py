"""What a user wants to know about a run folder before (or after) continuing it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .accounting import totals
from .errors import InputError
from .runfolder import RunFolder, check_continuable, load_run_folder
from .task import load_task, resolve_task_dir

__all__ = ["describe", "last_actions"]


def _short(text: str, width: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def last_actions(run: RunFolder, n: int = 5) -> list[str]:
    """The agent's last tool calls, from the recorded answers: ``name: command or path``."""
    actions: list[str] = []
    for exchange in run.exchanges:
        for choice in exchange.response_body.get("choices") or []:
            message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
            calls = message.get("tool_calls") if isinstance(message.get("tool_calls"), list) else []
            for call in (c for c in calls if isinstance(c, dict)):
                function = call.get("function") if isinstance(call.get("function"), dict) else {}
                try:
                    args = json.loads(function.get("arguments") or "{}")
                except (TypeError, ValueError, RecursionError):
                    args = {}
                if not isinstance(args, dict):
                    args = {}
                what = args.get("command") or args.get("path") or args.get("message") or args.get("thought") or ""
                if function.get("name") == "file_editor" and args.get("path"):
                    what = f"{args.get('command', '')} {args['path']}"
                actions.append(f"{function.get('name', '?')}: {_short(str(what))}")
            if not message.get("tool_calls") and message.get("content"):
                actions.append(f"says: {_short(str(message['content']))}")
    return actions[-n:]


def describe(path: Path, tasks_dir: Path | None = None) -> dict[str, Any]:
    """A summary of one run folder; raises InputError for a folder that cannot be read."""
    run = load_run_folder(path, allow_empty=True)
    result = run.result or {}
    failed = [e.index for e in run.exchanges if not e.ok]
    usage = totals((None, e.usage) for e in run.exchanges)
    timing = result.get("timing") if isinstance(result.get("timing"), dict) else {}
    reasons: list[str] = []
    try:
        # the run command goes on after these; here they are only notes
        reasons += [w.removesuffix("; continuing anyway") for w in check_continuable(run, require_timeout=False)]
        if not run.exchanges:
            raise InputError("the trajectory holds no exchanges: nothing to replay")
        load_task(resolve_task_dir(run.task_name, tasks_dir, run.config.get("task_path")))
        continuable = True
    except InputError as exc:
        continuable, reasons = False, [*reasons, str(exc)]
    source = run.config.get("source") if isinstance(run.config.get("source"), dict) else {}
    continuation = result.get("continuation") if isinstance(result.get("continuation"), dict) else None
    return {
        "run": run.path.name,
        "path": str(run.path.absolute()),
        "task": run.task_name,
        "agent": run.agent,
        "model": run.model,
        "environment": run.config.get("environment"),
        "rewards": result.get("rewards"),
        "error_category": run.error_category,
        "error": _short(str(result["error"]), 200) if result.get("error") else None,
        "is_timeout": run.is_timeout,
        "exchanges": len(run.exchanges),
        "failed_exchanges": failed,
        "tokens": {k: usage[k] for k in ("n_input_tokens", "n_output_tokens", "total_tokens")},
        "agent_sec": timing.get("agent_execution"),
        "total_sec": timing.get("total"),
        "timeout_sec": run.timeout_sec,
        "last_actions": last_actions(run),
        "continuable": continuable,
        "notes": reasons + run.notes,
        "continuation_chain": source.get("continuation_chain") or [],
        "cut_point": continuation.get("cut_point") if continuation and source.get("continued_from") else None,
        "match_counts": continuation.get("match_counts") if continuation else None,
    }
