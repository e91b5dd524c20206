"""Command line: ``benchflow-continue RUN_DIR [OPTIONS]`` and ``benchflow-continue COMMAND ...``.

Exit codes: 0 the continuation ran and was verified (whatever the reward);
1 it failed (agent, sandbox or verifier error, also in result.json); 2 bad input
or usage, with a one-line reason. Nothing is written for bad input.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import click
import typer
from rich.console import Console
from typer.core import TyperGroup

from . import __version__
from .errors import ContinueError, InputError

__all__ = ["app", "main"]

# no markup: messages carry the user's text (paths, recorded values), which may hold [brackets]
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False, width=None if sys.stderr.isatty() else 160)


class _DefaultToRun(TyperGroup):
    """``benchflow-continue RUN_DIR`` means ``benchflow-continue run RUN_DIR``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h", "--version"):
            args = ["run", *args]
        return super().parse_args(ctx, args)

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, "RUN_DIR [OPTIONS]  |  COMMAND [ARGS]...")


app = typer.Typer(
    cls=_DefaultToRun,
    add_completion=False,
    rich_markup_mode=None,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    help=(
        "Continue a timed-out OpenHands run: replay its recorded LLM answers in a fresh sandbox, "
        "hand the agent to the live model at the cut-point, re-verify, and write a new run folder "
        "that reads as one continuous run.\n\n"
        "benchflow-continue RUN_DIR [OPTIONS] is short for benchflow-continue run RUN_DIR [OPTIONS]."
    ),
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"benchflow-continue {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    pass


class _Reporter:
    """Progress on stderr: a spinner line on a terminal, plain lines otherwise."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.status = None if quiet or not err.is_terminal else err.status("starting")
        self.total = 0
        self.cut_reason = ""
        if self.status is not None:
            self.status.start()

    def line(self, text: str) -> None:
        if not self.quiet:
            err.print(text)

    def update(self, text: str) -> None:
        if self.status is not None:
            self.status.update(text)

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "phase":
            self.total = data.get("total", self.total)
            self.line(f"- {data['phase']}" + (f" ({self.total} recorded answers)" if "total" in data else ""))
            self.update(data["phase"])
        elif kind == "log":
            self.line(f"  {data['message']}")
        elif kind in ("replay", "retry"):
            note = " (agent retry, same answer)" if kind == "retry" else ""
            self.update(f"replaying {data['served']}/{self.total}{note}")
            if kind == "retry":
                self.line(f"  exchange {data['index']}: agent retried; served the same answer again")
        elif kind == "divergence" and data["class"] != "volatile":  # volatile ones are in the report
            self.line(f"  {data['class']} at exchange {data['exchange']}: {data['detail']}")
        elif kind == "cut":
            if "reason" in data:
                self.cut_reason = data["reason"]
            if "digest" in data:
                self.line(
                    f"- cut-point after {data['served']} replayed answers ({self.cut_reason}); workspace {data['digest']}"
                )
        elif kind == "live":
            self.update(f"live turn {data['n']}")
            if data["status"] != 200:
                self.line(f"  live call {data['n']} answered with status {data['status']}")

    def close(self) -> None:
        if self.status is not None:
            self.status.stop()


def _fail_input(message: str, as_json: bool = False) -> None:
    err.print(f"error: {message}", style="red")
    if as_json:
        typer.echo(json.dumps({"error": message, "error_category": "bad_input", "exit_code": 2}))
    raise typer.Exit(2)


def _options(*, diverge_on: str, **given: Any) -> Any:
    """The parsed flags as ContinueOptions."""
    from .session import ContinueOptions

    classes = frozenset(c.strip() for c in diverge_on.split(",") if c.strip())
    return ContinueOptions(diverge_on=classes, **given)


# The continuation options, declared once and shared by `run` and `batch`.
TasksDirOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--tasks-dir",
        metavar="DIR",
        help="Folder holding the task as DIR/<task name>. [default: the recorded task_path]",
    ),
]
ModelOpt = Annotated[
    Optional[str],
    typer.Option(
        "--model", metavar="MODEL", help="Live-continuation model (LiteLLM name). [default: the original run's model]"
    ),
]
TimeoutOpt = Annotated[
    Optional[float],
    typer.Option(
        "--timeout",
        metavar="SEC",
        help="Wall-clock budget of the live continuation; replay does not count. [default: the original run's timeout]",
    ),
]
RequireTimeoutOpt = Annotated[
    bool, typer.Option("--require-timeout", help="Refuse runs whose recorded status is not a timeout.")
]
StrictOpt = Annotated[
    bool, typer.Option("--strict-divergence", help="Abort when the replay leaves the recorded rails (default: warn).")
]
ReplayOnlyOpt = Annotated[
    bool,
    typer.Option("--replay-only", help="Rebuild by replay, stop at the cut-point and verify; needs no model or key."),
]
SandboxOpt = Annotated[
    Optional[str],
    typer.Option(
        "--sandbox",
        metavar="BACKEND",
        help="Sandbox backend: local (bubblewrap), podman or docker (a container from the task's image). "
        "[default: the recorded environment; a recorded docker run goes to whichever engine answers]",
    ),
]
OnDivergenceOpt = Annotated[
    Optional[str],
    typer.Option(
        "--on-divergence",
        metavar="POLICY",
        help="What a divergence does: warn (serve the recorded answer anyway), abort, or live (hand that request to the live model). [default: warn; abort with --strict-divergence]",
    ),
]
DivergeOnOpt = Annotated[
    str,
    typer.Option(
        "--diverge-on",
        metavar="CLASSES",
        help="Comma-separated request classes that count as a divergence: structural, prompt-drift, observation-drift, volatile.",
    ),
]
ServeFailuresOpt = Annotated[
    bool,
    typer.Option(
        "--serve-failures",
        help="Serve recorded failed calls as recorded (default: skip them, so the agent spends no retry wait).",
    ),
]
ReplayExchangesOpt = Annotated[
    Optional[int],
    typer.Option(
        "--replay-exchanges",
        metavar="K",
        help="Replay only the first K recorded exchanges, then go live (a branch from the middle of a run).",
    ),
]
ReplayTimeoutOpt = Annotated[
    Optional[float],
    typer.Option(
        "--replay-timeout",
        metavar="SEC",
        help="Guard on the replay phase, apart from --timeout. [default: 3x the original run's agent time, at least 600]",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the outcome as JSON on stdout.")]


@app.command("run", help="Continue one timed-out run folder (the default command).")
def run_command(
    run_dir: Annotated[
        Path,
        typer.Argument(
            metavar="RUN_DIR",
            show_default=False,
            help="The timed-out rollout folder (holds config.json and trajectory/).",
        ),
    ],
    tasks_dir: TasksDirOpt = None,
    model: ModelOpt = None,
    timeout: TimeoutOpt = None,
    output: Annotated[
        Optional[Path],
        typer.Option(
            "--output",
            metavar="DIR",
            help="Jobs folder for the new run folder. [default: <parent of RUN_DIR>/continued]",
        ),
    ] = None,
    require_timeout: RequireTimeoutOpt = False,
    strict_divergence: StrictOpt = False,
    replay_only: ReplayOnlyOpt = False,
    sandbox: SandboxOpt = None,
    on_divergence: OnDivergenceOpt = None,
    diverge_on: DivergeOnOpt = "structural",
    serve_failures: ServeFailuresOpt = False,
    replay_exchanges: ReplayExchangesOpt = None,
    replay_timeout: ReplayTimeoutOpt = None,
    as_json: JsonOpt = False,
) -> None:
    options = _options(**{k: v for k, v in locals().items() if k != "as_json"})  # first: locals() are the flags
    from .session import execute, prepare

    try:
        plan = prepare(options)
    except InputError as exc:
        _fail_input(str(exc), as_json)
        return
    except (ValueError, TypeError, AttributeError, KeyError, RecursionError, OSError) as exc:
        # input of a shape no check foresaw: still a one-line answer, and nothing was touched
        _fail_input(f"{run_dir}: cannot read this run ({type(exc).__name__}: {str(exc)[:200]})", as_json)
        return
    reporter = _Reporter(quiet=False)
    for warning in plan.warnings:
        reporter.line(f"warning: {warning}")
    reporter.line(
        f"continuing {plan.run.path.name} (task {plan.task.name}, {len(plan.run.exchanges)} recorded exchanges) "
        f"on {plan.backend}; live model: {plan.live_model or 'none (--replay-only)'}"
    )
    try:
        summary = _run_async(
            execute(plan, reporter), "interrupted: stopped the agent and the sandbox; no output folder was written"
        )
    except InputError as exc:
        reporter.close()
        _fail_input(str(exc), as_json)
        return
    finally:
        reporter.close()
    ok = summary["error"] is None or summary["error_category"] in ("timeout", "idle_timeout")
    verified = summary["rewards"] is not None
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    rewards = summary["rewards"]
    reward = ", ".join(f"{k} {v}" if k != "reward" else str(v) for k, v in rewards.items()) if rewards else "none"
    times = [
        f"{label} {summary[key]:.1f} s"
        for label, key in (("agent boot", "agent_boot_sec"), ("replay", "replay_sec"), ("live", "live_sec"))
        if summary[key] is not None
    ]
    err.print(
        f"{'done' if ok and verified else 'failed'}: reward {reward}; "
        f"{summary['replayed_exchanges']} replayed + {summary['live_exchanges']} live exchanges; {', '.join(times)}"
    )
    counts = ", ".join(f"{n} {kind}" for kind, n in summary["match_counts"].items()) or "nothing replayed"
    err.print(
        f"replay: {counts}; cut-point at exchange {summary['cut_point']} ({summary['cut_reason'] or 'not reached'})"
    )
    for divergence in summary["divergences"][:5]:
        err.print(f"  exchange {divergence['exchange']} {divergence['class']}: {divergence['detail']}")
    for problem in ("error", "verifier_error"):
        if summary[problem]:
            err.print(f"{problem.replace('_', ' ')}: {summary[problem]}", style="red")
    err.print(f"wrote {summary['output']}")
    raise typer.Exit(0 if ok and verified else 1)


@app.command("scripted-model", help="Serve a scripted OpenAI-compatible model (offline tests and demos).")
def scripted_model_command(
    script: Annotated[Path, typer.Argument(help='Script JSON: {"turns": [{"say", "call", "arguments"}, ...]}.')],
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0: a free one).")] = 0,
    latency: Annotated[float, typer.Option(metavar="SEC", help="Delay before every answer.")] = 0.0,
    hold_turn: Annotated[
        Optional[int], typer.Option(metavar="K", help="Never answer turn K (a hanging provider).")
    ] = None,
    fail: Annotated[
        Optional[list[str]],
        typer.Option(
            metavar="K:STATUS", help="Answer turn K with STATUS first (repeat for several: 3:429 --fail 3:500)."
        ),
    ] = None,
) -> None:
    from .scripted import ScriptedModel, load_script

    failures: dict[int, list[int]] = {}
    try:
        loaded = load_script(script)
        for item in fail or []:
            turn, _, status = item.partition(":")
            if not (turn.isdigit() and status.isdigit()):
                raise InputError(f"--fail {item}: expected TURN:STATUS, e.g. 3:429")
            failures.setdefault(int(turn), []).append(int(status))
    except InputError as exc:
        _fail_input(str(exc))
        return

    async def serve() -> None:
        server = ScriptedModel(loaded, latency=latency, hold_turn=hold_turn, failures=failures)
        url = await server.start(host, port)
        typer.echo(url)
        sys.stdout.flush()
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()

    _run_async(serve(), "scripted model stopped")


class _BatchDisplay:
    """A live table of the runs in flight on a terminal; one plain line per event otherwise."""

    def __init__(self, plain: bool) -> None:
        self.plain = plain or not err.is_terminal
        self.phases: dict[str, str] = {}
        self.totals: dict[str, int] = {}
        self.finished = 0
        self.started = time.monotonic()
        self.live: Any = None
        if not self.plain:
            from rich.live import Live

            self.live = Live(self._table(), console=err, refresh_per_second=4, transient=True)
            self.live.start()

    def _table(self) -> Any:
        from rich.table import Table

        elapsed = time.monotonic() - self.started
        title = f"{self.finished} finished · {len(self.phases)} running · {elapsed:.0f} s"
        table = Table(title=title, title_justify="left")
        table.add_column("run")
        table.add_column("phase")
        for run, phase in self.phases.items():
            table.add_row(run, phase)
        return table

    def __call__(self, run: str, kind: str, data: dict[str, Any]) -> None:
        phase = None
        if kind == "phase":
            self.totals[run] = data.get("total", self.totals.get(run, 0))
            phase = data["phase"]
        elif kind in ("replay", "retry"):
            phase = f"replaying {data['served']}/{self.totals.get(run, '?')}"
        elif kind == "cut" and "digest" in data:
            phase = f"cut-point after {data['served']}"
        elif kind == "live":
            phase = f"live turn {data['n']}"
        elif kind == "finished":
            self.phases.pop(run, None)
            self.finished += 1
            line = f"{run}: {data['state']}" + (f" ({data['reason']})" if data["reason"] else "")
            (self.live.console if self.live is not None else err).print(line, soft_wrap=True)
        if phase is not None:
            self.phases[run] = phase
            if self.plain and kind not in ("replay", "retry", "live"):
                err.print(f"{run}: {phase}")
        if self.live is not None:
            self.live.update(self._table())

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()


@app.command("batch", help="Continue every timed-out OpenHands run under a jobs folder; safe to run again.")
def batch_command(
    jobs_dir: Annotated[
        Path,
        typer.Argument(
            metavar="JOBS_DIR", show_default=False, help="A jobs folder: rollout folders up to three levels down."
        ),
    ],
    tasks_dir: TasksDirOpt = None,
    model: ModelOpt = None,
    timeout: TimeoutOpt = None,
    output: Annotated[
        Optional[Path],
        typer.Option(
            "--output",
            metavar="DIR",
            help="Folder for the new run folders and summary.json. [default: JOBS_DIR/continued]",
        ),
    ] = None,
    strict_divergence: StrictOpt = False,
    replay_only: ReplayOnlyOpt = False,
    sandbox: SandboxOpt = None,
    on_divergence: OnDivergenceOpt = None,
    diverge_on: DivergeOnOpt = "structural",
    serve_failures: ServeFailuresOpt = False,
    replay_exchanges: ReplayExchangesOpt = None,
    replay_timeout: ReplayTimeoutOpt = None,
    concurrency: Annotated[
        Optional[int],
        typer.Option("--concurrency", metavar="N", help="Continuations at once. [default: what this machine can hold]"),
    ] = None,
    limit: Annotated[
        Optional[int], typer.Option("--limit", metavar="N", help="Continue at most N runs this time.")
    ] = None,
    filter_: Annotated[
        Optional[str],
        typer.Option("--filter", metavar="PATTERN", help="Only tasks whose name matches this glob, e.g. 'swe-*'."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    flags = {k: v for k, v in locals().items() if k not in ("jobs_dir", "concurrency", "limit", "filter_", "as_json")}
    from .batch import default_concurrency, discover, run_batch, summarize

    # discovery selects timed-out runs; --require-timeout keeps prepare() from doubting them
    template = _options(run_dir=jobs_dir, require_timeout=True, **flags)
    n = concurrency or default_concurrency()
    if n < 1 or (limit is not None and limit < 0):
        _fail_input("--concurrency must be at least 1 and --limit at least 0", as_json)
    try:
        candidates = discover(jobs_dir, output, filter_, replay_only)
    except InputError as exc:
        _fail_input(str(exc), as_json)
        return
    todo = sum(c.state == "todo" for c in candidates)
    done = sum(c.state == "done" for c in candidates)
    skipped = sum(c.state == "skip" for c in candidates)
    err.print(
        f"{len(candidates)} rollouts under {jobs_dir}: {todo} to continue, {done} already continued, "
        f"{skipped} skipped; {max(1, min(n, todo))} at a time"
    )
    display = _BatchDisplay(plain=as_json)
    started = time.monotonic()
    try:
        _run_async(
            run_batch(candidates, template, jobs_dir, concurrency=n, limit=limit, on_event=display),
            "interrupted: stopped every run in flight; their folders were not written. Run the same command to resume.",
        )
    finally:
        display.close()
    summary = summarize(candidates, output or jobs_dir / "continued", time.monotonic() - started)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    _print_summary(summary)
    raise typer.Exit(1 if summary["failed"] else 0)


def _print_summary(summary: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title="benchflow-continue batch", title_justify="left")
    for column in ("run", "state", "replayed", "live", "divergences", "reward", "time"):
        table.add_column(column)
    for row in summary["rows"]:
        if row["state"] == "skip":
            continue
        reward = f"{row['reward_before']} -> {row['reward_after']}"
        seconds = f"{row['sec']:.0f} s" if row["sec"] is not None else ""
        cells = (row["run"], row["state"], str(row["replayed"] or 0), str(row["live"] or 0), str(row["divergences"]))
        table.add_row(*cells, reward, seconds)
    err.print(table)
    err.print(
        f"{summary['continued_now']} continued now, {summary['already_done']} already done, {summary['failed']} failed, "
        f"{summary['skipped']} skipped; {summary['timed_out_now_passing']} timed-out runs now pass; "
        f"{summary['live_tokens']} tokens spent live, {summary['tokens_served_from_recordings']} served from recordings"
    )


@app.command(
    "inspect", help="Show a run folder: task, status, exchanges, tokens, last actions, whether it can be continued."
)
def inspect_command(
    run_dir: Annotated[
        Path, typer.Argument(metavar="RUN_DIR", show_default=False, help="A rollout folder, timed out or continued.")
    ],
    tasks_dir: Annotated[
        Optional[Path],
        typer.Option(
            "--tasks-dir", metavar="DIR", help="Where to look for the task. [default: the recorded task_path]"
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print it as JSON on stdout.")] = False,
) -> None:
    from .overview import describe

    try:
        info = describe(run_dir, tasks_dir)
    except InputError as exc:
        _fail_input(str(exc), as_json)
        return
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    out = Console(highlight=False, soft_wrap=True, markup=False)
    status = info["error_category"] or ("completed" if info["rewards"] is not None else "unknown (no result.json)")
    out.print(f"{info['run']}  task {info['task']} · {info['agent']} · model {info['model']} · {info['environment']}")
    out.print(f"status: {status}; rewards {info['rewards']}" + (f"; error: {info['error']}" if info["error"] else ""))
    failed = (
        f" ({len(info['failed_exchanges'])} failed: {info['failed_exchanges']})" if info["failed_exchanges"] else ""
    )
    out.print(
        f"exchanges: {info['exchanges']}{failed}; tokens: {info['tokens']['n_input_tokens']} in, "
        f"{info['tokens']['n_output_tokens']} out; agent time {info['agent_sec']} s of a {info['timeout_sec']} s budget"
    )
    if info["last_actions"]:
        out.print("last actions:")
        for action in info["last_actions"]:
            out.print(f"  - {action}")
    for i, link in enumerate(info["continuation_chain"], 1):
        out.print(
            f"continued from ({i}): {link['rollout']} at exchange {link['cut_point']} "
            f"(live model {link['live_model'] or 'none: a replay-only rebuild'}; "
            f"trajectory sha256 {link['trajectory_sha256'][:12]}…)"
        )
    if info["match_counts"]:
        out.print(
            f"replay: {', '.join(f'{n} {k}' for k, n in info['match_counts'].items())}; cut-point at exchange {info['cut_point']}"
        )
    verdict = "can be continued" if info["continuable"] else "cannot be continued"
    out.print(verdict + (": " + "; ".join(info["notes"]) if info["notes"] else ""))
    if not info["continuable"] and "not found" in " ".join(info["notes"]):
        out.print("(pass --tasks-dir DIR, where DIR/<task name> is the task folder)")


@app.command("install-agent", help="Install OpenHands into the cached agent environment (done on first use anyway).")
def install_agent_command() -> None:
    from .agents.openhands import ensure_installed

    try:
        install = ensure_installed(lambda message: err.print(message))
    except ContinueError as exc:
        err.print(f"error: {exc}", style="red")
        raise typer.Exit(1) from None
    typer.echo(f"OpenHands {install.version} ready in {install.root}")


def _run_async(coro: Any, interrupted: str = "interrupted") -> Any:
    """Run ``coro``; SIGTERM cancels it like Ctrl-C does, so clean-up code runs."""

    async def wrapper() -> Any:
        task = asyncio.ensure_future(coro)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            return await task
        finally:
            loop.remove_signal_handler(signal.SIGTERM)

    try:
        return asyncio.run(wrapper())
    except (KeyboardInterrupt, asyncio.CancelledError):
        err.print(interrupted)
        raise typer.Exit(130) from None


def main() -> None:
    try:
        app()
    except ContinueError as exc:  # a last line of defence: never a traceback for our own errors
        err.print(f"error: {exc}", style="red")
        sys.exit(2 if isinstance(exc, InputError) else 1)
    except Exception as exc:
        if os.environ.get("BFC_DEBUG") == "1":
            raise
        err.print(
            f"internal error: {type(exc).__name__}: {str(exc)[:300]} (a bug in benchflow-continue; "
            "BFC_DEBUG=1 shows the traceback)",
            style="red",
        )
        sys.exit(1)
