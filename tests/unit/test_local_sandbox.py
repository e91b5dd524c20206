from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from benchflow_continue.errors import VerifierError
from benchflow_continue.sandbox.base import workspace_digest
from benchflow_continue.sandbox.local import LocalSandbox, remove_orphans
from benchflow_continue.task import load_task
from benchflow_continue.verify import read_reward, run_verifier

from ..conftest import EXAMPLES

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bwrap (bubblewrap) is not installed")
TASK = EXAMPLES / "tasks" / "inventory-report"


def in_sandbox(fn, task_dir: Path = TASK) -> Any:
    async def go() -> Any:
        box = LocalSandbox(load_task(task_dir))
        await box.start()
        try:
            return await fn(box)
        finally:
            await box.stop()
            assert box.root is None

    return asyncio.run(go())


def test_fresh_workspace_seeded_from_the_dockerfile() -> None:
    async def check(box: LocalSandbox) -> None:
        out = await box.exec(["sh", "-c", "pwd; ls /app; echo $REPORT_DIR; echo $HOME; ls -A /root | wc -l"])
        assert out.returncode == 0
        assert out.stdout.split("\n")[:5] == ["/app", "inventory.csv", "/app/report", "/root", "0"]
        assert (box.workspace / "inventory.csv").read_bytes() == (TASK / "environment" / "inventory.csv").read_bytes()

    in_sandbox(check)


def test_host_is_not_touched_and_system_is_read_only() -> None:
    async def check(box: LocalSandbox) -> None:
        out = await box.exec(["sh", "-c", "touch /etc/x 2>&1; echo made > /app/new.txt; ls /work 2>&1"])
        assert "Read-only" in out.stdout and "No such file" in out.stdout
        assert (box.workspace / "new.txt").read_text() == "made\n"
        assert not Path("/app/new.txt").exists()

    in_sandbox(check)


def test_tmux_is_hidden_so_openhands_uses_its_subprocess_terminal() -> None:
    async def check(box: LocalSandbox) -> None:
        out = await box.exec(["sh", "-c", "tmux -V; echo rc=$?"])
        assert "rc=127" in out.stdout

    in_sandbox(check)


def test_exec_timeout_kills_the_command() -> None:
    async def check(box: LocalSandbox) -> None:
        out = await box.exec(["sleep", "30"], timeout=0.5)
        assert out.timed_out and out.returncode == -1

    in_sandbox(check)


def test_workspace_digest_tracks_content() -> None:
    async def check(box: LocalSandbox) -> tuple[str, str, str]:
        before, manifest = await workspace_digest(box)
        await box.exec(["sh", "-c", "mkdir -p /app/d && echo x > /app/d/f"])
        after, manifest2 = await workspace_digest(box)
        again, _ = await workspace_digest(box)
        assert "./inventory.csv" in manifest and "./d/f" in manifest2
        return before, after, again

    before, after, again = in_sandbox(check)
    assert before != after and after == again


def test_verifier_scores_and_keeps_output(tmp_path: Path) -> None:
    async def check(box: LocalSandbox) -> Any:
        zero = await run_verifier(box, box.task, tmp_path / "v0")
        await box.exec(
            [
                "sh",
                "-c",
                "mkdir -p /app/report && printf 'electronics,67\\nhardware,400\\nsupplies,23\\n' > /app/report/totals.csv && echo 490 > /app/report/summary.txt",
            ]
        )
        one = await run_verifier(box, box.task, tmp_path / "v1")
        return zero, one

    zero, one = in_sandbox(check)
    assert zero.rewards == {"reward": 0.0} and one.rewards == {"reward": 1.0}
    assert "report is correct" in (tmp_path / "v1" / "test-stdout.txt").read_text()
    assert (tmp_path / "v1" / "reward.txt").read_text().strip() == "1.0"


@pytest.mark.parametrize(
    ("script", "message"),
    [
        pytest.param("true", "no /logs/verifier/reward.txt", id="no-reward"),
        pytest.param("echo great > /logs/verifier/reward.txt", "expected one number", id="not-a-number"),
        pytest.param("sleep 30", "timed out after 1 s", id="hangs"),
        pytest.param("echo nan > /logs/verifier/reward.txt", "expected a finite number", id="nan"),
        pytest.param("printf '\\xff' > /logs/verifier/reward.txt", "expected one number", id="not-utf8"),
        pytest.param(
            "ln -s /etc/hostname /logs/verifier/reward.txt", "no /logs/verifier/reward.txt", id="symlink-to-a-host-file"
        ),
    ],
)
def test_verifier_failures_are_clear(tmp_path: Path, script: str, message: str) -> None:
    task = tmp_path / "task"
    shutil.copytree(TASK, task)
    (task / "tests" / "test.sh").write_text(script + "\n")
    (task / "task.toml").write_text("[verifier]\ntimeout_sec = 1\n")

    async def check(box: LocalSandbox) -> None:
        with pytest.raises(VerifierError, match=message):
            await run_verifier(box, box.task, tmp_path / "v")

    in_sandbox(check, task)


def test_reward_json(tmp_path: Path) -> None:
    (tmp_path / "reward.json").write_text('{"reward": 0.5, "partial": 1}')
    assert read_reward(tmp_path) == {"reward": 0.5, "partial": 1.0}


def test_host_credentials_never_enter_the_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "host-secret-value-123")

    async def check(box: LocalSandbox) -> None:
        out = await box.exec(["env"], env={"LLM_API_KEY": "per-run-key"})
        assert "host-secret-value-123" not in out.stdout and "GEMINI_API_KEY" not in out.stdout
        assert "LLM_API_KEY=per-run-key" in out.stdout
        argv, environment = box.command(["true"], {"LLM_API_KEY": "per-run-key"})
        assert "per-run-key" not in " ".join(argv)  # not on a command line every user can read
        assert environment["LLM_API_KEY"] == "per-run-key" and "GEMINI_API_KEY" not in environment

    in_sandbox(check)


def test_a_killed_run_s_sandbox_folder_is_removed_by_the_next_run() -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that no longer runs
    left = Path(tempfile.gettempdir()) / f"bfc-sandbox-{dead.pid}-left"
    (left / "workspace").mkdir(parents=True)
    mine = Path(tempfile.mkdtemp(prefix=f"bfc-sandbox-{os.getpid()}-"))  # a live run's folder stays
    try:
        assert left in remove_orphans()
        assert not left.exists() and mine.exists()
    finally:
        shutil.rmtree(mine, ignore_errors=True)
        shutil.rmtree(left, ignore_errors=True)
