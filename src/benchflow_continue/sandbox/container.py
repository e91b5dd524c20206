"""The ``docker`` and ``podman`` backends: a fresh container from the task's own image.

One implementation over the engine's command line; the two engines take the same
commands. The task image is built from ``environment/`` (or is the ``docker_image``
task.toml names) and tagged by a hash of that folder, so a second continuation of a
task reuses it. The agent's install is copied into a layer on top, tagged by both,
so it is paid once per task image, not per run. Containers share the host's network:
the agent reaches the replay proxy on the host loopback, which is never opened wider.
Every container carries a label with the owning process, so clean-up can find them.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import re
import secrets
import shlex
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from ..errors import InputError, SandboxError, TaskError, UnsupportedTask
from ..task import Task
from .base import ExecResult, Mount, kill_group, pid_alive, run_process

__all__ = [
    "ContainerSandbox",
    "ENGINES",
    "LABEL",
    "engine_answers",
    "engine_problem",
    "leftover_containers",
    "task_image_tag",
]

ENGINES = ("docker", "podman")
#: set on every container this tool starts; its value is the owning process id
LABEL = "io.benchflow-continue.pid"
#: marks the processes a command started, so they can all be ended, however deep
MARKER = "BENCHFLOW_CONTINUE_EXEC"
BUILD_TIMEOUT = 3600.0


_ANSWERED: set[str] = set()
ENGINE_TIMEOUT = 120.0  # a busy engine takes tens of seconds to answer; that is not a missing one


def engine_problem(engine: str) -> str | None:
    """Why the engine cannot be used here, or None when it answers."""
    if engine in _ANSWERED:
        return None
    if shutil.which(engine) is None:
        return f"{engine} is not installed"
    try:
        done = subprocess.run([engine, "version"], capture_output=True, text=True, timeout=ENGINE_TIMEOUT)
    except subprocess.TimeoutExpired:
        return f"{engine} did not answer within {ENGINE_TIMEOUT:.0f} s (`{engine} version`); is the machine overloaded?"
    except OSError as exc:
        return f"{engine} cannot be run ({exc})"
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        return f"{engine}'s engine does not answer ({lines[-1] if lines else f'exit {done.returncode}'})"
    _ANSWERED.add(engine)
    return None


def engine_answers(engine: str) -> bool:
    return engine_problem(engine) is None


def leftover_containers(engine: str, pid: int | None = None) -> list[str]:
    """Ids of the containers this tool started (those of process ``pid`` only, if given)."""
    label = f"{LABEL}={pid}" if pid is not None else LABEL
    done = subprocess.run(
        [engine, "ps", "-a", "-q", "--filter", f"label={label}"], capture_output=True, text=True, timeout=60
    )
    return done.stdout.split() if done.returncode == 0 else []


def _context_hash(folder: Path) -> str:
    """A hash of every file in the build context: path, mode and content."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if not p.is_dir()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        digest.update(oct(path.lstat().st_mode).encode() + b"\0")
        digest.update(os.readlink(path).encode() if path.is_symlink() else path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name.lower()).strip("-.") or "task"


def task_image_tag(task: Task) -> str:
    return f"localhost/benchflow-continue/{_slug(task.name)}:{_context_hash(task.environment_dir)}"


_MEMORY = re.compile(r"[0-9]+(\.[0-9]+)?[bkmg]?", re.IGNORECASE)
#: a user name useradd accepts, or a numeric uid
USER_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}|[0-9]+")


def _resources(task: Task) -> list[str]:
    """--cpus and --memory from task.toml's [environment], checked before anything builds."""
    where = f"{task.path / 'task.toml'}: [environment]"
    table = task.config.get("environment", {})
    args: list[str] = []
    cpus = table.get("cpus")
    if cpus is not None:
        if isinstance(cpus, bool) or not isinstance(cpus, (int, float)) or not 0 < cpus < math.inf:
            raise TaskError(f"{where} cpus must be a positive number, found {cpus!r}")
        args += ["--cpus", f"{min(float(cpus), float(os.cpu_count() or 1)):g}"]
    memory_mb, memory = table.get("memory_mb"), table.get("memory")
    if memory_mb is not None:
        if isinstance(memory_mb, bool) or not isinstance(memory_mb, int) or memory_mb <= 0:
            raise TaskError(f"{where} memory_mb must be a positive integer, found {memory_mb!r}")
        args += ["--memory", f"{memory_mb}m"]
    elif memory is not None:
        if not isinstance(memory, str) or not _MEMORY.fullmatch(memory.strip()):
            raise TaskError(f'{where} memory must be a size such as "2G" or "512m", found {memory!r}')
        args += ["--memory", memory.strip()]
    image = table.get("docker_image")
    if image is not None and (not isinstance(image, str) or not image.strip() or image.startswith("-")):
        raise TaskError(f'{where} docker_image must be an image name such as "python:3.12", found {image!r}')
    return args


class ContainerSandbox:
    def __init__(
        self,
        task: Task,
        mounts: list[Mount] | None = None,
        *,
        engine: str,
        user: str | None = None,
        log: Callable[[str], None] = lambda _: None,
    ) -> None:
        if engine not in ENGINES:
            raise SandboxError(f"unknown container engine {engine!r}; choose one of {', '.join(ENGINES)}")
        self.name = engine
        self.engine = engine
        self.task = task
        self.mounts = mounts or []
        self.requested_user = user
        self.log = log  # image builds take minutes: say what is going on
        self.user = user or "root"
        self.workdir = task.dockerfile.workdir
        self.home = "/root"
        self.terminal = "unknown until started"
        self.env = dict(task.dockerfile.env)
        self.container: str | None = None
        self.image: str | None = None
        self._procs: set[asyncio.subprocess.Process] = set()
        self.resources = _resources(task)  # a bad task.toml is refused before anything builds
        if user is not None and not USER_NAME.fullmatch(user):
            raise InputError(f"sandbox_user {user!r} is not a user name (lower-case letters, digits, _ and -) or a uid")
        named = task.config.get("environment", {}).get("docker_image")
        if not (isinstance(named, str) and named) and not (task.environment_dir / "Dockerfile").is_file():
            raise UnsupportedTask(
                f"{task.path}: no environment/Dockerfile and no [environment] docker_image in task.toml; "
                "a container needs one of them"
            )

    # --- the engine's command line --------------------------------------------------------------

    async def _engine(self, *args: str, timeout: float = 300) -> ExecResult:
        return await run_process([self.engine, *args], timeout=timeout, running=self._procs)

    async def _must(self, what: str, *args: str, timeout: float = 300) -> str:
        result = await self._engine(*args, timeout=timeout)
        if result.returncode != 0:
            message = (result.stderr.strip() or result.stdout.strip() or f"exit {result.returncode}").splitlines()
            raise SandboxError(f"{what} failed ({self.engine} {args[0]}): {' | '.join(message[-4:])[-600:]}")
        return result.stdout.strip()

    async def _image_exists(self, tag: str) -> bool:
        return (await self._engine("image", "inspect", "--format", "{{.Id}}", tag, timeout=60)).returncode == 0

    # --- images -----------------------------------------------------------------------------------

    async def _task_image(self) -> str:
        named = self.task.config.get("environment", {}).get("docker_image")
        if isinstance(named, str) and named:
            if not await self._image_exists(named):
                self.log(f"pulling {named}")
                await self._must(f"pulling {named} (task.toml docker_image)", "pull", named, timeout=BUILD_TIMEOUT)
            return named
        dockerfile = self.task.environment_dir / "Dockerfile"
        tag = task_image_tag(self.task)
        async with _building(tag):  # a batch's runs of one task build it once
            await self._build(tag, dockerfile)
        return tag

    async def _build(self, tag: str, dockerfile: Path) -> None:
        if not await self._image_exists(tag):
            self.log(f"building {tag} from {dockerfile}")
            # on podman, RUN steps in a chroot are processes of the build itself, so they end
            # with it; a failed build's intermediate containers are removed either way
            flags = ["--isolation", "chroot", "--force-rm"] if self.engine == "podman" else ["--force-rm"]
            before = await self._build_containers()
            try:
                await self._must(
                    f"building the task image from {dockerfile}",
                    "build",
                    "--network=host",
                    *flags,
                    "-t",
                    tag,
                    "-f",
                    str(dockerfile),
                    str(self.task.environment_dir),
                    timeout=BUILD_TIMEOUT,
                )
            except BaseException:
                # an interrupted build leaves its working containers behind: remove the new ones
                left = sorted(set(await asyncio.shield(self._build_containers())) - set(before))
                if left:
                    await asyncio.shield(self._engine(*_remove(self.engine), *left))
                raise

    async def _build_containers(self) -> list[str]:
        """The build's working containers (podman lists them as external ones)."""
        if self.engine != "podman":
            return []
        listing = await self._engine("ps", "-a", "--external", "--format", "{{.ID}} {{.Names}}", timeout=60)
        return [line.split()[0] for line in listing.stdout.splitlines() if "working-container" in line]

    async def _agent_image(self, base: str) -> str:
        """The task image with the agent's install at the paths it has on the host."""
        if not self.mounts:
            return base
        base_id = await self._must("reading the task image", "image", "inspect", "--format", "{{.Id}}", base)
        marks = [str(m.path) + ":" + _install_stamp(m.path) for m in self.mounts]
        digest = hashlib.sha256("\n".join([base_id, *marks]).encode()).hexdigest()[:16]
        tag = f"localhost/benchflow-continue/agent:{digest}"
        async with _building(tag):
            if not await self._image_exists(tag):
                await self._add_install(base, tag)
        return tag

    async def _add_install(self, base: str, tag: str) -> None:
        self.log(f"adding the agent's install to {base} as {tag} (once per task image)")
        staging = f"bfc-layer-{os.getpid()}-{secrets.token_hex(4)}"
        await self._must(
            "creating the agent layer", "create", "--label", f"{LABEL}={os.getpid()}", "--name", staging, base
        )
        try:
            # a tar stream unpacked by the engine at /: the folders keep their host paths
            await asyncio.to_thread(_stream_install, self.engine, staging, [m.path for m in self.mounts])
            await self._must("committing the agent layer", "commit", staging, tag, timeout=BUILD_TIMEOUT)
        finally:
            await self._engine(*_remove(self.engine), staging)

    # --- the protocol -----------------------------------------------------------------------------

    async def start(self) -> None:
        if shutil.which(self.engine) is None:
            raise SandboxError(
                f"{self.engine} not found; run scripts/setup-container-engine.sh or pass --sandbox local"
            )
        await asyncio.to_thread(remove_orphans, self.engine)
        base = await self._task_image()
        self.image = await self._agent_image(base)
        config = await self._must(
            "reading the image",
            "image",
            "inspect",
            "--format",
            "{{.Config.WorkingDir}}\n{{.Config.User}}\n{{range .Config.Env}}{{println .}}{{end}}",
            self.image,
        )
        workdir, image_user, *env = config.split("\n")
        self.workdir = workdir.strip() or self.workdir
        self.env = dict(line.split("=", 1) for line in env if "=" in line)
        self.user = self.requested_user or image_user.strip() or "root"
        name = f"bfc-{os.getpid()}-{secrets.token_hex(4)}"
        self.container = name  # set before the run: stop() must remove it even if start fails
        await self._must(
            "starting the container",
            "run",
            "-d",
            "--name",
            name,
            "--label",
            f"{LABEL}={os.getpid()}",
            "--network=host",
            *self.resources,
            "--user",
            "root",
            "--workdir",
            self.workdir,
            "--entrypoint",
            "sleep",
            self.image,
            "infinity",
        )
        await self._prepare_user()

    async def _prepare_user(self) -> None:
        """The sandbox user (created if the image lacks it), its home, and the folders it works in."""
        folders = " ".join(
            shlex.quote(p) for p in (self.workdir, "/logs/agent", "/logs/verifier", "/logs/artifacts", "/tests")
        )
        script = f"mkdir -p {folders}"
        if self.user not in ("root", "0"):
            user = shlex.quote(self.user)
            script += (
                f" && (id -u {user} >/dev/null 2>&1 || useradd -m -s /bin/bash {user} 2>/dev/null"
                f" || adduser -D {user})"
                f" && chown -R {user} {shlex.quote(self.workdir)} /logs/agent"
            )
            # the install lives at its host path; the user must be able to reach it
            for mount in self.mounts:
                for parent in reversed(mount.path.parents):
                    if str(parent) != "/":
                        script += f" && chmod o+x {shlex.quote(str(parent))}"
        result = await self.exec(["sh", "-c", script], timeout=120)
        if result.returncode != 0:
            raise SandboxError(f"preparing user {self.user} in the container: {result.stderr.strip()[-300:]}")
        home = await self.exec(["sh", "-c", f"getent passwd {shlex.quote(self.user)} | cut -d: -f6"], timeout=60)
        self.home = home.stdout.strip() or ("/root" if self.user in ("root", "0") else f"/home/{self.user}")
        tmux = await self.exec(["sh", "-c", "command -v tmux"], timeout=60)
        self.terminal = "tmux (the image has it)" if tmux.returncode == 0 else "subprocess (the image has no tmux)"

    def _exec_args(self, env: dict[str, str], cwd: str | None, user: str, interactive: bool) -> list[str]:
        assert self.container is not None, "sandbox not started"
        # "-e NAME" with no value: the engine reads the value from its own environment,
        # so nothing secret is on a command line
        names = [arg for key in env for arg in ("-e", key)]
        return [
            self.engine,
            "exec",
            *(["-i"] if interactive else []),
            "--user",
            user,
            "--workdir",
            cwd or self.workdir,
            *names,
            self.container,
        ]

    def command(self, argv: list[str], env: dict[str, str], cwd: str | None = None) -> tuple[list[str], dict[str, str]]:
        inner = {"HOME": self.home, **env, MARKER: "agent"}
        return self._exec_args(inner, cwd, self.user, True) + argv, {**os.environ, **inner}

    async def exec(
        self, argv: list[str], *, env: dict[str, str] | None = None, timeout: float | None = None
    ) -> ExecResult:
        token = secrets.token_hex(6)
        inner = {**(env or {}), MARKER: token}
        return await run_process(
            self._exec_args(inner, None, "root", False) + argv,
            env={**os.environ, **inner},
            timeout=timeout,
            running=self._procs,
            # the client going does not end what it started inside
            on_timeout=lambda: self._kill_marked(token),
        )

    async def _kill_marked(self, token: str) -> None:
        """End every process in the container whose environment carries ``token``."""
        if self.container is None:
            return
        script = (
            f'for p in /proc/[0-9]*; do [ "${{p#/proc/}}" = "$$" ] && continue; '
            f'tr "\\0" "\\n" < "$p/environ" 2>/dev/null | grep -qx "{MARKER}={token}" && kill -9 "${{p#/proc/}}"; '
            "done; true"
        )
        await self._engine("exec", "--user", "root", self.container, "sh", "-c", script, timeout=60)

    async def end_commands(self) -> None:
        await self._kill_marked("agent")

    async def upload(self, source: Path, target: str) -> None:
        assert self.container is not None, "sandbox not started"
        parent = target if source.is_dir() else target.rsplit("/", 1)[0] or "/"
        await self.exec(["mkdir", "-p", parent], timeout=60)
        await self._must(
            f"copying {source} into the container",
            "cp",
            f"{source}/." if source.is_dir() else str(source),
            f"{self.container}:{target}",
        )
        if self.user not in ("root", "0") and target.startswith(self.home.rstrip("/") + "/"):
            # what mkdir made as root under the home folder is the user's too (e.g. ~/.openhands)
            top = self.home.rstrip("/") + "/" + target[len(self.home.rstrip("/")) + 1 :].split("/")[0]
            await self.exec(["chown", "-R", f"{self.user}:", top], timeout=60)

    async def download(self, source: str, target: Path) -> None:
        assert self.container is not None, "sandbox not started"
        kind = await self.exec(
            ["sh", "-c", 'if [ -d "$1" ]; then echo dir; elif [ -f "$1" ]; then echo file; fi', "kind", source],
            timeout=60,
        )
        what = kind.stdout.strip()
        if what == "dir":
            target.mkdir(parents=True, exist_ok=True)
            await self._must(
                f"copying {source} out of the container", "cp", f"{self.container}:{source}/.", str(target)
            )
            # a link made in the sandbox would point at the host's file of that name: never keep it
            for link in [p for p in target.rglob("*") if p.is_symlink()]:
                link.unlink()
        elif what == "file":
            target.parent.mkdir(parents=True, exist_ok=True)
            await self._must(f"copying {source} out of the container", "cp", f"{self.container}:{source}", str(target))

    async def stop(self) -> None:
        for proc in list(self._procs):
            kill_group(proc)
        if self.container is not None:
            name, self.container = self.container, None
            # shielded: a second Ctrl-C must not leave the container running
            await asyncio.shield(self._engine(*_remove(self.engine), name, timeout=120))


def remove_orphans(engine: str) -> list[str]:
    """Remove containers left by runs of this tool whose process is gone (killed with SIGKILL)."""
    done = subprocess.run(
        [engine, "ps", "-a", "--filter", f"label={LABEL}", "--format", f'{{{{.ID}}}} {{{{index .Labels "{LABEL}"}}}}'],
        capture_output=True,
        text=True,
        timeout=60,
    )
    orphans = []
    for line in done.stdout.splitlines():
        cid, _, pid = line.partition(" ")
        if pid.strip().isdigit() and not pid_alive(int(pid)):
            orphans.append(cid)
    if orphans:
        subprocess.run([engine, *_remove(engine), *orphans], capture_output=True, timeout=120)
    return orphans


_LOCKS: dict[str, asyncio.Lock] = {}


def _building(tag: str) -> asyncio.Lock:
    """One build of an image at a time in this process."""
    return _LOCKS.setdefault(tag, asyncio.Lock())


def _remove(engine: str) -> list[str]:
    """Remove a container at once: podman would otherwise wait 10 s for it to stop."""
    return ["rm", "-f", "-t", "0"] if engine == "podman" else ["rm", "-f"]


def _install_stamp(path: Path) -> str:
    """What identifies an install folder's content: its marker file, else its mtime."""
    marker = path / ".benchflow-continue.json"
    source = marker if marker.is_file() else path
    return hashlib.sha256(
        source.read_bytes() if source.is_file() else str(source.stat().st_mtime_ns).encode()
    ).hexdigest()[:16]


def _stream_install(engine: str, container: str, paths: list[Path]) -> None:
    relative = [str(p).lstrip("/") for p in paths]
    tar = subprocess.Popen(["tar", "-C", "/", "-cf", "-", *relative], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert tar.stdout is not None
    copy = subprocess.run([engine, "cp", "-", f"{container}:/"], stdin=tar.stdout, capture_output=True, text=True)
    tar.stdout.close()
    tar_err = tar.stderr.read().decode(errors="replace") if tar.stderr else ""
    if tar.wait() != 0 or copy.returncode != 0:
        message = (copy.stderr or tar_err or "no message").strip().splitlines()[-3:]
        raise SandboxError(f"copying the agent's install into the image failed: {' | '.join(message)}")
