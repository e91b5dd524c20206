"""Request pairs that must or must not match, built from a real benchflow recording."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from benchflow_continue.matching import classify, mask
from benchflow_continue.runfolder import load_run_folder

from ..conftest import REAL_ROLLOUT

RECORDED = load_run_folder(REAL_ROLLOUT).exchanges
LAST = RECORDED[-1].request_body  # system, user, six assistant turns and their tool results


def edited(change: Callable[[dict[str, Any]], None], body: dict[str, Any] = LAST) -> dict[str, Any]:
    body = copy.deepcopy(body)
    change(body)
    return body


def text_part(message: dict[str, Any], i: int = 0) -> dict[str, Any]:
    return message["content"][i]


def set_datetime(b: dict[str, Any]) -> None:
    part = text_part(b["messages"][0], 1)
    part["text"] = part["text"].replace("2026-12-03T19:20:25.591784", "2027-01-01T08:00:00.000001")


def tool_output(b: dict[str, Any], at: int, old: str, new: str) -> None:
    part = text_part(b["messages"][at])
    assert old in part["text"]
    part["text"] = part["text"].replace(old, new)


def one_more_message(b: dict[str, Any]) -> None:
    b["messages"].append({"role": "user", "content": [{"type": "text", "text": "and one more thing"}]})


def other_system_prompt(b: dict[str, Any]) -> None:
    part = text_part(b["messages"][0])
    part["text"] = part["text"].replace("<EFFICIENCY>", "<EFFICIENCY>\n* A rule from a newer agent version.")


def other_tools(b: dict[str, Any]) -> None:
    b["tools"] = [t for t in b["tools"] if t["function"]["name"] != "task"]


def other_arguments(b: dict[str, Any]) -> None:
    b["messages"][2]["tool_calls"][0]["function"]["arguments"] = '{"command": "rm -rf /app"}'


def reordered_arguments(b: dict[str, Any]) -> None:
    call = b["messages"][2]["tool_calls"][0]["function"]
    call["arguments"] = json.dumps(dict(reversed(list(json.loads(call["arguments"]).items()))))


def other_tool(b: dict[str, Any]) -> None:
    b["messages"][2]["tool_calls"][0]["function"]["name"] = "think"


def other_role(b: dict[str, Any]) -> None:
    b["messages"][1]["role"] = "assistant"


def content_as_string(b: dict[str, Any]) -> None:
    b["messages"][1]["content"] = text_part(b["messages"][1])["text"]


def other_model_alias(b: dict[str, Any]) -> None:
    b["model"] = "another-alias"


def with_output(prefix: str) -> dict[str, Any]:
    """The recording, with ``prefix`` put before a tool result."""
    return edited(lambda b: tool_output(b, 3, "total 0", prefix + " total 0"))


RECORDED_ISO = with_output("at 2026-12-03T19:20:27.501467")
RECORDED_UUID = with_output("session 0b9f4c2e-1d2a-4f4e-9c1e-7f00a1b2c3d4")


CASES = [
    pytest.param(lambda b: None, "identical", "", id="same-request"),
    pytest.param(set_datetime, "volatile", "differs only in: datetime block", id="only-the-datetime-block"),
    pytest.param(
        lambda b: tool_output(b, 3, "Dec  3 19:20", "Jan 14 08:01"),
        "volatile",
        "differs only in: ls/date timestamp",
        id="ls-timestamp-in-tool-result",
    ),
    pytest.param(
        lambda b: tool_output(b, 3, "/usr/local/bin/python", "/opt/venv/bin/python"),
        "volatile",
        "differs only in: interpreter path",
        id="interpreter-path",
    ),
    pytest.param(content_as_string, "volatile", "formatting", id="content-string-vs-parts"),
    pytest.param(other_model_alias, "volatile", "model", id="model-alias"),
    pytest.param(reordered_arguments, "volatile", "formatting", id="same-arguments-other-key-order"),
    pytest.param(
        lambda b: tool_output(b, 7, "2004l2\n", "2004l7\n"),
        "observation-drift",
        "message 7 (tool result): line 1",
        id="tool-output-differs",
    ),
    pytest.param(
        lambda b: tool_output(b, 7, "exit code 0.]", "exit code 1.]"),
        "observation-drift",
        "exit code 1",
        id="exit-code-differs",
    ),
    pytest.param(other_system_prompt, "prompt-drift", "message 0 (system)", id="other-agent-version-system-prompt"),
    pytest.param(other_tools, "prompt-drift", "tools offered", id="other-tool-list"),
    pytest.param(one_more_message, "structural", "15 messages where the recording has 14", id="one-message-more"),
    pytest.param(other_tool, "structural", "calls think where the recording calls terminal", id="other-tool-called"),
    pytest.param(other_arguments, "structural", "tool-call arguments", id="other-tool-arguments"),
    pytest.param(other_role, "structural", "role 'assistant'", id="other-role"),
]


@pytest.mark.parametrize(("change", "kind", "detail"), CASES)
def test_classify(change: Callable[[dict[str, Any]], None], kind: str, detail: str) -> None:
    verdict = classify(6, LAST, edited(change))
    assert verdict.kind == kind, verdict.detail
    assert detail in verdict.detail
    assert verdict.index == 6


@pytest.mark.parametrize(
    ("recorded", "incoming", "kind"),
    [
        pytest.param(
            RECORDED_ISO, with_output("at 2026-12-04T10:11:12Z"), "volatile", id="another-iso-timestamp-in-tool-result"
        ),
        pytest.param(
            RECORDED_UUID,
            with_output("session 7a1e0000-1d2a-4f4e-9c1e-000000000001"),
            "volatile",
            id="another-uuid-in-tool-result",
        ),
        pytest.param(RECORDED_ISO, with_output("at 1733251262.123"), "observation-drift", id="epoch-instead-of-iso"),
    ],
)
def test_volatile_values_in_tool_results(recorded: dict[str, Any], incoming: dict[str, Any], kind: str) -> None:
    assert classify(0, recorded, incoming).kind == kind


def test_worst_class_wins() -> None:
    both = edited(lambda b: (set_datetime(b), tool_output(b, 7, "2004l2\n", "2004l7\n"), other_system_prompt(b)))
    assert classify(0, LAST, both).kind == "prompt-drift"


def test_redacted_in_the_recording_matches_anything() -> None:
    recorded = edited(lambda b: tool_output(b, 3, "total 0", "token=***REDACTED*** total 0"))
    incoming = edited(lambda b: tool_output(b, 3, "total 0", "token=ghp_live_value_123 total 0"))
    assert classify(0, recorded, incoming).kind == "volatile"
    other = edited(lambda b: tool_output(b, 3, "total 0", "token=ghp_live_value_123 total 9"))
    assert classify(0, recorded, other).kind == "observation-drift"


def test_condenser_request_without_tools_compares_only_what_both_sides_have() -> None:
    condenser = {
        "model": "m",
        "messages": [{"role": "system", "content": "Summarize the events."}, {"role": "user", "content": "events..."}],
    }
    assert classify(3, condenser, copy.deepcopy(condenser)).kind == "identical"
    with_tools = dict(condenser, tools=LAST["tools"])  # a side without the field is not compared on it
    assert classify(3, condenser, with_tools).kind == "identical"


def test_two_parallel_tool_calls() -> None:
    call = LAST["messages"][2]["tool_calls"][0]
    second = dict(call, id="call_parallel", function={"name": "think", "arguments": '{"thought": "x"}'})
    parallel = edited(lambda b: b["messages"][2]["tool_calls"].append(second))
    assert classify(0, parallel, copy.deepcopy(parallel)).kind == "identical"
    swapped = edited(lambda b: b["messages"][2].__setitem__("tool_calls", [second, call]), parallel)
    assert classify(0, parallel, swapped).kind == "structural"


def test_mask_keeps_what_is_not_volatile() -> None:
    assert mask("1733251262.123 seconds since epoch") == "1733251262.123 seconds since epoch"
    assert mask("<CURRENT_DATETIME>\nnow\n</CURRENT_DATETIME>") == "<CURRENT_DATETIME/>"


def test_cost_of_classifying_a_200kb_request_is_reported() -> None:
    """Not a timing assertion: prints the figure the note quotes (pytest -s)."""
    big = edited(lambda b: tool_output(b, 3, "total 0", "total 0\n" + "x" * 200_000))
    incoming = edited(set_datetime, big)
    changed = edited(lambda b: tool_output(b, 3, "x" * 100, "y" * 100), incoming)  # the 200 KB part differs
    for label, other in (("datetime differs", incoming), ("200 KB tool result differs", changed)):
        cold = warm = 0.0
        for _ in range(20):
            mask.cache_clear()
            started = time.perf_counter()
            classify(0, big, other)
            cold += time.perf_counter() - started
            started = time.perf_counter()
            classify(0, big, other)
            warm += time.perf_counter() - started
        print(f"classify a 200 KB request ({label}): {cold / 20 * 1000:.3f} ms cold, {warm / 20 * 1000:.3f} ms cached")


def test_malformed_recorded_tool_calls_do_not_crash() -> None:
    odd = edited(lambda b: b["messages"][2].__setitem__("tool_calls", 5))
    odd_function = edited(lambda b: b["messages"][2]["tool_calls"][0].__setitem__("function", "x"))
    assert classify(0, odd, copy.deepcopy(odd)).kind == "identical"
    assert classify(0, odd, LAST).kind == "structural"
    assert classify(0, odd_function, LAST).kind == "structural"
