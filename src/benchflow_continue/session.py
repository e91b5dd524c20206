"""One continuation, phase by phase: prepare (validate everything, touch nothing),
then boot, replay, live, verify and write. Failures after ``prepare`` are
recorded in result.json; the sandbox, proxy and agent are always torn down.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from . import __version__
from .accounting import TOKEN_FIELDS, load_litellm, totals
from .agents.base import Agent, AgentOutcome
from .agents.openhands import OpenHands, agent_env
from .errors import ContinueError, InputError, OutputExists, ReplayDiverged, UpstreamError
from .live import LiveModel
from .matching import CLASSES
from .output import OutputPaths, output_name, redactor, stitch, write_json
from .proxy import ReplayProxy
from .replay import POLICIES, Router
from .runfolder import Exchange, RunFolder, check_continuable, load_run_folder
from .sandbox import Sandbox, check_backend, make_sandbox, resolve_backend
from .sandbox.base import workspace_digest
from .sandbox.container import USER_NAME
from .task import Task, load_task, resolve_task_dir
from .verify import run_verifier

__all__ = ["ContinueOptions", "Plan", "Progress", "prepare", "execute"]

Progress = Callable[[str, dict[str, Any]], None]
DEFAULT_TIMEOUT = 900.0


@dataclass
class ContinueOptions:
    run_dir: Path
    tasks_dir: Path | None = None
    model: str | None = None
    timeout: float | None = None
    output: Path | None = None
    require_timeout: bool = False
    strict_divergence: bool = False
    replay_only: bool = False
    sandbox: str | None = None
    #: what a divergence does: "warn", "abort" or "live" (None: abort under --strict-divergence, else warn)
    on_divergence: str | None = None
    #: the request classes that count as a divergence
    diverge_on: frozenset[str] = frozenset({"structural"})
    #: serve recorded failures as recorded instead of skipping them
    serve_failures: bool = False
    #: replay only the first K recorded exchanges, then go live
    replay_exchanges: int | None = None
    #: guard on the replay phase (None: derived from the original run's recorded time)
    replay_timeout: float | None = None
    #: output folder name (default ``<source>__continued``)
    name: str | None = None
    #: the source is a task with an empty recording: record a first run (the example generator)
    record_new: bool = False


@dataclass
class Plan:
    """Everything a continuation needs, validated before anything boots."""

    options: ContinueOptions
    run: RunFolder
    task: Task
    backend: str
    live_model: str | None
    timeout: float
    replay_timeout: float
    prompts: list[str]
    jobs_dir: Path
    name: str
    on_divergence: str
    warnings: list[str] = field(default_factory=list)

    @property
    def idle_timeout(self) -> float:
        return _idle_timeout(self.run)

    def router(self) -> Router:
        return Router(
            self.run.exchanges,
            cut=self.options.replay_exchanges,
            on_divergence=self.on_divergence,  # type: ignore[arg-type]
            diverge_on=self.options.diverge_on,
            serve_failures=self.options.serve_failures,
        )


def prepare(options: ContinueOptions) -> Plan:
    run = load_run_folder(options.run_dir, allow_empty=options.record_new)
    warnings = [] if options.record_new else check_continuable(run, require_timeout=options.require_timeout)
    warnings += [f"{run.path / 'trajectory/llm_trajectory.jsonl'}: {note}" for note in run.notes]
    task_dir = resolve_task_dir(run.task_name, options.tasks_dir, run.config.get("task_path"))
    task = load_task(task_dir)
    backend = resolve_backend(options.sandbox, run.config.get("environment"))
    sandbox_user = _sandbox_user(run, backend)
    check_backend(backend, task, user=sandbox_user)  # e.g. a Dockerfile local cannot honour: before anything boots
    live_model = None if options.replay_only else (options.model or run.model)
    if not options.replay_only and not live_model:
        raise InputError(f"{run.path / 'config.json'}: no model recorded; pass --model for the live continuation")
    for flag, value in (("--timeout", options.timeout), ("--replay-timeout", options.replay_timeout)):
        if value is not None and not (0 < value < float("inf")):
            raise InputError(f"{flag} {value:g}: must be a positive, finite number of seconds")
    timeout = options.timeout or run.timeout_sec or task.agent_timeout or DEFAULT_TIMEOUT
    # replay re-runs every recorded command, so it needs at most about the original's time
    replay_timeout = options.replay_timeout or max(600.0, 3 * float(_original_agent_sec(run) or timeout))
    prompts = run.prompts or _first_user_message(run) or ([task.instruction] if task.instruction else [])
    if not prompts:
        raise InputError(f"{run.path}: no prompts.json, no recorded user message and no instruction.md to send")
    on_divergence = _divergence_policy(options, len(run.exchanges))
    if run.exchanges and not options.serve_failures and not any(e.ok for e in run.exchanges):
        raise InputError(
            f"{run.path / 'trajectory/llm_trajectory.jsonl'}: every recorded call failed; there is no answer to replay "
            "(--serve-failures serves the failures as recorded)"
        )
    if options.replay_only and options.model:
        warnings.append("--model is not used with --replay-only: nothing goes live")
    jobs_dir = (options.output or run.path.parent / "continued").absolute()
    name = options.name or output_name(run.path.name, replay_only=options.replay_only)
    if jobs_dir.resolve().is_relative_to(run.path.resolve()):
        raise InputError(f"--output {jobs_dir}: inside the source folder, which is never modified")
    if (jobs_dir / name).exists():
        raise InputError(f"{jobs_dir / name} already exists; it is never overwritten: move it or pass another --output")
    return Plan(
        options,
        run,
        task,
        backend,
        live_model,
        float(timeout),
        replay_timeout,
        prompts,
        jobs_dir,
        name,
        on_divergence,
        warnings,
    )


def _sandbox_user(run: RunFolder, backend: str) -> str | None:
    """The recorded sandbox_user, for a backend that honours it (the local one runs as root)."""
    user = run.config.get("sandbox_user")
    if backend == "local" or user in (None, ""):
        return None
    if not isinstance(user, str) or not USER_NAME.fullmatch(user):
        raise InputError(
            f"{run.path / 'config.json'}: sandbox_user {json.dumps(user)} is not a user name "
            "(lower-case letters, digits, _ and -, at most 32) or a numeric uid"
        )
    return user


def _divergence_policy(options: ContinueOptions, n_exchanges: int) -> str:
    """The replay options, checked before anything boots."""
    policy = options.on_divergence or ("abort" if options.strict_divergence else "warn")
    if policy not in POLICIES:
        raise InputError(f"--on-divergence {policy}: choose one of {', '.join(POLICIES)}")
    if options.strict_divergence and policy != "abort":
        raise InputError(f"--strict-divergence means --on-divergence abort; it contradicts --on-divergence {policy}")
    unknown = sorted(set(options.diverge_on) - set(CLASSES[2:]))
    if unknown or not options.diverge_on:
        raise InputError(f"--diverge-on {','.join(unknown)}: classes are {', '.join(CLASSES[2:])}")
    k = options.replay_exchanges
    if k is not None and not 0 <= k <= n_exchanges:
        raise InputError(f"--replay-exchanges {k}: the recording has {n_exchanges} exchanges; pass 0..{n_exchanges}")
    return policy


def _original_agent_sec(run: RunFolder) -> float | None:
    """How long the source's agent ran (its recorded agent time, else its budget)."""
    timing = (run.result or {}).get("timing") or {}
    value = timing.get("agent_execution") if isinstance(timing, dict) else None
    return float(value) if isinstance(value, (int, float)) else run.timeout_sec


def _idle_timeout(run: RunFolder) -> float:
    value = run.config.get("agent_idle_timeout_sec")
    return float(value) if isinstance(value, (int, float)) and value > 0 else 600.0


def _first_user_message(run: RunFolder) -> list[str]:
    for exchange in run.exchanges[:1]:
        for message in exchange.request_body.get("messages", []):
            if isinstance(message, dict) and message.get("role") == "user":
                content = message.get("content")
                if isinstance(content, list):
                    texts = (p.get("text") for p in content if isinstance(p, dict))
                    content = "".join(t for t in texts if isinstance(t, str))
                return [content] if isinstance(content, str) and content else []
    return []


@dataclass
class _Clock:
    started: float = field(default_factory=time.monotonic)
    marks: dict[str, float] = field(default_factory=dict)

    def mark(self, name: str) -> None:
        self.marks[name] = time.monotonic()

    def between(self, start: str, end: str) -> float | None:
        if start in self.marks and end in self.marks:
            return round(self.marks[end] - self.marks[start], 3)
        return None


@dataclass
class _Record:
    """What a continuation learns as it runs; everything result.json is made from."""

    router: Router
    clock: _Clock = field(default_factory=_Clock)
    started_at: datetime = field(default_factory=datetime.now)
    proxy: ReplayProxy | None = None
    sandbox: Sandbox | None = None
    outcome: AgentOutcome | None = None
    agent_version: str | None = None
    digest_cut: str | None = None
    digest_end: str | None = None
    rewards: dict[str, float] | None = None
    error: str | None = None
    error_category: str | None = None
    verifier_error: str | None = None

    def fail(self, error: ContinueError) -> None:
        self.error, self.error_category = str(error), error.category


async def execute(
    plan: Plan, progress: Progress = lambda kind, data: None, agent: Agent | None = None
) -> dict[str, Any]:
    """Run the continuation and write its folder; returns the summary written to result.json."""
    agent = agent or OpenHands()
    run, task = plan.run, plan.task
    paths = OutputPaths.create(plan.jobs_dir, plan.name)
    key = "bfc-" + secrets.token_urlsafe(24)
    rec = _Record(plan.router())
    clock, router = rec.clock, rec.router
    live = LiveModel(plan.live_model) if plan.live_model else None
    sandbox: Sandbox | None = None
    report = progress
    pricing: asyncio.Future[Any] | None = None

    last_activity = [time.monotonic()]  # an LLM request or an ACP update: the agent is not idle

    def progress(kind: str, data: dict[str, Any]) -> None:
        if kind in ("replay", "retry", "cut", "live"):
            last_activity[0] = time.monotonic()
            if "first_request" not in clock.marks:
                clock.mark("first_request")  # the agent is up: what came before is its boot
        report(kind, data)

    def on_agent_update() -> None:
        last_activity[0] = time.monotonic()

    try:
        progress("phase", {"phase": "checking the agent install"})
        setup = await asyncio.to_thread(agent.install, lambda m: progress("log", {"message": m}))
        rec.agent_version = setup.version
        if live is not None:  # LiteLLM takes seconds to import: not on the live leg's clock
            await asyncio.to_thread(live.prepare)
        progress("phase", {"phase": "booting sandbox"})
        clock.mark("boot")
        sandbox = rec.sandbox = make_sandbox(
            plan.backend,
            task,
            setup.mounts,
            user=_sandbox_user(run, plan.backend),
            log=lambda message: progress("log", {"message": message}),
        )
        await sandbox.start()
        clock.mark("booted")

        async def on_cut() -> None:
            clock.mark("cut")
            assert sandbox is not None
            rec.digest_cut, manifest = await workspace_digest(sandbox)
            paths.cut_manifest.write_text(manifest)
            progress("cut", {"served": len(router.served), "digest": rec.digest_cut})

        proxy = rec.proxy = ReplayProxy(
            router, live, key=key, model_alias=run.agent_model_alias, on_cut=on_cut, on_event=progress
        )
        url = await proxy.start()

        async def should_stop() -> str:
            while True:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(proxy.stop_requested.wait(), 0.25)
                if proxy.stop_requested.is_set():
                    return "stopped"
                now = time.monotonic()
                if "cut" not in clock.marks and now - clock.marks["launch"] > plan.replay_timeout:
                    return "replay_timeout"
                if "cut" in clock.marks and now - clock.marks["cut"] > plan.timeout:
                    return "timeout"
                if "cut" in clock.marks and now - max(last_activity[0], clock.marks["cut"]) > plan.idle_timeout:
                    return "idle_timeout"

        progress("phase", {"phase": "replaying", "total": len(router.queue)})
        clock.mark("launch")
        rec.outcome = await agent.run(
            sandbox,
            agent_env(url, key, run.agent_model_alias),
            plan.prompts,
            log_path=paths.agent_log,
            should_stop=should_stop,
            on_update=on_agent_update,
        )
        clock.mark("agent_end")
        _judge(rec, plan)
        rec.digest_end, _ = await workspace_digest(sandbox)
        progress("phase", {"phase": "verifying"})
        # pricing needs LiteLLM, seconds to import: while the verifier runs, not after it
        pricing = asyncio.ensure_future(asyncio.to_thread(load_litellm))
        clock.mark("verify")
        try:
            rec.rewards = (await run_verifier(sandbox, task, paths.verifier)).rewards
        except ContinueError as exc:
            rec.verifier_error = str(exc)
        clock.mark("verified")
    except ContinueError as exc:
        rec.fail(exc)
    except BaseException:
        # interrupted (Ctrl-C, SIGTERM): no half-written folder is left behind
        paths.discard()
        raise
    finally:
        try:
            if rec.proxy is not None:
                await rec.proxy.stop()
            if sandbox is not None:
                await sandbox.stop()
        except BaseException:
            paths.discard()  # interrupted while tearing down
            raise
        clock.mark("end")
    keep = False
    try:
        progress("phase", {"phase": "writing"})
        if pricing is not None:
            await asyncio.gather(pricing, return_exceptions=True)
        summary = _write(plan, paths, rec, redactor([key]))
        task = asyncio.current_task()
        if task is not None and task.cancelling():  # a SIGTERM that a clean-up step swallowed
            raise asyncio.CancelledError
        try:
            paths.commit()
        except OutputExists:
            keep = True  # the finished run stays in its .partial folder, named in the message
            raise
        keep = True
    finally:
        if not keep:
            paths.discard()
    summary["output"] = str(paths.final)
    return summary


def _priced_model(exchange: Exchange) -> str | None:
    """The provider's model name of a call, for its price."""
    return exchange.metadata.get("provider_model") or exchange.response_model


def _judge(rec: _Record, plan: Plan) -> None:
    """Turn how the agent stopped into result.json's error fields."""
    assert rec.outcome is not None and rec.proxy is not None
    reason = rec.outcome.stop_reason
    if reason == "stopped" and rec.proxy.upstream_failure is not None:
        error = UpstreamError(rec.proxy.stop_reason or "the live model failed")
        if rec.proxy.upstream_failure[0] in (401, 403):
            error.category = "provider_auth"
        rec.fail(error)
    elif reason == "stopped" and rec.router.divergences and plan.on_divergence == "abort":
        rec.fail(ReplayDiverged(f"replay aborted: {rec.proxy.stop_reason}"))
    elif reason == "stopped":
        pass  # replay-only reached its cut-point
    elif reason == "timeout":
        rec.error, rec.error_category = (
            f"agent timed out after {plan.timeout:g} s of live budget (--timeout)",
            "timeout",
        )
    elif reason == "idle_timeout":
        rec.error = f"agent idle for {plan.idle_timeout:g} s in the live leg (agent_idle_timeout_sec)"
        rec.error_category = "idle_timeout"
    elif reason == "replay_timeout":
        rec.error = f"replay did not reach the cut-point within {plan.replay_timeout:g} s"
        rec.error_category = "timeout"
    elif reason in ("crashed", "error"):
        rec.error, rec.error_category = f"agent {reason}: {rec.outcome.error}", "acp_error"
    elif reason != "end_turn":
        rec.error, rec.error_category = f"agent stopped: {reason}", "acp_error"


def _write(plan: Plan, paths: OutputPaths, rec: _Record, redact: Callable[[str], str]) -> dict[str, Any]:
    run = plan.run
    router, clock, proxy, outcome = rec.router, rec.clock, rec.proxy, rec.outcome
    live = proxy.live_exchanges if proxy else []
    last = router.last_served_index
    with open(paths.trajectory, "wb") as f:
        f.writelines(stitch(run.exchanges, last, live, redact))
    if outcome is not None:
        paths.acp_trajectory.write_text("".join(redact(json.dumps(e)) + "\n" for e in outcome.events))
    if paths.agent_log.exists():
        paths.agent_log.write_text(redact(paths.agent_log.read_text(errors="replace")))
    write_json(paths.prompts, plan.prompts)

    prefix = [e for e in run.exchanges if last is not None and e.index <= last]
    recorded_usage = totals((_priced_model(e), e.usage) for e in prefix)
    live_calls = [Exchange.of(i, 0, x) for i, x in enumerate(live)]  # summarised as the recorded ones are
    live_usage = totals((_priced_model(e), e.usage) for e in live_calls)
    total_usage = {k: recorded_usage[k] + live_usage[k] for k in TOKEN_FIELDS}
    costs = [c for c in (recorded_usage["cost_usd"], live_usage["cost_usd"]) if c is not None]
    # replay: from the agent's first request to the cut-point (its boot is reported apart)
    replay_sec = clock.between("first_request", "cut" if "cut" in clock.marks else "agent_end")
    live_sec = clock.between("cut", "agent_end") if plan.live_model else None
    continuation = {
        "tool": f"benchflow-continue {__version__}",
        "recorded_exchanges": len(run.exchanges),
        "replayed_exchanges": len(router.served),
        "skipped_failed_exchanges": len(router.skipped),
        "retries_served": proxy.retries if proxy else 0,
        "live_exchanges": len(live),
        "live_failed_exchanges": sum(1 for x in live if x["response"]["status_code"] != 200),
        "cut_point": (last + 1) if last is not None else 0,
        "reached_cut_point": "cut" in clock.marks,
        "divergences": [d.to_json() for d in router.divergences],
        "match_counts": router.counts(),
        "cut_reason": proxy.cut_reason if proxy and "cut" in clock.marks else None,
        "last_served_request_sha256": hashlib.sha256(router.last_request).hexdigest() if router.last_request else None,
        "agent_stop_reason": outcome.stop_reason if outcome else None,
        "agent_boot_sec": clock.between("launch", "first_request"),
        "replay_sec": replay_sec,
        "live_sec": live_sec,
        "live_timeout_sec": plan.timeout,
        "replay_timeout_sec": plan.replay_timeout,
        "workspace_digest_at_cut": rec.digest_cut,
        "workspace_digest_end": rec.digest_end,
    }
    source_result = dict(run.result or {})
    result = {
        **source_result,
        "task_name": run.task_name,
        "rollout_name": plan.name,
        "agent": "openhands",
        "model": plan.live_model or run.model,
        "rewards": rec.rewards,
        "n_prompts": len(plan.prompts),
        # of the stitched run (the source's own count would be stale)
        "n_tool_calls": sum(e.n_tool_calls for e in [*prefix, *live_calls]),
        # the whole continuous run, with the recorded prefix and this live leg apart:
        # adding the source's figures to these would count the prefix twice
        "agent_result": {
            **total_usage,
            "cost_usd": round(sum(costs), 6) if costs else None,
            "usage_source": "provider_response",
            "price_source": "litellm bundled price map" if costs else None,
            "recorded_prefix": recorded_usage,
            "live": live_usage,
        },
        "error": rec.error,
        "error_category": rec.error_category,
        "verifier_error": rec.verifier_error,
        "started_at": rec.started_at.isoformat(sep=" "),
        "finished_at": datetime.now().isoformat(sep=" "),
        "timing": {
            "environment_setup": clock.between("boot", "booted"),
            "agent_execution": clock.between("launch", "agent_end"),
            "agent_boot": continuation["agent_boot_sec"],
            "replay": replay_sec,
            "live": live_sec,
            "verifier": clock.between("verify", "verified"),
            "total": round(clock.marks["end"] - clock.started, 3),
            # as if the original budget had been larger: the replay is not charged to either
            "budget": {
                "original_sec": run.timeout_sec,
                "continuation_sec": plan.timeout,
                "effective_total_sec": (run.timeout_sec or 0) + plan.timeout
                if not plan.options.record_new
                else plan.timeout,
                "replay_timeout_sec": plan.replay_timeout,
                "idle_timeout_sec": plan.idle_timeout,
            },
            # the agent time of the stitched run: the source's, then this live leg's
            "stitched_agent_sec": round((_original_agent_sec(run) or 0) + (live_sec or 0), 3)
            if not plan.options.record_new
            else live_sec,
        },
        "continuation": continuation,
    }
    for stale in ("agent_timeout_info", "idle_timeout_info", "trajectory_summary", "final_metrics"):
        result.pop(stale, None)
    config = dict(run.config)
    source = dict(config.get("source") or {})
    if not plan.options.record_new:
        link = {
            "rollout": run.path.name,
            "task_name": run.task_name,
            "trajectory_sha256": run.trajectory_sha256,
            "cut_point": continuation["cut_point"],
            "exchanges_served": continuation["replayed_exchanges"],
            "last_served_request_sha256": continuation["last_served_request_sha256"],
            "original_model": run.model,
            "live_model": plan.live_model,
            "source_error_category": run.error_category,
            "source_rewards": (run.result or {}).get("rewards"),
        }
        source["continued_from"] = link
        source["continuation_chain"] = list(source.get("continuation_chain") or []) + [link]
    config.update(
        {
            "task_path": config.get("task_path") or run.task_name,
            "model": plan.live_model or run.model,
            "environment": plan.backend,
            "sandbox_user": rec.sandbox.user if rec.sandbox else config.get("sandbox_user"),
            "timeout_sec": plan.timeout,
            "started_at": rec.started_at.isoformat(sep=" "),
            "source": source,
            "benchflow_continue": {
                "version": __version__,
                "sandbox": plan.backend,
                "agent": f"openhands {rec.agent_version}" if rec.agent_version else "openhands",
                # OpenHands picks tmux when it can see it, and tmux returns empty output for slow commands
                "terminal": rec.sandbox.terminal if rec.sandbox else None,
            },
        }
    )
    write_json(
        paths.replay_report,
        {
            "policy": {
                "on_divergence": plan.on_divergence,
                "diverge_on": sorted(plan.options.diverge_on),
                "serve_failures": plan.options.serve_failures,
                "replay_exchanges": plan.options.replay_exchanges,
            },
            "counts": router.counts(),
            "served": len(router.served),
            "skipped_failed": [e.index for e in router.skipped],
            "cut_point": continuation["cut_point"],
            "cut_reason": continuation["cut_reason"],
            "exchanges": [v.to_json() for v in router.verdicts if v.kind != "identical"],
        },
    )
    write_json(paths.config, json.loads(redact(json.dumps(config))))
    write_json(paths.result, result)
    return {
        "rewards": rec.rewards,
        "error": rec.error,
        "error_category": rec.error_category,
        "verifier_error": rec.verifier_error,
        **{
            k: continuation[k]
            for k in (
                "replayed_exchanges",
                "live_exchanges",
                "cut_point",
                "divergences",
                "match_counts",
                "cut_reason",
                "workspace_digest_at_cut",
                "agent_boot_sec",
                "replay_sec",
                "live_sec",
            )
        },
    }
