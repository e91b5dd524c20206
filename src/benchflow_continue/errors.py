"""The package's own exceptions, one small tree.

    ContinueError                 anything this tool reports instead of a traceback
    ├── InputError                bad input or usage: exit code 2, nothing touched
    │   ├── RunFolderError        the run folder or one of its files is malformed
    │   ├── NotContinuable        a valid run this tool refuses (other agent, not a timeout)
    │   ├── TaskNotFound          no task folder where we looked
    │   ├── TaskError             the task folder is malformed
    │   ├── UnsupportedTask       the task needs a sandbox this backend cannot give
    │   └── OutputExists          the output folder is already there (never overwritten)
    ├── ReplayDiverged            replay left the recorded rails under an abort policy
    ├── UpstreamError             the live model could not be reached or refused
    ├── SandboxError              the sandbox could not start or run a command
    ├── AgentError                the agent could not be installed, started or driven
    └── VerifierError             the verifier could not run or gave no reward

Every error carries a one-line message that says what is wrong and, where there is
one, the fix. Runtime failures (everything but InputError) are recorded in the
output's result.json as well as reported.
"""

from __future__ import annotations

__all__ = [
    "AgentError",
    "ContinueError",
    "InputError",
    "NotContinuable",
    "OutputExists",
    "ReplayDiverged",
    "RunFolderError",
    "SandboxError",
    "TaskError",
    "TaskNotFound",
    "UnsupportedTask",
    "UpstreamError",
    "VerifierError",
]


class ContinueError(Exception):
    """Base of every error this tool raises on purpose."""

    #: benchflow's error_category vocabulary, used when the error lands in result.json
    category = "other"


class InputError(ContinueError):
    """Bad input or usage; the command exits with code 2 and changes nothing."""


class RunFolderError(InputError):
    def __init__(self, path: object, message: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class NotContinuable(InputError):
    pass


class TaskNotFound(InputError):
    pass


class TaskError(InputError):
    pass


class UnsupportedTask(InputError):
    pass


class OutputExists(InputError):
    pass


class ReplayDiverged(ContinueError):
    category = "replay_divergence"


class UpstreamError(ContinueError):
    category = "api_error"


class SandboxError(ContinueError):
    category = "sandbox_setup"


class AgentError(ContinueError):
    category = "acp_error"


class VerifierError(ContinueError):
    category = "verifier_error"
