from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchflow_continue.live import LiveModel
from benchflow_continue.proxy import ReplayProxy
from benchflow_continue.replay import Router
from benchflow_continue.runfolder import load_run_folder
from benchflow_continue.scripted import Script, ScriptedModel

KEY = "run-key"


SCRIPT = Script(
    model="scripted", turns=[{"say": f"live {i}", "call": "think", "arguments": {"thought": str(i)}} for i in range(20)]
)


@asynccontextmanager
async def scripted_live(
    monkeypatch: pytest.MonkeyPatch, failures: dict[int, list[int]] | None = None
) -> AsyncIterator[LiveModel]:
    """The real live path: LiteLLM against the project's scripted model on loopback."""
    server = ScriptedModel(SCRIPT, failures=failures)
    monkeypatch.setenv("OPENAI_BASE_URL", await server.start())
    try:
        yield LiveModel("openai/scripted", backoff=0.01)
    finally:
        await server.stop()


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
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=120) as client:
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


def test_goes_live_at_the_cut_point_and_records_the_exchange(rollout: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def go() -> None:
        async with scripted_live(monkeypatch) as live:

            async def check(client: httpx.AsyncClient, proxy: ReplayProxy, recording, cuts) -> None:
                for e in recording.exchanges[:2]:
                    await client.post("/v1/chat/completions", json=e.request_body)
                body = dict(recording.exchanges[2].request_body, temperature=0.1)
                answer = await client.post("/v1/chat/completions", json=body)
                assert answer.status_code == 200 and cuts == [2]
                # two assistant turns in the request: the scripted model answers turn 2
                assert answer.json()["choices"][0]["message"]["content"] == "live 2"
                recorded = proxy.live_exchanges[0]
                assert recorded["response"]["status_code"] == 200 and recorded["duration_ms"] > 0
                assert recorded["response"]["body"]["usage"]["total_tokens"] > 0
                assert "temperature" not in recorded["request"]["body"]  # the recording's own projection
                assert recorded["request"]["body"]["messages"] == body["messages"]
                assert recorded["metadata"]["provider_model"] == "openai/scripted"

            await with_proxy(rollout, check, live=live, cut=2)

    run(go())


def test_transient_failures_are_retried_and_every_attempt_recorded(
    rollout: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def go() -> None:
        async with scripted_live(monkeypatch, failures={0: [429, 500]}) as live:

            async def check(client: httpx.AsyncClient, proxy: ReplayProxy, recording, cuts) -> None:
                answer = await client.post("/v1/chat/completions", json=recording.exchanges[0].request_body)
                assert answer.status_code == 200 and answer.json()["choices"][0]["message"]["content"] == "live 0"
                assert [x["response"]["status_code"] for x in proxy.live_exchanges] == [429, 500, 200]
                assert "scripted failure 429" in proxy.live_exchanges[0]["response"]["body"]["error"]["message"]

            await with_proxy(rollout, check, live=live, cut=0)

    run(go())


def test_exhausted_retries_reach_the_agent_as_the_providers_error(
    rollout: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def go() -> None:
        async with scripted_live(monkeypatch, failures={0: [429] * 20}) as live:

            async def check(client: httpx.AsyncClient, proxy: ReplayProxy, recording, cuts) -> None:
                body = recording.exchanges[0].request_body
                answer = await client.post("/v1/chat/completions", json=dict(body, stream=True))
                assert answer.status_code == 429 and "RateLimit" in answer.json()["error"]["type"]
                assert len(proxy.live_exchanges) == live.max_attempts
                for _ in range(2):
                    await client.post("/v1/chat/completions", json=body)
                assert proxy.stop_requested.is_set() and proxy.upstream_failure[0] == 429
                assert "failed 3 times in a row" in proxy.stop_reason

            await with_proxy(rollout, check, live=live, cut=0)

    run(go())


def test_live_answers_stream_through(rollout: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def go() -> None:
        async with scripted_live(monkeypatch) as live:

            async def check(client: httpx.AsyncClient, proxy: ReplayProxy, recording, cuts) -> None:
                body = dict(recording.exchanges[0].request_body, stream=True)
                answer = await client.post("/v1/chat/completions", json=body)
                assert answer.headers["content-type"].startswith("text/event-stream")
                events = [e for e in answer.text.split("\n\n") if e]
                assert events[-1] == "data: [DONE]" and len(events) > 2
                recorded = proxy.live_exchanges[0]["response"]["body"]  # the assembled completion
                message = recorded["choices"][0]["message"]
                assert message["content"] == "live 0" and message["tool_calls"][0]["function"]["name"] == "think"
                assert message["tool_calls"][0]["id"] == "call_00"

            await with_proxy(rollout, check, live=live, cut=0)

    run(go())


def test_strict_divergence_refuses_the_off_rails_request(rollout: Path) -> None:
    async def check(client: httpx.AsyncClient, proxy: ReplayProxy, recording, cuts) -> None:
        off = recording.exchanges[3].request_body
        answer = await client.post("/v1/chat/completions", json=off)
        assert answer.status_code == 409 and "exchange 0" in answer.json()["error"]["message"]
        assert proxy.stop_requested.is_set()

    run(with_proxy(rollout, check, on_divergence="abort"))


def test_oversized_bodies_are_refused(rollout: Path) -> None:
    async def check(client: httpx.AsyncClient, proxy: ReplayProxy, recording, cuts) -> None:
        huge = b'{"messages": ["' + b"x" * (65 * 1024 * 1024) + b'"]}'
        answer = await client.post("/v1/chat/completions", content=huge)
        assert answer.status_code == 413 and proxy.router.served == []
        assert (await client.get("/health")).json()["status"] == "ok"  # and the proxy is still up

    run(with_proxy(rollout, check))
