"""Run the task's verifier in the sandbox and read its reward."""

from __future__ import annotations

import json
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


def read_reward(folder: Path) -> dict[str, float]:
    """``reward.txt`` (one float) or ``reward.json`` (a map of floats) from the verifier's folder."""
    text_file, json_file = folder / "reward.txt", folder / "reward.json"
    if text_file.is_file():
        text = text_file.read_text().strip()
        try:
            return {"reward": float(text)}
        except ValueError:
            raise VerifierError(f"verifier wrote {text!r} to reward.txt; expected one number") from None
    if json_file.is_file():
        try:
            data = json.loads(json_file.read_text())
        except json.JSONDecodeError as exc:
            raise VerifierError(f"verifier's reward.json is not JSON ({exc.msg})") from None
        if isinstance(data, (int, float)):
            return {"reward": float(data)}
        if isinstance(data, dict) and all(isinstance(v, (int, float)) for v in data.values()):
            return {str(k): float(v) for k, v in data.items()}
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
