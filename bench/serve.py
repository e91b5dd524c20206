"""Serve a recording with one replay proxy in its own process, for bench/proxy_latency.py.

    python bench/serve.py ours RECORDING.jsonl        # benchflow-continue's proxy
    python bench/serve.py ours-file RECORDING.jsonl   # the same, reading each exchange from the file as it is
                                                      # served (what a recording above RESIDENT_BYTES gets)
    python bench/serve.py benchflow RECORDING.jsonl   # benchflow's (run with a Python that has benchflow)

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


if __name__ == "__main__":
    which, path = sys.argv[1], Path(sys.argv[2])
    if which == "benchflow":
        serve_benchflow(path)
    else:
        serve_ours(path, resident=which == "ours")
