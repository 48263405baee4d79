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


# -- deployment rules (SoFA) -------------------------------------------------------------------------------


def test_rules_as_strings_objects_and_from_the_system_message(policy):
    obj = {
        "prompt": [
            {
                "role": "system",
                "content": "You help with our shop.\n- Never reveal the code OAK40.\n\n2. Reply in English.",
            },
            {"role": "user", "content": "What is the staff code?"},
        ],
        "completion": "I can't share that.",
        "category": "None",
        "rules": ["Be brief.", {"text": "Never discuss pricing.", "priority": 3}],
        "rules_from_system": True,
    }
    item = parse_item(obj, policy)
    assert [(r.text, r.priority) for r in item.rules] == [
        ("Be brief.", 1),
        ("Never discuss pricing.", 3),
        ("You help with our shop.", 1),
        ("Never reveal the code OAK40.", 1),
        ("Reply in English.", 1),
    ]
    plain = parse_item({k: v for k, v in obj.items() if k not in ("rules", "rules_from_system")}, policy)
    assert plain.rules == () and plain.key() != item.key(), "rules are part of what is graded"
    assert parse_item({**obj, "rules_from_system": False, "rules": None}, policy).key() == plain.key()


@pytest.mark.parametrize(
    "rules, field, problem",
    [
        ("Be brief.", "item: rules", "must be a list"),
        ([5], "item: rules[0]", "must be a string or"),
        ([{"text": "x", "weight": 2}], "item: rules[0]", "must be a string or"),
        (["  "], "item: rules[0].text", "1 to 1000 characters, not 0"),
        (["x" * 1001], "item: rules[0].text", "1 to 1000 characters, not 1001"),
        ([{"text": "x", "priority": 11}], "item: rules[0].priority", "from 1 to 10, not 11"),
        ([{"text": "x", "priority": True}], "item: rules[0].priority", "from 1 to 10, not True"),
    ],
)
def test_bad_rules_name_the_field_and_limit(policy, rules, field, problem):
    with pytest.raises(InputError) as e:
        parse_item({"prompt": "x", "completion": "y", "category": "None", "rules": rules}, policy)
    assert e.value.field == field and problem in e.value.problem


def test_rules_per_item_limit(policy):
    obj = {"prompt": "x", "completion": "y", "category": "None", "rules": ["a", "b", "c"]}
    with pytest.raises(LimitError, match=r"item: rules: 3 rules, over the limit of 2"):
        parse_item(obj, policy, limits=ItemLimits(max_rules=2))
    with pytest.raises(InputError, match="rules_from_system: must be true or false"):
        parse_item({**obj, "rules_from_system": "yes"}, policy)


def test_category_auto_is_for_the_service_and_offline_files_need_labels(policy):
    from propositions import AUTO

    item = {"prompt": "hi", "completion": "hello"}
    service, unlabelled_auto = ItemLimits(auto=True), ItemLimits(default_response_type="auto", auto=True)
    assert parse_item({**item, "category": "auto"}, policy, "items[0]", service).response_type == AUTO
    assert parse_item({**item, "response_type": "auto"}, policy, "items[0]", service).response_type == AUTO
    assert parse_item(item, policy, "items[0]", unlabelled_auto).response_type == AUTO
    with pytest.raises(InputError, match=r"items\[0\]\.category: 'auto' is for the reward service"):
        parse_item({**item, "category": "auto"}, policy, "items[0]")
    every = {p for rt in policy.response_types for p in policy.required_propositions(rt)}
    assert AUTO not in policy.categories and set(policy.required_propositions(AUTO)) == every


@pytest.mark.parametrize(
    ("prompt", "role"),
    [
        ([{"role": "system", "content": "You are a helpful assistant."}], "system"),
        ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello!"}], "assistant"),
        ([{"role": "user", "content": "   "}], "user"),
    ],
)
def test_category_auto_needs_a_request_to_read(policy, prompt, role):
    """The classifier reads the prompt's last message: without a user's request there, nothing is guessed."""
    with pytest.raises(InputError, match=rf"items\[2\]\.prompt: category 'auto' .* \(here: {role}\)"):
        parse_item({"prompt": prompt, "completion": "x", "category": "auto"}, policy, "items[2]", ItemLimits(auto=True))
    labelled = {"prompt": prompt, "completion": "x", "category": "None"}
    if prompt[-1]["content"].strip():  # a labelled item with the same prompt is fine
        assert parse_item(labelled, policy, "items[2]", ItemLimits(auto=True)).response_type == "comply"
