from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from benchflow_continue.overview import describe

from ..conftest import EXAMPLES, REAL_ROLLOUT

RUN = EXAMPLES / "runs" / "inventory-report__timeout"
TASKS = EXAMPLES / "tasks"


def test_describe_a_timed_out_run() -> None:
    info = describe(RUN, TASKS)
    assert info["task"] == "inventory-report" and info["agent"] == "openhands" and info["is_timeout"]
    assert info["exchanges"] == 3 and info["failed_exchanges"] == []
    assert info["continuable"] is True and info["tokens"]["total_tokens"] > 0
    assert info["last_actions"][0].startswith("terminal: head -5 /app/inventory.csv")
    assert info["last_actions"][1] == "file_editor: create /app/totals.sh"


def test_describe_says_why_not(tmp_path: Path) -> None:
    info = describe(RUN)  # the recorded task_path is not a folder from here
    assert info["continuable"] is False and any("not found" in note for note in info["notes"])
    completed = describe(REAL_ROLLOUT)
    assert completed["is_timeout"] is False and any("not a timeout" in note for note in completed["notes"])
    assert completed["last_actions"][-1].startswith("finish: Created /app/notes/a.txt")


def test_describe_a_continued_folder(tmp_path: Path) -> None:
    folder = tmp_path / "x__continued"
    shutil.copytree(RUN, folder)
    link = {"rollout": RUN.name, "cut_point": 3, "live_model": "openai/scripted", "trajectory_sha256": "ab" * 32}
    config = json.loads((folder / "config.json").read_text())
    config["source"] = {"continued_from": link, "continuation_chain": [link]}
    (folder / "config.json").write_text(json.dumps(config))
    info = describe(folder, TASKS)
    assert info["continuation_chain"] == [link] and info["cut_point"] == 0  # the example is a first run


def test_inspect_cli_human_and_json() -> None:
    human = subprocess.run(
        [sys.executable, "-m", "benchflow_continue", "inspect", str(RUN), "--tasks-dir", str(TASKS)],
        capture_output=True,
        text=True,
    )
    assert human.returncode == 0 and "status: timeout" in human.stdout and "can be continued" in human.stdout
    machine = subprocess.run(
        [sys.executable, "-m", "benchflow_continue", "inspect", str(RUN), "--json"], capture_output=True, text=True
    )
    assert json.loads(machine.stdout)["exchanges"] == 3
    broken = subprocess.run(
        [sys.executable, "-m", "benchflow_continue", "inspect", "/nonexistent"], capture_output=True, text=True
    )
    assert broken.returncode == 2 and "no such folder" in broken.stderr
