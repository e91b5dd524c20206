"""Command line: ``benchflow-continue RUN_DIR [OPTIONS]`` and ``benchflow-continue COMMAND ...``.

Exit codes: 0 the continuation ran and was verified (whatever the reward);
1 it failed (agent, sandbox or verifier error, also in result.json); 2 bad input
or usage, with a one-line reason. Nothing is written for bad input.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import click
import typer
from rich.console import Console
from typer.core import TyperGroup

from . import __version__
from .errors import ContinueError, InputError

__all__ = ["app", "main"]

err = Console(stderr=True, highlight=False, soft_wrap=True)


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
        elif kind == "divergence":
            self.line(f"  [yellow]{data['class']}[/] at exchange {data['exchange']}: {data['detail']}")
        elif kind == "cut":
            if "digest" in data:
                self.line(f"- cut-point after {data['served']} replayed answers; workspace {data['digest']}")
            else:
                self.line(f"- cut-point: {data['reason']}")
        elif kind == "live":
            self.update(f"live turn {data['n']}")
            if data["status"] != 200:
                self.line(f"  live call {data['n']} answered with status {data['status']}")

    def close(self) -> None:
        if self.status is not None:
            self.status.stop()


def _fail_input(message: str, as_json: bool = False) -> None:
    err.print(f"[red]error:[/] {message}", soft_wrap=True)
    if as_json:
        typer.echo(json.dumps({"error": message, "error_category": "bad_input", "exit_code": 2}))
    raise typer.Exit(2)


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
    tasks_dir: Annotated[
        Optional[Path],
        typer.Option(
            "--tasks-dir",
            metavar="DIR",
            help="Folder holding the task as DIR/<task name>. [default: the recorded task_path]",
        ),
    ] = None,
    model: Annotated[
        Optional[str],
        typer.Option(
            "--model",
            metavar="MODEL",
            help="Live-continuation model (LiteLLM name). [default: the original run's model]",
        ),
    ] = None,
    timeout: Annotated[
        Optional[float],
        typer.Option(
            "--timeout",
            metavar="SEC",
            help="Wall-clock budget of the live continuation; replay does not count. [default: the original run's timeout]",
        ),
    ] = None,
    output: Annotated[
        Optional[Path],
        typer.Option(
            "--output",
            metavar="DIR",
            help="Jobs folder for the new run folder. [default: <parent of RUN_DIR>/continued]",
        ),
    ] = None,
    require_timeout: Annotated[
        bool, typer.Option("--require-timeout", help="Refuse runs whose recorded status is not a timeout.")
    ] = False,
    strict_divergence: Annotated[
        bool,
        typer.Option("--strict-divergence", help="Abort when the replay leaves the recorded rails (default: warn)."),
    ] = False,
    replay_only: Annotated[
        bool,
        typer.Option(
            "--replay-only", help="Rebuild by replay, stop at the cut-point and verify; needs no model or key."
        ),
    ] = False,
    sandbox: Annotated[
        Optional[str],
        typer.Option(
            "--sandbox",
            metavar="BACKEND",
            help="Sandbox backend: local (bubblewrap). [default: the recorded environment]",
        ),
    ] = None,
    on_divergence: Annotated[
        Optional[str],
        typer.Option(
            "--on-divergence",
            metavar="POLICY",
            help="What a divergence does: warn (serve the recorded answer anyway), abort, or live (hand that request to the live model). [default: warn; abort with --strict-divergence]",
        ),
    ] = None,
    diverge_on: Annotated[
        str,
        typer.Option(
            "--diverge-on",
            metavar="CLASSES",
            help="Comma-separated request classes that count as a divergence: structural, prompt-drift, observation-drift, volatile.",
        ),
    ] = "structural",
    serve_failures: Annotated[
        bool,
        typer.Option(
            "--serve-failures",
            help="Serve recorded failed calls as recorded (default: skip them, so the agent spends no retry wait).",
        ),
    ] = False,
    replay_exchanges: Annotated[
        Optional[int],
        typer.Option(
            "--replay-exchanges",
            metavar="K",
            help="Replay only the first K recorded exchanges, then go live (a branch from the middle of a run).",
        ),
    ] = None,
    replay_timeout: Annotated[
        Optional[float],
        typer.Option(
            "--replay-timeout",
            metavar="SEC",
            help="Guard on the replay phase, apart from --timeout. [default: 3x the original run's agent time, at least 600]",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON on stdout.")] = False,
) -> None:
    from .session import ContinueOptions, execute, prepare

    options = ContinueOptions(
        run_dir=run_dir,
        tasks_dir=tasks_dir,
        model=model,
        timeout=timeout,
        output=output,
        require_timeout=require_timeout,
        strict_divergence=strict_divergence,
        replay_only=replay_only,
        sandbox=sandbox,
        on_divergence=on_divergence,
        diverge_on=frozenset(c.strip() for c in diverge_on.split(",") if c.strip()),
        serve_failures=serve_failures,
        replay_exchanges=replay_exchanges,
        replay_timeout=replay_timeout,
    )
    try:
        plan = prepare(options)
    except InputError as exc:
        _fail_input(str(exc), as_json)
        return
    reporter = _Reporter(quiet=False)
    for warning in plan.warnings:
        reporter.line(f"[yellow]warning:[/] {warning}")
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
            err.print(f"[red]{problem.replace('_', ' ')}:[/] {summary[problem]}", soft_wrap=True)
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


@app.command("install-agent", help="Install OpenHands into the cached agent environment (done on first use anyway).")
def install_agent_command() -> None:
    from .agents.openhands import ensure_installed

    try:
        install = ensure_installed(lambda message: err.print(message))
    except ContinueError as exc:
        err.print(f"[red]error:[/] {exc}")
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
        err.print(f"[red]error:[/] {exc}")
        sys.exit(2 if isinstance(exc, InputError) else 1)
