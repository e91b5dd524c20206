from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator

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


@pytest.fixture
def scripted_model() -> Iterator[str]:
    """The scripted model as its own process, the way the README runs it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchflow_continue", "scripted-model", str(SCRIPT), "--latency", "0.5"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    url = proc.stdout.readline().strip()
    assert url.startswith("http://127.0.0.1:") and time.monotonic() < deadline
    yield url
    proc.terminate()
    proc.wait(timeout=10)
