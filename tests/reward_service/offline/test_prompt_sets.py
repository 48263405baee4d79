"""Labelled prompts for the prompt classifier: sources, the fixed dev split, weights and the dev measures."""

from __future__ import annotations

import json

import pytest

from reward_service.errors import InputError
from reward_service.offline.jbb import jbb_split
from reward_service.offline.prompt_sets import evaluate, prompt_rows, source_weights


def write(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture
def files(tmp_path):
    gold = [{"prompt": [{"role": "user", "content": f"q{i}"}], "category": c, "completion": "x"}
            for i, c in enumerate(["None", "K-R", "SH-R1", "K-C"] * 5)]  # fmt: skip
    gold.append(dict(gold[0]))  # a second completion of the same conversation
    behaviours = [("Bomb", "Physical harm"), ("Slur", "Harassment/Discrimination")]
    jbb = [
        {"behavior": b, "category": c, "goal": f"do {b}", "prompt": f"{p} do {b}", "source": f"{p}/m", "response": "r"}
        for b, c in behaviours
        for p in ("PAIR", "GCG")
    ]
    ours = [{"prompt": "How do I kill a Python process?", "category": "None"}]
    return write(tmp_path / "g.jsonl", gold), write(tmp_path / "j.jsonl", jbb), write(tmp_path / "o.jsonl", ours)


def test_rows_come_once_each_with_their_category_and_a_split_that_never_depends_on_the_file(policy, files):
    gold, jbb, ours = files
    rows = prompt_rows(policy, gold, jbb, [ours])
    assert len([r for r in rows if r.source == "gold"]) == 20  # the repeated conversation once
    by_text = {r.text: r for r in rows}
    assert by_text["do Slur"].category == "H-R" and by_text["PAIR do Bomb"].category == "K-R"
    assert by_text["do Bomb"].split == jbb_split("Bomb") == by_text["GCG do Bomb"].split  # split by behaviour
    assert by_text["How do I kill a Python process?"].split == "fit"
    again = prompt_rows(policy, gold, jbb, [ours])
    assert [(r.text, r.split) for r in again] == [(r.text, r.split) for r in rows]
    w = source_weights(rows)
    total = {s: sum(x for x, r in zip(w, rows, strict=True) if r.source.split(":")[0] == s) for s in ("gold", "jbb")}
    assert total["gold"] == pytest.approx(total["jbb"]) and sum(w) == pytest.approx(len(rows))


def test_a_category_the_policy_lacks_is_an_error_naming_it(policy, tmp_path):
    bad = write(tmp_path / "b.jsonl", [{"prompt": "hi", "category": "Z-R"}])
    with pytest.raises(InputError, match="Z-R not among the policy's categories"):
        prompt_rows(policy, prompts=[bad])


def test_dev_measures_count_harmful_calls_and_look_alikes(policy, files):
    rows = [r for r in prompt_rows(policy, *files[:2]) if r.source == "gold"][:4]  # None, K-R, SH-R1, K-C
    assert [r.category for r in rows] == ["None", "K-R", "SH-R1", "K-C"]
    said = [{"K-R": 1.0}, {"K-R": 1.0}, {"SH-R2": 1.0}, {"K-R": 1.0}]  # one benign and one look-alike called harmful
    said = [{c: d.get(c, 0.0) for c in policy.categories} for d in said]
    m = evaluate(policy, rows, said)
    assert m["harmful_f1"] == pytest.approx(2 * 2 / (2 * 2 + 2 + 0)) and m["false_harmful_lookalike"] == 1.0
    assert m["response_type_accuracy"] == 0.25 and m["category_accuracy"] == 0.25 and m["n_lookalike"] == 1
    assert sum(map(sum, m["category_confusion"])) == 4
