"""The sandbox interface: what a backend must do for a continuation.

A backend gives a fresh, pristine environment built from the task's image, runs
commands in it, moves files in and out, and is always torn down.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = ["ExecResult", "Mount", "Sandbox", "kill_group", "pid_alive", "run_process", "workspace_digest"]


@dataclass(frozen=True)
class ExecResult:
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool = False


@dataclass(frozen=True)
class Mount:
    """A host folder the sandbox must see at the same path, read-only (the agent's install)."""

    path: Path


class Sandbox(Protocol):
    name: str
    workdir: str  # the task's working directory inside the sandbox
    env: dict[str, str]  # the image's environment (Dockerfile ENV)
    user: str  # who the agent runs as
    home: str  # that user's home folder
    terminal: str  # which terminal OpenHands gets (it uses tmux when it can see it)

    async def start(self) -> None: ...

    def command(self, argv: list[str], env: dict[str, str], cwd: str | None = None) -> tuple[list[str], dict[str, str]]:
        """The host command, and its environment, that run ``argv`` inside the sandbox with stdio attached.

        ``env`` is passed in the process environment, never on the command line, where
        every user could read it."""
        ...

    async def exec(
        self, argv: list[str], *, env: dict[str, str] | None = None, timeout: float | None = None
    ) -> ExecResult: ...

    async def end_commands(self) -> None:
        """End whatever a ``command()`` started that is still running, however deep."""
        ...

    async def upload(self, source: Path, target: str) -> None: ...

    async def download(self, source: str, target: Path) -> None: ...

    async def stop(self) -> None: ...


async def workspace_digest(sandbox: Sandbox) -> tuple[str, str]:
    """A digest of the workspace (every file's path and sha256) and the manifest it hashes."""
    import hashlib

    script = 'cd "$1" && find . \\( -type f -o -type l \\) -print0 | LC_ALL=C sort -z | xargs -0r sha256sum'
    result = await sandbox.exec(["sh", "-c", script, "digest", sandbox.workdir], timeout=300)
    if result.returncode != 0:
        from ..errors import SandboxError

        raise SandboxError(f"could not digest {sandbox.workdir}: {result.stderr.strip()[-300:]}")
    return "sha256:" + hashlib.sha256(result.stdout.encode()).hexdigest(), result.stdout


async def run_process(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    stdin: bytes | None = None,
    timeout: float | None = None,
    running: set[asyncio.subprocess.Process] | None = None,
    on_timeout: Callable[[], Awaitable[None]] | None = None,
) -> ExecResult:
    """Run a host command in its own session and collect its output.

    At the timeout, or when the caller is cancelled (Ctrl-C), the command is killed with
    everything it started: nothing outlives the run. ``running`` holds it meanwhile, so a
    sandbox's stop() can kill it too; ``on_timeout`` ends what it started elsewhere first."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        env=env,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    if running is not None:
        running.add(proc)
    try:
        try:
            out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
        except TimeoutError:
            if on_timeout is not None:
                await on_timeout()
            kill_group(proc)
            out, err = await proc.communicate()
            return ExecResult(-1, out.decode(errors="replace"), err.decode(errors="replace"), timed_out=True)
    finally:
        kill_group(proc)  # cancelled: not left running
        if running is not None:
            running.discard(proc)
    return ExecResult(proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace"))


def kill_group(proc: asyncio.subprocess.Process) -> None:
    """Kill a process started in its own session, with everything it started."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def pid_alive(pid: int) -> bool:
    """Whether a process of that id exists (whoever owns it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
