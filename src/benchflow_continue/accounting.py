"""Tokens and cost of a run, the same whatever the provider's usage shape.

OpenAI: ``prompt_tokens``, ``completion_tokens``, ``prompt_tokens_details.cached_tokens``,
``completion_tokens_details.reasoning_tokens``. Anthropic: ``input_tokens``,
``output_tokens``, ``cache_read_input_tokens``, ``cache_creation_input_tokens``.
Gemini: ``promptTokenCount``, ``candidatesTokenCount``, ``cachedContentTokenCount``,
``thoughtsTokenCount`` (also under ``usage_metadata``). Cost comes from LiteLLM's
bundled price map, offline.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

__all__ = ["TOKEN_FIELDS", "cost_usd", "normalize_usage", "totals"]

TOKEN_FIELDS = (
    "n_input_tokens",
    "n_output_tokens",
    "n_cache_read_tokens",
    "n_cache_creation_tokens",
    "n_reasoning_tokens",
    "total_tokens",
)


def _int(*values: Any) -> int:
    for value in values:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return int(value)
    return 0


def normalize_usage(usage: dict[str, Any] | None) -> dict[str, int]:
    """One usage record in benchflow's ``agent_result`` names."""
    usage = usage or {}
    if isinstance(usage.get("usage_metadata"), dict):
        usage = usage["usage_metadata"]
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    if not isinstance(prompt_details, dict):
        prompt_details = {}
    if not isinstance(completion_details, dict):
        completion_details = {}
    prompt = _int(usage.get("prompt_tokens"), usage.get("input_tokens"), usage.get("promptTokenCount"))
    completion = _int(usage.get("completion_tokens"), usage.get("output_tokens"), usage.get("candidatesTokenCount"))
    cache_read = _int(
        usage.get("cache_read_input_tokens"), prompt_details.get("cached_tokens"), usage.get("cachedContentTokenCount")
    )
    reasoning = _int(completion_details.get("reasoning_tokens"), usage.get("thoughtsTokenCount"))
    if "input_tokens" in usage and "prompt_tokens" not in usage:
        # Anthropic counts cached input apart from input_tokens; benchflow's input is all of it
        prompt += cache_read + _int(usage.get("cache_creation_input_tokens"))
    total = _int(usage.get("total_tokens"), usage.get("totalTokenCount")) or prompt + completion + (
        reasoning if "thoughtsTokenCount" in usage else 0
    )
    return {
        "n_input_tokens": prompt,
        "n_output_tokens": completion,
        "n_cache_read_tokens": cache_read,
        "n_cache_creation_tokens": _int(usage.get("cache_creation_input_tokens")),
        "n_reasoning_tokens": reasoning,
        "total_tokens": total,
    }


def load_litellm() -> Any:
    """LiteLLM, imported for offline use (it takes seconds: callers do it off the clock)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch at import
    import litellm

    litellm.suppress_debug_info = True  # its banners go to stdout, where --json output goes
    return litellm


def cost_usd(model: str | None, tokens: dict[str, int]) -> float | None:
    """The price of one call from LiteLLM's bundled map; None for a model it does not price."""
    if not model:
        return None
    litellm = load_litellm()

    try:
        prompt_cost, completion_cost = litellm.cost_per_token(
            model=model,
            prompt_tokens=tokens["n_input_tokens"],
            completion_tokens=tokens["n_output_tokens"],
            cache_read_input_tokens=tokens["n_cache_read_tokens"],
            cache_creation_input_tokens=tokens["n_cache_creation_tokens"],
        )
    except Exception:  # litellm raises for models absent from its map
        return None
    return float(prompt_cost + completion_cost)


def totals(calls: Iterable[tuple[str | None, dict[str, Any] | None]]) -> dict[str, Any]:
    """Summed tokens and cost over (model, usage) pairs; cost is None when no call could be priced."""
    out: dict[str, Any] = dict.fromkeys(TOKEN_FIELDS, 0)
    cost, priced, unpriced = 0.0, 0, 0
    for model, usage in calls:
        tokens = normalize_usage(usage)
        for key, value in tokens.items():
            out[key] += value
        price = cost_usd(model, tokens) if usage else None
        if price is None:
            unpriced += 1 if usage else 0
        else:
            cost, priced = cost + price, priced + 1
    out["cost_usd"] = round(cost, 6) if priced else None
    out["n_calls_unpriced"] = unpriced
    return out
