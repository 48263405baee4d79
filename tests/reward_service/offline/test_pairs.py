"""Preference pairs for DPO from comparison data (`rbr pairs`)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from propositions import load_policy
from reward_service.errors import InputError
from reward_service.offline.fitting import FeatureRow, read_comparisons
from reward_service.offline.pairs import fitted_rewards, preference_pairs
from reward_service.paths import DATA_DIR
from reward_service.reward.linear import RBRWeights

POLICY = load_policy(None)


def rows(spec: list[tuple[str, str, str, str]]):
    """(prompt id, response type, label, split) -> ComparisonRows with one-line completions."""
    lines = [
        json.dumps(
            {
                "prompt_id": pid,
                "prompt": f"question {pid}",
                "completion": f"{label} answer to {pid}",
                "response_type": rt,
                "completion_label": label,
                "split": split,
            }
        )
        for pid, rt, label, split in spec
    ]
    return read_comparisons(lines, "test", POLICY)


DATA = rows(
    [
        ("a", "hard_refuse", "ideal", "train"),
        ("a", "hard_refuse", "disallowed_completion", "train"),
        ("a", "hard_refuse", "unacceptable_completion", "train"),
        ("b", "comply", "ideal", "heldout"),
        ("b", "comply", "unacceptable_completion", "heldout"),
        ("b", "comply", "ideal", "heldout"),  # two ideal rows: ties make no pair
    ]
)


def test_every_ranked_pair_of_a_prompt_once_better_first_with_its_split():
    pairs = preference_pairs(DATA, POLICY)
    got = sorted((p["prompt_id"], p["chosen_label"], p["rejected_label"], p["split"]) for p in pairs)
    order = POLICY.response_types["hard_refuse"].ordering
    a = [
        ("a", *sorted(x, key=order.index), "train")
        for x in [
            ("ideal", "disallowed_completion"),
            ("ideal", "unacceptable_completion"),
            ("unacceptable_completion", "disallowed_completion"),
        ]
    ]
    assert got == sorted(a + [("b", "ideal", "unacceptable_completion", "heldout")] * 2)
    p = pairs[0]
    assert p["prompt"] == [{"role": "user", "content": "question a"}]
    assert p["chosen"] == [{"role": "assistant", "content": f"{p['chosen_label']} answer to a"}]
    plain = preference_pairs(DATA, POLICY, conversational=False)[0]
    assert plain["prompt"] == "question a" and plain["rejected"] == f"{plain['rejected_label']} answer to a"


def test_min_margin_keeps_pairs_whose_fitted_reward_gap_is_large_enough():
    rewards = np.array([3.0, -2.0, 2.5, 1.0, 0.0, 1.0])
    pairs = preference_pairs(DATA, POLICY, rewards, min_margin=0.8)
    assert sorted((p["prompt_id"], p["reward_margin"]) for p in pairs) == [
        ("a", 4.5),
        ("a", 5.0),
        ("b", 1.0),
        ("b", 1.0),
    ]
    with pytest.raises(InputError, match="min_margin"):
        preference_pairs(DATA, POLICY, None, min_margin=1.0)


def test_fitted_rewards_are_rm_plus_w_dot_features_and_rows_must_line_up():
    names = {rt: list(POLICY.feature_names(rt)) for rt in POLICY.response_types}
    w = RBRWeights(POLICY.hash, names, {rt: [1.0] * len(n) for rt, n in names.items()}, "judge:test", {}, {})
    feats = [
        FeatureRow(
            r.prompt_id,
            r.item.response_type,
            r.completion_label,
            r.split,
            0.5,
            dict.fromkeys(names[r.item.response_type], 0.25),
        )
        for r in DATA
    ]
    got = fitted_rewards(DATA, feats, w)
    np.testing.assert_allclose(got, [0.5 + 0.25 * len(names[r.item.response_type]) for r in DATA])
    with pytest.raises(InputError, match="rerun `rbr features`"):
        fitted_rewards(DATA, feats[1:] + feats[:1], w)


def test_rbr_pairs_cli_writes_trl_preference_rows_and_rejects_bad_input(tmp_path):
    out = tmp_path / "pairs.jsonl"
    cli = [sys.executable, "-m", "reward_service.cli", "pairs"]
    r = subprocess.run(
        [*cli, "--data", str(DATA_DIR / "comparisons" / "synth.jsonl"), "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    pairs = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(pairs) > 300 and {"prompt", "chosen", "rejected", "split"} <= set(pairs[0])
    by_prompt = {}
    for p in pairs:
        by_prompt.setdefault(p["prompt_id"], set()).add(p["split"])
    assert all(len(s) == 1 for s in by_prompt.values()), "a prompt's pairs straddle splits"
    bad = subprocess.run(
        [*cli, "--data", str(DATA_DIR / "comparisons" / "synth.jsonl"), "--out", str(out), "--min-margin", "1"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "--min-margin" in bad.stderr
    synth = str(DATA_DIR / "comparisons" / "synth.jsonl")
    missing = [*cli, "--data", synth, "--out", str(out), "--features", synth, "--weights", str(tmp_path / "no.json")]
    nope = subprocess.run(missing, capture_output=True, text=True)
    assert nope.returncode == 2 and "--weights" in nope.stderr and "no such file" in nope.stderr
    (tmp_path / "empty.jsonl").write_text("")
    empty = subprocess.run(
        [*cli, "--data", str(tmp_path / "empty.jsonl"), "--out", str(out)], capture_output=True, text=True
    )
    assert empty.returncode == 2 and "empty.jsonl: no rows" in empty.stderr
