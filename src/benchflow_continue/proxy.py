"""The loopback HTTP server the agent talks to (OpenAI chat-completions wire protocol).

It joins the pure :class:`~benchflow_continue.replay.Router` to the live model
and records every live exchange in the recording's own schema.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import json
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .live import LiveAnswer, LiveModel
from .replay import Router, sse_events
from .runfolder import Exchange

__all__ = ["ReplayProxy", "RECORDED_REQUEST_KEYS"]

#: the fields benchflow's capture keeps of a request body; live exchanges are recorded alike
RECORDED_REQUEST_KEYS = ("model", "messages", "tools", "stream", "reasoning_effort", "thinking")
MAX_BODY = 64 * 1024 * 1024
#: consecutive failed live answers (after the proxy's own retries) that stop the run
MAX_LIVE_FAILURES = 3

Hook = Callable[[], Awaitable[None]]


def _error(status: int, message: str, kind: str = "benchflow_continue_error") -> web.Response:
    return web.json_response({"error": {"type": kind, "message": message}}, status=status)


class ReplayProxy:
    def __init__(
        self,
        router: Router,
        live: LiveModel | None,
        *,
        key: str,
        model_alias: str,
        on_cut: Hook | None = None,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.router = router
        self.live = live  # None under --replay-only: the run stops at the cut-point
        self.key = key
        self.model_alias = model_alias
        self.on_cut = on_cut
        self.on_event = on_event or (lambda kind, data: None)
        self.live_exchanges: list[dict[str, Any]] = []
        self.retries = 0
        self.live_failures = 0  # consecutive
        self.upstream_failure: tuple[int, str] | None = None
        #: set when the run must stop: cut-point under replay-only, or a divergence abort
        self.stop_requested = asyncio.Event()
        self.stop_reason: str | None = None
        self.cut_reason = "the recorded exchanges are used up"
        self.closed = False
        self._lock = asyncio.Lock()
        self._warming: asyncio.Future[None] | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""

    def _warm(self, exchange: Exchange | None) -> None:
        """Read the next recorded exchange while the agent works on this answer, when the
        recording is too large to be held in memory: the next request need not wait for it."""
        if exchange is not None and exchange.resident is None:
            self._warming = asyncio.get_running_loop().run_in_executor(None, lambda: exchange.request and None)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post("/v1/chat/completions", self._completions)
        app.router.add_post("/chat/completions", self._completions)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/models", self._models)
        app.router.add_get("/health", self._health)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        sock = site._server.sockets[0]  # type: ignore[union-attr]
        bound_host, bound_port = sock.getsockname()[:2]
        self.url = f"http://{bound_host}:{bound_port}"
        # what is loaded by now (LiteLLM, the recording) lives as long as the run: a full
        # collection scanning it in the middle of a request costs tens of milliseconds
        gc.freeze()
        self._warm(self.router.upcoming)
        return self.url

    async def stop(self) -> None:
        self.closed = True
        if self._warming is not None:
            await asyncio.gather(self._warming, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _authorized(self, request: web.Request) -> bool:
        given = request.headers.get("Authorization", "")
        given = given[7:] if given.lower().startswith("bearer ") else request.headers.get("api-key", "")
        return hmac.compare_digest(given.encode(), self.key.encode())

    async def _health(self, request: web.Request) -> web.Response:
        sock = request.transport.get_extra_info("socket") if request.transport else None
        nodelay = bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)) if sock else None
        return web.json_response(
            {
                "status": "closed" if self.closed else "ok",
                "replayed": len(self.router.served),
                "remaining": self.router.remaining,
                "live": len(self.live_exchanges),
                "tcp_nodelay": nodelay,
            }
        )

    async def _models(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error(401, "missing or wrong API key for this run", "authentication_error")
        alias = self.model_alias.split("/", 1)[-1]
        return web.json_response({"object": "list", "data": [{"id": alias, "object": "model"}]})

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._complete(request)
        except (ConnectionResetError, asyncio.CancelledError, web.HTTPException):
            raise  # HTTPException is aiohttp's own answer, e.g. 413 for a body over MAX_BODY
        except Exception as exc:  # a recording too odd to serve: tell the agent and the user, never crash
            message = f"benchflow-continue could not answer: {type(exc).__name__}: {exc}"[:500]
            self.on_event("proxy_error", {"message": message})
            return _error(500, message)

    async def _complete(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return _error(401, "missing or wrong API key for this run", "authentication_error")
        if self.closed or self.stop_requested.is_set():
            return _error(503, f"this run has ended ({self.stop_reason or 'closed'})")
        raw = await request.read()
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return _error(400, "request body is not JSON", "invalid_request_error")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _error(400, "request body must be an object with a 'messages' list", "invalid_request_error")
        stream = bool(body.get("stream"))
        async with self._lock:
            if self._warming is not None:
                await self._warming
            decision = self.router.route(raw, body)
            self._warm(self.router.upcoming)
            verdict = decision.verdict
            if decision.diverged:
                assert verdict is not None
                self.on_event("divergence", verdict.to_json())
            if decision.kind == "abort":
                assert verdict is not None
                self.stop_reason = f"replay diverged at exchange {verdict.index} ({verdict.kind}): {verdict.detail}"
                self.stop_requested.set()
                return _error(409, self.stop_reason)
            if decision.kind == "cut":
                if verdict is not None:  # --on-divergence live: the off-rails request goes live
                    self.cut_reason = f"divergence at exchange {verdict.index} ({verdict.kind})"
                self.on_event("cut", {"served": len(self.router.served), "reason": self.cut_reason})
                if self.on_cut is not None:
                    await self.on_cut()
                if self.live is None:
                    self.stop_reason = f"replay-only: stopped at the cut-point ({self.cut_reason})"
                    self.stop_requested.set()
                    return _error(503, self.stop_reason)
        if decision.kind in ("replay", "retry"):
            exchange = decision.exchange
            assert exchange is not None
            if decision.kind == "retry":
                self.retries += 1
            self.on_event(decision.kind, {"index": exchange.index, "served": len(self.router.served)})
            return await self._answer(request, exchange.status, exchange.response_body, stream)
        assert self.live is not None
        response: web.StreamResponse | None = None

        async def send(data: bytes) -> None:
            nonlocal response
            if response is None:
                response = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream"})
                await response.prepare(request)
            await response.write(data)

        answer = None
        async for answer in self.live.attempts(body, send if stream else None):
            self._record(request.path, body, answer)  # every attempt, as the recording would have it
            self.on_event("live", {"n": len(self.live_exchanges), "status": answer.status})
        assert answer is not None
        self._count_failure(answer)
        if response is not None:
            await response.write_eof()
            return response
        return web.json_response(answer.body, status=answer.status)

    def _count_failure(self, answer: LiveAnswer) -> None:
        """Stop the run when the live model keeps failing (a missing key, a dead provider)."""
        self.live_failures = 0 if answer.status == 200 else self.live_failures + 1
        if self.live_failures >= MAX_LIVE_FAILURES:
            message = str((answer.body.get("error") or {}).get("message", ""))[:300]
            self.upstream_failure = (answer.status, message)
            self.stop_reason = (
                f"the live model failed {self.live_failures} times in a row (status {answer.status}: {message})"
            )
            self.stop_requested.set()

    async def _answer(
        self, request: web.Request, status: int, body: dict[str, Any], stream: bool
    ) -> web.StreamResponse:
        if not stream or status != 200:
            return web.json_response(body, status=status)
        response = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for event in sse_events(body):
            await response.write(event)
        await response.write_eof()
        return response

    def _record(self, path: str, body: dict[str, Any], answer: LiveAnswer) -> None:
        self.live_exchanges.append(
            {
                "request": {
                    "timestamp": answer.started.isoformat(),
                    "method": "POST",
                    "path": path,
                    "headers": {},
                    "body": {k: body[k] for k in RECORDED_REQUEST_KEYS if k in body},
                },
                "response": {
                    "timestamp": answer.finished.isoformat(),
                    "status_code": answer.status,
                    "headers": {},
                    "body": answer.body,
                },
                "duration_ms": answer.duration_ms,
                "metadata": {
                    "request_model": body.get("model"),
                    "provider_model": self.live.model if self.live else None,
                    "call_type": "acompletion",
                    "call_purpose": "agent",
                    "recorded_by": "benchflow-continue",
                },
            }
        )
