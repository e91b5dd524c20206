from __future__ import annotations

import pytest

from benchflow_continue.accounting import normalize_usage, totals


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        pytest.param(
            {
                "prompt_tokens": 100,
                "completion_tokens": 20,
                "total_tokens": 120,
                "prompt_tokens_details": {"cached_tokens": 40},
                "completion_tokens_details": {"reasoning_tokens": 5},
            },
            (100, 20, 40, 0, 5, 120),
            id="openai",
        ),
        pytest.param(
            {"input_tokens": 10, "output_tokens": 20, "cache_read_input_tokens": 60, "cache_creation_input_tokens": 30},
            (100, 20, 60, 30, 0, 120),
            id="anthropic",
        ),
        pytest.param(
            {
                "usage_metadata": {
                    "promptTokenCount": 50,
                    "candidatesTokenCount": 7,
                    "cachedContentTokenCount": 10,
                    "thoughtsTokenCount": 3,
                    "totalTokenCount": 60,
                }
            },
            (50, 7, 10, 0, 3, 60),
            id="gemini",
        ),
        pytest.param(
            {"prompt_tokens": 5, "completion_tokens": 2, "prompt_tokens_details": None}, (5, 2, 0, 0, 0, 7), id="nulls"
        ),
        pytest.param({}, (0, 0, 0, 0, 0, 0), id="none"),
    ],
)
def test_normalize_usage(usage: dict, expected: tuple[int, ...]) -> None:
    got = normalize_usage(usage)
    assert tuple(got.values()) == expected


def test_totals_price_known_models_offline() -> None:
    calls = [
        ("gpt-4o", {"prompt_tokens": 1000, "completion_tokens": 100}),
        ("openai/scripted", {"prompt_tokens": 10, "completion_tokens": 1}),
    ]
    out = totals(calls)
    assert out["n_input_tokens"] == 1010 and out["total_tokens"] == 1111
    assert out["cost_usd"] is not None and out["cost_usd"] > 0
    assert out["n_calls_unpriced"] == 1
    assert totals([("openai/scripted", {"prompt_tokens": 1})])["cost_usd"] is None
