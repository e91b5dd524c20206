"""Run the task's verifier in the sandbox and read its reward."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import VerifierError
from .sandbox.base import Sandbox
from .task import Task

__all__ = ["Verdict", "read_reward", "run_verifier"]


@dataclass(frozen=True)
class Verdict:
    rewards: dict[str, float]
    returncode: int
    duration_sec: float


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise VerifierError(f"verifier's reward is {value}; expected a finite number")
    return value


def read_reward(folder: Path) -> dict[str, float]:
    """``reward.txt`` (one float) or ``reward.json`` (a map of floats) from the verifier's folder."""
    text_file, json_file = folder / "reward.txt", folder / "reward.json"
    if text_file.is_file():
        text = text_file.read_bytes()[:200].decode(errors="replace").strip()
        try:
            value = float(text)
        except ValueError:
            raise VerifierError(f"verifier wrote {text[:60]!r} to reward.txt; expected one number") from None
        return {"reward": _finite(value)}
    if json_file.is_file():
        try:
            data = json.loads(json_file.read_bytes())
        except (ValueError, RecursionError):
            raise VerifierError("verifier's reward.json is not usable JSON") from None
        if isinstance(data, (int, float)) and not isinstance(data, bool):
            return {"reward": _finite(float(data))}
        if isinstance(data, dict) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in data.values()
        ):
            return {str(k): _finite(float(v)) for k, v in data.items()}
        raise VerifierError("verifier's reward.json is not a number or a map of numbers")
    raise VerifierError("verifier wrote no /logs/verifier/reward.txt or reward.json")


async def run_verifier(sandbox: Sandbox, task: Task, out_dir: Path) -> Verdict:
    """Copy tests/ to /tests, run ``bash /tests/test.sh``, keep its output in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    await sandbox.upload(task.tests_dir, "/tests")
    started = time.monotonic()
    result = await sandbox.exec(["bash", "/tests/test.sh"], timeout=task.verifier_timeout)
    duration = time.monotonic() - started
    (out_dir / "test-stdout.txt").write_text(result.stdout)
    (out_dir / "test-stderr.txt").write_text(result.stderr)
    await sandbox.download("/logs/verifier", out_dir)
    if result.timed_out:
        raise VerifierError(
            f"verifier timed out after {task.verifier_timeout:.0f} s (task.toml [verifier] timeout_sec)"
        )
    return Verdict(rewards=read_reward(out_dir), returncode=result.returncode, duration_sec=duration)
