from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from benchflow_continue.agents.openhands import cache_dir

from ..conftest import EXAMPLES

RUN = EXAMPLES / "runs" / "inventory-report__timeout"
TASKS = EXAMPLES / "tasks"
SCRIPT = EXAMPLES / "scripts" / "inventory-report.json"


def _missing() -> str | None:
    if shutil.which("bwrap") is None:
        return "bwrap (bubblewrap) is not installed"
    if not any(cache_dir().glob("agents/openhands-*/.benchflow-continue.json")):
        return "the OpenHands agent environment is not installed (scripts/setup.sh installs it)"
    return None


@pytest.fixture(autouse=True)
def _prerequisites() -> None:
    reason = _missing()
    if reason is None:
        return
    if os.environ.get("BFC_REQUIRE_E2E") == "1":  # CI: a missing prerequisite is a failure, not a skip
        pytest.fail(reason)
    pytest.skip(reason)


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchflow_continue", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def spawn(*args: str, env: dict[str, str] | None = None, stdout: bool = False) -> subprocess.Popen[str]:
    """The command in the background, its progress readable on stderr (and the outcome on stdout)."""
    return subprocess.Popen(
        [sys.executable, "-m", "benchflow_continue", *args],
        stdout=subprocess.PIPE if stdout else None,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def wait_for(proc: subprocess.Popen[str], text: str) -> None:
    assert proc.stderr is not None
    for line in proc.stderr:
        if text in line:
            return
    raise AssertionError(f"never printed {text!r}")


def assert_nothing_left(proc: subprocess.Popen[str], output: Path) -> None:
    """No output folder (not even a .partial one), no bwrap or agent process, no sandbox folder."""
    assert list(output.iterdir()) == []
    mine = f"bfc-sandbox-{proc.pid}-"  # the sandbox folders this continuation made carry its pid
    assert subprocess.run(["pgrep", "-f", mine], capture_output=True, text=True).stdout == ""
    assert not list(Path(tempfile.gettempdir()).glob(mine + "*"))


def continue_live(source: Path, out: Path, url: str, *extra: str, env: dict[str, str] | None = None) -> dict:
    """A full continuation against the scripted model at ``url``; its --json outcome."""
    done = cli(
        str(source),
        "--tasks-dir",
        str(TASKS),
        "--model",
        "openai/scripted",
        "--output",
        str(out),
        "--json",
        *extra,
        env={"OPENAI_BASE_URL": url, **(env or {})},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def start_scripted_model(*args: str) -> tuple[subprocess.Popen[str], str]:
    """The scripted model as its own process, the way the README runs it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchflow_continue", "scripted-model", str(SCRIPT), *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    assert url.startswith("http://127.0.0.1:"), url
    return proc, url


@pytest.fixture
def scripted_models() -> Iterator[Callable[..., str]]:
    """Start scripted models with the given flags; all stopped at the end of the test."""
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str) -> str:
        proc, url = start_scripted_model(*args)
        procs.append(proc)
        return url

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def scripted_model(scripted_models: Callable[..., str]) -> str:
    return scripted_models("--latency", "0.5")
