"""Read and validate a benchflow rollout folder.

A rollout folder holds ``config.json`` and ``trajectory/llm_trajectory.jsonl``
(required), and usually ``result.json`` and ``prompts.json``. Every problem is a
:class:`RunFolderError` naming the file, the line and what was expected.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO

from .errors import NotContinuable, RunFolderError

__all__ = [
    "TIMEOUT_CATEGORIES",
    "Exchange",
    "RunFolder",
    "load_run_folder",
    "Span",
    "parse_trajectory",
    "read_trajectory",
]

TRAJECTORY = Path("trajectory") / "llm_trajectory.jsonl"
TIMEOUT_CATEGORIES = frozenset({"timeout", "idle_timeout"})
#: a recording up to this size is kept parsed in memory; a larger one is read as it is served
RESIDENT_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class Span:
    """Where an exchange's bytes are: in the trajectory file (read on demand) or in memory."""

    source: Path | bytes
    offset: int
    length: int
    lines: tuple[tuple[int, int], ...] = ()  # (offset, length) of each line, when split over two

    def read(self) -> bytes:
        if isinstance(self.source, bytes):
            return self.source[self.offset : self.offset + self.length]
        with open(self.source, "rb") as f:
            f.seek(self.offset)
            return f.read(self.length)


@lru_cache(maxsize=8)  # a replay reads each exchange a few times in a row; never the whole file
def _load(span: Span) -> tuple[bytes, dict[str, Any]]:
    data = span.read()
    if not span.lines:
        raw = data.rstrip(b"\r")
        return raw, json.loads(raw)
    parts = [data[o - span.offset : o - span.offset + n].rstrip(b"\r") for o, n in span.lines]
    merged: dict[str, Any] = {}
    for part in parts:
        merged.update(json.loads(part))
    return b"\n".join(parts), merged


@dataclass(frozen=True, eq=False)
class Exchange:
    """One recorded LLM call: the request the agent sent and the answer it got.

    The summary is always in memory. The request and response are too for a recording
    up to :data:`RESIDENT_BYTES`; a larger one is read from the file when they are asked
    for, so a recording of any size loads in memory bounded by its largest line."""

    index: int
    line: int  # 1-based line of the file where the exchange starts
    span: Span
    status: int = 200
    ok: bool = True  # a usable answer: status 200 and at least one choice
    usage: dict[str, Any] = field(default_factory=dict)
    response_model: str | None = None
    n_tool_calls: int = 0
    duration_ms: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    resident: tuple[bytes, dict[str, Any]] | None = field(default=None, repr=False)

    @classmethod
    def of(cls, index: int, line: int, obj: dict[str, Any], raw: bytes | None = None) -> Exchange:
        """An exchange from its parsed object (and its bytes, else they are re-serialised)."""
        data = raw if raw is not None else json.dumps(obj).encode()
        return _summary(index, line, Span(data, 0, len(data)), obj, (data, obj))

    def _loaded(self) -> tuple[bytes, dict[str, Any]]:
        return self.resident if self.resident is not None else _load(self.span)

    @property
    def raw(self) -> bytes:
        """The exchange's own line(s), byte for byte, for stitching."""
        return self._loaded()[0]

    @property
    def request(self) -> dict[str, Any]:
        return self._loaded()[1]["request"]

    @property
    def response(self) -> dict[str, Any]:
        return self._loaded()[1]["response"]

    @property
    def request_body(self) -> dict[str, Any]:
        return self.request["body"]

    @property
    def response_body(self) -> dict[str, Any]:
        body = self.response.get("body")
        return body if isinstance(body, dict) else {}


def _summary(
    index: int, line: int, span: Span, obj: dict[str, Any], resident: tuple[bytes, dict[str, Any]] | None = None
) -> Exchange:
    response = obj["response"]
    body = response.get("body") if isinstance(response.get("body"), dict) else {}
    choices = body.get("choices")
    status = int(response.get("status_code", 200))
    ok = status == 200 and isinstance(choices, list) and bool(choices) and all(isinstance(c, dict) for c in choices)
    messages = [c.get("message") for c in choices or [] if isinstance(c, dict)] if isinstance(choices, list) else []
    calls = sum(len(m["tool_calls"]) for m in messages if isinstance(m, dict) and isinstance(m.get("tool_calls"), list))
    usage = body.get("usage")
    model = body.get("model")
    duration = obj.get("duration_ms")
    return Exchange(
        index=index,
        line=line,
        span=span,
        status=status,
        ok=ok,
        usage=usage if isinstance(usage, dict) else {},
        response_model=model if isinstance(model, str) else None,
        n_tool_calls=calls,
        duration_ms=float(duration) if isinstance(duration, (int, float)) and not isinstance(duration, bool) else None,
        metadata=obj["metadata"] if isinstance(obj.get("metadata"), dict) else {},
        resident=resident,
    )


@dataclass
class RunFolder:
    path: Path
    config: dict[str, Any]
    result: dict[str, Any] | None
    prompts: list[str] | None
    exchanges: list[Exchange]
    trajectory_sha256: str
    notes: list[str] = field(default_factory=list)

    @property
    def agent(self) -> str:
        return str(self.config.get("agent", ""))

    @property
    def model(self) -> str | None:
        model = self.config.get("model") or (self.result or {}).get("model")
        return str(model) if model else None

    @property
    def task_name(self) -> str:
        name = (self.result or {}).get("task_name")
        if name:
            return str(name)
        task_path = self.config.get("task_path")
        if task_path:
            return Path(str(task_path)).name
        # benchflow names rollouts <task>__<id>
        return self.path.name.split("__")[0]

    @property
    def error_category(self) -> str | None:
        if self.result is None:
            return None
        category = self.result.get("error_category")
        if category:
            return str(category)
        if self.result.get("agent_timeout_info"):
            return "timeout"
        if self.result.get("idle_timeout_info"):
            return "idle_timeout"
        return None

    @property
    def is_timeout(self) -> bool:
        return self.error_category in TIMEOUT_CATEGORIES

    @property
    def timeout_sec(self) -> float | None:
        value = self.config.get("timeout_sec")
        return float(value) if isinstance(value, (int, float)) and value > 0 else None

    @property
    def agent_model_alias(self) -> str:
        """The model name the agent was configured with (``LLM_MODEL``).

        OpenHands changes behaviour with the model name (API flavour, prompt
        features), so the replayed agent must see the same one.
        """
        agent_env = self.config.get("agent_env")
        if isinstance(agent_env, dict) and agent_env.get("LLM_MODEL"):
            return str(agent_env["LLM_MODEL"])
        for exchange in self.exchanges:
            model = exchange.request_body.get("model")
            if isinstance(model, str) and model:
                return model if "/" in model else f"openai/{model}"
        return "openai/benchflow-continue"


def _read_json_object(path: Path, required: bool) -> dict[str, Any] | None:
    if not path.is_file():
        if required:
            raise RunFolderError(path, "missing; a benchflow rollout folder has config.json")
        return None
    if path.is_dir():
        raise RunFolderError(path, "is a folder; expected a JSON file")
    try:
        data = json.loads(path.read_bytes())
    except UnicodeDecodeError:
        raise RunFolderError(path, "not UTF-8 text; expected a JSON object") from None
    except json.JSONDecodeError as exc:
        raise RunFolderError(path, f"not valid JSON ({exc.msg} at column {exc.colno})", exc.lineno) from None
    except (ValueError, RecursionError) as exc:  # a number too long to convert, nesting too deep
        raise RunFolderError(path, f"not usable JSON ({_reason(exc)})") from None
    if not isinstance(data, dict):
        raise RunFolderError(path, f"expected a JSON object, found {type(data).__name__}")
    return data


def _read_prompts(path: Path) -> list[str] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_bytes())
    except (ValueError, RecursionError) as exc:
        raise RunFolderError(path, f"not valid JSON ({_reason(exc)}); expected a list of prompt strings") from None
    if isinstance(data, dict) and "prompts" in data:
        data = data["prompts"]
    if not isinstance(data, list) or not all(isinstance(p, str) for p in data):
        raise RunFolderError(path, 'expected a list of strings or {"prompts": [...]}')
    return data


def _reason(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc).split(";")[0][:120]


#: config.json fields this tool reads, and the JSON types they must have
CONFIG_TYPES: dict[str, tuple[type, ...]] = {
    "agent": (str,),
    "task_path": (str,),
    "model": (str,),
    "environment": (str,),
    "timeout_sec": (int, float),
    "agent_idle_timeout_sec": (int, float),
    "agent_env": (dict,),
    "source": (dict,),
}
RESULT_TYPES: dict[str, tuple[type, ...]] = {
    "task_name": (str,),
    "model": (str,),
    "rewards": (dict,),
    "error_category": (str,),
    "timing": (dict,),
    "agent_result": (dict,),
    "continuation": (dict,),
}
_JSON_NAMES = {str: "a string", int: "a number", float: "a number", dict: "an object", list: "a list"}


def _check_types(path: Path, data: dict[str, Any], types: dict[str, tuple[type, ...]]) -> None:
    for key, allowed in types.items():
        value = data.get(key)
        if value is None:
            continue
        if not isinstance(value, allowed) or isinstance(value, bool):
            raise RunFolderError(
                path, f"'{key}' must be {_JSON_NAMES[allowed[0]]} or null, found {json.dumps(value)[:60]}"
            )
        if isinstance(value, float) and value != value:
            raise RunFolderError(path, f"'{key}' is NaN")
    # nested fields are read only where the table above made them objects (timing in result.json,
    # source in config.json); in the other file they are not read at all
    timing = data.get("timing") if "timing" in types and isinstance(data.get("timing"), dict) else {}
    for key, value in timing.items():
        if (
            value is not None
            and not isinstance(value, dict)
            and (not isinstance(value, (int, float)) or isinstance(value, bool))
        ):
            raise RunFolderError(path, f"timing.{key} must be a number of seconds, found {json.dumps(value)[:60]}")
    source = data.get("source") if "source" in types and isinstance(data.get("source"), dict) else {}
    chain = source.get("continuation_chain")
    if chain is not None and not (isinstance(chain, list) and all(isinstance(x, dict) for x in chain)):
        raise RunFolderError(path, "source.continuation_chain must be a list of objects")


def _check_exchange(path: Path, line: int, obj: dict[str, Any]) -> None:
    request, response = obj.get("request"), obj.get("response")
    if not isinstance(request, dict):
        raise RunFolderError(path, "exchange has no 'request' object", line)
    if not isinstance(response, dict):
        raise RunFolderError(path, "exchange has no 'response' object", line)
    body = request.get("body")
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        raise RunFolderError(path, "request.body must be an object with a 'messages' list", line)
    status = response.get("status_code", 200)
    if not isinstance(status, int):
        raise RunFolderError(path, f"response.status_code must be an integer, found {status!r}", line)


def _lines(f: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """Each line of ``f`` (with its newline) and its offset; memory is one line at a time."""
    offset = 0
    for raw in f:
        yield offset, raw
        offset += len(raw)


def parse_trajectory(path: Path, data: bytes) -> tuple[list[Exchange], list[str]]:
    """Parse ``llm_trajectory.jsonl`` bytes held in memory; see :func:`read_trajectory`."""
    import io

    return _parse(path, _lines(io.BytesIO(data)), data, keep=True)


def read_trajectory(path: Path, resident_bytes: int | None = None) -> tuple[list[Exchange], list[str], str]:
    """Parse the file line by line: exchanges, notes on what was tolerated, the file's sha256.

    The exchanges are kept parsed when the file is at most ``resident_bytes`` (default
    :data:`RESIDENT_BYTES`): serving them is then a lookup, not a read and a parse."""
    limit = RESIDENT_BYTES if resident_bytes is None else resident_bytes
    digest = hashlib.sha256()

    def hashed(lines: Iterator[tuple[int, bytes]]) -> Iterator[tuple[int, bytes]]:
        for offset, raw in lines:
            digest.update(raw)
            yield offset, raw

    with open(path, "rb") as f:
        exchanges, notes = _parse(path, hashed(_lines(f)), path, keep=os.fstat(f.fileno()).st_size <= limit)
    return exchanges, notes, digest.hexdigest()


def _parse(
    path: Path, lines: Iterator[tuple[int, bytes]], source: Path | bytes, *, keep: bool
) -> tuple[list[Exchange], list[str]]:
    """Tolerated: blank lines; an exchange written as a request line followed by a
    response line. Refused: anything else that is not an exchange."""
    exchanges: list[Exchange] = []
    notes: list[str] = []
    blank = 0
    pending: tuple[int, int, bytes, dict[str, Any]] | None = None  # a request-only line: line, offset, bytes, obj
    for lineno, (offset, raw) in enumerate(lines, start=1):
        complete = raw.endswith(b"\n")
        content = raw[:-1] if complete else raw
        if not content.strip():
            if complete:
                blank += 1
            continue
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RunFolderError(
                path, f"not UTF-8 (byte {exc.start}); expected one JSON exchange per line", lineno
            ) from None
        try:
            obj = json.loads(text)
        except (RecursionError, ValueError) as exc:
            if not isinstance(exc, json.JSONDecodeError):
                raise RunFolderError(path, f"not usable JSON ({_reason(exc)})", lineno) from None
            if not complete:
                raise RunFolderError(
                    path,
                    f"last line is truncated ({exc.msg}): the run was killed while writing it; "
                    f"delete that line to continue from the {len(exchanges)} complete exchanges",
                    lineno,
                ) from None
            raise RunFolderError(path, f"not valid JSON ({exc.msg} at column {exc.colno})", lineno) from None
        if not isinstance(obj, dict):
            raise RunFolderError(path, f"expected a JSON object (an exchange), found {type(obj).__name__}", lineno)
        length = len(content)
        if "request" in obj and "response" not in obj:
            if pending is not None:
                raise RunFolderError(path, "request line follows another request line with no response", lineno)
            pending = (lineno, offset, content, obj)
            continue
        if "response" in obj and "request" not in obj:
            if pending is None:
                raise RunFolderError(path, "response with no request before it", lineno)
            start, first_offset, first_content, first = pending
            pending = None
            merged = {**first, **obj}
            _check_exchange(path, start, merged)
            lines_at = ((first_offset, len(first_content)), (offset, length))
            span = Span(source, first_offset, offset + length - first_offset, lines_at)
            joined = first_content.rstrip(b"\r") + b"\n" + content.rstrip(b"\r")
            exchanges.append(_summary(len(exchanges), start, span, merged, (joined, merged) if keep else None))
            notes.append(f"lines {start}-{lineno}: request and response on separate lines, joined")
            continue
        if pending is not None:
            raise RunFolderError(path, "request with no response after it", pending[0])
        _check_exchange(path, lineno, obj)
        resident = (content.rstrip(b"\r"), obj) if keep else None
        exchanges.append(_summary(len(exchanges), lineno, Span(source, offset, length), obj, resident))
    if pending is not None:
        raise RunFolderError(path, "request with no response after it (last exchange incomplete)", pending[0])
    if blank:
        notes.append(f"{blank} blank line(s) skipped")
    return exchanges, notes


def load_run_folder(path: Path, *, allow_empty: bool = False) -> RunFolder:
    """Load a rollout folder; raise :class:`RunFolderError` for anything malformed."""
    path = Path(os.path.abspath(path))  # "." and ".." resolved: the folder's own name is used
    if not path.exists():
        raise RunFolderError(path, "no such folder")
    if not path.is_dir():
        raise RunFolderError(path, "not a folder; pass the rollout folder that holds config.json")
    config = _read_json_object(path / "config.json", required=True)
    assert config is not None
    if not config.get("agent"):
        raise RunFolderError(path / "config.json", "no 'agent' field; expected the agent name, e.g. \"openhands\"")
    _check_types(path / "config.json", config, CONFIG_TYPES)
    result = _read_json_object(path / "result.json", required=False)
    if result is not None:
        _check_types(path / "result.json", result, RESULT_TYPES)
    prompts = _read_prompts(path / "prompts.json")
    trajectory = path / TRAJECTORY
    if trajectory.is_dir():
        raise RunFolderError(trajectory, "is a folder; expected the JSONL file of recorded exchanges")
    if not trajectory.is_file():
        raise RunFolderError(trajectory, "missing; the recorded LLM exchanges are what replay serves")
    exchanges, notes, sha256 = read_trajectory(trajectory)
    if not exchanges and not allow_empty:
        raise RunFolderError(trajectory, "holds no exchanges; there is nothing to replay")
    return RunFolder(
        path=path,
        config=config,
        result=result,
        prompts=prompts,
        exchanges=exchanges,
        trajectory_sha256=sha256,
        notes=notes,
    )


def check_continuable(run: RunFolder, *, require_timeout: bool) -> list[str]:
    """Refuse runs this tool cannot continue; return warnings for doubtful ones."""
    if run.agent != "openhands":
        raise NotContinuable(
            f"{run.path / 'config.json'}: agent is {run.agent!r}; only openhands runs can be continued"
        )
    warnings: list[str] = []
    if not run.is_timeout:
        status = run.error_category or (
            "unknown (no result.json)" if run.result is None else "completed, with no error"
        )
        message = f"{run.path}: recorded status is {status}, not a timeout"
        if require_timeout:
            raise NotContinuable(message + " (refused under --require-timeout)")
        warnings.append(message + "; continuing anyway")
    return warnings
