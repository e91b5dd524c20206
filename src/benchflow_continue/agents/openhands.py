"""OpenHands: installed once into a cached environment, driven over ACP on stdio.

The launch is benchflow's: ``openhands acp --always-approve --override-with-envs``
with ``LLM_MODEL``, ``LLM_API_KEY`` (the per-run proxy key) and ``LLM_BASE_URL``
(the proxy), then ``initialize``, ``session/new`` and one ``session/prompt`` per
recorded prompt, verbatim, nothing added.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acp import PROTOCOL_VERSION, text_block
from acp.client.connection import ClientSideConnection
from acp.schema import (
    AllowedOutcome,
    ClientCapabilities,
    FileSystemCapabilities,
    Implementation,
    RequestPermissionResponse,
)
from acp.stdio import spawn_agent_process

from .. import __version__
from ..errors import AgentError
from ..sandbox.base import Mount, Sandbox
from .base import AgentOutcome, AgentSetup

__all__ = ["DEFAULT_PINS", "AgentInstall", "OpenHands", "ensure_installed", "find_python", "run_openhands"]

#: the OpenHands CLI release benchflow's recordings were made with (it pins openhands-sdk 1.21.0)
DEFAULT_PINS = ("openhands==1.16.0",)
PINS_ENV = "BENCHFLOW_CONTINUE_OPENHANDS_PINS"
PYTHON_ENV = "BENCHFLOW_CONTINUE_AGENT_PYTHON"


def cache_dir() -> Path:
    base = os.environ.get("BENCHFLOW_CONTINUE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "benchflow-continue"
    )
    return Path(base)


def pins() -> tuple[str, ...]:
    override = os.environ.get(PINS_ENV, "").split()
    return tuple(override) if override else DEFAULT_PINS


def _python_ok(path: str) -> bool:
    try:
        out = subprocess.run(
            [path, "-c", "import sys, venv; print(sys.version_info >= (3, 12))"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.stdout.strip() == "True"


def find_python() -> str:
    """A Python >= 3.12 interpreter on this machine (OpenHands needs it)."""
    candidates: list[str] = []
    if os.environ.get(PYTHON_ENV):
        candidates.append(os.environ[PYTHON_ENV])
    # 3.12 first: the release benchflow installs OpenHands with
    pyenv_root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    for minor in ("3.12", "3.13", "3.14"):
        if found := shutil.which(f"python{minor}"):
            candidates.append(found)
        candidates += [str(v / "bin" / "python3") for v in sorted(Path(pyenv_root, "versions").glob(f"{minor}.*"))]
    for candidate in candidates:
        if "/shims/" not in candidate and _python_ok(candidate):
            return candidate
    raise AgentError(
        f"no Python >= 3.12 found (tried {', '.join(candidates) or 'python3.12 on PATH and pyenv'}); "
        f"OpenHands needs one: install it or set {PYTHON_ENV}"
    )


@dataclass(frozen=True)
class AgentInstall:
    root: Path
    pins: tuple[str, ...]
    version: str

    @property
    def binary(self) -> str:
        return str(self.root / "bin" / "openhands")

    @property
    def mounts(self) -> list[Mount]:
        """The venv and the interpreter it was made from, both needed inside the sandbox."""
        home = ""
        for line in (self.root / "pyvenv.cfg").read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "home":
                home = value.strip()
        prefix = Path(home).parent if home else None
        return [Mount(self.root)] + ([Mount(prefix)] if prefix and prefix != Path("/usr") else [])


def ensure_installed(log: Callable[[str], None] = lambda _: None) -> AgentInstall:
    """Install OpenHands once per set of pins; later calls return the cached install."""
    wanted = pins()
    digest = hashlib.sha256(" ".join(wanted).encode()).hexdigest()[:12]
    root = cache_dir() / "agents" / f"openhands-{digest}"
    marker = root / ".benchflow-continue.json"
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one installer at a time; the others wait and reuse it
        if marker.is_file():
            return AgentInstall(root, wanted, json.loads(marker.read_text())["version"])
        shutil.rmtree(root, ignore_errors=True)  # a half-finished install from a killed run
        python = find_python()
        log(f"installing OpenHands ({' '.join(wanted)}) with {python} into {root}; this takes a few minutes, once")
        steps = [
            [python, "-m", "venv", str(root)],
            [str(root / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *wanted],
        ]
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True)
            if done.returncode != 0:
                shutil.rmtree(root, ignore_errors=True)
                tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
                raise AgentError(f"OpenHands install failed ({' '.join(step[:3])}...): {' | '.join(tail)}")
        probe = subprocess.run(
            [str(root / "bin" / "python"), "-c", "import importlib.metadata as m; print(m.version('openhands'))"],
            capture_output=True,
            text=True,
        )
        if probe.returncode != 0 or not (root / "bin" / "openhands").exists():
            shutil.rmtree(root, ignore_errors=True)
            raise AgentError(f"OpenHands installed but does not run: {probe.stderr.strip()[-300:]}")
        version = probe.stdout.strip()
        marker.write_text(json.dumps({"pins": list(wanted), "version": version, "python": python}))
        return AgentInstall(root, wanted, version)


class _Client:
    """The ACP client side: approve every permission, keep every session update."""

    def __init__(self, events: list[dict[str, Any]], on_update: Callable[[], None]) -> None:
        self.events = events
        self.on_update = on_update

    async def request_permission(self, options: list[Any], session_id: str, tool_call: Any, **_: Any) -> Any:
        allow = next((o for o in options if str(o.kind).startswith("allow")), options[0])
        return RequestPermissionResponse(outcome=AllowedOutcome(option_id=allow.option_id, outcome="selected"))

    async def session_update(self, session_id: str, update: Any, **_: Any) -> None:
        self.events.append({"timestamp": time.time(), "update": update.model_dump(mode="json", by_alias=True)})
        self.on_update()


def agent_env(proxy_url: str, key: str, model_alias: str) -> dict[str, str]:
    """The agent's environment: the proxy and its key, never a provider credential.

    The install's own bin/ stays off PATH, as with benchflow's tool install, so the
    agent's shell sees the image's interpreters, not OpenHands' venv.
    """
    return {
        "LLM_MODEL": model_alias,
        "LLM_API_KEY": key,
        "LLM_BASE_URL": f"{proxy_url}/v1",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "OPENHANDS_SUPPRESS_BANNER": "1",
    }


async def run_openhands(
    sandbox: Sandbox,
    install: AgentInstall,
    env: dict[str, str],
    prompts: list[str],
    *,
    stderr_path: Path,
    should_stop: Callable[[], Awaitable[str]],
    on_update: Callable[[], None] = lambda: None,
) -> AgentOutcome:
    """Run OpenHands over ACP until its prompts are done or ``should_stop`` returns a reason."""
    settings = {"llm": {"model": env["LLM_MODEL"], "api_key": env["LLM_API_KEY"], "base_url": env["LLM_BASE_URL"]}}
    seed = stderr_path.parent / ".agent_settings.json"
    seed.write_text(json.dumps(settings))
    try:
        await sandbox.upload(seed, f"{sandbox.home}/.openhands/agent_settings.json")
    finally:
        seed.unlink()
    argv, environment = sandbox.command([install.binary, "acp", "--always-approve", "--override-with-envs"], env)
    outcome = AgentOutcome(stop_reason="running")
    with open(stderr_path, "ab") as stderr, _acp_log_to(stderr_path):
        async with spawn_agent_process(
            _Client(outcome.events, on_update),
            argv[0],
            *argv[1:],
            env=environment,
            transport_kwargs={"stderr": stderr, "limit": 64 * 1024 * 1024},
        ) as (conn, process):
            work = asyncio.ensure_future(_drive(conn, sandbox.workdir, prompts, outcome))
            stop = asyncio.ensure_future(should_stop())
            exited = asyncio.ensure_future(process.wait())
            try:
                done, _ = await asyncio.wait({work, stop, exited}, return_when=asyncio.FIRST_COMPLETED)
                if stop in done:
                    outcome.stop_reason = stop.result()
                elif work in done and work.exception() is None:
                    pass
                else:
                    await asyncio.wait({exited}, timeout=2)
                    if process.returncode is not None:
                        outcome.stop_reason = "crashed"
                        outcome.error = f"the agent process exited with code {process.returncode}: {_tail(stderr_path)}"
                    else:
                        outcome.stop_reason, outcome.error = "error", _describe(work.exception())
            finally:
                for task in (work, stop, exited):
                    task.cancel()
                await asyncio.gather(work, stop, exited, return_exceptions=True)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await sandbox.end_commands()  # a container's processes outlive the engine's client
    return outcome


async def _drive(conn: ClientSideConnection, cwd: str, prompts: list[str], outcome: AgentOutcome) -> None:
    await conn.initialize(
        protocol_version=PROTOCOL_VERSION,
        client_capabilities=ClientCapabilities(
            fs=FileSystemCapabilities(read_text_file=False, write_text_file=False), terminal=False
        ),
        client_info=Implementation(name="benchflow-continue", version=__version__),
    )
    session = await conn.new_session(cwd=cwd, mcp_servers=[])
    for prompt in prompts:
        response = await conn.prompt(session_id=session.session_id, prompt=[text_block(prompt)])
        outcome.prompts_done += 1
        outcome.stop_reason = str(response.stop_reason)
        if outcome.stop_reason != "end_turn":
            break


@contextlib.contextmanager
def _acp_log_to(path: Path) -> Iterator[None]:
    """The ACP library logs what it cannot parse (a crashing agent's last words) with a
    traceback on the root logger: into the agent's log with it, not onto the user's terminal."""
    handler = logging.FileHandler(path)
    handler.addFilter(lambda record: "acp" in Path(record.pathname).parts)
    root = logging.getLogger()
    added = [handler]
    if not root.handlers:  # keep what Python would print for everything else
        others = logging.StreamHandler()
        others.setLevel(logging.WARNING)
        others.addFilter(lambda record: "acp" not in Path(record.pathname).parts)
        added.append(others)
    for each in added:
        root.addHandler(each)
    try:
        yield
    finally:
        for each in added:
            root.removeHandler(each)
        handler.close()


def _tail(path: Path, lines: int = 3) -> str:
    """The last lines of the agent's log, for an error message."""
    text = path.read_text(errors="replace").strip().splitlines() if path.exists() else []
    return " | ".join(text[-lines:]) or "no output (see agent/openhands.txt)"


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return ""
    text = str(exc) or type(exc).__name__
    data = getattr(exc, "data", None)
    return f"{text}: {data}" if data else text


class OpenHands:
    """The OpenHands CLI as an :class:`~benchflow_continue.agents.base.Agent`."""

    name = "openhands"

    def __init__(self) -> None:
        self._install: AgentInstall | None = None

    def install(self, log: Callable[[str], None]) -> AgentSetup:
        self._install = ensure_installed(log)
        return AgentSetup(version=self._install.version, mounts=self._install.mounts)

    async def run(
        self,
        sandbox: Sandbox,
        env: dict[str, str],
        prompts: list[str],
        *,
        log_path: Path,
        should_stop: Callable[[], Awaitable[str]],
        on_update: Callable[[], None],
    ) -> AgentOutcome:
        assert self._install is not None, "install() first"
        return await run_openhands(
            sandbox, self._install, env, prompts, stderr_path=log_path, should_stop=should_stop, on_update=on_update
        )
