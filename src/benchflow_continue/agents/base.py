"""The agent interface: installed once, then run in a sandbox against the proxy."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..sandbox.base import Mount, Sandbox

__all__ = ["Agent", "AgentOutcome", "AgentSetup"]


@dataclass(frozen=True)
class AgentSetup:
    version: str
    mounts: list[Mount]  # host folders the sandbox must see (the agent's install)


@dataclass
class AgentOutcome:
    """How the agent's run ended; a failure is data here, not an exception."""

    stop_reason: str  # "end_turn" | "stopped" | "timeout" | "idle_timeout" | "crashed" | "error" | ...
    prompts_done: int = 0
    error: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)


class Agent(Protocol):
    name: str

    def install(self, log: Callable[[str], None]) -> AgentSetup:
        """Make the agent runnable (once; later calls are cheap)."""
        ...

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
        """Deliver ``prompts`` in order until done or ``should_stop`` returns a reason."""
        ...
