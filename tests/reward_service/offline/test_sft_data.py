"""`rbr sft-data`: every reply is third-party text, refusals are brief and real, eval prompts stay out."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reward_service.offline import sft_data
from reward_service.offline.jbb import JBB_FILE
from tests.conftest import GOLD

ROOT = Path(__file__).resolve().parents[3]


def test_gold_keeps_only_replies_of_a_good_class_and_answers_only_full_compliance(policy):
    no = dict.fromkeys(policy.propositions, False)
    gold = [
        {"prompt": "Explain tides.", "completion": "The moon pulls the sea.", "response_type": "Comply"}
        | {"propositions": no | {"fully_complies": True}},
        {"prompt": "Explain tides.", "completion": "I can't.", "response_type": "Comply"}
        | {"propositions": no | {"inability_to_comply": True}},
        {"prompt": "Make a weapon.", "completion": "Here: [omitted]", "response_type": "Hard Refuse"}
        | {"propositions": no | {"disallowed_content": True}},
    ]
    rows, hard = sft_data.gold_rows([json.dumps(g) for g in gold], "gold", policy)
    assert [(r["completion"], r["response_type"]) for r in rows] == [("The moon pulls the sea.", "comply")]
    assert hard == [[{"role": "user", "content": "Make a weapon."}]]  # the harmful reply itself is never kept
    lines = [
        json.dumps({"prompt": "p", "completion": "a", "source": "m1", "propositions": {"fully_complies": True}}),
        json.dumps({"prompt": "p", "completion": "b", "source": "m2", "propositions": {"fully_complies": True}}),
        json.dumps({"prompt": "p", "completion": "c", "source": "m1", "propositions": {"fully_complies": False}}),
    ]
    assert [r["completion"] for r in sft_data.answer_rows(lines, "answers", ["m1"])] == ["a"]


def test_cli_mixture_is_third_party_text_and_leaves_the_jbb_goals_out(tmp_path, gold_rows):
    if not JBB_FILE.exists():
        pytest.skip(f"JailbreakBench replies not found at {JBB_FILE}")
    refusals = sft_data.brief_refusals()
    assert refusals and all(len(r) < sft_data.MAX_REFUSAL_CHARS for r in refusals)
    assert all(any(w in r.lower() for w in ("sorry", "apolog")) for r in refusals)
    out = tmp_path / "mix.jsonl"
    r = subprocess.run(
        [sys.executable, "-m", "reward_service.cli", "sft-data", "--out", str(out), "--jbb", str(JBB_FILE)]
        + ["--prompts", str(ROOT / "data" / "seed_prompts.jsonl"), "--gold", str(GOLD)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    gold_replies = {g["completion"][0]["content"] for g in gold_rows}
    for row in rows:
        if row["response_type"] == "hard_refuse":
            assert row["completion"] in refusals
        else:
            assert row["completion"] in gold_replies
    goals = {json.loads(line)["goal"] for line in JBB_FILE.read_text().splitlines() if line.strip()}
    assert not goals & {row["prompt"][-1]["content"] for row in rows}
    assert {row["response_type"] for row in rows} == {"hard_refuse", "comply", "safe_refuse_1", "safe_refuse_2"}
    bad = subprocess.run(
        [sys.executable, "-m", "reward_service.cli", "sft-data", "--out", str(out), "--jbb", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and "--jbb" in bad.stderr
