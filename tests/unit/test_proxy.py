from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from benchflow_continue.live import LiveAnswer
from benchflow_continue.proxy import ReplayProxy
from benchflow_continue.replay import Router
from benchflow_continue.runfolder import load_run_folder

KEY = "run-key"


class FakeLive:
    """Stands in for the provider in unit tests only."""

    model = "openai/fake-live"

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.seen: list[dict[str, Any]] = []

    async def complete(self, body: dict[str, Any]) -> LiveAnswer:
        self.seen.append(body)
        answer = {
            "id": "live",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "live!"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 1, "total_tokens": 8},
        }
        if self.status != 200:
            answer = {"error": {"type": "RateLimitError", "message": "slow down"}}
        now = datetime.now()
        return LiveAnswer(self.status, answer, now, now, 12.5)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def with_proxy(rollout: Path, fn, live: Any = None, **router_kw: Any) -> Any:
    recording = load_run_folder(rollout)
    cuts: list[int] = []
    proxy = ReplayProxy(Router(recording.exchanges, **router_kw), live, key=KEY, model_alias="openai/fake-model")

    async def on_cut() -> None:
        cuts.append(len(proxy.router.served))

    proxy.on_cut = on_cut
    url = await proxy.start()
    try:
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {KEY}"}) as client:
            return await fn(client, proxy, recording, cuts)
    finally:
        await proxy.stop()


def test_binds_loopback_requires_key_and_sets_nodelay(rollout: Path) -> None:
    async def check(client: httpx.AsyncClient, proxy: ReplayProxy, recording, cuts) -> None:
        assert proxy.url.startswith("http://127.0.0.1:")
        body = recording.exchanges[0].request_body
        assert (
            await client.post("/v1/chat/completions", json=body, headers={"Authorization": "Bearer nope"})
        ).status_code == 401
        async with httpx.AsyncClient(base_url=proxy.url) as anonymous:
            assert (await anonymous.post("/v1/chat/completions", json=body)).status_code == 401
        health = (await client.get("/health")).json()
        assert health["tcp_nodelay"] is True and health["remaining"] == 7
        assert (await client.get("/v1/models")).json()["data"][0]["id"] == "fake-model"
        bad = await client.post("/v1/chat/completions", content=b"{nope")
        assert bad.status_code == 400

    run(with_proxy(rollout, check))


def test_replays_recorded_answers_as_json_and_sse(rollout: Path) -> None:
    async def check(client: httpx.AsyncClient, proxy: ReplayProxy, recording, cuts) -> None:
        first = recording.exchanges[0]
        got = await client.post("/v1/chat/completions", json=first.request_body)
        assert got.status_code == 200 and got.json() == first.response_body
        second = dict(recording.exchanges[1].request_body, stream=True)
        streamed = await client.post("/chat/completions", json=second)
        assert streamed.headers["content-type"].startswith("text/event-stream")
        events = [e for e in streamed.text.split("\n\n") if e]
        assert events[-1] == "data: [DONE]"
        calls = [
            c for e in events[:-1] for ch in json.loads(e[6:])["choices"] for c in ch["delta"].get("tool_calls", [])
        ]
        recorded_call = recording.exchanges[1].response_body["choices"][0]["message"]["tool_calls"][0]
        assert (
            calls[0]["id"] == recorded_call["id"] and calls[0]["function"]["name"] == recorded_call["function"]["name"]
        )

    run(with_proxy(rollout, check))


def test_replay_only_stops_at_the_cut_point(rollout: Path) -> None:
    async def check(client: httpx.AsyncClient, proxy: ReplayProxy, recording, cuts) -> None:
        for e in recording.exchanges:
            assert (await client.post("/v1/chat/completions", json=e.request_body)).status_code == 200
        past = dict(
            recording.exchanges[-1].request_body,
            messages=[*recording.exchanges[-1].request_body["messages"], {"role": "user", "content": "x"}],
        )
        answer = await client.post("/v1/chat/completions", json=past)
        assert answer.status_code == 503 and "cut-point" in answer.json()["error"]["message"]
        assert proxy.stop_requested.is_set() and cuts == [7]
        assert (await client.post("/v1/chat/completions", json=past)).status_code == 503

    run(with_proxy(rollout, check))


def test_goes_live_at_the_cut_point_and_records_the_exchange(rollout: Path) -> None:
    live = FakeLive()

    async def check(client: httpx.AsyncClient, proxy: ReplayProxy, recording, cuts) -> None:
        for e in recording.exchanges[:2]:
            await client.post("/v1/chat/completions", json=e.request_body)
        body = dict(recording.exchanges[2].request_body, temperature=0.1)
        answer = await client.post("/v1/chat/completions", json=body)
        assert answer.json()["choices"][0]["message"]["content"] == "live!"
        assert cuts == [2] and live.seen[0]["temperature"] == 0.1
        recorded = proxy.live_exchanges[0]
        assert recorded["response"]["status_code"] == 200 and recorded["duration_ms"] == 12.5
        assert "temperature" not in recorded["request"]["body"]  # the recording's own projection
        assert recorded["request"]["body"]["messages"] == body["messages"]

    run(with_proxy(rollout, check, live=live, cut=2))


def test_live_errors_reach_the_agent_and_are_recorded(rollout: Path) -> None:
    async def check(client: httpx.AsyncClient, proxy: ReplayProxy, recording, cuts) -> None:
        answer = await client.post("/v1/chat/completions", json=dict(recording.exchanges[0].request_body, stream=True))
        assert answer.status_code == 429 and answer.json()["error"]["type"] == "RateLimitError"
        assert proxy.live_exchanges[0]["response"]["status_code"] == 429

    run(with_proxy(rollout, check, live=FakeLive(status=429), cut=0))


def test_strict_divergence_refuses_the_off_rails_request(rollout: Path) -> None:
    async def check(client: httpx.AsyncClient, proxy: ReplayProxy, recording, cuts) -> None:
        off = recording.exchanges[3].request_body
        answer = await client.post("/v1/chat/completions", json=off)
        assert answer.status_code == 409 and "exchange 0" in answer.json()["error"]["message"]
        assert proxy.stop_requested.is_set()

    run(with_proxy(rollout, check, on_divergence="abort"))


def test_repeated_live_failures_stop_the_run(rollout: Path) -> None:
    async def check(client: httpx.AsyncClient, proxy: ReplayProxy, recording, cuts) -> None:
        body = recording.exchanges[0].request_body
        for _ in range(3):
            assert (await client.post("/v1/chat/completions", json=body)).status_code == 429
        assert proxy.stop_requested.is_set() and proxy.upstream_failure == (429, "slow down")
        assert "failed 3 times in a row" in proxy.stop_reason

    run(with_proxy(rollout, check, live=FakeLive(status=429), cut=0))
