"""Find and read a task's source folder (Harbor/benchflow split layout).

<task>/task.toml               [agent] timeout_sec, [verifier] timeout_sec, [environment] ...
<task>/instruction.md
<task>/environment/Dockerfile  the sandbox image
<task>/tests/test.sh           the verifier; writes /logs/verifier/reward.txt or reward.json
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import TaskError, TaskNotFound

__all__ = ["Dockerfile", "Task", "load_task", "parse_dockerfile", "resolve_task_dir"]

DEFAULT_WORKDIR = "/app"
DEFAULT_VERIFIER_TIMEOUT = 600.0


@dataclass
class Dockerfile:
    base_image: str | None = None
    workdir: str = DEFAULT_WORKDIR
    env: dict[str, str] = field(default_factory=dict)
    copies: list[tuple[int, list[str], str]] = field(default_factory=list)  # (line, sources, destination)
    user: str | None = None
    #: instructions other than the ones above that change the image, as (line, text)
    other: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class Task:
    name: str
    path: Path
    config: dict[str, Any]
    dockerfile: Dockerfile
    instruction: str | None

    @property
    def environment_dir(self) -> Path:
        return self.path / "environment"

    @property
    def tests_dir(self) -> Path:
        return self.path / "tests"

    @property
    def agent_timeout(self) -> float | None:
        value = self.config.get("agent", {}).get("timeout_sec")
        return float(value) if isinstance(value, (int, float)) else None

    @property
    def verifier_timeout(self) -> float:
        value = self.config.get("verifier", {}).get("timeout_sec")
        return float(value) if isinstance(value, (int, float)) else DEFAULT_VERIFIER_TIMEOUT


def resolve_task_dir(task_name: str, tasks_dir: Path | None, recorded_task_path: str | None) -> Path:
    """``tasks_dir/<task name>`` if given, else the recorded ``task_path`` if it exists."""
    looked: list[str] = []
    if "/" in task_name or task_name in ("", ".", ".."):
        raise TaskNotFound(f"task name {task_name!r} is not a folder name; the run's result.json task_name is wrong")
    if tasks_dir is not None:
        if not tasks_dir.exists():
            raise TaskNotFound(f"--tasks-dir {tasks_dir}: no such folder")
        if not tasks_dir.is_dir():
            raise TaskNotFound(f"--tasks-dir {tasks_dir}: is a file; pass the folder that holds the task folders")
        candidate = tasks_dir / task_name
        if (candidate / "task.toml").is_file() or (candidate / "tests").is_dir():
            return candidate
        looked.append(str(candidate))
    elif recorded_task_path:
        candidate = Path(recorded_task_path)
        if candidate.is_dir():
            return candidate
        looked.append(f"{candidate} (the recorded task_path)")
    hint = "pass --tasks-dir DIR where DIR/<task name> is the task folder"
    where = ", ".join(looked) if looked else "nowhere (no --tasks-dir and no task_path recorded)"
    raise TaskNotFound(f"task {task_name!r} not found; looked in {where}; {hint}")


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Dockerfile lines with comments dropped and backslash continuations joined."""
    out: list[tuple[int, str]] = []
    buf, start = "", 0
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if not buf:
            start = number
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        out.append((start, buf))
        buf = ""
    if buf:
        out.append((start, buf))
    return out


_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: what ENV can refer to before the image sets it
BASE_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}


def _expand(value: str, env: dict[str, str]) -> str:
    return _VAR.sub(lambda m: env.get(m.group(1) or m.group(2), BASE_ENV.get(m.group(1) or m.group(2), "")), value)


def _split(where: str, args: str) -> list[str]:
    try:
        return shlex.split(args)
    except ValueError as exc:  # an unclosed quote
        raise TaskError(f"{where}: {exc}") from None


def _parse_env(where: str, args: str, env: dict[str, str]) -> dict[str, str]:
    parts = _split(where, args)
    pairs = [(parts[0], " ".join(parts[1:]))] if parts and "=" not in parts[0] else [p.split("=", 1) for p in parts]
    out = {}
    for pair in pairs:
        if len(pair) != 2 or not _KEY.fullmatch(pair[0]):
            raise TaskError(f"{where}: ENV {args!r}: expected KEY=value")
        out[pair[0]] = _expand(pair[1], {**env, **out})
    return out


def parse_dockerfile(path: Path) -> Dockerfile:
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise TaskError(f"{path}: not UTF-8 text") from None
    result = Dockerfile()
    workdir = None  # Docker starts at /, and a relative WORKDIR is relative to the one before
    for line, logical in _logical_lines(text):
        where = f"{path}:{line}"
        keyword, _, args = logical.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            result.base_image = args.split()[0] if args else None
        elif keyword == "WORKDIR":
            target = _expand(args.strip("\"'"), result.env)
            workdir = posixpath.normpath(posixpath.join(workdir or "/", target))
        elif keyword == "ENV":
            result.env.update(_parse_env(where, args, result.env))
        elif keyword in ("COPY", "ADD"):
            if args.startswith("["):  # the exec form: COPY ["src", "dest"]
                try:
                    parts = json.loads(args)
                except ValueError:
                    raise TaskError(f"{where}: {keyword} {args}: not a JSON list of strings") from None
            else:
                parts = _split(where, args)
            flags = [p for p in parts if isinstance(p, str) and p.startswith("--")]
            parts = [p for p in parts if p not in flags]
            if (
                any(f.startswith("--from") for f in flags)
                or len(parts) < 2
                or not all(isinstance(p, str) for p in parts)
            ):
                result.other.append((line, logical))
                continue
            result.copies.append((line, parts[:-1], parts[-1]))
        elif keyword == "USER":
            result.user = args
        elif keyword in ("LABEL", "EXPOSE", "CMD", "ENTRYPOINT", "ARG", "HEALTHCHECK", "STOPSIGNAL", "SHELL"):
            continue  # no effect on the files or environment the agent sees
        else:
            result.other.append((line, logical))
    result.workdir = workdir or DEFAULT_WORKDIR
    return result


def load_task(path: Path) -> Task:
    config: dict[str, Any] = {}
    toml_path = path / "task.toml"
    if toml_path.is_file():
        try:
            config = tomllib.loads(toml_path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise TaskError(f"{toml_path}: not valid TOML ({exc})") from None
    test_sh = path / "tests" / "test.sh"
    if not test_sh.is_file():
        raise TaskError(f"{path}: no tests/test.sh; the verifier is what scores the continuation")
    dockerfile_path = path / "environment" / "Dockerfile"
    dockerfile = parse_dockerfile(dockerfile_path) if dockerfile_path.is_file() else Dockerfile()
    for section in ("agent", "verifier", "environment"):
        table = config.get(section, {})
        if not isinstance(table, dict):
            raise TaskError(f"{toml_path}: [{section}] must be a table")
        timeout = table.get("timeout_sec")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < float("inf")
        ):
            raise TaskError(
                f"{toml_path}: [{section}] timeout_sec must be a positive number of seconds, found {timeout!r}"
            )
    instruction_path = path / "instruction.md"
    try:
        instruction = instruction_path.read_text() if instruction_path.is_file() else None
    except UnicodeDecodeError:
        raise TaskError(f"{instruction_path}: not UTF-8 text") from None
    return Task(name=path.name, path=path, config=config, dockerfile=dockerfile, instruction=instruction)
