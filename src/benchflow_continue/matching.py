"""Is an incoming request still on the recorded rails? Pure functions, no I/O.

Both requests are reduced to what decides the agent's next step: per message
its role, its text, the tool calls it made (name and parsed arguments) and the
call id a tool result answers; and the names of the tools offered. What is
known to vary between two identical runs is masked first (:data:`MASKS`), and a
``***REDACTED***`` in the recording matches anything. The recorded body is a
projection of the real one, so only fields present on both sides are compared.

The verdict is the most severe class found (:data:`CLASSES`, mildest first).
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["CLASSES", "MASKS", "Verdict", "classify", "mask"]

#: every class a served request can get, mildest first
CLASSES = ("identical", "retry", "volatile", "observation-drift", "prompt-drift", "structural")
_SEVERITY = {name: rank for rank, name in enumerate(CLASSES)}

_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
#: (what it is, pattern, replacement): known to differ between identical runs
MASKS: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("datetime block", re.compile(r"<CURRENT_DATETIME>.*?</CURRENT_DATETIME>", re.S), "<CURRENT_DATETIME/>"),
    ("ISO timestamp", re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:?\d\d)?"), "<TIME>"),
    (
        "ls/date timestamp",
        re.compile(
            rf"(?:\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) +)?\b{_MONTH} +\d{{1,2}} +\d\d:\d\d(?::\d\d)?(?: +[A-Z]{{2,5}})?(?: +\d{{4}})?"
        ),
        "<TIME>",
    ),
    ("UUID", re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"), "<UUID>"),
    ("interpreter path", re.compile(r"\[Python interpreter: [^\]\n]*\]"), "[Python interpreter: <PATH>]"),
    (
        "working directory",
        re.compile(r"(\[Current working directory: |Your current working directory is: )[^\]\n]*"),
        r"\1<PATH>",
    ),
    ("OS string", re.compile(r"User operating system: [^\n]*"), "User operating system: <OS>"),
)
REDACTED = "***REDACTED***"


@dataclass(frozen=True)
class Verdict:
    """How a request compares with the recorded one it was matched to."""

    index: int  # the recorded exchange's position in the trajectory
    kind: str  # one of CLASSES
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"exchange": self.index, "class": self.kind, "detail": self.detail}

    def worse_than(self, other: Verdict) -> bool:
        return _SEVERITY[self.kind] > _SEVERITY[other.kind]


@functools.lru_cache(maxsize=8192)
def mask(text: str) -> str:
    """``text`` with every known-volatile part replaced by a placeholder (cached: prompts repeat)."""
    for _, pattern, replacement in MASKS:
        text = pattern.sub(replacement, text)
    return text


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return json.dumps(content, sort_keys=True)


def _calls(message: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(id, name, canonical arguments) for each tool call."""
    out = []
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        return [("", "<malformed tool_calls>", json.dumps(calls, sort_keys=True, default=str))]
    for call in calls:
        if not isinstance(call, dict):
            continue
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        arguments = function.get("arguments", "")
        with contextlib.suppress(json.JSONDecodeError):  # not JSON: compared as the string it is
            parsed = json.loads(arguments) if isinstance(arguments, str) else arguments
            arguments = json.dumps(parsed, sort_keys=True)
        out.append((str(call.get("id", "")), str(function.get("name", "")), arguments))
    return out


def _common_prefix(a: str, b: str) -> int:
    """Length of the common prefix, by bisection on slices (C-speed compares, no Python loop per char)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _window(a: str, b: str, margin: int = 3) -> tuple[str, str, int]:
    """The differing middle of two texts, widened to whole lines plus ``margin`` lines each side.

    No mask spans more than a few lines, so masking the windows decides what
    masking the whole texts would, at the cost of the difference, not the text.
    Returns both windows and the line number where they start.
    """
    start = _common_prefix(a, b)
    end = _common_prefix(a[start:][::-1], b[start:][::-1])
    lo = start
    for _ in range(margin + 1):
        lo = a.rfind("\n", 0, max(lo - 1, 0)) + 1 if lo > 0 else 0
    tail_a, tail_b = len(a) - end, len(b) - end
    for _ in range(margin + 1):
        nxt = a.find("\n", tail_a + 1)
        if nxt < 0:
            tail_a, tail_b = len(a), len(b)
            break
        tail_b += nxt - tail_a
        tail_a = nxt
    return a[lo:tail_a], b[lo:tail_b], a.count("\n", 0, lo) + 1


def _same(recorded: str, incoming: str) -> bool:
    """Equal after masking; a REDACTED placeholder in the recording matches any text."""
    if recorded == incoming:
        return True
    recorded, incoming, _ = _window(recorded, incoming)
    recorded, incoming = mask(recorded), mask(incoming)
    if recorded == incoming:
        return True
    if REDACTED not in recorded:
        return False
    pattern = ".*?".join(re.escape(part) for part in recorded.split(REDACTED))
    return re.fullmatch(pattern, incoming, re.S) is not None


def _first_difference(recorded: str, incoming: str, context: int = 1) -> str:
    """The first differing lines, for a report."""
    recorded, incoming, first_line = _window(recorded, incoming)
    a, b = mask(recorded).splitlines(), mask(incoming).splitlines()
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag != "equal":
            was = " / ".join(a[i1 : min(i2, i1 + context + 1)])[:160]
            now = " / ".join(b[j1 : min(j2, j1 + context + 1)])[:160]
            return f"line {first_line + i1}: recorded {was!r}, now {now!r}"
    return "differs"


def _structure(index: int, at: int, a: dict[str, Any], b: dict[str, Any]) -> Verdict | None:
    if a.get("role") != b.get("role"):
        return Verdict(
            index, "structural", f"message {at}: role {b.get('role')!r} where the recording has {a.get('role')!r}"
        )
    ca, cb = _calls(a), _calls(b)
    if [(i, n) for i, n, _ in ca] != [(i, n) for i, n, _ in cb]:
        names = lambda calls: ", ".join(n for _, n, _ in calls) or "no tool"  # noqa: E731
        return Verdict(index, "structural", f"message {at}: calls {names(cb)} where the recording calls {names(ca)}")
    if "tool_call_id" in a and "tool_call_id" in b and a["tool_call_id"] != b["tool_call_id"]:
        return Verdict(
            index,
            "structural",
            f"message {at}: answers tool call {b.get('tool_call_id')!r}, recorded {a.get('tool_call_id')!r}",
        )
    return None


def _content(index: int, at: int, a: dict[str, Any], b: dict[str, Any]) -> Verdict:
    """Two messages with the same structure that are not equal."""
    role = a.get("role")
    ta, tb = _text(a.get("content")), _text(b.get("content"))
    calls_same = all(_same(x[2], y[2]) for x, y in zip(_calls(a), _calls(b), strict=True))
    if _same(ta, tb) and calls_same:
        wa, wb, _ = _window(ta, tb)
        masked = [name for name, pattern, _ in MASKS if pattern.findall(wa) != pattern.findall(wb)]
        parts = ", ".join(masked) if masked else "formatting"
        return Verdict(index, "volatile", f"message {at} ({role}) differs only in: {parts}")
    if role == "tool":
        return Verdict(index, "observation-drift", f"message {at} (tool result): {_first_difference(ta, tb)}")
    if role in ("system", "developer", "user"):
        return Verdict(index, "prompt-drift", f"message {at} ({role}): {_first_difference(ta, tb)}")
    what = "tool-call arguments" if not calls_same else _first_difference(ta, tb)
    return Verdict(index, "structural", f"message {at} (assistant): {what} differ from the recording")


def _tool_names(body: dict[str, Any]) -> list[str]:
    tools = body.get("tools")
    if not isinstance(tools, list):
        return [json.dumps(tools, sort_keys=True, default=str)] if tools else []
    names = []
    for tool in (t for t in tools if isinstance(t, dict)):
        function = tool.get("function") if isinstance(tool.get("function"), dict) else {}
        names.append(str(function.get("name", tool.get("name", ""))))
    return names


def classify(index: int, recorded: dict[str, Any], incoming: dict[str, Any]) -> Verdict:
    """The class of ``incoming`` against the recorded request at ``index``."""
    want, got = recorded.get("messages") or [], incoming.get("messages") or []
    if len(want) != len(got):
        return Verdict(index, "structural", f"{len(got)} messages where the recording has {len(want)}")
    worst = Verdict(index, "identical")
    for at, (a, b) in enumerate(zip(want, got, strict=True)):
        if a == b:
            continue  # the common case, and cheap: no masking needed
        if not isinstance(a, dict) or not isinstance(b, dict):
            return Verdict(index, "structural", f"message {at} is not an object")
        verdict = _structure(index, at, a, b) or _content(index, at, a, b)
        if verdict.kind == "structural":
            return verdict
        if verdict.worse_than(worst):
            worst = verdict
    if "tools" in recorded and "tools" in incoming:
        wanted, offered = _tool_names(recorded), _tool_names(incoming)
        if wanted != offered:
            verdict = Verdict(
                index, "prompt-drift", f"tools offered: {', '.join(offered)}; recorded: {', '.join(wanted)}"
            )
            worst = verdict if verdict.worse_than(worst) else worst
    if worst.kind == "identical":
        for key in ("model", "stream", "reasoning_effort"):
            if key in recorded and key in incoming and recorded[key] != incoming[key]:
                return Verdict(index, "volatile", f"{key}: {incoming[key]!r}, recorded {recorded[key]!r}")
    return worst
