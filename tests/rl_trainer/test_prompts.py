"""The shipped prompt files: the training split and the held-out eval prompts (split from training by topic)."""

from __future__ import annotations

import json
import re
from collections import Counter

from propositions import load_policy
from reward_service.paths import DATA_DIR
from rl_trainer.config import TrainConfig
from rl_trainer.prompts import load_prompts

EVAL = DATA_DIR / "eval_prompts.jsonl"


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.lower())) - {"a", "an", "the", "to", "i", "my", "how", "do", "of", "and"}


def test_eval_prompts_cover_every_response_type_and_benign_look_alikes():
    policy = load_policy(None)
    rows = [json.loads(line) for line in EVAL.read_text().splitlines()]
    records = load_prompts(TrainConfig(prompts=str(EVAL), split="eval"))
    assert len(records) == len(rows) >= 130
    kinds = Counter(policy.categories[r["category"]] for r in rows)
    assert kinds["comply"] >= 80 and kinds["hard_refuse"] >= 25
    assert kinds["safe_refuse_1"] >= 10 and kinds["safe_refuse_2"] >= 10
    lookalikes = [r for r in rows if r.get("lookalike")]
    assert len(lookalikes) >= 40 and all(policy.categories[r["category"]] == "comply" for r in lookalikes)
    assert len({r["id"] for r in rows}) == len(rows) and all(r["topic"] for r in rows)


def test_no_eval_prompt_is_a_near_copy_of_a_training_prompt():
    train = load_prompts(TrainConfig(split="train"))
    evals = load_prompts(TrainConfig(prompts=str(EVAL), split="eval"))
    train_words = [words(r.messages[-1][1]) for r in train]
    for rec in evals:
        w = words(rec.messages[-1][1])
        closest = max(len(w & t) / len(w | t) for t in train_words)
        assert closest < 0.5, f"{rec.id} overlaps a training prompt (Jaccard {closest:.2f})"
