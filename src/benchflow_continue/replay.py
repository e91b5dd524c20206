"""The replay decision and the streaming form of a recorded answer: no sockets here.

:class:`Router` decides, request by request, whether the agent gets a recorded
answer, the same answer again (a retry), or the live model (the cut-point).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from .matching import Verdict, classify
from .runfolder import Exchange

__all__ = ["POLICIES", "Decision", "Router", "sse_events"]

Kind = Literal["replay", "retry", "cut", "live", "abort"]
#: what to do when a request's class is one of ``diverge_on``
POLICIES = ("warn", "abort", "live")


@dataclass(frozen=True)
class Decision:
    kind: Kind
    exchange: Exchange | None = None  # the recorded exchange to serve, for replay and retry
    verdict: Verdict | None = None  # how the request compared with the recorded one

    @property
    def diverged(self) -> bool:
        return self.verdict is not None and self.verdict.kind not in ("identical", "retry")


@dataclass
class Router:
    """Serve recorded answers in order, then hand over to the live model.

    Every request is classified against the recorded one it is matched to
    (:func:`~benchflow_continue.matching.classify`). A class in ``diverge_on``
    is a divergence: ``warn`` notes it and serves the recorded answer anyway,
    ``abort`` stops the run, ``live`` hands this very request to the live model.

    Recorded calls that failed (an error status, or 200 with no choices) were
    followed by the agent's own retry of the same request. By default they are
    skipped: the agent gets the successful answer at once and spends no retry
    wait. With ``serve_failures`` they are served as recorded, and the agent's
    retry then gets the next recorded exchange.
    """

    exchanges: list[Exchange]
    #: serve only the first ``cut`` recorded exchanges (None: all of them)
    cut: int | None = None
    on_divergence: Literal["warn", "abort", "live"] = "warn"
    diverge_on: frozenset[str] = frozenset({"structural"})
    serve_failures: bool = False
    served: list[Exchange] = field(default_factory=list)
    #: one verdict per request answered from the recording, retries included
    verdicts: list[Verdict] = field(default_factory=list)
    divergences: list[Verdict] = field(default_factory=list)
    live_started: bool = False
    last_request: bytes | None = None

    def __post_init__(self) -> None:
        prefix = self.exchanges if self.cut is None else self.exchanges[: self.cut]
        self.queue = prefix if self.serve_failures else [e for e in prefix if e.ok]
        self.skipped = [] if self.serve_failures else [e for e in prefix if not e.ok]

    @property
    def remaining(self) -> int:
        return len(self.queue) - len(self.served)

    @property
    def upcoming(self) -> Exchange | None:
        """The recorded exchange the next new request will be matched against."""
        return self.queue[len(self.served)] if self.remaining and not self.live_started else None

    @property
    def last_served_index(self) -> int | None:
        return self.served[-1].index if self.served else None

    def route(self, raw: bytes, body: dict[str, Any]) -> Decision:
        if self.live_started:
            return Decision("live")
        if self.served and raw == self.last_request and self.served[-1].ok:
            # byte-identical to the request just answered: the agent retried
            verdict = Verdict(self.served[-1].index, "retry", "the same request again: same answer, no advance")
            self.verdicts.append(verdict)
            return Decision("retry", self.served[-1], verdict)
        if not self.remaining:
            self.live_started = True
            return Decision("cut")
        exchange = self.queue[len(self.served)]
        verdict = classify(exchange.index, exchange.request_body, body)
        if verdict.kind in self.diverge_on:
            self.divergences.append(verdict)
            if self.on_divergence == "abort":
                return Decision("abort", exchange, verdict)
            if self.on_divergence == "live":
                self.live_started = True
                return Decision("cut", None, verdict)
        self.served.append(exchange)
        self.verdicts.append(verdict)
        self.last_request = raw
        return Decision("replay", exchange, verdict)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for verdict in self.verdicts:
            counts[verdict.kind] = counts.get(verdict.kind, 0) + 1
        return counts


def _chunk(base: dict[str, Any], choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {**base, "object": "chat.completion.chunk", "choices": choices, **extra}


def sse_events(completion: dict[str, Any]) -> Iterator[bytes]:
    """A final ChatCompletion re-emitted as ``chat.completion.chunk`` SSE events.

    Every choice is streamed (not only the first), with its reasoning, content,
    each tool call whole (id, name, arguments), the finish reason, then usage and
    ``[DONE]``.
    """
    base = {k: completion[k] for k in ("id", "created", "model", "system_fingerprint") if k in completion}
    for choice in completion.get("choices") or []:
        index = choice.get("index", 0)
        message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
        first: dict[str, Any] = {"role": message.get("role", "assistant")}
        for key in ("reasoning_content", "reasoning", "thinking_blocks"):
            if message.get(key):
                first[key] = message[key]
        yield _event(_chunk(base, [{"index": index, "delta": first, "finish_reason": None}]))
        if message.get("content"):
            delta = {"content": message["content"]}
            yield _event(_chunk(base, [{"index": index, "delta": delta, "finish_reason": None}]))
        calls = message.get("tool_calls") if isinstance(message.get("tool_calls"), list) else []
        for position, call in enumerate(c for c in calls if isinstance(c, dict)):
            function = call.get("function") if isinstance(call.get("function"), dict) else {}
            delta = {
                "tool_calls": [
                    {
                        "index": position,
                        "id": call.get("id"),
                        "type": call.get("type", "function"),
                        "function": {"name": function.get("name"), "arguments": function.get("arguments", "")},
                    }
                ]
            }
            yield _event(_chunk(base, [{"index": index, "delta": delta, "finish_reason": None}]))
        finish = choice.get("finish_reason") or "stop"
        yield _event(_chunk(base, [{"index": index, "delta": {}, "finish_reason": finish}]))
    if completion.get("usage"):
        yield _event(_chunk(base, [], usage=completion["usage"]))
    yield b"data: [DONE]\n\n"


def _event(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"
