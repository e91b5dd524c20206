from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchflow_continue.replay import Router, sse_events
from benchflow_continue.runfolder import Exchange, load_run_folder


def raw(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def exchange(index: int, body: dict[str, Any], status: int = 200, choices: bool = True) -> Exchange:
    answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": f"a{index}"}}]} if choices else {}
    return Exchange.of(
        index, index + 1, {"request": {"body": body}, "response": {"status_code": status, "body": answer}}
    )


def conversation(n_turns: int) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    for i in range(n_turns):
        call = {"id": f"c{i}", "type": "function", "function": {"name": "terminal", "arguments": "{}"}}
        messages += [
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": f"c{i}", "content": "ok"},
        ]
    return {"model": "m", "messages": messages}


def test_serves_in_order_then_cuts_then_live() -> None:
    bodies = [conversation(i) for i in range(3)]
    router = Router([exchange(i, b) for i, b in enumerate(bodies)])
    kinds = [router.route(raw(b), b) for b in bodies]
    assert [d.kind for d in kinds] == ["replay"] * 3
    assert [d.exchange.index for d in kinds] == [0, 1, 2]
    nxt = conversation(3)
    assert router.route(raw(nxt), nxt).kind == "cut"
    assert router.route(raw(nxt), nxt).kind == "live"
    assert router.divergences == []


def test_retry_gets_the_same_answer_and_does_not_advance() -> None:
    bodies = [conversation(i) for i in range(2)]
    router = Router([exchange(i, b) for i, b in enumerate(bodies)])
    first = router.route(raw(bodies[0]), bodies[0])
    again = router.route(raw(bodies[0]), bodies[0])
    assert again.kind == "retry" and again.exchange is first.exchange
    assert router.route(raw(bodies[1]), bodies[1]).exchange.index == 1


def test_recorded_failures_are_skipped() -> None:
    b0, b1 = conversation(0), conversation(1)
    recorded = [
        exchange(0, b0, status=500, choices=False),
        exchange(1, b0, choices=False),
        exchange(2, b0),
        exchange(3, b1),
    ]
    router = Router(recorded)
    assert [e.index for e in router.skipped] == [0, 1]
    assert router.route(raw(b0), b0).exchange.index == 2
    assert router.route(raw(b1), b1).exchange.index == 3


def test_cut_limits_the_replayed_prefix() -> None:
    bodies = [conversation(i) for i in range(3)]
    router = Router([exchange(i, b) for i, b in enumerate(bodies)], cut=1)
    assert router.route(raw(bodies[0]), bodies[0]).kind == "replay"
    assert router.route(raw(bodies[1]), bodies[1]).kind == "cut"


def test_structural_divergence_warns_aborts_or_goes_live() -> None:
    recorded = [exchange(0, conversation(0)), exchange(1, conversation(1))]
    other = conversation(2)
    warn = Router(recorded)
    warn.route(raw(conversation(0)), conversation(0))
    decision = warn.route(raw(other), other)
    assert decision.kind == "replay" and decision.diverged
    assert decision.verdict.detail == "6 messages where the recording has 4"
    assert warn.counts() == {"identical": 1, "structural": 1}
    abort = Router(recorded, on_divergence="abort")
    abort.route(raw(conversation(0)), conversation(0))
    assert abort.route(raw(other), other).kind == "abort" and len(abort.served) == 1
    live = Router(recorded, on_divergence="live")
    live.route(raw(conversation(0)), conversation(0))
    cut = live.route(raw(other), other)
    assert cut.kind == "cut" and cut.verdict.kind == "structural" and len(live.served) == 1
    assert live.route(raw(other), other).kind == "live"


def test_observation_drift_is_not_a_divergence_unless_asked() -> None:
    drifted = conversation(1)
    drifted["messages"][3]["content"] = "other output"
    default = Router([exchange(0, conversation(0)), exchange(1, conversation(1))])
    default.route(raw(conversation(0)), conversation(0))
    assert default.route(raw(drifted), drifted).verdict.kind == "observation-drift" and default.divergences == []
    strict = Router(
        [exchange(0, conversation(0)), exchange(1, conversation(1))],
        on_divergence="abort",
        diverge_on=frozenset({"structural", "observation-drift"}),
    )
    strict.route(raw(conversation(0)), conversation(0))
    assert strict.route(raw(drifted), drifted).kind == "abort"


def test_served_failures_then_the_agents_retry_gets_the_next_exchange() -> None:
    b0, b1 = conversation(0), conversation(1)
    recorded = [exchange(0, b0, status=500, choices=False), exchange(1, b0), exchange(2, b1)]
    router = Router(recorded, serve_failures=True)
    assert router.route(raw(b0), b0).exchange.status == 500
    retry = router.route(raw(b0), b0)  # the agent's retry after the recorded 500
    assert retry.kind == "replay" and retry.exchange.index == 1
    assert router.route(raw(b0), b0).kind == "retry"  # a retry after a good answer does not advance
    assert router.route(raw(b1), b1).exchange.index == 2


def reassemble(events: list[bytes]) -> dict[str, Any]:
    """What a streaming client builds from the SSE events."""
    assert events[-1] == b"data: [DONE]\n\n"
    choices: dict[int, dict[str, Any]] = {}
    usage = None
    for event in events[:-1]:
        assert event.startswith(b"data: ") and event.endswith(b"\n\n")
        chunk = json.loads(event[6:])
        assert chunk["object"] == "chat.completion.chunk"
        usage = chunk.get("usage") or usage
        for c in chunk["choices"]:
            slot = choices.setdefault(c["index"], {"message": {"content": "", "tool_calls": []}})
            delta = c["delta"]
            for key in ("role", "reasoning_content"):
                if key in delta:
                    slot["message"][key] = delta[key]
            slot["message"]["content"] += delta.get("content") or ""
            slot["message"]["tool_calls"] += delta.get("tool_calls") or []
            if c["finish_reason"]:
                slot["finish_reason"] = c["finish_reason"]
    return {"choices": choices, "usage": usage}


def test_sse_carries_everything_of_every_choice() -> None:
    completion = {
        "id": "x",
        "created": 1,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "reasoning_content": "thinking about it",
                    "tool_calls": [
                        {
                            "id": "a",
                            "type": "function",
                            "function": {"name": "terminal", "arguments": '{"command": "ls"}'},
                        },
                        {"id": "b", "type": "function", "function": {"name": "think", "arguments": "{}"}},
                    ],
                },
            },
            {"index": 1, "finish_reason": "stop", "message": {"role": "assistant", "content": "second"}},
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }
    got = reassemble(list(sse_events(completion)))
    first = got["choices"][0]
    assert first["message"]["reasoning_content"] == "thinking about it"
    assert [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in first["message"]["tool_calls"]] == [
        ("a", "terminal", '{"command": "ls"}'),
        ("b", "think", "{}"),
    ]
    assert first["finish_reason"] == "tool_calls"
    assert got["choices"][1]["message"]["content"] == "second"
    assert got["usage"]["total_tokens"] == 5


def test_real_recording_routes_cleanly(rollout: Path) -> None:
    run = load_run_folder(rollout)
    router = Router(run.exchanges)
    for e in run.exchanges:
        assert router.route(json.dumps(e.request_body).encode(), e.request_body).exchange is e
    assert router.divergences == [] and router.remaining == 0
    assert router.counts() == {"identical": 7}
