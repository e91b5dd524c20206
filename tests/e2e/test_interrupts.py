"""Ctrl-C and SIGTERM in every phase of a continuation: nothing is left behind.

No output folder (not even a hidden .partial one), no sandbox folder, no agent or
bwrap process, no container; the source folder is unchanged.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from benchflow_continue.sandbox.container import leftover_containers

from ..conftest import tree_digest
from .conftest import RUN, TASKS, assert_nothing_left, spawn, wait_for

pytestmark = pytest.mark.e2e

#: the line each phase prints as it starts, and how long to wait into it
PHASES = {
    "boot": ("booting sandbox", 0.0),
    "replay": ("replaying", 3.0),
    "live": ("cut-point after 3", 1.0),
    "verify": ("verifying", 1.0),
    "write": ("writing", 0.5),
}


def _slow_verifier_tasks(tmp_path: Path) -> Path:
    """The example task with a verifier that takes 30 s: a window to interrupt it in."""
    tasks = tmp_path / "tasks"
    shutil.copytree(TASKS, tasks)
    test_sh = tasks / "inventory-report" / "tests" / "test.sh"
    test_sh.write_text("sleep 30\n" + test_sh.read_text())
    return tasks


def _interrupt(
    tmp_path: Path, phase: str, signum: int, scripted_models: Callable[..., str], *extra: str
) -> subprocess.Popen[str]:
    before = tree_digest(RUN)
    tasks = _slow_verifier_tasks(tmp_path) if phase == "verify" else TASKS
    output = tmp_path / "out"
    output.mkdir()
    args = [str(RUN), "--tasks-dir", str(tasks), "--output", str(output), *extra]
    env = {}
    if phase == "live":  # the live model never answers: the run sits in its live leg
        env["OPENAI_BASE_URL"] = scripted_models("--hold-turn", "3")
        args += ["--model", "openai/scripted"]
    else:
        args.append("--replay-only")
    proc = spawn(*args, env=env)
    text, delay = PHASES[phase]
    wait_for(proc, text)
    time.sleep(delay)
    proc.send_signal(signum)
    code = proc.wait(timeout=90)
    if phase == "write" and code == 0:
        # SIGTERM is handled between steps, and writing is one step: the folder is finished, whole
        assert [p.name for p in output.iterdir()] == ["inventory-report__timeout__replayed"]
        assert (output / "inventory-report__timeout__replayed" / "result.json").is_file()
    else:
        assert code == 130
        assert_nothing_left(proc, output)
    assert tree_digest(RUN) == before
    return proc


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("phase", list(PHASES))
def test_local(tmp_path: Path, phase: str, signum: int, scripted_models: Callable[..., str]) -> None:
    _interrupt(tmp_path, phase, signum, scripted_models)  # the agent dies with its bwrap namespace


@pytest.mark.parametrize(
    ("phase", "signum"),
    [("verify", signal.SIGTERM), ("live", signal.SIGINT), ("boot", signal.SIGTERM)],
    ids=["verify-SIGTERM", "live-SIGINT", "boot-SIGTERM"],
)
def test_podman(tmp_path: Path, phase: str, signum: int, scripted_models: Callable[..., str]) -> None:
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed (scripts/setup-container-engine.sh installs it)")
    proc = _interrupt(tmp_path, phase, signum, scripted_models, "--sandbox", "podman")
    assert leftover_containers("podman", proc.pid) == []
