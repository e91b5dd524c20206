from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchflow_continue.errors import NotContinuable, RunFolderError
from benchflow_continue.runfolder import check_continuable, load_run_folder, read_trajectory

TRAJ = Path("trajectory/llm_trajectory.jsonl")


def lines(folder: Path) -> list[bytes]:
    return (folder / TRAJ).read_bytes().splitlines()


def write_lines(folder: Path, rows: list[bytes], newline: bool = True) -> None:
    (folder / TRAJ).write_bytes(b"\n".join(rows) + (b"\n" if newline else b""))


def test_loads_what_benchflow_really_writes(rollout: Path) -> None:
    run = load_run_folder(rollout)
    assert run.agent == "openhands"
    assert run.task_name == "notes-summary"
    assert len(run.exchanges) == 7
    assert all(e.ok for e in run.exchanges)
    assert run.exchanges[0].request_body["messages"][0]["role"] == "system"
    assert run.exchanges[0].raw == lines(rollout)[0]
    assert run.prompts and run.prompts[0].startswith("Create the directory")
    assert run.agent_model_alias == "openai/fake-model"
    assert run.error_category is None and not run.is_timeout


def test_timeout_category_and_warning(rollout: Path) -> None:
    result = json.loads((rollout / "result.json").read_text())
    run = load_run_folder(rollout)
    assert check_continuable(run, require_timeout=False)  # a completed run: warned about
    with pytest.raises(NotContinuable, match="require-timeout"):
        check_continuable(run, require_timeout=True)
    result["error_category"] = "idle_timeout"
    (rollout / "result.json").write_text(json.dumps(result))
    run = load_run_folder(rollout)
    assert run.is_timeout and check_continuable(run, require_timeout=True) == []


def test_other_agent_refused(rollout: Path) -> None:
    config = json.loads((rollout / "config.json").read_text())
    config["agent"] = "claude-agent-acp"
    (rollout / "config.json").write_text(json.dumps(config))
    with pytest.raises(NotContinuable, match="only openhands"):
        check_continuable(load_run_folder(rollout), require_timeout=False)


def test_blank_lines_and_split_exchange_are_tolerated(rollout: Path) -> None:
    rows = lines(rollout)
    first = json.loads(rows[0])
    request_only = json.dumps({"request": first["request"]}).encode()
    response_only = json.dumps({"response": first["response"], "duration_ms": 5.0}).encode()
    write_lines(rollout, [b"", request_only, response_only, b"   ", *rows[1:]])
    run = load_run_folder(rollout)
    assert len(run.exchanges) == 7
    assert run.exchanges[0].line == 2 and run.exchanges[0].duration_ms == 5.0
    assert any("separate lines" in n for n in run.notes) and any("blank" in n for n in run.notes)


def test_failed_exchange_is_not_ok(rollout: Path) -> None:
    rows = lines(rollout)
    failed = json.loads(rows[0])
    failed["response"] = {"status_code": 200, "body": {"id": "x", "choices": []}}
    errored = json.loads(rows[0])
    errored["response"] = {"status_code": 429, "body": {"error": {"type": "rate_limit", "message": "slow down"}}}
    write_lines(rollout, [json.dumps(failed).encode(), json.dumps(errored).encode(), *rows])
    run = load_run_folder(rollout)
    assert [e.ok for e in run.exchanges[:3]] == [False, False, True]
    assert run.exchanges[1].status == 429


@pytest.mark.parametrize(
    ("mutate", "message", "line"),
    [
        pytest.param(lambda r: [], "holds no exchanges", None, id="empty"),
        pytest.param(lambda r: [b"garbage", b"more garbage"], "not valid JSON", 1, id="all-garbage"),
        pytest.param(lambda r: [*r[:2], b"[1, 2]", *r[2:]], "found list", 3, id="not-an-object"),
        pytest.param(lambda r: [*r[:1], b'{"foo": 1}'], "no 'request' object", 2, id="no-request"),
        pytest.param(
            lambda r: [*r[:1], b'{"response": {"status_code": 200}}'],
            "no request before it",
            2,
            id="response-without-request",
        ),
        pytest.param(lambda r: [r[0], b"\xff\xfe{}"], "not UTF-8", 2, id="non-utf8"),
        pytest.param(
            lambda r: [r[0], b'{"request": {"body": {"messages": "x"}}, "response": {}}'],
            "'messages' list",
            2,
            id="messages-not-list",
        ),
    ],
)
def test_broken_trajectories_name_file_and_line(rollout: Path, mutate, message: str, line: int | None) -> None:
    write_lines(rollout, mutate(lines(rollout)))
    with pytest.raises(RunFolderError, match=message) as info:
        load_run_folder(rollout)
    assert "llm_trajectory.jsonl" in str(info.value)
    assert info.value.line == line


def test_truncated_last_line_says_what_to_do(rollout: Path) -> None:
    rows = lines(rollout)
    write_lines(rollout, [*rows[:3], rows[3][: len(rows[3]) // 2]], newline=False)
    with pytest.raises(RunFolderError, match="truncated.*3 complete exchanges") as info:
        load_run_folder(rollout)
    assert info.value.line == 4


def test_zero_byte_trajectory(rollout: Path) -> None:
    (rollout / TRAJ).write_bytes(b"")
    with pytest.raises(RunFolderError, match="no exchanges"):
        load_run_folder(rollout)
    assert load_run_folder(rollout, allow_empty=True).exchanges == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(None, "missing", id="missing"),
        pytest.param(b"{not json", "not valid JSON", id="not-json"),
        pytest.param(b"[1]", "expected a JSON object", id="not-object"),
        pytest.param(b'{"model": "x"}', "no 'agent' field", id="no-agent"),
    ],
)
def test_bad_config(rollout: Path, content: bytes | None, message: str) -> None:
    if content is None:
        (rollout / "config.json").unlink()
    else:
        (rollout / "config.json").write_bytes(content)
    with pytest.raises(RunFolderError, match=message) as info:
        load_run_folder(rollout)
    assert "config.json" in str(info.value)


def test_prompts_both_shapes_and_broken(rollout: Path) -> None:
    (rollout / "prompts.json").write_text(json.dumps({"prompts": ["a", "b"]}))
    assert load_run_folder(rollout).prompts == ["a", "b"]
    (rollout / "prompts.json").write_text(json.dumps([1, 2]))
    with pytest.raises(RunFolderError, match="prompts.json"):
        load_run_folder(rollout)
    (rollout / "prompts.json").unlink()
    assert load_run_folder(rollout).prompts is None


def test_missing_trajectory_and_not_a_folder(rollout: Path, tmp_path: Path) -> None:
    (rollout / TRAJ).unlink()
    with pytest.raises(RunFolderError, match="llm_trajectory.jsonl: missing"):
        load_run_folder(rollout)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(RunFolderError, match="not a folder"):
        load_run_folder(a_file)
    with pytest.raises(RunFolderError, match="no such folder"):
        load_run_folder(tmp_path / "nope")


def test_fields_of_the_other_file_are_not_read(rollout: Path) -> None:
    """Found by the fuzz test: 'timing' in config.json and 'source' in result.json of any shape."""
    config = json.loads((rollout / "config.json").read_text())
    (rollout / "config.json").write_text(json.dumps({**config, "timing": "x"}))
    result = json.loads((rollout / "result.json").read_text())
    (rollout / "result.json").write_text(json.dumps({**result, "source": "x"}))
    assert load_run_folder(rollout).task_name == "notes-summary"


def test_a_50_mb_line_loads_and_is_read_back_byte_for_byte(rollout: Path) -> None:
    rows = lines(rollout)
    big = json.loads(rows[1])
    big["request"]["body"]["messages"].append({"role": "tool", "tool_call_id": "x", "content": "y" * 50_000_000})
    huge = json.dumps(big).encode()
    write_lines(rollout, [rows[0], huge, *rows[2:]])
    assert load_run_folder(rollout).exchanges[1].raw == huge
    # a recording above the residency limit is read from the file as it is served
    exchanges, _, _ = read_trajectory(rollout / TRAJ, resident_bytes=0)
    assert len(exchanges) == len(rows) and exchanges[1].resident is None
    assert exchanges[1].raw == huge and exchanges[1].request == big["request"]
    assert exchanges[2].raw == rows[2] and exchanges[2].line == 3


def test_a_split_exchange_reads_back_both_of_its_lines(rollout: Path) -> None:
    rows = lines(rollout)
    first = json.loads(rows[0])
    request_line = json.dumps({"request": first["request"]}).encode()
    response_line = json.dumps({"response": first["response"]}).encode()
    write_lines(rollout, [request_line, b"", response_line, *rows[1:]])
    for resident in (None, 0):  # kept in memory, and read back from the file
        exchange = read_trajectory(rollout / TRAJ, resident_bytes=resident)[0][0]
        assert exchange.raw == request_line + b"\n" + response_line
        assert exchange.request == first["request"] and exchange.response == first["response"]
