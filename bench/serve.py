"""Serve a recording with one replay proxy in its own process, for bench/proxy_latency.py.

    python bench/serve.py ours RECORDING.jsonl        # benchflow-continue's proxy
    python bench/serve.py ours-file RECORDING.jsonl   # the same, reading each exchange from the file as it is
                                                      # served (what a recording above RESIDENT_BYTES gets)
    python bench/serve.py benchflow RECORDING.jsonl   # benchflow's (run with a Python that has benchflow)
    python bench/serve.py floor RECORDING.jsonl       # no proxy: aiohttp reads the body, sends a fixed answer
                                                      # (what the client and the server library cost alone)

Prints the base URL, then serves until stdin closes.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path


def serve_ours(recording: Path, resident: bool = True) -> None:
    from benchflow_continue.proxy import ReplayProxy
    from benchflow_continue.replay import Router
    from benchflow_continue.runfolder import read_trajectory

    async def main() -> None:
        exchanges, _, _ = read_trajectory(recording, resident_bytes=None if resident else 0)
        proxy = ReplayProxy(Router(exchanges), None, key="k", model_alias="openai/m")
        print(await proxy.start(), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await proxy.stop()

    asyncio.run(main())


def serve_benchflow(recording: Path) -> None:
    from benchflow.continue_run.replay_proxy import ReplayProxy, ReplayRouter
    from benchflow.trajectories.types import LLMExchange

    exchanges = [LLMExchange.model_validate(json.loads(line)) for line in recording.read_text().splitlines() if line]
    proxy = ReplayProxy(ReplayRouter(exchanges)).start()
    print(f"http://127.0.0.1:{proxy.port}", flush=True)
    sys.stdin.read()
    proxy.stop()


def serve_floor(recording: Path) -> None:
    from aiohttp import web

    first = json.loads(recording.read_text().split("\n", 1)[0])["response"]["body"]

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response(first)

    async def main() -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", answer)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        print(f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}", flush=True)  # type: ignore[union-attr]
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await runner.cleanup()

    asyncio.run(main())


if __name__ == "__main__":
    which, path = sys.argv[1], Path(sys.argv[2])
    if which == "benchflow":
        serve_benchflow(path)
    elif which == "floor":
        serve_floor(path)
    else:
        serve_ours(path, resident=which == "ours")
