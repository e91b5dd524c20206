"""The ``local`` backend: a bubblewrap mount namespace on this machine.

The sandbox root is bwrap's own empty tmpfs; the host's ``/usr`` and ``/etc``
are bound read-only, and fresh per-run folders are bound at the task's working
directory (``/app``), ``/tests``, ``/logs``, ``/root`` (HOME) and ``/tmp``, so
the absolute paths a recording names work without touching the host. The
network namespace is shared: the agent reaches the proxy on the host loopback.

Only what a Dockerfile can express without building an image is honoured:
``FROM`` a Debian bookworm base (this machine's own system), ``WORKDIR``,
``ENV`` and ``COPY``/``ADD`` of files from ``environment/``.
"""

from __future__ import annotations

import asyncio
import fnmatch
import os
import posixpath
import shutil
import tempfile
from pathlib import Path

from ..errors import SandboxError, UnsupportedTask
from ..task import Task
from .base import ExecResult, Mount, kill_group, pid_alive, run_process

__all__ = ["LocalSandbox", "COMPATIBLE_BASES"]

#: base images whose userland is this machine's own (Debian 12)
COMPATIBLE_BASES = (
    "debian:bookworm*",
    "debian:12*",
    "localhost/debian:bookworm*",
    "docker.io/library/debian:bookworm*",
)
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: stands in for tmux inside the sandbox: OpenHands then picks its subprocess terminal
NO_TMUX = "#!/bin/sh\necho 'tmux is hidden in this sandbox' >&2\nexit 127\n"


#: the host's own folders, bound read-only: a task cannot work in them
SYSTEM_DIRS = (
    "/usr",
    "/etc",
    "/bin",
    "/sbin",
    "/lib",
    "/lib64",
    "/lib32",
    "/libx32",
    "/proc",
    "/dev",
    "/sys",
    "/tests",
    "/logs",
)


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def check_local_compatible(task: Task) -> list[tuple[Path, str]]:
    """Refuse what the local backend cannot give; return the files to seed as (source, target)."""
    dockerfile = task.dockerfile
    where = task.environment_dir / "Dockerfile"
    fix = "this needs a container backend; the local backend only honours FROM debian:bookworm, WORKDIR, ENV, COPY/ADD"
    for line, text in dockerfile.other:
        raise UnsupportedTask(f"{where}:{line}: {text.split()[0]} {fix}")
    base = dockerfile.base_image
    if base and not any(fnmatch.fnmatch(base, pattern) for pattern in COMPATIBLE_BASES):
        raise UnsupportedTask(f"{where}: FROM {base} is not this machine's system (Debian 12); {fix}")
    workdir = dockerfile.workdir
    if workdir == "/" or any(_inside(workdir, d) for d in SYSTEM_DIRS):
        raise UnsupportedTask(
            f"{where}: WORKDIR {workdir} is a system folder; the local backend needs a fresh one, e.g. /app"
        )
    writable = (workdir, "/root", "/tmp")
    context = task.environment_dir.resolve()
    plan: list[tuple[Path, str]] = []
    for line, sources, dest in dockerfile.copies:
        target = posixpath.normpath(posixpath.join(workdir, dest))
        if not any(_inside(target, w) for w in writable):
            raise UnsupportedTask(
                f"{where}:{line}: COPY to {target}: the local backend can only write {', '.join(writable)}; {fix}"
            )
        matches = [
            m
            for source in sources
            for m in (sorted(context.glob(source)) if any(c in source for c in "*?[") else [context / source])
        ]
        into_dir = dest.endswith("/") or len(matches) > 1
        for src in matches:
            resolved = src.resolve()
            if not resolved.is_relative_to(context) or not resolved.exists():
                raise UnsupportedTask(
                    f"{where}:{line}: COPY {src.relative_to(context) if src.is_relative_to(context) else src}: no such file in environment/"
                )
            if resolved.is_dir():
                plan.append((resolved, target))
            else:
                plan.append((resolved, posixpath.join(target, resolved.name) if into_dir else target))
        if not matches:
            raise UnsupportedTask(f"{where}:{line}: COPY {' '.join(sources)}: matches no file in environment/")
    return plan


class LocalSandbox:
    name = "local"
    user = "root"  # the recorded sandbox_user is not honoured here
    home = "/root"
    terminal = "subprocess (tmux hidden in the sandbox)"

    def __init__(self, task: Task, mounts: list[Mount] | None = None) -> None:
        check_local_compatible(task)
        self.task = task
        self.workdir = task.dockerfile.workdir
        self.env = dict(task.dockerfile.env)
        self.mounts = mounts or []
        self.root: Path | None = None
        self._procs: set[asyncio.subprocess.Process] = set()

    # host folders behind the sandbox's writable paths
    def _binds(self) -> dict[str, Path]:
        assert self.root is not None, "sandbox not started"
        return {
            self.workdir: self.root / "workspace",
            "/tests": self.root / "tests",
            "/logs": self.root / "logs",
            "/root": self.root / "home",
            "/tmp": self.root / "tmp",
        }

    def host_path(self, path: str) -> Path:
        """The host file behind a sandbox path (only under the writable binds)."""
        for target, source in sorted(self._binds().items(), key=lambda kv: -len(kv[0])):
            if path == target or path.startswith(target.rstrip("/") + "/"):
                return source / os.path.relpath(path, target)
        raise SandboxError(f"{path} is outside the sandbox's writable folders ({', '.join(self._binds())})")

    @property
    def workspace(self) -> Path:
        return self._binds()[self.workdir]

    async def start(self) -> None:
        if shutil.which("bwrap") is None:
            raise SandboxError("bwrap not found; install it (Debian package 'bubblewrap') or run scripts/setup.sh")
        remove_orphans()
        self.root = Path(tempfile.mkdtemp(prefix=f"bfc-sandbox-{os.getpid()}-"))  # the pid tells whose it is
        for path in self._binds().values():
            path.mkdir(parents=True)
        for sub in ("agent", "verifier", "artifacts"):
            (self.root / "logs" / sub).mkdir()
        (self.root / "no-tmux").write_text(NO_TMUX)
        (self.root / "no-tmux").chmod(0o755)
        self._seed()
        probe = await self.exec(["true"], timeout=60)
        if probe.returncode != 0:
            raise SandboxError(f"bwrap could not start a sandbox: {probe.stderr.strip() or probe.returncode}")

    def _seed(self) -> None:
        """COPY/ADD files from the task's environment/ folder, as the image build would."""
        for source, target in check_local_compatible(self.task):
            _copy_in(source, self.host_path(target))

    def _bwrap_args(self, cwd: str | None) -> list[str]:
        assert self.root is not None
        args = ["bwrap", "--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"]
        for name in ("bin", "lib", "lib64", "sbin", "lib32", "libx32"):
            host = Path("/") / name
            if host.is_symlink():
                args += ["--symlink", os.readlink(host), f"/{name}"]
            elif host.is_dir():
                args += ["--ro-bind", str(host), f"/{name}"]
        for target, source in self._binds().items():
            args += ["--bind", str(source), target]
        for mount in self.mounts:  # after the binds: an install may live under /root
            args += ["--ro-bind", str(mount.path), str(mount.path)]
        for folder in SYSTEM_PATH.split(":"):
            tmux = Path(folder) / "tmux"
            if tmux.exists() and not Path(folder).is_symlink():
                args += ["--ro-bind", str(self.root / "no-tmux"), str(tmux)]
        args += ["--dev", "/dev", "--proc", "/proc", "--die-with-parent", "--unshare-pid"]
        return args + ["--chdir", cwd or self.workdir, "--"]

    def command(self, argv: list[str], env: dict[str, str], cwd: str | None = None) -> tuple[list[str], dict[str, str]]:
        # the environment goes to bwrap's own process, which passes it on: values set with
        # --setenv would be visible to every user in the process list
        environment = {
            "PATH": SYSTEM_PATH,
            "HOME": "/root",
            "USER": "root",
            "LOGNAME": "root",
            "SHELL": "/bin/sh",
            "TERM": "dumb",
            "LANG": "C.UTF-8",
            **self.env,
            **env,
        }
        return self._bwrap_args(cwd) + argv, environment

    async def exec(
        self, argv: list[str], *, env: dict[str, str] | None = None, timeout: float | None = None
    ) -> ExecResult:
        command, environment = self.command(argv, env or {})
        return await run_process(command, env=environment, timeout=timeout, running=self._procs)

    async def end_commands(self) -> None:
        pass  # killing bwrap ends everything in its PID namespace

    async def upload(self, source: Path, target: str) -> None:
        _copy_in(source, self.host_path(target))

    async def download(self, source: str, target: Path) -> None:
        host = self.host_path(source)
        if host.is_dir():
            # a link made in the sandbox would point at the host's file of that name: never follow it
            shutil.copytree(host, target, dirs_exist_ok=True, symlinks=True)
            for link in [p for p in target.rglob("*") if p.is_symlink()]:
                link.unlink()
        elif host.is_file() and not host.is_symlink():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(host, target)

    async def stop(self) -> None:
        for proc in list(self._procs):
            kill_group(proc)
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None


def _copy_in(source: Path, host: Path) -> None:
    """A file or folder into the sandbox's host side; links are copied as links, not followed."""
    if source.is_dir():
        shutil.copytree(source, host, dirs_exist_ok=True, symlinks=True)
    else:
        host.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, host)


def remove_orphans() -> list[Path]:
    """Remove sandbox folders left by runs whose process is gone (killed with SIGKILL)."""
    removed = []
    for folder in Path(tempfile.gettempdir()).glob("bfc-sandbox-*-*"):
        pid = folder.name.split("-")[2]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed
