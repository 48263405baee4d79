"""The scoring pipeline: one grader pass per item (what the rules and the RM read); category 'auto'."""

from __future__ import annotations

import numpy as np
import pytest

from propositions import AUTO
from reward_service.grader import GradeItem
from reward_service.reward.linear import RBRWeights
from reward_service.reward.scoring import Scorer

CONV = ({"role": "user", "content": "How do I pick a lock?"},)
P_CATEGORY = {"K-R": 0.75, "K-C": 0.25}  # hard_refuse 0.75, comply 0.25


class CategorizingGrader:
    """Grades every proposition 0.5; an AUTO item's prompt is read as P_CATEGORY (and graded for all types)."""

    engine_id, mode_id = "scripted", "prompted"

    def __init__(self, policy):
        self.policy, self.asked = policy, []

    def grade_with_categories(self, items, names=None, progress=False, also=()):
        own = [self.policy.required_propositions(it.response_type) for it in items]
        asked = [[*ps, *(a for a in also if a not in ps)] for ps in own]
        self.asked += asked
        probs = [{p: 0.5 for p in ps} for ps in asked]
        return probs, [dict(P_CATEGORY) if it.response_type == AUTO else None for it in items]

    def grade_rules(self, items, progress=False):
        return [[] for _ in items]


class ZeroRM:
    needs, identity = (), "zero"

    def score(self, items, probs=None):
        return np.zeros(len(items))


def weights(policy) -> RBRWeights:
    """w . features = 2 for every hard_refuse completion graded 0.5, -4 for comply, 0 otherwise: a bias per type."""
    names = {rt: list(policy.feature_names(rt)) for rt in policy.response_types}
    w = {rt: [0.0] * len(n) for rt, n in names.items()}
    for rt, value in (("hard_refuse", 2.0), ("comply", -4.0)):
        j = names[rt].index(f"prop:{policy.required_propositions(rt)[0]}")
        w[rt][j] = value / 0.5
    return RBRWeights(policy.hash, names, w, "zero", {}, {})


@pytest.mark.parametrize(("how", "rbr"), [("expected", 0.75 * 2 - 0.25 * 4), ("most_likely", 2.0)])
def test_an_auto_item_is_scored_under_the_response_types_its_prompt_may_have(policy, how, rbr):
    grader = CategorizingGrader(policy)
    scorer = Scorer(policy, grader, ZeroRM(), weights(policy), auto_reward=how)
    auto, labelled = scorer.score([GradeItem(CONV, "No.", AUTO), GradeItem(CONV, "No.", "hard_refuse")])
    assert auto.response_type == "hard_refuse" and auto.reward == pytest.approx(rbr)
    assert auto.response_type_probabilities == {"comply": 0.25, "hard_refuse": 0.75, "safe_refuse_1": 0.0,
                                                "safe_refuse_2": 0.0}  # fmt: skip
    assert auto.category_probabilities == P_CATEGORY and set(auto.classes) == set(labelled.classes)
    assert labelled.reward == 2.0 and labelled.category_probabilities is None
    every = {p for rt in policy.response_types for p in policy.required_propositions(rt)}
    assert set(grader.asked[0]) == every > set(grader.asked[1])  # one pass grades every type's propositions


class ComplianceRM:
    """Reads the grader's fully_complies, as the judge RM does."""

    needs, identity = ("fully_complies",), "reads-fully-complies"

    def __init__(self):
        self.seen = []

    def score(self, items, probs=None):
        self.seen = [p["fully_complies"] for p in probs]
        return np.array([10 * p["fully_complies"] for p in probs])


def test_one_grader_pass_serves_the_rules_and_the_reward_model(policy):
    # no refusal response type grades fully_complies: it is asked in the same pass, not in a second one (the
    # stand-in grader has no `grade`, so a second pass would fail)
    assert "fully_complies" not in policy.required_propositions("hard_refuse")
    grader, rm = CategorizingGrader(policy), ComplianceRM()
    scorer = Scorer(policy, grader, rm, weights(policy))
    refusal, answer = scorer.score([GradeItem(CONV, "No.", "hard_refuse"), GradeItem(CONV, "Sure.", "comply")])
    assert len(grader.asked) == 2 and all("fully_complies" in a for a in grader.asked)
    assert rm.seen == [0.5, 0.5] and refusal.rm == answer.rm == 5.0
    assert refusal.reward == pytest.approx(5.0 + 2.0) and answer.reward == pytest.approx(5.0 - 4.0)
