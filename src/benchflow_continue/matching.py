"""Compare an incoming request with the recorded one: pure functions, no I/O.

The recorded request body is a normalized projection of what the agent sent,
so only what decides the agent's next step is compared: the roles of the
messages and the tool calls the assistant turns made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Divergence", "compare", "shape"]

Shape = tuple[tuple[str, tuple[str, ...]], ...]


@dataclass(frozen=True)
class Divergence:
    """Where and how a request left the recorded rails."""

    index: int  # 0-based position of the recorded exchange it was compared with
    kind: str  # "structural" for now: message count, roles or tool calls differ
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"exchange": self.index, "kind": self.kind, "detail": self.detail}


def shape(body: dict[str, Any]) -> Shape:
    """Each message as (role, names of the tools it called)."""
    out = []
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            out.append(("?", ()))
            continue
        calls = message.get("tool_calls") or []
        names = tuple(str((c.get("function") or {}).get("name", "")) for c in calls if isinstance(c, dict))
        out.append((str(message.get("role", "?")), names))
    return tuple(out)


def compare(index: int, recorded: dict[str, Any], incoming: dict[str, Any]) -> Divergence | None:
    """None when the two requests have the same structure, else what differs first."""
    want, got = shape(recorded), shape(incoming)
    if want == got:
        return None
    if len(want) != len(got):
        detail = f"{len(got)} messages where the recording has {len(want)}"
    else:
        at = next(i for i, (a, b) in enumerate(zip(want, got, strict=False)) if a != b)
        detail = f"message {at}: {_fmt(got[at])} where the recording has {_fmt(want[at])}"
    return Divergence(index=index, kind="structural", detail=detail)


def _fmt(item: tuple[str, tuple[str, ...]]) -> str:
    role, calls = item
    return f"{role} calling {', '.join(calls)}" if calls else role
