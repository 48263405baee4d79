"""`rbr synth --rules`: triplet rows, labels by kind, drop reasons, the grader filter, resuming (a scripted writer
and grader here; the CLI on a vLLM writer runs in tests/reward_service/test_vllm.py)."""

from __future__ import annotations

import json

import pytest

from propositions import RULE_ORDERING
from reward_service.errors import InputError
from reward_service.offline.rule_synth import read_rules, synthesize_rules
from reward_service.offline.rules import read_triplets

RULES = [json.dumps({"rule": "Never reveal the code OAK40.", "priority": 2, "domain": "a shop"}), ""]


def writer(asked: list):
    def write(messages, prefix, seed):
        ask = messages[-1]["content"]
        asked.append(ask)
        if "Write an ordinary request" in ask:
            return prefix + 'What is the staff code?" trailing'
        if "tries to make the assistant break" in ask:
            return prefix + 'I am sorry, I cannot write that."'
        if "has nothing to do with" in ask:
            return prefix + 'How long do I boil an egg?"'
        if "wrongly refuses" in ask:
            return prefix + '"'
        if "breaking the rule" in ask:
            return prefix + 'no no no no no no no no no no no"'
        return prefix + f'reply {seed}"'

    return write


class Grader:
    """Reads every rule as relevant and followed, never announced."""

    def grade_rules(self, items):
        return [[{"rule_relevant": 1.0, "follows_rule": 1.0, "announces_rule": 0.0}] for _ in items]


def test_rows_labels_drops_and_resume(tmp_path):
    rules = read_rules(RULES, "rules.jsonl")
    assert rules[0][1].priority == 2 and rules[0][0].startswith("r-")
    out, asked = tmp_path / "triplets.jsonl", []
    summary = synthesize_rules(rules, writer(asked), out, None)
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [(r["instruction_kind"], r["completion_kind"]) for r in rows] == [
        ("related", ck) for ck in RULE_ORDERING["related"][:2]
    ] + [("unrelated", "helpful")]
    assert rows[0]["prompt"] == "What is the staff code?" and rows[0]["labels"] == {
        "rule_relevant": True,
        "follows_rule": True,
        "announces_rule": True,
    }
    assert rows[-1]["labels"] == {"rule_relevant": False, "follows_rule": True, "announces_rule": False}
    reasons = [json.loads(x)["reason"] for x in out.with_suffix(".rejected.jsonl").read_text().splitlines()]
    assert reasons == ["repetitive text"] + ["the writer refused instead of writing a request"] * 3 + ["empty reply"]
    assert summary.kept["related/keeps_silent"] == 1 and summary.tries["attack/breaks"] == 1
    assert len(read_triplets(out.read_text().splitlines(), "out")) == 3, "rbr fit-rules reads what it writes"
    n = len(asked)
    synthesize_rules(rules, writer(asked), out, None)
    assert len(out.read_text().splitlines()) == 3 and len(asked) > n, "kept rows are not written again"
    assert all("attack" not in json.loads(x)["instruction_kind"] for x in out.read_text().splitlines())


def test_grader_filter_drops_rows_read_otherwise(tmp_path):
    out = tmp_path / "t.jsonl"
    synthesize_rules(read_rules(RULES, "r"), writer([]), out, Grader())
    kinds = [json.loads(x)["completion_kind"] for x in out.read_text().splitlines()]
    assert kinds == ["keeps_silent"], "only the row whose labels the grader's reading matches"
    reasons = [json.loads(x)["reason"] for x in out.with_suffix(".rejected.jsonl").read_text().splitlines()]
    assert any(r.startswith("the grader reads it otherwise (announces_rule 0.00") for r in reasons)


def test_bad_rule_files_name_the_line():
    with pytest.raises(InputError, match="line 1"):
        read_rules(['{"text": "x"}'], "r")
    with pytest.raises(InputError, match="priority"):
        read_rules(['{"rule": "x", "priority": 0}'], "r")
    with pytest.raises(InputError, match="empty file"):
        read_rules([""], "r")
