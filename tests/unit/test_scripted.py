from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from benchflow_continue.errors import InputError
from benchflow_continue.scripted import ScriptedModel, completion, load_script

from ..conftest import EXAMPLES


def test_turn_is_chosen_by_conversation_state() -> None:
    script = load_script(EXAMPLES / "scripts" / "inventory-report.json")
    fresh = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]}
    first = completion(script, 0, fresh)["choices"][0]["message"]
    assert first["tool_calls"][0]["function"]["name"] == "terminal"
    ids = {
        completion(script, t, fresh)["choices"][0]["message"]["tool_calls"][0]["id"] for t in range(len(script.turns))
    }
    assert len(ids) == len(script.turns)  # unique within a conversation
    beyond = completion(script, 99, fresh)["choices"][0]
    assert beyond["finish_reason"] == "stop" and "no more turns" in beyond["message"]["content"]


def test_server_answers_by_assistant_turns(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"turns": [{"say": "zero"}, {"say": "one"}]}))

    async def go() -> list[str]:
        server = ScriptedModel(load_script(path))
        url = await server.start()
        try:
            async with httpx.AsyncClient() as client:
                out = []
                for assistants in (0, 1, 0):
                    messages = [{"role": "user", "content": "u"}] + [{"role": "assistant", "content": "x"}] * assistants
                    r = await client.post(f"{url}/chat/completions", json={"messages": messages})
                    out.append(r.json()["choices"][0]["message"]["content"])
                return out
        finally:
            await server.stop()

    assert asyncio.run(go()) == ["zero", "one", "zero"]


def test_bad_script(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text('{"turns": 3}')
    with pytest.raises(InputError, match="expected"):
        load_script(path)
