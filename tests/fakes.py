"""Test doubles, for unit tests only: never the thing a feature is claimed on."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from benchflow_continue.agents.base import AgentOutcome, AgentSetup
from benchflow_continue.runfolder import load_run_folder
from benchflow_continue.sandbox.base import Sandbox


class ReplayingAgent:
    """Sends a run's recorded requests to the proxy, in order, then one more (the cut-point).

    It executes nothing in the sandbox, so it is fast: for batch bookkeeping tests."""

    name = "fake"

    def __init__(self, run_dir: Path) -> None:
        self.exchanges = load_run_folder(run_dir).exchanges

    def install(self, log: Callable[[str], None]) -> AgentSetup:
        return AgentSetup(version="fake", mounts=[])

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
        headers = {"Authorization": f"Bearer {env['LLM_API_KEY']}"}
        async with httpx.AsyncClient(base_url=env["LLM_BASE_URL"], headers=headers, timeout=60) as client:
            for exchange in self.exchanges:
                await client.post("/chat/completions", content=json.dumps(exchange.request_body))
            last = self.exchanges[-1].request_body
            beyond = dict(last, messages=[*last["messages"], {"role": "user", "content": "next"}])
            answer = await client.post("/chat/completions", content=json.dumps(beyond))
        log_path.write_text(f"fake agent: cut-point answered {answer.status_code}\n")
        return AgentOutcome(stop_reason="stopped" if answer.status_code == 503 else "end_turn")
