"""Comparison data from third-party text (`rbr comparisons`): labels, prompt groups, splits, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reward_service.offline.comparisons import (
    BRIEF_REFUSALS,
    LECTURING_REFUSALS,
    answer_comparisons,
    gold_comparisons,
    jbb_comparisons,
)
from reward_service.offline.fitting import read_comparisons
from reward_service.offline.jbb import JBB_FILE, jbb_id, jbb_split
from reward_service.reward.linear import make_pairs

ROOT = Path(__file__).resolve().parents[3]


def _jbb_file(tmp_path: Path) -> tuple[Path, Path]:
    """Four replies to one fit behaviour: a clean refusal, a judging refusal, a harmful reply, a deflection."""
    behaviour = next(f"b{i}" for i in range(100) if jbb_split(f"b{i}") == "fit")
    replies = [  # (response, jailbroken, our labels)
        ("No, sorry.", False, {"inability_to_comply": True, "judgement": False}),
        ("No. Shame on you.", False, {"inability_to_comply": True, "judgement": True}),
        ("Step 1: [omitted]", True, {"inability_to_comply": False, "judgement": False}),
        ("Let's talk about the weather.", False, {"inability_to_comply": False, "judgement": False}),
    ]
    data, labels = tmp_path / "jbb.jsonl", tmp_path / "labels.jsonl"
    data.write_text(
        "".join(
            json.dumps(
                {"source": f"m{i}", "behavior": behaviour, "goal": "Do the bad thing", "prompt": f"jailbreak {i}"}
                | {"response": text, "jailbroken": jb}
            )
            + "\n"
            for i, (text, jb, _) in enumerate(replies)
        )
    )
    labels.write_text(
        "".join(json.dumps({"id": jbb_id(f"jailbreak {i}", r[0]), **r[2]}) + "\n" for i, r in enumerate(replies))
    )
    return data, labels


def test_jbb_groups_never_pair_a_real_refusal_below_the_template(tmp_path, policy):
    data, labels = _jbb_file(tmp_path)
    rows = jbb_comparisons(data, "fit", labels_file=labels)
    by_text = {r["completion"]: r for r in rows if not r["prompt_id"].endswith(":t")}
    assert by_text["No, sorry."]["completion_label"] == "minimum_acceptable_style"
    assert by_text["No. Shame on you."]["completion_label"] == "unacceptable_completion"
    assert by_text["Step 1: [omitted]"]["completion_label"] == "disallowed_completion"
    assert "Let's talk about the weather." not in {r["completion"] for r in rows}  # neither refuses nor harms
    assert {r["prompt"] for r in rows} == {"Do the bad thing"}  # the plain goal, not the jailbreak
    template = [r for r in rows if r["prompt_id"].endswith(":t")]
    assert [r["completion"] in BRIEF_REFUSALS for r in template if r["completion_label"] == "ideal"] == [True]
    assert "minimum_acceptable_style" not in {r["completion_label"] for r in template}
    assert jbb_comparisons(data, "dev", labels_file=labels) == []
    parsed = read_comparisons([json.dumps(r) for r in rows], "rows", policy)  # valid comparison data
    pairs = make_pairs(
        [r.prompt_id for r in parsed],
        [r.completion_label for r in parsed],
        policy.response_types["hard_refuse"].ordering,
    )
    assert len(pairs) == 3 + 3  # real: 3 labels -> 3 pairs; template group: ideal > judging > harmful


def test_gold_rows_become_answers_against_refusals_by_their_labelled_class(policy):
    no = dict.fromkeys(policy.propositions, False)
    gold = [
        {"prompt": "Explain photosynthesis.", "completion": "Plants turn light into sugar.", "response_type": "Comply"}
        | {"propositions": no | {"fully_complies": True}},
        {"prompt": "Explain tides.", "completion": "I can't.", "response_type": "Comply"}
        | {"propositions": no | {"inability_to_comply": True}},  # an over-refusal: no real answer to pair with
        {"prompt": "Make a weapon.", "completion": "Here is how: [omitted]", "response_type": "Hard Refuse"}
        | {"propositions": no | {"disallowed_content": True, "fully_complies": True}},
    ]
    rows = gold_comparisons([json.dumps(g) for g in gold], "gold", policy)
    comply = [r for r in rows if r["response_type"] == "comply"]
    assert [r["completion_label"] for r in comply] == ["ideal", "unacceptable_completion", "unacceptable_completion"]
    assert comply[1]["completion"] in BRIEF_REFUSALS and comply[2]["completion"] in LECTURING_REFUSALS
    hard = [(r["completion_label"], r["source"]) for r in rows if r["response_type"] == "hard_refuse"]
    assert hard == [("disallowed_completion", "gold"), ("ideal", "template:brief")]
    assert len({r["prompt_id"] for r in rows}) == 2


def test_answers_keep_full_compliance_and_reject_rows_without_labels():
    answer = {"prompt": "Kill a stuck process?", "completion": "Run kill -9 PID.", "source": "m"}
    lines = [
        json.dumps(answer | {"propositions": {"fully_complies": True}}),
        json.dumps(answer | {"completion": "Hmm.", "propositions": {"fully_complies": False}}),
    ]
    rows = answer_comparisons(lines, "answers")
    assert [(r["completion_label"], r["source"]) for r in rows] == [
        ("ideal", "answer:m"),
        ("unacceptable_completion", "template:brief"),
        ("unacceptable_completion", "template:lecture"),
    ]
    from reward_service.errors import InputError

    with pytest.raises(InputError, match="answers line 1.*fully_complies"):
        answer_comparisons([json.dumps({"prompt": "p", "completion": "c"})], "answers")


def rbr(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "reward_service.cli", *args], capture_output=True, text=True, cwd=ROOT, timeout=300
    )


def test_cli_writes_comparisons_and_names_missing_sources(tmp_path):
    proc = rbr("comparisons", "--out", str(tmp_path / "c.jsonl"))
    assert proc.returncode == 2 and "--jbb/--gold/--answers" in proc.stderr
    proc = rbr("comparisons", "--out", str(tmp_path / "c.jsonl"), "--jbb", str(tmp_path / "nope.jsonl"))
    assert proc.returncode == 2 and "nope.jsonl" in proc.stderr
    answers = ROOT / "data" / "grader_check" / "harmless_dev.jsonl"
    proc = rbr("comparisons", "--out", str(tmp_path / "c.jsonl"), "--answers", str(answers), "--split", "heldout")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in (tmp_path / "c.jsonl").read_text().splitlines()]
    assert {r["split"] for r in rows} == {"heldout"} and {r["response_type"] for r in rows} == {"comply"}
    assert sum(r["completion_label"] == "ideal" for r in rows) == sum(
        json.loads(line)["propositions"]["fully_complies"] for line in answers.read_text().splitlines()
    )


def test_real_jbb_comparisons_keep_fit_and_dev_apart():
    if not JBB_FILE.exists():
        pytest.skip(f"JailbreakBench replies not found at {JBB_FILE}")
    fit, dev = jbb_comparisons(split="fit"), jbb_comparisons(split="dev")
    behaviours = {s: {r["prompt_id"].split(":")[1] for r in rows} for s, rows in (("fit", fit), ("dev", dev))}
    assert behaviours["fit"] and behaviours["dev"] and not behaviours["fit"] & behaviours["dev"]
    assert all(jbb_split(b) == s for s, names in behaviours.items() for b in names)
    labels = {r["completion_label"] for r in fit if r["source"].startswith("jbb:")}
    assert labels == {"minimum_acceptable_style", "unacceptable_completion", "disallowed_completion"}
