"""The bundled example, end to end, with the real OpenHands agent in a bubblewrap sandbox."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..conftest import tree_digest
from .conftest import RUN, TASKS, cli, continue_live, spawn, wait_for

pytestmark = pytest.mark.e2e


def recorded_end_digest() -> str:
    return json.loads((RUN / "result.json").read_text())["continuation"]["workspace_digest_end"]


def test_replay_only_rebuilds_the_workspace_byte_for_byte(tmp_path: Path) -> None:
    before = tree_digest(RUN)
    done = cli(str(RUN), "--tasks-dir", str(TASKS), "--replay-only", "--output", str(tmp_path), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["workspace_digest_at_cut"] == recorded_end_digest()
    assert summary["replayed_exchanges"] == 3 and summary["live_exchanges"] == 0
    assert summary["divergences"] == []
    out = tmp_path / "inventory-report__timeout__replayed"
    assert (out / "trajectory" / "llm_trajectory.jsonl").read_bytes() == (
        RUN / "trajectory" / "llm_trajectory.jsonl"
    ).read_bytes()
    assert json.loads((out / "result.json").read_text())["rewards"] == {"reward": 0.0}  # the work is not finished yet
    assert tree_digest(RUN) == before


def test_full_continuation_reaches_the_finish_and_passes(tmp_path: Path, scripted_model: str) -> None:
    before = tree_digest(RUN)
    secret = "sk-test-provider-key-0123456789"
    continue_live(RUN, tmp_path, scripted_model, env={"OPENAI_API_KEY": secret})
    out = tmp_path / "inventory-report__timeout__continued"
    result = json.loads((out / "result.json").read_text())
    assert result["rewards"] == {"reward": 1.0} and result["error"] is None
    assert result["continuation"]["workspace_digest_at_cut"] == recorded_end_digest()
    assert result["n_tool_calls"] == 6  # three replayed, three live (the last one is finish)

    recorded = (RUN / "trajectory" / "llm_trajectory.jsonl").read_bytes().splitlines()
    stitched = (out / "trajectory" / "llm_trajectory.jsonl").read_bytes().splitlines()
    assert stitched[: len(recorded)] == recorded  # the recorded prefix, unchanged
    live = [json.loads(line) for line in stitched[len(recorded) :]]
    assert len(live) == result["continuation"]["live_exchanges"] >= 1
    assert all(x["response"]["status_code"] == 200 and x["duration_ms"] > 0 for x in live)
    last_call = live[-1]["response"]["body"]["choices"][0]["message"]["tool_calls"][0]["function"]["name"]
    assert last_call == "finish"
    # one continuous conversation: the first live request extends the last recorded one
    # (the system prompt differs only by its <CURRENT_DATETIME> block)
    first_live = live[0]["request"]["body"]["messages"]
    last_recorded = json.loads(recorded[-1])["request"]["body"]["messages"]
    assert first_live[1 : len(last_recorded)] == last_recorded[1:]
    assert len(first_live) == len(last_recorded) + 2  # the replayed answer and its tool result

    config = json.loads((out / "config.json").read_text())
    link = config["source"]["continued_from"]
    assert link["rollout"] == RUN.name and link["cut_point"] == 3 and "/" not in link["rollout"]
    assert (
        result["agent_result"]["recorded_prefix"]["total_tokens"] > 0
        and result["agent_result"]["live"]["total_tokens"] > 0
    )
    for file in out.rglob("*"):
        if file.is_file():
            assert secret not in file.read_text(errors="replace"), file
    assert tree_digest(RUN) == before


def test_nondeterministic_command_is_observation_drift_and_workspace_still_rebuilt(tmp_path: Path) -> None:
    """Record a run whose first command prints the time, then replay it."""
    import asyncio

    sys.path.insert(0, str(RUN.parents[1]))
    from generate import record  # examples/generate.py: the recorder of the bundled example

    script = json.loads((RUN.parents[1] / "scripts" / "inventory-report.json").read_text())
    first = script["turns"][0]["arguments"]
    first["command"] = "date +%s.%N && " + first["command"]
    script_path = tmp_path / "clock.json"
    script_path.write_text(json.dumps(script))
    summary = asyncio.run(record(tmp_path / "runs", 30.0, 3, 0.5, script=script_path, name="clock__timeout"))
    assert summary["error_category"] == "timeout" and summary["live_exchanges"] == 3
    source = tmp_path / "runs" / "clock__timeout"

    done = cli(str(source), "--tasks-dir", str(TASKS), "--replay-only", "--output", str(tmp_path / "out"), "--json")
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    recorded_end = json.loads((source / "result.json").read_text())["continuation"]["workspace_digest_end"]
    assert outcome["workspace_digest_at_cut"] == recorded_end
    report = json.loads((tmp_path / "out" / "clock__timeout__replayed" / "replay_report.json").read_text())
    classes = {e["exchange"]: e for e in report["exchanges"]}
    # the time printed by turn 0 is in every later request's history
    assert classes[1]["class"] == "observation-drift" and "message 3 (tool result)" in classes[1]["detail"]
    assert classes[2]["class"] == "observation-drift"
    assert report["counts"] == {"volatile": 1, "observation-drift": 2}


def test_branch_from_the_middle_with_replay_exchanges(tmp_path: Path, scripted_model: str) -> None:
    continue_live(RUN, tmp_path, scripted_model, "--replay-exchanges", "1")
    out = tmp_path / "inventory-report__timeout__continued"
    result = json.loads((out / "result.json").read_text())
    assert result["rewards"] == {"reward": 1.0}
    assert result["continuation"]["replayed_exchanges"] == 1 and result["continuation"]["cut_point"] == 1
    link = json.loads((out / "config.json").read_text())["source"]["continued_from"]
    assert link["exchanges_served"] == 1 and len(link["last_served_request_sha256"]) == 64
    stitched = (out / "trajectory" / "llm_trajectory.jsonl").read_bytes().splitlines()
    assert stitched[0] == (RUN / "trajectory" / "llm_trajectory.jsonl").read_bytes().splitlines()[0]
    assert len(stitched) == 1 + result["continuation"]["live_exchanges"]


def test_batch_over_real_runs_then_nothing_to_do(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    for name in ("inventory-report__a", "inventory-report__b", "inventory-report__c"):
        shutil.copytree(RUN, jobs / "job" / name)
    first = cli("batch", str(jobs), "--tasks-dir", str(TASKS), "--replay-only", "--concurrency", "2")
    assert first.returncode == 0, first.stderr
    assert "3 rollouts under" in first.stderr and "3 to continue" in first.stderr
    assert "3 continued now, 0 already done, 0 failed" in first.stderr
    for name in ("inventory-report__a", "inventory-report__b", "inventory-report__c"):
        result = json.loads((jobs / "continued" / f"{name}__replayed" / "result.json").read_text())
        assert result["continuation"]["workspace_digest_at_cut"] == recorded_end_digest()
    second = cli("batch", str(jobs), "--tasks-dir", str(TASKS), "--replay-only", "--json")
    assert second.returncode == 0
    summary = json.loads(second.stdout)
    assert summary["already_done"] == 3 and summary["continued_now"] == 0


def test_an_agent_crash_mid_replay_is_reported_with_its_log(tmp_path: Path) -> None:
    proc = spawn(str(RUN), "--tasks-dir", str(TASKS), "--replay-only", "--output", str(tmp_path), "--json", stdout=True)
    wait_for(proc, "replaying")
    mine = f"bfc-sandbox-{proc.pid}-"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the agent inside this continuation's sandbox, once it is up
        agents = subprocess.run(
            ["pgrep", "-f", f"{mine}.*openhands acp"], capture_output=True, text=True
        ).stdout.split()
        if agents:
            break
        time.sleep(0.2)
    subprocess.run(["pkill", "-KILL", "-f", f"{mine}.*openhands acp"], check=False)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1
    summary = json.loads(out)
    assert summary["error_category"] == "acp_error" and "agent crashed" in summary["error"]
    folder = tmp_path / "inventory-report__timeout__replayed"
    assert json.loads((folder / "result.json").read_text())["error"].startswith("agent crashed")
    assert (folder / "agent" / "openhands.txt").exists()  # its last output is kept
