"""Sandbox backends, one module each, chosen by name."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import InputError
from ..task import Task
from .base import ExecResult, Mount, Sandbox

__all__ = ["BACKENDS", "ExecResult", "Mount", "Sandbox", "check_backend", "make_sandbox", "resolve_backend"]

#: names a user can pass to --sandbox, and what each needs
BACKENDS = {
    "local": "bubblewrap (bwrap) on this machine",
    "docker": "a container from the task's image, with the Docker engine",
    "podman": "a container from the task's image, with Podman",
}
CONTAINER_ENGINES = ("docker", "podman")
SETUP_HINT = "run scripts/setup-container-engine.sh, or pass --sandbox local to use a bubblewrap sandbox"


def resolve_backend(requested: str | None, recorded: str | None) -> str:
    """The backend name to use, from --sandbox or else the recorded environment.

    A recorded ``docker`` run is continued in a container of whichever engine answers."""
    from .container import engine_answers, engine_problem

    if requested:
        if requested not in BACKENDS:
            raise InputError(f"--sandbox {requested}: unknown backend; choose one of: {', '.join(BACKENDS)}")
        problem = engine_problem(requested) if requested in CONTAINER_ENGINES else None
        if problem:
            raise InputError(f"--sandbox {requested}: {problem}; {SETUP_HINT}")
        return requested
    if recorded in (None, "", "local"):
        return "local"
    if recorded in CONTAINER_ENGINES:
        for engine in (recorded, *CONTAINER_ENGINES):
            if engine_answers(engine):
                return engine
        raise InputError(
            f"the run was recorded in a {recorded} container and no container engine answers here; {SETUP_HINT}"
        )
    raise InputError(
        f"the run was recorded on environment {recorded!r}, which has no backend here; "
        f"pass --sandbox with one of: {', '.join(BACKENDS)}"
    )


def check_backend(backend: str, task: Task, user: str | None = None) -> None:
    """Refuse, before anything boots, a task the backend cannot run."""
    make_sandbox(backend, task, user=user)


def make_sandbox(
    backend: str,
    task: Task,
    mounts: list[Mount] | None = None,
    *,
    user: str | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> Sandbox:
    if backend == "local":
        from .local import LocalSandbox

        return LocalSandbox(task, mounts)
    from .container import ContainerSandbox

    return ContainerSandbox(task, mounts, engine=backend, user=user, log=log)
