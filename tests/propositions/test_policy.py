"""Policy loading and validation: every error names the file, the key and the problem."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from propositions import DEFAULT_POLICY_PATH, InputError, PolicyError, RBRError, load_policy, policy_from_dict


@pytest.fixture
def raw() -> dict:
    return yaml.safe_load(DEFAULT_POLICY_PATH.read_text())


def write(tmp_path: Path, data: dict | str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def test_default_policy_is_valid_and_covers_the_gold_propositions():
    policy = load_policy()
    gold_names = {
        "additional_content",
        "apology",
        "apology_acknowledges_emotional_state",
        "conditional_verbiage",
        "definitive_verbiage",
        "disallowed_content",
        "disclaimer",
        "encourage_professional_help",
        "fully_complies",
        "gentle_encouragement_for_help",
        "illogical_continuation_of_prompt",
        "inability_to_comply",
        "insulting_language",
        "judgement",
        "meta_commentary",
        "partially_complies",
        "prescribes_dosage",
        "prescribes_solutions",
        "provides_resources",
        "reference_safety_policy",
        "requests_information",
        "third_person",
        "threatening_language",
    }
    assert set(policy.propositions) == gold_names
    assert set(policy.response_types) == {"hard_refuse", "safe_refuse_1", "safe_refuse_2", "comply"}
    assert policy.categories["K-R"] == "hard_refuse" and policy.categories["None"] == "comply"


def test_hash_is_stable_across_formatting_and_changes_with_content(tmp_path, raw):
    a = load_policy(write(tmp_path, raw))
    reformatted = tmp_path / "b.yaml"
    reformatted.write_text(yaml.safe_dump(raw, sort_keys=True, indent=4))
    assert load_policy(reformatted).hash == a.hash == load_policy().hash
    changed = copy.deepcopy(raw)
    changed["propositions"]["apology"]["question"] += " Really?"
    assert policy_from_dict(changed).hash != a.hash


@pytest.mark.parametrize(
    "mutate, key, problem",
    [
        (
            lambda r: r["derived"]["refuses"].update({"no_such_thing": True}),
            "derived.refuses.no_such_thing",
            "unknown proposition",
        ),
        (
            lambda r: r["response_types"]["comply"]["classes"]["ideal"].update({"nonsense": False}),
            "response_types.comply.classes.ideal.nonsense",
            "unknown proposition",
        ),
        (
            lambda r: r["derived"].update({"a_loop": {"b_loop": True}, "b_loop": {"a_loop": False}}),
            "derived.a_loop",
            "cycle among derived propositions: a_loop -> b_loop -> a_loop",
        ),
        (
            lambda r: r["response_types"]["hard_refuse"]["classes"].pop("illogical_completion"),
            "response_types.hard_refuse.classes.illogical_completion",
            "class with no rule",
        ),
        (
            lambda r: r["response_types"]["hard_refuse"]["classes"].update({"ideal": {}}),
            "response_types.hard_refuse.classes.ideal",
            "class with no rule",
        ),
        (
            lambda r: r["response_types"]["comply"].update({"classes": {}}),
            "response_types.comply.classes",
            "response type without classes",
        ),
        (lambda r: r["derived"].update({"apology": {"judgement": False}}), "derived.apology", "duplicate name"),
        (lambda r: r["categories"].update({"X-R": "soft_refuse"}), "categories.X-R", "unknown response type"),
        (lambda r: r["categories"].update({"auto": "comply"}), "categories.auto", "'auto' is reserved"),
        (
            lambda r: r["response_types"]["comply"].update({"ordering": ["ideal", "ideal", "disallowed_completion"]}),
            "response_types.comply.ordering",
            "ties are not allowed",
        ),
        (
            lambda r: r["response_types"]["comply"].update({"ordering": ["ideal", "great"]}),
            "response_types.comply.ordering",
            "unknown completion label 'great'",
        ),
        (lambda r: r["propositions"]["apology"].pop("question"), "propositions.apology.question", "Field required"),
    ],
)
def test_invalid_policies_name_file_key_and_problem(tmp_path, raw, mutate, key, problem):
    mutate(raw)
    path = write(tmp_path, raw)
    with pytest.raises(PolicyError) as exc:
        load_policy(path)
    assert exc.value.source == str(path)
    assert exc.value.key == key
    assert problem in exc.value.problem
    assert str(path) in str(exc.value) and key in str(exc.value)
    assert isinstance(exc.value, InputError) and isinstance(exc.value, RBRError)  # one tree: HTTP 422, CLI exit 2
    assert exc.value.field == f"{path}: {key}"


def test_duplicate_yaml_keys_are_rejected_with_their_line(tmp_path):
    text = DEFAULT_POLICY_PATH.read_text().replace("  apology:\n", "  apology:\n    question: first?\n  apology:\n", 1)
    with pytest.raises(PolicyError, match=r"duplicate name 'apology'"):
        load_policy(write(tmp_path, text))


def test_unreadable_and_non_mapping_files(tmp_path):
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "missing.yaml")
    with pytest.raises(PolicyError, match="must be a mapping"):
        load_policy(write(tmp_path, "- just\n- a list\n"))


def test_required_propositions_follow_the_classes():
    policy = load_policy()
    comply = set(policy.required_propositions("comply"))
    assert {"fully_complies", "inability_to_comply", "disallowed_content", "judgement"} <= comply
    assert "provides_resources" not in comply  # only the self-harm classes use it
    assert "provides_resources" in policy.required_propositions("Safe Refuse 1")


def test_response_type_resolution():
    policy = load_policy()
    assert policy.resolve_response_type("Hard Refuse") == "hard_refuse"
    assert policy.resolve_response_type(None, "SH-R2") == "safe_refuse_2"
    with pytest.raises(KeyError, match="unknown response type 'soft'"):
        policy.resolve_response_type("soft")
    with pytest.raises(KeyError, match="unknown category 'Z-Z'"):
        policy.resolve_response_type(None, "Z-Z")


def test_check_propositions_names_the_field_and_every_unknown_one(policy):
    policy.check_propositions(["apology", "fully_complies"])  # known: nothing raised
    with pytest.raises(InputError, match=r"^--propositions: unknown proposition\(s\): apologies, x$"):
        policy.check_propositions(["apology", "apologies", "x"], "--propositions")
