from __future__ import annotations

from pathlib import Path

import pytest

from benchflow_continue.errors import OutputExists
from benchflow_continue.output import OutputPaths, output_name, redactor, stitch
from benchflow_continue.runfolder import load_run_folder


def test_stitch_keeps_recorded_lines_byte_for_byte(rollout: Path) -> None:
    run = load_run_folder(rollout)
    live = [{"request": {"body": {"messages": []}}, "response": {"status_code": 200, "body": {}}}]
    stitched = b"".join(stitch(run.exchanges, 3, live, lambda s: s)).splitlines()
    original = (rollout / "trajectory" / "llm_trajectory.jsonl").read_bytes().splitlines()
    assert stitched[:4] == original[:4]
    assert len(stitched) == 5 and b'"status_code": 200' in stitched[4]
    assert b"".join(stitch(run.exchanges, None, [], lambda s: s)) == b""


def test_redactor_blanks_host_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "AIza-very-secret-value")
    monkeypatch.setenv("HARMLESS", "AIza-not-a-secret-name")
    redact = redactor(["per-run-key-123"])
    text = redact("key=AIza-very-secret-value run=per-run-key-123 other=AIza-not-a-secret-name")
    assert text == "key=***REDACTED*** run=***REDACTED*** other=AIza-not-a-secret-name"


def test_output_paths_never_overwrite(tmp_path: Path) -> None:
    paths = OutputPaths.create(tmp_path / "out", "run__continued")
    assert paths.staging.name.startswith(".run__continued.partial-") and paths.trajectory.parent.is_dir()
    paths.result.write_text("{}")
    final = paths.commit()
    assert (final / "result.json").read_text() == "{}" and not paths.staging.exists()
    with pytest.raises(OutputExists, match="never overwritten"):
        OutputPaths.create(tmp_path / "out", "run__continued")


def test_output_name_does_not_stack() -> None:
    assert output_name("task__abc") == "task__abc__continued"
    assert output_name("task__abc__continued") == "task__abc__continued"
    assert output_name("task__abc", replay_only=True) == "task__abc__replayed"
    assert output_name("task__abc__replayed") == "task__abc__continued"


def test_a_second_writer_of_the_same_output_is_refused(tmp_path: Path) -> None:
    first = OutputPaths.create(tmp_path / "out", "run__continued")
    with pytest.raises(OutputExists, match="being written by another continuation"):
        OutputPaths.create(tmp_path / "out", "run__continued")
    first.discard()
    second = OutputPaths.create(tmp_path / "out", "run__continued")  # free again
    second.commit()
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["run__continued"]  # no lock or partial left
