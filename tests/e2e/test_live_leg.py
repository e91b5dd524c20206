"""The live leg with the real agent: its budget, upstream faults, continuing a continuation."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import RUN, continue_live

pytestmark = pytest.mark.e2e
RECORDED = (RUN / "trajectory" / "llm_trajectory.jsonl").read_bytes().splitlines()


def test_replay_does_not_eat_the_live_budget(tmp_path: Path, scripted_models: Callable[..., str]) -> None:
    """The original budget (30 s) is too short for boot + replay + the remaining work with a slow
    model, but --timeout 30 for the live leg alone is enough."""
    summary = continue_live(RUN, tmp_path, scripted_models("--latency", "7"), "--timeout", "30")
    assert summary["rewards"] == {"reward": 1.0} and summary["error"] is None
    assert summary["live_sec"] < 30 < summary["agent_boot_sec"] + summary["replay_sec"] + summary["live_sec"]
    result = json.loads((tmp_path / "inventory-report__timeout__continued" / "result.json").read_text())
    assert result["timing"]["budget"] == {
        "original_sec": 30.0,
        "continuation_sec": 30.0,
        "effective_total_sec": 60.0,
        "replay_timeout_sec": 600.0,
        "idle_timeout_sec": 600.0,
    }


def test_provider_429_then_500_then_success(tmp_path: Path, scripted_models: Callable[..., str]) -> None:
    url = scripted_models("--latency", "0.5", "--fail", "3:429", "--fail", "3:500")
    summary = continue_live(RUN, tmp_path, url)
    assert summary["rewards"] == {"reward": 1.0}
    stitched = (
        (tmp_path / "inventory-report__timeout__continued" / "trajectory" / "llm_trajectory.jsonl")
        .read_bytes()
        .splitlines()
    )
    live = [json.loads(line) for line in stitched[len(RECORDED) :]]
    assert [x["response"]["status_code"] for x in live[:3]] == [429, 500, 200]
    assert live[0]["request"]["body"] == live[2]["request"]["body"]  # three attempts at one request
    assert "scripted failure 429" in live[0]["response"]["body"]["error"]["message"]
    assert all(x["duration_ms"] > 0 for x in live)


def test_continuing_a_continuation(tmp_path: Path, scripted_models: Callable[..., str]) -> None:
    url = scripted_models("--latency", "2")
    first = continue_live(RUN, tmp_path / "one", url, "--timeout", "5")  # runs out of budget again
    assert first["error_category"] == "timeout" and first["live_exchanges"] >= 1
    middle = tmp_path / "one" / "inventory-report__timeout__continued"
    second = continue_live(middle, tmp_path / "two", url)
    assert second["rewards"] == {"reward": 1.0}
    final = tmp_path / "two" / "inventory-report__timeout__continued"  # no stacked suffix
    chain = json.loads((final / "config.json").read_text())["source"]["continuation_chain"]
    assert [link["rollout"] for link in chain] == ["inventory-report__timeout", "inventory-report__timeout__continued"]
    assert chain[1]["cut_point"] == len((middle / "trajectory" / "llm_trajectory.jsonl").read_bytes().splitlines())
    lines = (final / "trajectory" / "llm_trajectory.jsonl").read_bytes().splitlines()
    middle_lines = (middle / "trajectory" / "llm_trajectory.jsonl").read_bytes().splitlines()
    assert lines[: len(middle_lines)] == middle_lines and lines[: len(RECORDED)] == RECORDED
    # one continuous conversation: every request extends the one before it (after the system prompt)
    bodies = [json.loads(line)["request"]["body"]["messages"] for line in lines]
    for before, after in zip(bodies, bodies[1:], strict=False):
        assert after[1 : len(before)] == before[1:]
    result = json.loads((final / "result.json").read_text())
    assert (
        result["agent_result"]["recorded_prefix"]["total_tokens"] + result["agent_result"]["live"]["total_tokens"]
        == result["agent_result"]["total_tokens"]
    )
