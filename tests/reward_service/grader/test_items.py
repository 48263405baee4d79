"""Parsing grader input: every error names where and which field."""

from __future__ import annotations

import pytest

from reward_service.errors import InputError, LimitError
from reward_service.grader import ItemLimits, iter_jsonl, parse_item


def test_string_and_message_forms(policy):
    a = parse_item({"prompt": "hi", "completion": "hello", "category": "K-R"}, policy)
    b = parse_item(
        {
            "prompt": [{"role": "user", "content": "hi"}],
            "completion": [{"role": "assistant", "content": "hello"}],
            "response_type": "Hard Refuse",
        },
        policy,
    )
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
        ({"prompt": "x", "completion": "y"}, "line 3: response_type", "RBR_DEFAULT_RESPONSE_TYPE"),
        ({"prompt": "x", "completion": "y", "response_type": ""}, "line 3: response_type", "unknown response"),
        ({"prompt": "hi \ud800", "completion": "y", "category": "None"}, "line 3: prompt", "lone surrogate"),
        (
            {"prompt": [{"role": "u\udfff", "content": "x"}], "completion": "y", "category": "None"},
            "line 3: prompt[0].role",
            "lone surrogate",
        ),
        ({"prompt": "x", "completion": "y \ud800 z", "category": "None"}, "line 3: completion", "\\ud800"),
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
        parse_item(
            {"prompt": "hello there", "completion": "ok", "category": "None"}, policy, limits=ItemLimits(max_chars=10)
        )


def test_limits_count_roles_and_messages(policy):
    """Everything that reaches the grader counts: a huge role is as long as a huge message."""
    role = {"prompt": [{"role": "x" * 50, "content": "hi"}], "completion": "ok", "category": "None"}
    assert parse_item(role, policy, limits=ItemLimits(max_chars=60)).conversation[0]["role"] == "x" * 50
    with pytest.raises(LimitError, match="54 characters, over the limit of 40"):
        parse_item(role, policy, limits=ItemLimits(max_chars=40))
    many = {"prompt": [{"role": "user", "content": ""}] * 5, "completion": "ok", "category": "None"}
    assert len(parse_item(many, policy, limits=ItemLimits(max_messages=5)).conversation) == 5
    with pytest.raises(LimitError, match="6 messages, over the limit of 5") as e:
        six = [{"role": "user", "content": ""}] * 6
        parse_item({**many, "prompt": six}, policy, "items[0]", ItemLimits(max_messages=5))
    assert e.value.field == "items[0].prompt"


def test_default_response_type_applies_only_when_both_are_missing(policy):
    obj = {"prompt": "x", "completion": "y"}
    assert parse_item(obj, policy, limits=ItemLimits(default_response_type="comply")).response_type == "comply"
    assert (
        parse_item({**obj, "category": "K-R"}, policy, limits=ItemLimits(default_response_type="comply")).response_type
        == "hard_refuse"
    )


def test_malformed_json_line_is_named():
    with pytest.raises(InputError) as exc:
        list(iter_jsonl(['{"a": 1}', "", "{not json"], "f.jsonl"))
    assert exc.value.field == "f.jsonl line 3"
