"""Sandbox backends, one module each, chosen by name."""

from __future__ import annotations

from .base import ExecResult, Mount, Sandbox

__all__ = ["BACKENDS", "ExecResult", "Mount", "Sandbox", "resolve_backend"]

#: names a user can pass to --sandbox, and what each needs
BACKENDS = {"local": "bubblewrap (bwrap) on this machine"}

#: benchflow's recorded environment names that a local backend can stand in for: none,
#: a recorded container run is continued on a container backend (or --sandbox local)
_RECORDED = {"local": "local"}


def resolve_backend(requested: str | None, recorded: str | None) -> str:
    """The backend name to use, from --sandbox or else the recorded environment."""
    from ..errors import InputError

    if requested:
        if requested not in BACKENDS:
            raise InputError(f"--sandbox {requested}: unknown backend; choose one of: {', '.join(BACKENDS)}")
        return requested
    name = _RECORDED.get(recorded or "")
    if name is None:
        raise InputError(
            f"the run was recorded on environment {recorded!r}, which has no backend here yet; "
            "pass --sandbox local to continue it in a bubblewrap sandbox on this machine"
        )
    return name
