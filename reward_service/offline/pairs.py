"""Preference pairs from comparison data, for DPO (Safer-Instruct's use of preference data).

Every two completions of one prompt whose classes the policy's ordering ranks differently make a pair:
the better class is `chosen`, the worse `rejected` (the same pairs `rbr fit` fits the weights on). With the
rows' fitted rewards (a features file from `rbr features` and weights), `min_margin` keeps only pairs whose
reward gap is at least that large. Rows are written in TRL's preference format, conversational
(`prompt`: the messages, `chosen` / `rejected`: one assistant message each) or plain text, with the
prompt's split, so a prompt's pairs never straddle train and test.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from propositions import Policy
from reward_service.errors import InputError
from reward_service.offline.fitting import ComparisonRow, FeatureRow
from reward_service.reward.linear import RBRWeights, make_pairs

__all__ = ["fitted_rewards", "preference_pairs"]


def fitted_rewards(rows: Sequence[ComparisonRow], features: Sequence[FeatureRow], weights: RBRWeights) -> np.ndarray:
    """R = R_rm + w[response type] . features per comparison row; `features` is `rbr features`' output for
    the same file, row by row (checked: same count, prompt ids and labels)."""
    if len(features) != len(rows):
        raise InputError("features", f"{len(features)} rows, but the comparison data has {len(rows)}")
    out = np.empty(len(rows))  # (n,)
    for i, (r, f) in enumerate(zip(rows, features, strict=True)):
        if (f.prompt_id, f.completion_label) != (r.prompt_id, r.completion_label):
            raise InputError(
                f"features line {i + 1}",
                f"is {f.prompt_id}/{f.completion_label}, the data row is {r.prompt_id}/{r.completion_label}: "
                "rerun `rbr features` on this data",
            )
        names = weights.feature_names[f.response_type]
        x = np.array([f.features[n] for n in names])  # (d,)
        out[i] = f.rm + float(weights.rbr_score(f.response_type, x))
    return out


def preference_pairs(
    rows: Sequence[ComparisonRow],
    policy: Policy,
    rewards: np.ndarray | None = None,
    min_margin: float | None = None,
    conversational: bool = True,
) -> list[dict]:
    """One TRL preference row per ranked pair of completions of a prompt (see the module doc)."""
    if min_margin is not None and rewards is None:
        raise InputError("min_margin", "needs fitted rewards: give the features file and the weights")
    out: list[dict] = []
    for rt, spec in policy.response_types.items():
        idx = [i for i, r in enumerate(rows) if r.item.response_type == rt]
        if not idx:
            continue
        pairs = make_pairs([rows[i].prompt_id for i in idx], [rows[i].completion_label for i in idx], spec.ordering)
        for b, w in zip(pairs.better, pairs.worse, strict=True):
            good, bad = rows[idx[b]], rows[idx[w]]
            gap = None if rewards is None else float(rewards[idx[b]] - rewards[idx[w]])
            if min_margin is not None and gap < min_margin:  # type: ignore[operator]
                continue
            out.append(_row(good, bad, rt, gap, conversational))
    return out


def _row(good: ComparisonRow, bad: ComparisonRow, rt: str, gap: float | None, conversational: bool) -> dict:
    messages = [dict(m) for m in good.item.conversation]
    if conversational:
        prompt, chosen, rejected = (
            messages,
            [{"role": "assistant", "content": good.item.completion}],
            [{"role": "assistant", "content": bad.item.completion}],
        )
    elif len(messages) == 1:
        prompt, chosen, rejected = messages[0]["content"], good.item.completion, bad.item.completion
    else:
        raise InputError(f"prompt {good.prompt_id}", "has several turns: plain text pairs need one; use conversational")
    row = {
        "prompt": prompt,
        "chosen": chosen,
        "rejected": rejected,
        "prompt_id": good.prompt_id,
        "response_type": rt,
        "chosen_label": good.completion_label,
        "rejected_label": bad.completion_label,
        "split": good.split,
    }
    return row if gap is None else {**row, "reward_margin": round(gap, 4)}
