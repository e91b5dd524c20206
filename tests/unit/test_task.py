from __future__ import annotations

from pathlib import Path

import pytest

from benchflow_continue.errors import TaskError, TaskNotFound, UnsupportedTask
from benchflow_continue.sandbox.local import check_local_compatible
from benchflow_continue.task import load_task, parse_dockerfile, resolve_task_dir

from ..conftest import EXAMPLES


def make_task(root: Path, dockerfile: str, name: str = "t") -> Path:
    task = root / name
    (task / "environment").mkdir(parents=True)
    (task / "tests").mkdir()
    (task / "tests" / "test.sh").write_text("echo 1 > /logs/verifier/reward.txt\n")
    (task / "environment" / "Dockerfile").write_text(dockerfile)
    (task / "task.toml").write_text("[verifier]\ntimeout_sec = 12\n")
    return task


def test_resolves_by_name_in_tasks_dir_or_recorded_path(tmp_path: Path) -> None:
    task = make_task(tmp_path, "FROM debian:bookworm\n")
    assert resolve_task_dir("t", tmp_path, None) == task
    assert resolve_task_dir("t", None, str(task)) == task


@pytest.mark.parametrize(
    ("tasks_dir", "recorded", "message"),
    [
        pytest.param("missing", None, "no such folder", id="tasks-dir-missing"),
        pytest.param("afile", None, "is a file", id="tasks-dir-is-file"),
        pytest.param(".", None, r"looked in .*/other", id="not-in-tasks-dir"),
        pytest.param(None, "/nowhere/t", "recorded task_path", id="recorded-path-gone"),
        pytest.param(None, None, "nowhere", id="nothing-to-go-on"),
    ],
)
def test_task_not_found_says_where_it_looked(tmp_path: Path, tasks_dir, recorded, message) -> None:
    (tmp_path / "afile").write_text("x")
    where = None if tasks_dir is None else tmp_path / tasks_dir
    with pytest.raises(TaskNotFound, match=message):
        resolve_task_dir("other", where, recorded)


def test_dockerfile_parsing() -> None:
    df = parse_dockerfile(EXAMPLES / "tasks" / "inventory-report" / "environment" / "Dockerfile")
    assert df.base_image == "debian:bookworm-slim"
    assert df.workdir == "/app" and df.env == {"REPORT_DIR": "/app/report"}
    assert df.copies == [(4, ["inventory.csv"], "/app/inventory.csv")] and df.other == []


def test_dockerfile_continuations_env_forms_and_relative_workdir(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(
        '# c\nFROM debian:12\nWORKDIR /srv\nWORKDIR app\nENV A=1 B="two words"\nENV C three words\n'
        'ENV PATH=/opt/tool/bin:$PATH D=${A}x\nCOPY --chown=1 a \\\n  b ./\nCOPY ["c", "/srv/c"]\n'
    )
    df = parse_dockerfile(path)
    assert df.workdir == "/srv/app"
    assert df.env["A"] == "1" and df.env["B"] == "two words" and df.env["C"] == "three words"
    assert df.env["PATH"].startswith("/opt/tool/bin:/usr/local/sbin:") and df.env["D"] == "1x"
    assert df.copies == [(8, ["a", "b"], "./"), (10, ["c"], "/srv/c")]


def test_relative_workdir_starts_at_the_root_as_in_docker(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text("FROM debian:12\nWORKDIR app\n")
    assert parse_dockerfile(path).workdir == "/app"
    path.write_text("FROM debian:12\n")
    assert parse_dockerfile(path).workdir == "/app"  # benchflow's default


@pytest.mark.parametrize(
    ("line", "message"),
    [
        pytest.param('ENV A="unterminated', "No closing quotation", id="unclosed-quote"),
        pytest.param("ENV =x", "expected KEY=value", id="env-without-key"),
        pytest.param('COPY ["a", ', "not a JSON list", id="broken-exec-form"),
    ],
)
def test_dockerfile_syntax_errors_name_the_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(f"FROM debian:12\n{line}\n")
    with pytest.raises(TaskError, match=f"Dockerfile:2: .*{message}"):
        parse_dockerfile(path)


def test_local_backend_refuses_what_it_cannot_build(tmp_path: Path) -> None:
    task = load_task(make_task(tmp_path, "FROM debian:bookworm\nRUN apt-get install -y git\n"))
    with pytest.raises(UnsupportedTask, match=r"Dockerfile:2: RUN .*container backend"):
        check_local_compatible(task)
    other = load_task(make_task(tmp_path, "FROM python:3.12-alpine\n", name="u"))
    with pytest.raises(UnsupportedTask, match="FROM python:3.12-alpine"):
        check_local_compatible(other)
    check_local_compatible(load_task(EXAMPLES / "tasks" / "inventory-report"))


@pytest.mark.parametrize(
    ("dockerfile", "message"),
    [
        pytest.param(
            "FROM debian:bookworm\nCOPY nothere.txt /app/\n",
            r"Dockerfile:2: COPY nothere.txt: no such file",
            id="copy-missing",
        ),
        pytest.param(
            "FROM debian:bookworm\nCOPY ../../../etc/passwd /app/\n",
            "no such file in environment",
            id="copy-escapes-context",
        ),
        pytest.param("FROM debian:bookworm\nCOPY *.nothing /app/\n", "matches no file", id="copy-glob-no-match"),
        pytest.param("FROM debian:bookworm\nCOPY a.txt /opt/a.txt\n", "can only write", id="copy-outside-writable"),
        pytest.param("FROM debian:bookworm\nWORKDIR /\n", "WORKDIR / is a system folder", id="workdir-root"),
        pytest.param(
            "FROM debian:bookworm\nWORKDIR /app/../etc\n", "WORKDIR /etc is a system folder", id="workdir-etc"
        ),
    ],
)
def test_local_backend_checks_copies_and_workdir_before_boot(tmp_path: Path, dockerfile: str, message: str) -> None:
    task_dir = make_task(tmp_path, dockerfile)
    (task_dir / "environment" / "a.txt").write_text("a")
    with pytest.raises(UnsupportedTask, match=message):
        check_local_compatible(load_task(task_dir))


def test_copy_globs_and_exec_form_are_planned(tmp_path: Path) -> None:
    task_dir = make_task(tmp_path, 'FROM debian:bookworm\nCOPY *.csv /app/data/\nCOPY ["a.txt", "b.txt"]\n')
    for name in ("x.csv", "y.csv", "a.txt"):
        (task_dir / "environment" / name).write_text(name)
    plan = check_local_compatible(load_task(task_dir))
    assert [(src.name, target) for src, target in plan] == [
        ("x.csv", "/app/data/x.csv"),
        ("y.csv", "/app/data/y.csv"),
        ("a.txt", "/app/b.txt"),
    ]


@pytest.mark.parametrize(
    "toml",
    ["[verifier]\ntimeout_sec = -5\n", '[agent]\ntimeout_sec = "30"\n', 'agent = "x"\n'],
    ids=["negative", "string", "not-a-table"],
)
def test_bad_task_toml_values(tmp_path: Path, toml: str) -> None:
    task_dir = make_task(tmp_path, "FROM debian:bookworm\n")
    (task_dir / "task.toml").write_text(toml)
    with pytest.raises(TaskError, match="task.toml"):
        load_task(task_dir)


def test_instruction_not_utf8(tmp_path: Path) -> None:
    task_dir = make_task(tmp_path, "FROM debian:bookworm\n")
    (task_dir / "instruction.md").write_bytes(b"\xff\xfe")
    with pytest.raises(TaskError, match="instruction.md: not UTF-8"):
        load_task(task_dir)


def test_task_without_verifier_is_an_error(tmp_path: Path) -> None:
    task = make_task(tmp_path, "FROM debian:bookworm\n")
    (task / "tests" / "test.sh").unlink()
    with pytest.raises(TaskError, match="no tests/test.sh"):
        load_task(task)


def test_task_toml_values(tmp_path: Path) -> None:
    task = load_task(make_task(tmp_path, "FROM debian:bookworm\n"))
    assert task.verifier_timeout == 12.0 and task.agent_timeout is None
    (task.path / "task.toml").write_text("[verifier\n")
    with pytest.raises(TaskError, match="not valid TOML"):
        load_task(task.path)


def test_task_name_cannot_leave_the_tasks_dir(tmp_path: Path) -> None:
    make_task(tmp_path / "elsewhere", "FROM debian:bookworm\n")
    (tmp_path / "tasks").mkdir()
    with pytest.raises(TaskNotFound, match="not a folder name"):
        resolve_task_dir("../elsewhere/t", tmp_path / "tasks", None)
