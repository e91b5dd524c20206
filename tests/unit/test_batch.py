"""Batch bookkeeping over a generated jobs folder of 50+ rollouts, with a fast fake agent."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from benchflow_continue.batch import discover, run_batch, summarize
from benchflow_continue.session import ContinueOptions

from ..conftest import EXAMPLES, REAL_ROLLOUT, tree_digest
from ..fakes import ReplayingAgent

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bwrap (bubblewrap) is not installed")
RUN = EXAMPLES / "runs" / "inventory-report__timeout"
TASKS = EXAMPLES / "tasks"


def edit(path: Path, **changes: object) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


@pytest.fixture
def jobs(tmp_path: Path) -> tuple[Path, set[str]]:
    """52 rollouts in three jobs: 30 timeouts (2 of them idle timeouts), 8 passes, 6 other
    failures, 5 broken folders, 3 other agents; plus this tool's own outputs to ignore."""
    root = tmp_path / "jobs"
    expected: set[str] = set()
    for i in range(52):
        job = root / f"job-{i % 3}"
        name = f"inventory-report__r{i:02d}"
        dest = job / name
        if i < 30:
            shutil.copytree(RUN, dest)
            if i in (5, 6):
                edit(dest / "result.json", error_category="idle_timeout")
            expected.add(name)
        elif i < 38:
            shutil.copytree(REAL_ROLLOUT, dest)  # completed, reward 1.0
        elif i < 44:
            shutil.copytree(RUN, dest)
            edit(dest / "result.json", error_category="install_failure")
        elif i < 49:
            shutil.copytree(RUN, dest)
            broken = i % 3
            if broken == 0:
                (dest / "config.json").write_text("{not json")
            elif broken == 1:
                (dest / "result.json").unlink()
            else:
                shutil.rmtree(dest / "trajectory")
        else:
            shutil.copytree(RUN, dest)
            edit(dest / "config.json", agent="claude-agent-acp")
    shutil.copytree(RUN, root / "job-0" / "continued" / "inventory-report__old__continued")  # own output
    shutil.copytree(RUN, root / "job-1" / "inventory-report__x__continued")
    return root, expected


def run(jobs_dir: Path, candidates, **kw) -> list:
    template = ContinueOptions(run_dir=jobs_dir, tasks_dir=TASKS, replay_only=True, require_timeout=True)
    return asyncio.run(run_batch(candidates, template, jobs_dir, concurrency=4, agent_factory=ReplayingAgent, **kw))


def test_discovery_picks_exactly_the_timed_out_openhands_runs(jobs: tuple[Path, set[str]]) -> None:
    root, expected = jobs
    found = discover(root, replay_only=True)
    assert len(found) == 52  # own outputs are not even listed
    assert {c.path.name for c in found if c.state == "todo"} == expected
    reasons = {c.path.name: c.reason for c in found if c.state == "skip"}
    assert reasons["inventory-report__r30"] == "not a timeout (completed)"
    assert reasons["inventory-report__r38"] == "not a timeout (install_failure)"
    assert reasons["inventory-report__r45"] == "config.json is not a JSON object"
    assert reasons["inventory-report__r46"] == "no result.json: status unknown"
    assert reasons["inventory-report__r47"] == "no trajectory/llm_trajectory.jsonl"
    assert reasons["inventory-report__r49"] == "agent 'claude-agent-acp', not openhands"
    assert discover(root, pattern="nothing-*") == []


def test_batch_continues_all_then_a_second_run_does_nothing(jobs: tuple[Path, set[str]]) -> None:
    root, expected = jobs
    before = tree_digest(root / "job-2")
    candidates = run(root, discover(root, replay_only=True))
    assert {c.path.name for c in candidates if c.state == "continued"} == expected
    outputs = root / "continued"
    assert {p.name for p in outputs.iterdir()} == {f"{n}__replayed" for n in expected}
    summary = summarize(candidates, outputs, 1.0)
    assert summary["continued_now"] == 30 and summary["failed"] == 0 and summary["skipped"] == 22
    assert json.loads((outputs / "summary.json").read_text())["continued_now"] == 30
    again = discover(root, replay_only=True)
    assert sum(c.state == "done" for c in again) == 30 and not any(c.state == "todo" for c in again)
    assert run(root, again) == again  # nothing to do
    assert summarize(again, outputs, 0.0)["already_done"] == 30
    assert tree_digest(root / "job-2") == before  # sources untouched


def test_one_failure_does_not_stop_the_others(jobs: tuple[Path, set[str]]) -> None:
    root, expected = jobs
    candidates = discover(root, replay_only=True)
    bad = next(c for c in candidates if c.state == "todo")
    edit(bad.path / "result.json", task_name="no-such-task")
    done = run(root, candidates, limit=5)
    states = [c.state for c in done if c.path.name in expected]
    assert states.count("failed") == 1 and states.count("continued") == 4 and states.count("todo") == 25
    assert "not found" in bad.reason


def test_an_interrupted_batch_resumes(jobs: tuple[Path, set[str]]) -> None:
    root, expected = jobs
    finished: list[str] = []

    async def interrupted() -> None:
        template = ContinueOptions(run_dir=root, tasks_dir=TASKS, replay_only=True, require_timeout=True)
        task = asyncio.ensure_future(
            run_batch(
                discover(root, replay_only=True),
                template,
                root,
                concurrency=2,
                agent_factory=ReplayingAgent,
                on_event=lambda run, kind, data: finished.append(run) if kind == "finished" else None,
            )
        )
        while len(finished) < 3:
            await asyncio.sleep(0.05)
        task.cancel()  # as Ctrl-C does
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(interrupted())
    outputs = root / "continued"
    written = {p.name for p in outputs.iterdir()}
    assert not any(name.startswith(".") for name in written)  # no half-written folder
    assert 3 <= len(written) < 30
    resumed = run(root, discover(root, replay_only=True))
    assert sum(c.state == "continued" for c in resumed) == 30 - len(written)
    assert {p.name for p in outputs.iterdir()} == {f"{n}__replayed" for n in expected}
