"""Per-request latency of the replay proxy, divergence check on.

A synthetic recording of N exchanges whose request bodies grow linearly from
2 KB to MAX KB (an agent's context growing) is served to one client that sends
the matching requests over one keep-alive connection, JSON and then SSE.

    .venv/bin/python bench/proxy_latency.py [--exchanges 200] [--max-kb 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import httpx

from benchflow_continue.proxy import ReplayProxy
from benchflow_continue.replay import Router
from benchflow_continue.runfolder import parse_trajectory


def recording(n: int, max_kb: int) -> bytes:
    lines = []
    messages: list[dict] = [{"role": "system", "content": "s" * 1500}, {"role": "user", "content": "task"}]
    step = max(1, (max_kb * 1024 - 2048) // max(1, n - 1) // 2)
    for i in range(n):
        body = {
            "model": "m",
            "messages": list(messages),
            "tools": [{"type": "function", "function": {"name": "terminal"}}],
        }
        call = {
            "id": f"call_{i}",
            "type": "function",
            "function": {"name": "terminal", "arguments": json.dumps({"command": f"echo {i}"})},
        }
        answer = {
            "id": f"r{i}",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "tool_calls",
                    "message": {"role": "assistant", "content": "ok", "tool_calls": [call]},
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
        }
        lines.append(json.dumps({"request": {"body": body}, "response": {"status_code": 200, "body": answer}}))
        messages += [
            {"role": "assistant", "content": "ok", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": f"call_{i}", "content": "x" * step},
        ]
    return ("\n".join(lines) + "\n").encode()


async def drive(data: bytes, stream: bool) -> list[float]:
    exchanges, _ = parse_trajectory(None, data)  # type: ignore[arg-type]
    proxy = ReplayProxy(Router(exchanges), None, key="k", model_alias="openai/m")
    url = await proxy.start()
    bodies = [json.dumps({**e.request_body, "stream": stream}).encode() for e in exchanges]
    latencies = []
    try:
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": "Bearer k", "Content-Type": "application/json"}
        ) as client:
            for body in bodies:
                t = time.perf_counter()
                r = await client.post("/v1/chat/completions", content=body)
                r.read()
                latencies.append((time.perf_counter() - t) * 1000)
                assert r.status_code == 200
    finally:
        await proxy.stop()
    assert not proxy.router.divergences
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--exchanges", type=int, default=200)
    parser.add_argument("--max-kb", type=int, default=200)
    args = parser.parse_args()
    data = recording(args.exchanges, args.max_kb)
    print(f"{args.exchanges} exchanges, request bodies 2 KB .. {args.max_kb} KB, recording {len(data) / 1e6:.1f} MB")
    for stream in (False, True):
        lat = sorted(asyncio.run(drive(data, stream)))
        p50, p99 = statistics.median(lat), lat[int(0.99 * (len(lat) - 1))]
        print(
            f"{'sse ' if stream else 'json'}: p50 {p50:.2f} ms  p99 {p99:.2f} ms  max {lat[-1]:.2f} ms  total {sum(lat) / 1000:.2f} s"
        )


if __name__ == "__main__":
    main()
