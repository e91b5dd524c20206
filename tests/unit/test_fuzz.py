"""Any input either loads or raises the tool's own error; the classifier never raises."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchflow_continue.errors import RunFolderError
from benchflow_continue.matching import CLASSES, classify
from benchflow_continue.runfolder import parse_trajectory

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant", "tool", 5])},
    optional={
        "content": json_values,
        "tool_calls": json_values
        | st.lists(st.fixed_dictionaries({"id": st.text(max_size=5), "function": json_values}), max_size=2),
        "tool_call_id": json_values,
    },
)
body = st.fixed_dictionaries(
    {"messages": st.lists(message | json_values, max_size=5)}, optional={"tools": json_values, "model": json_values}
)
exchange_line = st.fixed_dictionaries(
    {},
    optional={
        "request": st.fixed_dictionaries({}, optional={"body": body | json_values}) | json_values,
        "response": st.fixed_dictionaries({}, optional={"status_code": json_values, "body": json_values}) | json_values,
        "duration_ms": json_values,
    },
)
line = st.one_of(exchange_line.map(lambda d: json.dumps(d).encode()), st.binary(max_size=60), st.just(b""))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(line, max_size=6), st.booleans())
def test_trajectory_loader_accepts_or_raises_its_own_error(lines: list[bytes], trailing_newline: bool) -> None:
    data = b"\n".join(lines) + (b"\n" if trailing_newline else b"")
    try:
        exchanges, _ = parse_trajectory(Path("llm_trajectory.jsonl"), data)
    except RunFolderError:
        return
    for exchange in exchanges:
        assert isinstance(exchange.request_body["messages"], list)
        exchange.ok, exchange.usage, exchange.status  # noqa: B018 (each must be computable)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(body, body)
def test_classifier_never_raises(recorded: dict, incoming: dict) -> None:
    assert classify(0, recorded, incoming).kind in CLASSES


fields = st.dictionaries(
    st.sampled_from(
        [
            "agent",
            "task_path",
            "model",
            "environment",
            "timeout_sec",
            "agent_env",
            "source",
            "task_name",
            "rewards",
            "error_category",
            "timing",
            "agent_timeout_info",
            "x",
        ]
    ),
    json_values | st.just("openhands"),
    max_size=6,
)


@settings(
    max_examples=150, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture], deadline=None
)
@given(config=fields, result=fields)
def test_run_folder_fields_load_or_raise_its_own_error(tmp_path_factory, config: dict, result: dict) -> None:
    from benchflow_continue.overview import describe
    from benchflow_continue.runfolder import load_run_folder

    folder = tmp_path_factory.mktemp("run")
    (folder / "trajectory").mkdir()
    (folder / "trajectory" / "llm_trajectory.jsonl").write_text(
        '{"request": {"body": {"messages": []}}, "response": {}}\n'
    )
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "result.json").write_text(json.dumps(result))
    try:
        run = load_run_folder(folder)
    except RunFolderError:
        return
    run.task_name, run.model, run.error_category, run.timeout_sec, run.agent_model_alias  # noqa: B018
    describe(folder)  # inspect never raises on a folder that loads
