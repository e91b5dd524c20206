"""The continued run folder: stitching, accounting, provenance and the atomic write.

    <output>/<source name>__continued/
        config.json                    the source's config, the live model, source.continued_from
        result.json                    rewards, error, timing (replay and live apart), counts
        prompts.json                   the prompts delivered, verbatim
        trajectory/llm_trajectory.jsonl  recorded lines served (byte for byte), then live exchanges
        trajectory/acp_trajectory.jsonl  the agent's ACP session updates
        agent/openhands.txt            the agent's own log
        agent/workspace-cut.txt        the workspace manifest at the cut-point
        replay_report.json             every served request's class against the recording
        verifier/                      reward.txt or reward.json, test stdout/stderr

The folder is assembled under a hidden ``.partial`` name beside its final
place and renamed when complete: a reader never sees half a run.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .errors import InputError, OutputExists
from .runfolder import Exchange

__all__ = [
    "OutputPaths",
    "SUFFIX",
    "output_name",
    "redactor",
    "stitch",
    "write_json",
]

SUFFIX = "__continued"
REPLAYED_SUFFIX = "__replayed"
REDACTED = "***REDACTED***"
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL)", re.I)


@dataclass(frozen=True)
class OutputPaths:
    """The only place that names the files of a run folder we write."""

    final: Path
    staging: Path
    #: held while the folder is being written: a second continuation of the same source waits for none
    lock: IO[str] | None = field(default=None, compare=False)

    @classmethod
    def create(cls, jobs_dir: Path, name: str) -> OutputPaths:
        final = jobs_dir / name
        if final.exists():
            raise OutputExists(f"{final} already exists; it is never overwritten: move it or pass another --output")
        try:
            jobs_dir.mkdir(parents=True, exist_ok=True)
            lock = open(jobs_dir / f".{name}.lock", "a+")  # noqa: SIM115 (held until commit or discard)
        except OSError as exc:
            raise InputError(f"--output {jobs_dir}: cannot create it ({exc.strerror})") from None
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise OutputExists(f"{final} is being written by another continuation right now; wait for it") from None
        if final.exists():  # finished while we were getting the lock
            lock.close()
            raise OutputExists(f"{final} already exists; it is never overwritten: move it or pass another --output")
        staging = jobs_dir / f".{name}.partial-{os.getpid()}"
        try:
            for sub in ("trajectory", "agent", "verifier"):
                (staging / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            lock.close()
            raise InputError(f"--output {jobs_dir}: cannot write there ({exc.strerror})") from None
        return cls(final=final, staging=staging, lock=lock)

    def _unlock(self) -> None:
        if self.lock is not None and not self.lock.closed:
            Path(self.lock.name).unlink(missing_ok=True)
            self.lock.close()

    @property
    def config(self) -> Path:
        return self.staging / "config.json"

    @property
    def result(self) -> Path:
        return self.staging / "result.json"

    @property
    def prompts(self) -> Path:
        return self.staging / "prompts.json"

    @property
    def trajectory(self) -> Path:
        return self.staging / "trajectory" / "llm_trajectory.jsonl"

    @property
    def acp_trajectory(self) -> Path:
        return self.staging / "trajectory" / "acp_trajectory.jsonl"

    @property
    def agent_log(self) -> Path:
        return self.staging / "agent" / "openhands.txt"

    @property
    def cut_manifest(self) -> Path:
        return self.staging / "agent" / "workspace-cut.txt"

    @property
    def replay_report(self) -> Path:
        return self.staging / "replay_report.json"

    @property
    def verifier(self) -> Path:
        return self.staging / "verifier"

    def commit(self) -> Path:
        if self.final.exists():  # made by hand meanwhile: keep ours where it is
            self._unlock()
            raise OutputExists(
                f"{self.final} appeared while this run was writing; the result is left in {self.staging}"
            )
        os.rename(self.staging, self.final)
        self._unlock()
        return self.final

    def discard(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)
        self._unlock()


def output_name(source_name: str, replay_only: bool = False) -> str:
    """``<source>__continued`` (``__replayed`` for a replay-only rebuild, which is no
    drop-in continuation); a continued run's name does not stack suffixes."""
    base = source_name.removesuffix(SUFFIX).removesuffix(REPLAYED_SUFFIX)
    return base + (REPLAYED_SUFFIX if replay_only else SUFFIX)


def redactor(extra: Iterable[str] = ()) -> Any:
    """A function that blanks every credential value found in the host environment."""
    secrets = {v for k, v in os.environ.items() if _SECRET_NAME.search(k) and len(v) >= 8}
    secrets.update(s for s in extra if s)
    ordered = sorted(secrets, key=len, reverse=True)

    def redact(text: str) -> str:
        for secret in ordered:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    return redact


def stitch(
    recorded: list[Exchange], served_upto: int | None, live: list[dict[str, Any]], redact: Any
) -> Iterator[bytes]:
    """The recorded lines up to the last one served (byte for byte), then the live exchanges,
    one line at a time: a recording of any size is never held whole."""
    for exchange in recorded:
        if served_upto is not None and exchange.index <= served_upto:
            yield exchange.raw + b"\n"
    for x in live:
        yield redact(json.dumps(x, ensure_ascii=False)).encode() + b"\n"


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
