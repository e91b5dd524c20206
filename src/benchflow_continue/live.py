"""The live model past the cut-point, reached through LiteLLM.

Credentials come from the host environment (``GEMINI_API_KEY``,
``OPENAI_API_KEY``...) as LiteLLM reads them; they never reach the sandbox. An
OpenAI-compatible server at any address works with ``--model openai/NAME`` and
``OPENAI_BASE_URL``.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .accounting import load_litellm

__all__ = ["LiveAnswer", "LiveModel", "FORWARDED_PARAMS"]

#: request fields forwarded to the provider; the model is replaced, the rest kept
FORWARDED_PARAMS = (
    "messages",
    "tools",
    "tool_choice",
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "seed",
    "reasoning_effort",
    "response_format",
    "parallel_tool_calls",
)


@dataclass(frozen=True)
class LiveAnswer:
    status: int
    body: dict[str, Any]
    started: datetime
    finished: datetime
    duration_ms: float
    #: failed after part of a stream was sent: the agent has seen it, no retry is possible
    partial: bool = False


def _base_url(model: str) -> str | None:
    if model.startswith("openai/"):
        return os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_BASE")
    return None


def _failure(exc: Exception) -> tuple[int, dict[str, Any]]:
    """A provider exception as the status and error body the agent gets."""
    status = int(getattr(exc, "status_code", 0) or 502)
    return status, {"error": {"type": type(exc).__name__, "message": str(exc)[:2000]}}


#: answers worth another attempt: rate limits, server errors, timeouts
RETRYABLE = frozenset({408, 409, 429, 500, 502, 503, 504, 529})

Send = Callable[[bytes], Awaitable[None]]


class LiveModel:
    """One model behind LiteLLM; :meth:`attempts` retries transient failures with backoff."""

    def __init__(
        self, model: str, *, request_timeout: float = 600.0, max_attempts: int = 4, backoff: float = 2.0
    ) -> None:
        self.model = model
        self.api_base = _base_url(model)
        # a local OpenAI-compatible server needs no key, but the client insists on one
        self.api_key = "unused" if self.api_base and not os.environ.get("OPENAI_API_KEY") else None
        self.request_timeout = request_timeout
        self.max_attempts = max_attempts
        self.backoff = backoff

    def prepare(self) -> None:
        """Import LiteLLM now rather than on the first live call."""
        load_litellm()

    def _params(self, body: dict[str, Any]) -> dict[str, Any]:
        params = {k: body[k] for k in FORWARDED_PARAMS if k in body}
        if self.api_base:
            params["api_base"] = self.api_base
        if self.api_key:
            params["api_key"] = self.api_key
        return params

    async def complete(self, body: dict[str, Any], send: Send | None = None) -> LiveAnswer:
        """One attempt. With ``send``, the answer is streamed through as SSE while it comes;
        the returned body is then the assembled final completion."""
        litellm = load_litellm()
        started, clock = datetime.now(), time.monotonic()
        kwargs = dict(model=self.model, drop_params=True, timeout=self.request_timeout, num_retries=0)
        try:
            if send is None:
                response = await litellm.acompletion(**kwargs, **self._params(body))
                status, payload = 200, response.model_dump(mode="json", exclude_none=False)
            else:
                status, payload = await self._stream(litellm, kwargs, body, send)
        except Exception as exc:  # every provider failure becomes the provider's answer to the agent
            status, payload = _failure(exc)
        partial = send is not None and status != 200 and payload.get("partial", False)
        payload.pop("partial", None)
        return LiveAnswer(status, payload, started, datetime.now(), (time.monotonic() - clock) * 1000, partial)

    async def _stream(
        self, litellm: Any, kwargs: dict[str, Any], body: dict[str, Any], send: Send
    ) -> tuple[int, dict[str, Any]]:
        stream = await litellm.acompletion(
            **kwargs, **self._params(body), stream=True, stream_options={"include_usage": True}
        )
        chunks = []
        try:
            async for chunk in stream:
                chunks.append(chunk)
                await send(b"data: " + chunk.model_dump_json(exclude_none=True).encode() + b"\n\n")
        except Exception as exc:
            if not chunks:
                raise  # nothing sent yet: a plain failure, which may be retried
            status, payload = _failure(exc)
            await send(b"data: " + json.dumps(payload).encode() + b"\n\n")
            return status, {**payload, "partial": True}
        await send(b"data: [DONE]\n\n")
        final = litellm.stream_chunk_builder(chunks, messages=body.get("messages"))
        return 200, final.model_dump(mode="json", exclude_none=False)

    async def attempts(self, body: dict[str, Any], send: Send | None = None) -> AsyncIterator[LiveAnswer]:
        """Each attempt at answering ``body``, up to ``max_attempts``, with exponential backoff
        between retryable failures. The last one yielded is the agent's answer."""
        for attempt in range(self.max_attempts):
            answer = await self.complete(body, send)
            yield answer
            if (
                answer.status == 200
                or answer.partial
                or answer.status not in RETRYABLE
                or attempt == self.max_attempts - 1
            ):
                return
            await asyncio.sleep(self.backoff * 2**attempt)
