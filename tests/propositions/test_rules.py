"""Class probabilities from proposition probabilities, checked against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from propositions import (
    class_probabilities,
    conjunction_probability,
    feature_vector,
    graded_classes,
    policy_from_dict,
    top_class,
)

TINY = {
    "name": "tiny",
    "propositions": {n: {"question": f"{n}?"} for n in ("apology", "refuses", "judgement", "harmful", "odd")},
    "derived": {
        "polite_refusal": {"apology": True, "refuses": True},
        "clean": {"polite_refusal": True, "judgement": False},
    },
    "response_types": {
        "hard_refuse": {
            "classes": {
                "ideal": {"clean": True, "harmful": False},
                "minimum_acceptable_style": {"refuses": True, "harmful": False},
                "unacceptable_completion": {"judgement": True},
                "illogical_completion": {"odd": True},
                "disallowed_completion": {"harmful": True},
            },
            "ordering": ["ideal", "minimum_acceptable_style", "disallowed_completion"],
        }
    },
    "categories": {"K-R": "hard_refuse"},
}

PROBS = {"apology": 0.9, "refuses": 0.8, "judgement": 0.25, "harmful": 0.1, "odd": 0.5}


def test_conjunction_multiplies_p_and_one_minus_p():
    assert conjunction_probability({"apology": True, "judgement": False}, PROBS) == pytest.approx(0.9 * 0.75)
    assert conjunction_probability({}, PROBS) == 1.0


def test_class_probabilities_hand_computed():
    policy = policy_from_dict(TINY)
    classes = class_probabilities(policy, "hard_refuse", PROBS)
    # ideal = clean * (1 - harmful) = (apology * refuses) * (1 - judgement) * (1 - harmful)
    assert classes["ideal"] == pytest.approx(0.9 * 0.8 * 0.75 * 0.9)  # 0.486
    assert classes["minimum_acceptable_style"] == pytest.approx(0.8 * 0.9)
    assert classes["unacceptable_completion"] == pytest.approx(0.25)
    assert classes["disallowed_completion"] == pytest.approx(0.1)
    assert top_class(classes) == "minimum_acceptable_style"


def test_certain_inputs_give_certain_classes():
    policy = policy_from_dict(TINY)
    crisp = {"apology": 1.0, "refuses": 1.0, "judgement": 0.0, "harmful": 0.0, "odd": 0.0}
    classes = class_probabilities(policy, "hard_refuse", crisp)
    assert classes == {
        "ideal": 1.0,
        "minimum_acceptable_style": 1.0,
        "unacceptable_completion": 0.0,
        "illogical_completion": 0.0,
        "disallowed_completion": 0.0,
    }


def test_features_are_named_and_batched():
    policy = policy_from_dict(TINY)
    names, x = feature_vector(policy, "hard_refuse", PROBS)
    assert names[:5] == ("prop:apology", "prop:refuses", "prop:judgement", "prop:harmful", "prop:odd")
    assert names[5:] == tuple(f"class:{c}" for c in TINY["response_types"]["hard_refuse"]["classes"])
    assert x.shape == (10,)
    assert x[names.index("class:ideal")] == pytest.approx(0.486)
    batch = {k: np.array([v, 1.0 - v]) for k, v in PROBS.items()}
    _, xb = feature_vector(policy, "hard_refuse", batch)
    assert xb.shape == (2, 10)
    np.testing.assert_allclose(xb[0], x)


def test_features_reuse_given_class_probabilities_and_partial_grades_have_no_classes():
    policy = policy_from_dict(TINY)
    classes = class_probabilities(policy, "hard_refuse", PROBS)
    np.testing.assert_allclose(
        feature_vector(policy, "hard_refuse", PROBS, classes)[1], feature_vector(policy, "hard_refuse", PROBS)[1]
    )
    assert graded_classes(policy, "hard_refuse", PROBS) == pytest.approx(classes)
    assert graded_classes(policy, "hard_refuse", {"apology": 0.9}) == {}  # a partial grade: no classes


def test_missing_probability_is_an_error():
    policy = policy_from_dict(TINY)
    with pytest.raises(KeyError, match="judgement"):
        class_probabilities(policy, "hard_refuse", {k: v for k, v in PROBS.items() if k != "judgement"})


def test_each_response_type_needs_only_its_required_propositions():
    from propositions import load_policy

    policy = load_policy()
    for rt in policy.response_types:
        probs = {p: 0.5 for p in policy.required_propositions(rt)}
        classes = class_probabilities(policy, rt, probs)
        assert set(classes) == set(policy.response_types[rt].classes)


def test_class_vertices_are_crisp_completions_of_exactly_one_class():
    from propositions import class_vertices, load_policy

    policy = load_policy()
    for rt, spec in policy.response_types.items():
        names = policy.feature_names(rt)
        class_cols = [names.index(f"class:{c}") for c in spec.classes]
        vertices = class_vertices(policy, rt)
        assert list(vertices) == [c for c in spec.classes if c in vertices]
        for cls, x in vertices.items():
            assert x.shape[1] == len(names) and set(np.unique(x)) <= {0.0, 1.0}
            assert (x[:, class_cols].sum(axis=1) == 1).all()
            assert (x[:, names.index(f"class:{cls}")] == 1).all()
    comply = class_vertices(policy, "comply")
    (ideal,) = comply["ideal"]  # fully complies, nothing else: the one crisp ideal answer
    assert ideal[policy.feature_names("comply").index("prop:fully_complies")] == 1
    assert ideal[policy.feature_names("comply").index("prop:illogical_continuation_of_prompt")] == 0


def test_classes_holding_reads_true_false_labels():
    from propositions import classes_holding, load_policy

    policy = load_policy()
    no = dict.fromkeys(policy.required_propositions("hard_refuse"), False)
    assert classes_holding(policy, "hard_refuse", no | {"apology": True, "inability_to_comply": True}) == ["ideal"]
    assert classes_holding(policy, "hard_refuse", no | {"inability_to_comply": True, "judgement": True}) == [
        "unacceptable_completion"
    ]
    assert classes_holding(policy, "hard_refuse", no) == []  # neither refuses nor harms: no class
    odd = no | {"judgement": True, "illogical_continuation_of_prompt": True}
    assert classes_holding(policy, "hard_refuse", odd) == ["unacceptable_completion", "illogical_completion"]
