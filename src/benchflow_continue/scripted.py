"""A scripted OpenAI-compatible model server, for offline tests and demos.

The answer to a request is chosen by the conversation's state, not by arrival
order: turn ``k`` is the number of assistant messages already in the request.
So one script serves a first run and, later, its continuation past the cut-point.

Script file (JSON)::

    {"model": "scripted",
     "turns": [{"say": "I'll look first.", "call": "terminal", "arguments": {"command": "ls"}},
               {"say": "Done.", "call": "finish", "arguments": {"message": "done"}}]}

A turn without ``call`` is a plain answer (the agent ends its turn). Tool-call
ids are ``call_<turn>``: unique within a conversation, equal across runs.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from .errors import InputError
from .replay import sse_events

__all__ = ["Script", "ScriptedModel", "load_script"]


@dataclass(frozen=True)
class Script:
    model: str
    turns: list[dict[str, Any]]


def load_script(path: Path) -> Script:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such script file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    turns = data.get("turns") if isinstance(data, dict) else None
    if not isinstance(turns, list) or not all(isinstance(t, dict) for t in turns):
        raise InputError(f'{path}: expected {{"turns": [{{"say": ..., "call": ..., "arguments": {{...}}}}, ...]}}')
    return Script(model=str(data.get("model", "scripted")), turns=turns)


def turn_of(body: dict[str, Any]) -> int:
    return sum(1 for m in body.get("messages", []) if isinstance(m, dict) and m.get("role") == "assistant")


def completion(script: Script, turn: int, body: dict[str, Any]) -> dict[str, Any]:
    """The scripted answer for ``turn`` as a ChatCompletion."""
    if turn < len(script.turns):
        step = script.turns[turn]
        message: dict[str, Any] = {"role": "assistant", "content": step.get("say")}
        if step.get("call"):
            arguments = json.dumps(step.get("arguments", {}))
            message["tool_calls"] = [
                {
                    "id": f"call_{turn:02d}",
                    "type": "function",
                    "function": {"name": step["call"], "arguments": arguments},
                }
            ]
        finish = "tool_calls" if step.get("call") else "stop"
    else:
        message, finish = {"role": "assistant", "content": "The script has no more turns."}, "stop"
    prompt_tokens = len(json.dumps(body.get("messages", []))) // 4
    completion_tokens = max(1, len(json.dumps(message)) // 4)
    return {
        "id": f"chatcmpl-scripted-{turn:03d}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": script.model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


class ScriptedModel:
    """The server. ``latency`` is added to every answer, as a real model would take;
    ``hold_turn`` never answers that turn (a provider that hangs), for recording
    runs that time out while waiting on the model; ``failures`` answers a turn with
    error statuses first. ``stream: true`` gets the answer as SSE chunks."""

    def __init__(
        self,
        script: Script,
        *,
        latency: float = 0.0,
        hold_turn: int | None = None,
        failures: dict[int, list[int]] | None = None,
    ) -> None:
        self.script = script
        self.latency = latency
        self.hold_turn = hold_turn
        #: per turn, the statuses to answer with before the scripted answer (a flaky provider)
        self.failures = {turn: list(statuses) for turn, statuses in (failures or {}).items()}
        self.requests = 0
        self._runner: web.AppRunner | None = None

    async def _completions(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return web.json_response({"error": {"message": "body is not JSON"}}, status=400)
        self.requests += 1
        turn = turn_of(body)
        if turn == self.hold_turn:
            await asyncio.Event().wait()  # until the client goes away
        if self.latency:
            await asyncio.sleep(self.latency)
        pending = self.failures.get(turn)
        if pending:
            status = pending.pop(0)
            kind = "rate_limit_error" if status == 429 else "server_error"
            return web.json_response({"error": {"type": kind, "message": f"scripted failure {status}"}}, status=status)
        answer = completion(self.script, turn, body)
        if not body.get("stream"):
            return web.json_response(answer)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for event in sse_events(answer):
            await response.write(event)
        await response.write_eof()
        return response

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": self.script.model, "object": "model"}]})

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._completions)
        app.router.add_post("/chat/completions", self._completions)
        app.router.add_get("/v1/models", self._models)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = site._server.sockets[0].getsockname()  # type: ignore[union-attr]
        return f"http://{bound[0]}:{bound[1]}/v1"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
