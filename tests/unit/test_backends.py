"""Choosing a backend and what a container backend asks of the task, without an engine."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchflow_continue.errors import InputError, TaskError, UnsupportedTask
from benchflow_continue.sandbox import container, resolve_backend
from benchflow_continue.sandbox.container import ContainerSandbox, task_image_tag
from benchflow_continue.session import ContinueOptions, prepare
from benchflow_continue.task import load_task

TASK = Path(__file__).resolve().parents[2] / "examples" / "tasks" / "inventory-report"
EXAMPLE_RUN = TASK.parents[1] / "runs" / "inventory-report__timeout"


@pytest.fixture
def engines(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    answering: set[str] = set()
    monkeypatch.setattr(container, "engine_problem", lambda e: None if e in answering else f"{e} is not installed")
    return answering


@pytest.mark.parametrize(
    ("requested", "recorded", "answering", "expected"),
    [
        (None, None, set(), "local"),
        (None, "local", {"podman"}, "local"),
        (None, "docker", {"docker", "podman"}, "docker"),
        (None, "docker", {"podman"}, "podman"),  # a recorded docker run on a podman machine
        ("podman", "docker", {"podman"}, "podman"),
        ("local", "docker", set(), "local"),
    ],
)
def test_backend_choice(
    engines: set[str], requested: str | None, recorded: str | None, answering: set[str], expected: str
) -> None:
    engines.update(answering)
    assert resolve_backend(requested, recorded) == expected


@pytest.mark.parametrize(
    ("requested", "recorded", "message"),
    [
        (None, "docker", "no container engine answers here; run scripts/setup-container-engine.sh"),
        ("podman", None, "--sandbox podman: podman is not installed; run scripts/setup-container-engine.sh"),
        ("kubernetes", None, "--sandbox kubernetes: unknown backend"),
        (None, "daytona", "pass --sandbox with one of: local, docker, podman"),
    ],
)
def test_backend_refusals_say_what_to_do(
    engines: set[str], requested: str | None, recorded: str | None, message: str
) -> None:
    with pytest.raises(InputError, match=message.replace("-", r"\-").replace(".", r"\.")):
        resolve_backend(requested, recorded)


def _task(tmp_path: Path, toml: str | None = None, dockerfile: str | None = None) -> Path:
    task = tmp_path / "inventory-report"
    shutil.copytree(TASK, task)
    if toml is not None:
        (task / "task.toml").write_text(toml)
    if dockerfile is not None:
        (task / "environment" / "Dockerfile").write_text(dockerfile)
    return task


def test_task_resources_become_engine_limits(tmp_path: Path) -> None:
    task = load_task(_task(tmp_path, toml="[environment]\ncpus = 1\nmemory_mb = 2048\n"))
    assert ContainerSandbox(task, engine="podman").resources == ["--cpus", "1", "--memory", "2048m"]


@pytest.mark.parametrize(
    "table",
    [
        "cpus = -1",
        "cpus = 'two'",
        "cpus = nan",
        "memory_mb = 1.5",
        "memory_mb = true",
        "memory = 'lots'",
        "memory = 512",
        "docker_image = 5",
        "docker_image = '--help'",
    ],
)
def test_bad_resources_are_refused_with_the_file(tmp_path: Path, table: str) -> None:
    task = load_task(_task(tmp_path, toml=f"[environment]\n{table}\n"))
    with pytest.raises(TaskError, match="task.toml: \\[environment\\]"):
        ContainerSandbox(task, engine="podman")


def test_a_task_without_image_or_dockerfile_is_refused(tmp_path: Path) -> None:
    folder = _task(tmp_path)
    (folder / "environment" / "Dockerfile").unlink()
    with pytest.raises(UnsupportedTask, match="no environment/Dockerfile and no \\[environment\\] docker_image"):
        ContainerSandbox(load_task(folder), engine="docker")


def test_image_tag_follows_the_build_context(tmp_path: Path) -> None:
    folder = _task(tmp_path)
    first = task_image_tag(load_task(folder))
    assert task_image_tag(load_task(folder)) == first  # a second continuation reuses the build
    (folder / "environment" / "inventory.csv").write_text("sku,qty\n")
    assert task_image_tag(load_task(folder)) != first


def test_agent_command_keeps_values_off_the_command_line(tmp_path: Path) -> None:
    box = ContainerSandbox(load_task(_task(tmp_path)), engine="podman", user="agent")
    box.container, box.home = "bfc-test", "/home/agent"
    argv, env = box.command(["openhands", "acp"], {"LLM_API_KEY": "bfc-secret-key"})
    assert "bfc-secret-key" not in " ".join(argv)
    assert env["LLM_API_KEY"] == "bfc-secret-key"
    assert argv[:2] == ["podman", "exec"] and argv[-3:] == ["bfc-test", "openhands", "acp"]
    assert argv[argv.index("--user") + 1] == "agent"


def test_memory_as_a_size_string(tmp_path: Path) -> None:
    task = load_task(_task(tmp_path, toml="[environment]\nmemory = '2G'\n"))
    assert ContainerSandbox(task, engine="podman").resources == ["--memory", "2G"]


@pytest.mark.parametrize("user", ["bad name with spaces", "x;rm -rf /", "Root", 5])
def test_a_sandbox_user_that_is_not_a_name_is_refused_before_boot(
    engines: set[str], tmp_path: Path, user: object
) -> None:
    engines.add("podman")
    run = tmp_path / "jobs" / "inventory-report__timeout"
    shutil.copytree(EXAMPLE_RUN, run)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "sandbox_user": user}))
    options = ContinueOptions(run_dir=run, tasks_dir=TASK.parent, sandbox="podman", replay_only=True)
    with pytest.raises(InputError, match="config.json: sandbox_user .* is not a user name"):
        prepare(options)
    options.sandbox = "local"  # the local backend runs as root whatever was recorded
    prepare(options)
