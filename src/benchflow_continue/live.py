"""The live model past the cut-point, reached through LiteLLM.

Credentials come from the host environment (``GEMINI_API_KEY``,
``OPENAI_API_KEY``...) as LiteLLM reads them; they never reach the sandbox. An
OpenAI-compatible server at any address works with ``--model openai/NAME`` and
``OPENAI_BASE_URL``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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


def _base_url(model: str) -> str | None:
    if model.startswith("openai/"):
        return os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_BASE")
    return None


class LiveModel:
    def __init__(self, model: str, *, request_timeout: float = 600.0) -> None:
        self.model = model
        self.api_base = _base_url(model)
        # a local OpenAI-compatible server needs no key, but the client insists on one
        self.api_key = "unused" if self.api_base and not os.environ.get("OPENAI_API_KEY") else None
        self.request_timeout = request_timeout

    async def complete(self, body: dict[str, Any]) -> LiveAnswer:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch at import
        import litellm

        litellm.suppress_debug_info = True  # its banners go to stdout, where --json output goes

        params = {k: body[k] for k in FORWARDED_PARAMS if k in body}
        if self.api_base:
            params["api_base"] = self.api_base
        if self.api_key:
            params["api_key"] = self.api_key
        started, clock = datetime.now(), time.monotonic()
        try:
            response = await litellm.acompletion(
                model=self.model, drop_params=True, timeout=self.request_timeout, num_retries=0, **params
            )
            status, payload = 200, response.model_dump(mode="json", exclude_none=False)
        except Exception as exc:  # every provider failure becomes the provider's answer to the agent
            status = int(getattr(exc, "status_code", 0) or 502)
            payload = {"error": {"type": type(exc).__name__, "message": str(exc)[:2000]}}
        finished = datetime.now()
        return LiveAnswer(status, payload, started, finished, (time.monotonic() - clock) * 1000)
