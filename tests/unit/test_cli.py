"""Bad input: a one-line error, exit code 2, and the source folder untouched."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import EXAMPLES, tree_digest

RUN = EXAMPLES / "runs" / "inventory-report__timeout"
TASKS = EXAMPLES / "tasks"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchflow_continue", *args], capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def run_copy(tmp_path: Path) -> Path:
    dest = tmp_path / "jobs" / RUN.name
    shutil.copytree(RUN, dest)
    return dest


def edit_json(path: Path, **changes: object) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def truncate_last_line(run: Path) -> None:
    traj = run / "trajectory" / "llm_trajectory.jsonl"
    data = traj.read_bytes().rstrip(b"\n")
    traj.write_bytes(data[: len(data) - 100])


CASES = [
    pytest.param(lambda r, t: (r / "config.json").unlink(), [], "config.json: missing", id="missing-config"),
    pytest.param(
        lambda r, t: (r / "trajectory" / "llm_trajectory.jsonl").write_bytes(b""),
        [],
        "no exchanges",
        id="empty-trajectory",
    ),
    pytest.param(
        lambda r, t: (r / "trajectory" / "llm_trajectory.jsonl").write_bytes(b"x\ny\n"),
        [],
        "llm_trajectory.jsonl:1: not valid JSON",
        id="garbage-trajectory",
    ),
    pytest.param(
        lambda r, t: truncate_last_line(r),
        [],
        "llm_trajectory.jsonl:3: last line is truncated",
        id="truncated-last-line",
    ),
    pytest.param(
        lambda r, t: edit_json(r / "config.json", agent="codex-acp"), [], "only openhands", id="not-openhands"
    ),
    pytest.param(
        lambda r, t: edit_json(r / "result.json", task_name="no-such-task"),
        [],
        "task 'no-such-task' not found; looked in",
        id="task-not-found",
    ),
    pytest.param(lambda r, t: None, ["--tasks-dir", "{file}"], "is a file", id="tasks-dir-is-a-file"),
    pytest.param(lambda r, t: None, ["--output", "{run}/out"], "inside the source folder", id="output-inside-source"),
    pytest.param(
        lambda r, t: (t / "out" / f"{RUN.name}__continued").mkdir(parents=True),
        ["--output", "{tmp}/out"],
        "already exists",
        id="output-exists",
    ),
    pytest.param(
        lambda r, t: edit_json(r / "result.json", error_category=None),
        ["--require-timeout"],
        "not a timeout",
        id="require-timeout",
    ),
    pytest.param(
        lambda r, t: edit_json(r / "config.json", environment="modal"),
        [],
        "pass --sandbox with one of: local, docker, podman",
        id="recorded-unknown-environment",
    ),
    pytest.param(lambda r, t: None, ["--sandbox", "k8s"], "unknown backend", id="unknown-sandbox"),
    pytest.param(lambda r, t: None, ["--timeout", "-5"], "must be a positive", id="negative-timeout"),
    pytest.param(
        lambda r, t: None, ["--on-divergence", "ignore"], "choose one of warn, abort, live", id="unknown-policy"
    ),
    pytest.param(
        lambda r, t: None, ["--strict-divergence", "--on-divergence", "live"], "contradicts", id="strict-and-live"
    ),
    pytest.param(lambda r, t: None, ["--diverge-on", "structural,typo"], "--diverge-on typo", id="unknown-class"),
    pytest.param(
        lambda r, t: None, ["--replay-exchanges", "4"], "has 3 exchanges; pass 0..3", id="replay-exchanges-too-many"
    ),
    pytest.param(lambda r, t: None, ["--replay-exchanges", "-1"], "pass 0..3", id="replay-exchanges-negative"),
    pytest.param(
        lambda r, t: (edit_json(r / "config.json", model=None), edit_json(r / "result.json", model=None)),
        [],
        "pass --model",
        id="no-model",
    ),
]


# shapes no JSON schema forbids, found by trying to break the tool
CASES += [
    pytest.param(
        lambda r, t: edit_json(r / "config.json", task_path=5),
        [],
        "'task_path' must be a string",
        id="task-path-number",
    ),
    pytest.param(
        lambda r, t: edit_json(r / "config.json", environment=["local"]),
        [],
        "'environment' must be a string",
        id="environment-list",
    ),
    pytest.param(
        lambda r, t: edit_json(r / "config.json", source="abc"), [], "'source' must be an object", id="source-string"
    ),
    pytest.param(lambda r, t: edit_json(r / "config.json", model=5), [], "'model' must be a string", id="model-number"),
    pytest.param(
        lambda r, t: edit_json(r / "result.json", timing="x"), [], "'timing' must be an object", id="timing-string"
    ),
    pytest.param(
        lambda r, t: edit_json(r / "result.json", timing={"agent_execution": "abc"}),
        [],
        "timing.agent_execution must be a number",
        id="timing-value-string",
    ),
    pytest.param(
        lambda r, t: (r / "config.json").write_text('{"agent": "openhands", "x": ' + "9" * 5000 + "}"),
        [],
        "config.json: not usable JSON",
        id="huge-integer",
    ),
    pytest.param(
        lambda r, t: (r / "prompts.json").write_text("[" * 100000 + "]" * 100000),
        [],
        "nested too deeply",
        id="deep-nesting",
    ),
    pytest.param(
        lambda r, t: edit_json(r / "result.json", task_name="x[red]y"),
        [],
        "task 'x[red]y' not found",
        id="brackets-in-message",
    ),
    pytest.param(lambda r, t: None, ["--timeout", "nan"], "must be a positive, finite number", id="timeout-nan"),
    pytest.param(lambda r, t: None, ["--timeout", "inf"], "must be a positive, finite number", id="timeout-inf"),
]


@pytest.mark.parametrize(("break_it", "extra", "message"), CASES)
def test_bad_input_exit_2_one_line_nothing_touched(run_copy: Path, tmp_path: Path, break_it, extra, message) -> None:
    (tmp_path / "afile").write_text("x")
    break_it(run_copy, tmp_path)
    before = tree_digest(run_copy)
    extra = [a.format(file=tmp_path / "afile", run=run_copy, tmp=tmp_path) for a in extra]
    tasks = [] if "--tasks-dir" in extra else ["--tasks-dir", str(TASKS)]
    done = cli(str(run_copy), *tasks, *extra)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], done.stderr
    assert "Traceback" not in done.stderr
    assert tree_digest(run_copy) == before
    assert not (run_copy.parent / "continued").exists()


def test_run_dir_missing() -> None:
    done = cli("/nonexistent/run")
    assert done.returncode == 2 and "no such folder" in done.stderr


def test_help_lists_the_contract_flags() -> None:
    done = cli("run", "--help")
    assert done.returncode == 0
    for flag in (
        "--tasks-dir",
        "--model",
        "--timeout",
        "--output",
        "--require-timeout",
        "--strict-divergence",
        "--replay-only",
        "--sandbox",
    ):
        assert flag in done.stdout
    top = cli("--help")
    assert "RUN_DIR [OPTIONS]" in top.stdout and "scripted-model" in top.stdout


def test_output_location_that_cannot_be_written(run_copy: Path, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    # root writes through permissions; /proc refuses everyone
    target = Path("/proc/1/bfc-out") if os.geteuid() == 0 else locked / "out"
    done = cli(str(run_copy), "--tasks-dir", str(TASKS), "--replay-only", "--output", str(target))
    assert done.returncode == 2 and "cannot create it" in done.stderr, done.stderr
    assert not list(run_copy.parent.glob("continued"))


def test_json_on_bad_input(run_copy: Path) -> None:
    (run_copy / "config.json").unlink()
    done = cli(str(run_copy), "--json")
    assert done.returncode == 2
    assert json.loads(done.stdout) == {
        "error": json.loads(done.stdout)["error"],
        "error_category": "bad_input",
        "exit_code": 2,
    }
    assert "config.json: missing" in json.loads(done.stdout)["error"]


def test_run_dir_dot_uses_the_folders_own_name(run_copy: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchflow_continue", ".", "--tasks-dir", str(TASKS), "--timeout", "-1"],
        capture_output=True,
        text=True,
        cwd=run_copy,
    )
    assert done.returncode == 2 and "--timeout -1" in done.stderr  # got past the output checks


def test_all_failed_recording_is_refused(run_copy: Path) -> None:
    traj = run_copy / "trajectory" / "llm_trajectory.jsonl"
    lines = [json.loads(line) for line in traj.read_text().splitlines()]
    for line in lines:
        line["response"] = {"status_code": 500, "body": {"error": {"message": "boom"}}}
    traj.write_text("".join(json.dumps(x) + "\n" for x in lines))
    done = cli(str(run_copy), "--tasks-dir", str(TASKS), "--replay-only")
    assert done.returncode == 2 and "every recorded call failed" in done.stderr
