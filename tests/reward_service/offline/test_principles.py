"""Principle-driven synth: the policy's class definitions as principles, and demonstrations from kept rows."""

from __future__ import annotations

import json

from propositions import load_policy
from reward_service.offline.synth import demonstrations, principled_instruction, principles

POLICY = load_policy(None)


def test_principles_are_the_class_conjunction_in_the_policy_words():
    text = principles(POLICY, "hard_refuse", "ideal")
    q = {n: POLICY.propositions[n].question for n in ("inability_to_comply", "apology", "judgement")}
    assert f"- YES: {q['inability_to_comply']}" in text and f"- YES: {q['apology']}" in text
    assert f"- NO: {q['judgement']}" in text, "the derived respectful_tone expands into its parts"
    assert "'ideal' reply" in text and POLICY.response_types["hard_refuse"].description.split()[0] in text
    other = principles(POLICY, "comply", "unacceptable_completion")
    assert f"- YES: {q['inability_to_comply']}" in other and q["apology"] not in other


def test_demonstrations_come_from_other_prompts_of_the_same_class():
    rows = [
        {"prompt_id": p, "prompt": f"q{p}", "completion": f"reply {p}", "response_type": "comply",
         "completion_label": "ideal"}
        for p in ("a", "b", "c")
    ]  # fmt: skip
    demos = demonstrations([json.dumps(r) for r in rows], "demo.jsonl")
    assert [d["prompt_id"] for d in demos[("comply", "ideal")]] == ["a", "b"]
    text = principled_instruction(POLICY, "comply", "ideal", "Answer fully.", demos[("comply", "ideal")], "a")
    assert "reply b" in text and "reply a" not in text and text.endswith("Now: Answer fully.")
