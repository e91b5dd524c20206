"""The container backend on a real engine (Podman), with the real OpenHands agent.

scripts/setup-container-engine.sh makes a machine ready; CI runs it first.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from benchflow_continue.sandbox.container import ContainerSandbox, leftover_containers, remove_orphans
from benchflow_continue.task import load_task

from ..conftest import tree_digest
from .conftest import RUN, TASKS, assert_nothing_left, cli, continue_live, spawn, wait_for

pytestmark = pytest.mark.e2e
ENGINE = "podman"
BASE = "localhost/debian:bookworm"


@pytest.fixture(autouse=True)
def _engine() -> None:
    ready = shutil.which(ENGINE) and subprocess.run([ENGINE, "image", "exists", BASE]).returncode == 0
    if ready:
        return
    reason = f"{ENGINE} with the image {BASE} is not set up (scripts/setup-container-engine.sh does it)"
    if os.environ.get("BFC_REQUIRE_E2E") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def recorded_end_digest() -> str:
    return json.loads((RUN / "result.json").read_text())["continuation"]["workspace_digest_end"]


def test_replay_only_in_a_container_rebuilds_the_local_recording(tmp_path: Path) -> None:
    """The example was recorded in a bubblewrap sandbox; its /app comes out the same in a container."""
    before = tree_digest(RUN)
    done = cli(
        str(RUN), "--tasks-dir", str(TASKS), "--sandbox", ENGINE, "--replay-only", "--output", str(tmp_path), "--json"
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["workspace_digest_at_cut"] == recorded_end_digest()
    assert summary["replayed_exchanges"] == 3 and summary["divergences"] == []
    config = json.loads((tmp_path / "inventory-report__timeout__replayed" / "config.json").read_text())
    assert config["environment"] == ENGINE and config["sandbox_user"] == "root"
    assert tree_digest(RUN) == before
    assert leftover_containers(ENGINE) == []


def test_full_continuation_as_a_non_root_user_passes_the_verifier(tmp_path: Path, scripted_model: str) -> None:
    """Recorded as benchflow records it (sandbox_user agent, environment docker): the user is created."""
    source = tmp_path / "jobs" / RUN.name
    shutil.copytree(RUN, source)
    config = json.loads((source / "config.json").read_text())
    (source / "config.json").write_text(json.dumps({**config, "sandbox_user": "agent", "environment": "docker"}))
    out = tmp_path / "out"
    summary = continue_live(source, out, scripted_model)  # no --sandbox: "docker" maps to the engine that answers
    assert summary["rewards"] == {"reward": 1.0} and summary["error"] is None
    assert summary["workspace_digest_at_cut"] == recorded_end_digest()
    folder = out / "inventory-report__timeout__continued"
    written = json.loads((folder / "config.json").read_text())
    assert written["sandbox_user"] == "agent" and written["environment"] == ENGINE
    # the user owns its workspace and its home: no command of the agent's was refused
    for name in ("acp_trajectory.jsonl", "llm_trajectory.jsonl"):
        assert "Permission denied" not in (folder / "trajectory" / name).read_text()
    assert leftover_containers(ENGINE) == []


def test_interrupt_during_replay_leaves_no_container(tmp_path: Path) -> None:
    proc = spawn(str(RUN), "--tasks-dir", str(TASKS), "--sandbox", ENGINE, "--replay-only", "--output", str(tmp_path))
    wait_for(proc, "replaying")
    time.sleep(3)  # the agent is booting or replaying inside the container
    assert leftover_containers(ENGINE, proc.pid) != []
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    assert leftover_containers(ENGINE, proc.pid) == []
    assert_nothing_left(proc, tmp_path)


def test_a_killed_run_s_container_is_removed_by_the_next_run(tmp_path: Path) -> None:
    proc = spawn(
        str(RUN), "--tasks-dir", str(TASKS), "--sandbox", ENGINE, "--replay-only", "--output", str(tmp_path / "a")
    )
    wait_for(proc, "replaying")
    proc.send_signal(signal.SIGKILL)  # no clean-up can run
    proc.wait(timeout=30)
    assert leftover_containers(ENGINE, proc.pid) != []
    assert remove_orphans(ENGINE) != []  # what every container run does before it starts its own
    assert leftover_containers(ENGINE, proc.pid) == []


def test_a_failed_build_names_the_dockerfile_and_gives_the_engine_s_message(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    shutil.copytree(TASKS, tasks)
    dockerfile = tasks / "inventory-report" / "environment" / "Dockerfile"
    dockerfile.write_text(f"FROM {BASE}\nRUN echo 'no such package: imaginary-lib' >&2 && exit 3\n")
    done = cli(
        str(RUN),
        "--tasks-dir",
        str(tasks),
        "--sandbox",
        ENGINE,
        "--replay-only",
        "--output",
        str(tmp_path / "o"),
        "--json",
    )
    assert done.returncode == 1
    summary = json.loads(done.stdout)
    assert summary["error_category"] == "sandbox_setup"
    assert str(dockerfile) in summary["error"] and "exit status 3" in summary["error"]
    assert leftover_containers(ENGINE) == []


def test_sandbox_runs_the_image_s_build_steps_and_moves_files(tmp_path: Path) -> None:
    """What the local backend cannot do: RUN steps, another WORKDIR, a user the image lacks."""
    task_dir = tmp_path / "built"
    (task_dir / "environment").mkdir(parents=True)
    (task_dir / "tests").mkdir()
    (task_dir / "tests" / "test.sh").write_text("echo 1 > /logs/verifier/reward.txt\n")
    (task_dir / "environment" / "data.txt").write_text("seed\n")
    (task_dir / "environment" / "Dockerfile").write_text(
        f"FROM {BASE}\nRUN mkdir -p /srv/work && echo built > /srv/marker\nWORKDIR /srv/work\nENV GREETING=hello\n"
        "COPY data.txt /srv/work/\n"
    )
    (task_dir / "task.toml").write_text("[environment]\ncpus = 1\nmemory_mb = 512\n")
    box = ContainerSandbox(load_task(task_dir), engine=ENGINE, user="agent")

    async def check() -> None:
        await box.start()
        try:
            assert box.workdir == "/srv/work" and box.home == "/home/agent"
            out = await box.exec(["sh", "-c", "pwd; cat /srv/marker data.txt; echo $GREETING"])
            assert out.stdout.split() == ["/srv/work", "built", "seed", "hello"]
            argv, env = box.command(["sh", "-c", "id -un; touch mine"], {})
            ran = subprocess.run(argv, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
            assert ran.stdout.strip() == "agent", ran.stderr  # the agent's commands run as the sandbox user
            upload = tmp_path / "up"
            (upload / "sub").mkdir(parents=True)
            (upload / "sub" / "f.txt").write_text("in")
            await box.upload(upload, "/tests/extra")
            assert (await box.exec(["cat", "/tests/extra/sub/f.txt"])).stdout == "in"
            await box.exec(["sh", "-c", "echo 0.5 > /logs/verifier/reward.txt; ln -s /etc/shadow /logs/verifier/link"])
            down = tmp_path / "down"
            await box.download("/logs/verifier", down)
            assert (down / "reward.txt").read_text() == "0.5\n" and not (down / "link").exists()
            slow = await box.exec(["sh", "-c", "sleep 299; true"], timeout=1)
            assert slow.timed_out
            listing = "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; done"
            left = await box.exec(["sh", "-c", f"{listing} | grep -c '^sleep 299 $'"])
            assert left.stdout.strip() == "0"  # the timed-out command is gone inside, not only its client
        finally:
            await box.stop()

    asyncio.run(check())
    assert leftover_containers(ENGINE, os.getpid()) == []


def test_interrupt_during_an_image_build_leaves_no_build_step_running(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    shutil.copytree(TASKS, tasks)
    environment = tasks / "inventory-report" / "environment"
    (environment / "stamp.txt").write_text(str(time.time()))  # a context never built: a fresh build
    (environment / "Dockerfile").write_text(f"FROM {BASE}\nWORKDIR /app\nCOPY inventory.csv /app/\nRUN sleep 47\n")

    def building() -> set[str]:
        listing = subprocess.run([ENGINE, "ps", "-a", "--external", "-q"], capture_output=True, text=True).stdout
        return set(listing.split())

    before = building()
    out = tmp_path / "out"
    out.mkdir()
    proc = spawn(str(RUN), "--tasks-dir", str(tasks), "--sandbox", ENGINE, "--replay-only", "--output", str(out))
    wait_for(proc, "building localhost/benchflow-continue/inventory-report")
    time.sleep(6)  # inside the RUN step
    assert subprocess.run(["pgrep", "-f", "sleep 47"], capture_output=True).returncode == 0
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    assert subprocess.run(["pgrep", "-f", "sleep 47"], capture_output=True).returncode == 1
    assert building() - before == set()  # no working container of the build is left
    assert_nothing_left(proc, out)
