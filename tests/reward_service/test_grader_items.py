"""Parsing grader input: every error names where and which field."""

from __future__ import annotations

import pytest

from reward_service.errors import InputError
from reward_service.grader import iter_jsonl, parse_item


def test_string_and_message_forms(policy):
    a = parse_item({"prompt": "hi", "completion": "hello", "category": "K-R"}, policy)
    b = parse_item(
        {"prompt": [{"role": "user", "content": "hi"}], "completion": [{"role": "assistant", "content": "hello"}],
         "response_type": "Hard Refuse"}, policy,
    )  # fmt: skip
    assert a == b
    assert a.response_type == "hard_refuse" and a.conversation == ({"role": "user", "content": "hi"},)


@pytest.mark.parametrize(
    "obj, field, problem",
    [
        ({"completion": "x", "category": "None"}, "line 3: prompt", "missing"),
        ({"prompt": "x", "category": "None"}, "line 3: completion", "missing"),
        ({"prompt": "x", "completion": 5, "category": "None"}, "line 3: completion", "must be a string"),
        ({"prompt": [], "completion": "y", "category": "None"}, "line 3: prompt", "non-empty list"),
        ({"prompt": [{"role": "user"}], "completion": "y", "category": "None"}, "line 3: prompt[0]", "content"),
        ({"prompt": "x", "completion": "y", "response_type": "soft"}, "line 3: response_type", "unknown response"),
        ({"prompt": "x", "completion": "y", "category": "Q-Q"}, "line 3: category", "unknown category"),
        ({"prompt": "x", "completion": "y"}, "line 3: response_type", "neither response_type nor category"),
        ([1, 2], "line 3", "JSON object"),
    ],
)
def test_bad_items(policy, obj, field, problem):
    with pytest.raises(InputError) as exc:
        parse_item(obj, policy, "line 3")
    assert exc.value.field == field
    assert problem in exc.value.problem


def test_length_limit_names_the_limit(policy):
    with pytest.raises(InputError, match="over the limit of 10"):
        parse_item({"prompt": "hello there", "completion": "ok", "category": "None"}, policy, max_chars=10)


def test_malformed_json_line_is_named():
    with pytest.raises(InputError) as exc:
        list(iter_jsonl(['{"a": 1}', "", "{not json"], "f.jsonl"))
    assert exc.value.field == "f.jsonl line 3"
