"""Fitting what deployment rules need (issue 15, SoFA): generic rule heads and the rule term's weights.

Rule triplets (JSON lines, data/rules/triplets.jsonl is ours): `rule_id`, `rule`, `priority`, `instruction_kind`
(related / attack / unrelated), `prompt`, `completion`, `completion_kind` (propositions.RULE_ORDERING's labels),
`labels` {rule_relevant, follows_rule, announces_rule}. Rule safety rows: `rule`, `harmful`.

fit_rule_heads   one logistic-regression head per rule proposition on the answer-position state of the rule's
                 question (any rule: the heads are generic), and a rule_harmful head on the pooled states of the
                 rule's own text; with 5-fold cross-validation grouped by rule for the report.
fit_rule_weights v for the rule term by the policy's hinge loss (linear.fit_hinge), the base reward
                 (R_rm + w . features of the policy) fixed, on out-of-fold rule probabilities, so the weights
                 see the grader's held-out noise; error rates on rules held out of the weights' fit too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from propositions import (
    RULE_FEATURES,
    RULE_FROM_REQUEST,
    RULE_HARM_PROMPT,
    RULE_HARMFUL,
    RULE_ORDERING,
    RULE_PROPOSITIONS,
    Rule,
    rule_features,
    rule_propositions,
)
from reward_service.errors import InputError
from reward_service.grader import GradeItem, Grader, iter_jsonl, rule_template_hashes
from reward_service.grader.heads import FeatureSpec, GraderHeads, head_features
from reward_service.offline.evaluation import fold_indices, score_propositions
from reward_service.offline.jbb import jbb_split
from reward_service.reward.linear import PairSet, fit_hinge, make_pairs, pairwise_error_rate
from reward_service.reward.rule_term import RuleWeights

__all__ = ["Triplet", "fit_rule_heads", "fit_rule_weights", "read_rule_safety", "read_triplets", "requests_as_rules"]

#: Every triplet label, best first: a prompt's completions are all of one instruction kind, so one ordering
#: of the union orders each kind as RULE_ORDERING does.
LABEL_ORDER = tuple(dict.fromkeys(label for order in RULE_ORDERING.values() for label in order))


@dataclass(frozen=True)
class Triplet:
    rule_id: str
    rule: Rule
    kind: str  # related / attack / unrelated
    item: GradeItem
    completion_kind: str
    labels: dict[str, bool]

    @property
    def group(self) -> str:
        """The prompt a completion answers (pairs are formed within it)."""
        return f"{self.rule_id}|{self.item.conversation[-1]['content']}"


def read_triplets(lines: Sequence[str], source: str) -> list[Triplet]:
    out = []
    for n, obj in iter_jsonl(lines, source):
        where = f"{source} line {n}"
        try:
            rule = Rule(text=obj["rule"], priority=obj.get("priority", 1))
            kind, ck, labels = obj["instruction_kind"], obj["completion_kind"], obj["labels"]
            item = GradeItem(({"role": "user", "content": obj["prompt"]},), obj["completion"], "comply", (rule,))
            rid = str(obj["rule_id"])
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(where, f"not a rule triplet ({type(e).__name__}: {e})") from None
        if kind not in RULE_ORDERING or ck not in RULE_ORDERING[kind]:
            raise InputError(f"{where}: completion_kind", f"{ck!r} is not one of {RULE_ORDERING.get(kind, kind)}")
        missing = [p for p in RULE_PROPOSITIONS if not isinstance(labels.get(p), bool)]
        if missing:
            raise InputError(f"{where}: labels", f"needs true/false for {', '.join(missing)}")
        out.append(Triplet(rid, rule, kind, item, ck, {p: labels[p] for p in RULE_PROPOSITIONS}))
    if not out:
        raise InputError(source, "no rule triplets")
    return out


def requests_as_rules(
    jbb_file: str | Path | None, split: str, seed_prompts: Sequence[str] = (), source: str = "seed prompts"
) -> list[tuple[Rule, bool]]:
    """Requests made rules (RULE_FROM_REQUEST): every JailbreakBench goal of `split` (harmful; read at run time,
    third-party) and the seed-prompt-format rows' requests: harmful for a should-refuse category (-R, or SH-R2:
    self-harm methods), harmless for should-comply (None, or -C); self-harm disclosures (SH-R1) are not requests.
    Both kinds come in both styles (imperative JailbreakBench goals and casual questions), so style cannot stand in
    for harm."""
    out: list[tuple[Rule, bool]] = []
    if jbb_file is not None:
        goals = {json.loads(x)["goal"] for x in Path(jbb_file).read_text().splitlines() if x.strip() and
                 jbb_split(json.loads(x)["behavior"]) == split}  # fmt: skip
        out += [(Rule(text=RULE_FROM_REQUEST.format(g)), True) for g in sorted(goals)]
    for _, obj in iter_jsonl(seed_prompts, source):
        cat = str(obj.get("category", ""))
        harmful = cat.endswith("-R") or cat == "SH-R2"
        if isinstance(obj.get("prompt"), str) and (harmful or cat == "None" or cat.endswith("-C")):
            out.append((Rule(text=RULE_FROM_REQUEST.format(obj["prompt"])), harmful))
    return out


def read_rule_safety(lines: Sequence[str], source: str) -> list[tuple[Rule, bool]]:
    out = []
    for n, obj in iter_jsonl(lines, source):
        if (
            not isinstance(obj, dict)
            or not isinstance(obj.get("harmful"), bool)
            or not isinstance(obj.get("rule"), str)
        ):
            raise InputError(f"{source} line {n}", 'needs {"rule": str, "harmful": bool}')
        out.append((Rule(text=obj["rule"]), obj["harmful"]))
    return out


def _cv(x: np.ndarray, y: np.ndarray, groups: Sequence[str], spec: FeatureSpec, k: int = 5) -> np.ndarray:
    out = np.full(len(y), np.nan)
    for tr, te in fold_indices(list(groups), k):
        out[te] = GraderHeads.fit_head(x[tr], y[tr], spec).predict(x[te])
    return out


def fit_rule_heads(
    grader: Grader, triplets: Sequence[Triplet], safety: Sequence[tuple[Rule, bool]], C: float = 0.01
) -> tuple[GraderHeads, np.ndarray, dict]:
    """(heads, out-of-fold probabilities (n, 3) in RULE_PROPOSITIONS order, report) for a grader with hidden states."""
    if not grader.engine.layers:
        raise InputError("grader_backend", "rule heads read hidden states: fit them on the transformers backend")
    items = [t.item for t in triplets]
    questions = [list(rule_propositions(t.rule).values()) for t in triplets]
    ros = grader.ask(items, questions, answer_states=True, progress=True)
    spec = FeatureSpec(pooled_stats=(), pooled_layers=(), answer_layers=tuple(range(len(grader.engine.layers))), C=C)
    labels = [t.labels for t in triplets]
    heads = grader.fit_heads(ros, labels, None, RULE_PROPOSITIONS, spec, questions=rule_template_hashes(grader.fmt))
    groups = [t.rule_id for t in triplets]
    oof = np.zeros((len(triplets), len(RULE_PROPOSITIONS)))
    for j, name in enumerate(RULE_PROPOSITIONS):
        x = np.stack([ro.answer[j][list(spec.answer_layers)].ravel() for ro in ros])  # (n, L * H)
        oof[:, j] = _cv(x, np.array([lab[name] for lab in labels]), groups, spec)
    report = score_propositions(
        {p: np.array([lab[p] for lab in labels]) for p in RULE_PROPOSITIONS},
        {p: oof[:, j] for j, p in enumerate(RULE_PROPOSITIONS)},
    ).as_dict()
    harm_items = [GradeItem(({"role": "user", "content": RULE_HARM_PROMPT},), r.text, "comply") for r, _ in safety]
    harm_ros = grader.readouts(harm_items, [[]] * len(harm_items))
    hspec = FeatureSpec(C=C)
    xh = head_features(harm_ros, None, hspec)  # (m, 2 * L * H)
    yh = np.array([h for _, h in safety])
    heads.heads[RULE_HARMFUL] = GraderHeads.fit_head(xh, yh, hspec)
    harm = score_propositions({RULE_HARMFUL: yh}, {RULE_HARMFUL: _cv(xh, yh, [r.text for r, _ in safety], hspec)})
    report["harmful_rules"] = harm.as_dict()
    heads.info = {"triplets": len(triplets), "rules": len(set(groups)), "rule_safety": len(safety), "cv": report}
    return heads, oof, report


def _pairs(triplets: Sequence[Triplet], idx: np.ndarray) -> PairSet:
    sub = [triplets[i] for i in idx]
    pairs = make_pairs([t.group for t in sub], [t.completion_kind for t in sub], LABEL_ORDER)
    return PairSet(idx[pairs.better], idx[pairs.worse], pairs.margin)


def rule_feature_matrix(triplets: Sequence[Triplet], probs: np.ndarray) -> np.ndarray:
    """(n, 4): priority * rule_features of each triplet's one rule."""
    prio = np.array([t.rule.priority for t in triplets], dtype=float)
    return prio[:, None] * rule_features({p: probs[:, j] for j, p in enumerate(RULE_PROPOSITIONS)})


def _fit(x: np.ndarray, base: np.ndarray, triplets: Sequence[Triplet], idx: np.ndarray, l1: float, inert_weight: int):
    """fit_hinge on the ordered pairs among rows `idx`, plus SoFA's "an irrelevant rule changes nothing": each
    helpful answer to an unrelated request is paired, both ways with margin 0, with itself without the rule (zero
    rule features), `inert_weight` times, which adds inert_weight * |its rule term| to the loss."""
    pairs = _pairs(triplets, idx)
    inert = np.array([i for i in idx if triplets[i].completion_kind == "helpful"], dtype=int)
    inert = np.tile(inert, inert_weight)
    copies = len(triplets) + np.arange(len(inert))  # the rule-free copies, appended after every row
    xa = np.vstack([x, np.zeros((len(inert), x.shape[1]))])
    ba = np.concatenate([base, base[inert]])
    both = PairSet(
        np.concatenate([pairs.better, inert, copies]),
        np.concatenate([pairs.worse, copies, inert]),
        np.concatenate([pairs.margin, np.zeros(2 * len(inert))]),
    )
    return fit_hinge(xa, ba, both, l1=l1)


def fit_rule_weights(
    triplets: Sequence[Triplet],
    probs: np.ndarray,
    base: np.ndarray,
    rule_grader: str,
    l1: float = 0.01,
    inert_weight: int = 2,
) -> RuleWeights:
    """v by the hinge loss with the base reward fixed; error rates per instruction kind on held-out rules (5-fold),
    and the rule term's size on helpful answers to unrelated requests (where it should be 0).

    `inert_weight` trades the two: on the shipped triplets, 1 / 2 / 4 gave held-out pair errors (related, attack)
    0.26, 0.19 / 0.25, 0.23 / 0.28, 0.29 and a median |rule term| on unrelated answers of 0.75 / 0.24 / 0.15."""
    x = rule_feature_matrix(triplets, probs)
    fit = _fit(x, base, triplets, np.arange(len(triplets)), l1, inert_weight)
    held_out = np.full(len(triplets), np.nan)  # base + rule term with v fitted without the row's rule
    for tr, te in fold_indices([t.rule_id for t in triplets], 5):
        v = _fit(x, base, triplets, tr, l1, inert_weight).weights
        held_out[te] = base[te] + x[te] @ v
    metrics = {}
    for kind in RULE_ORDERING:
        idx = np.array([i for i, t in enumerate(triplets) if t.kind == kind])
        pairs = _pairs(triplets, idx)
        metrics[kind] = {
            "pairs": len(pairs),
            "error_base_reward": pairwise_error_rate(base, pairs),
            "error_with_rule_term_heldout_rules": pairwise_error_rate(held_out, pairs),
        }
    inert = np.array([t.completion_kind == "helpful" for t in triplets])
    gap = np.abs(held_out - base)
    metrics["unrelated_helpful_abs_rule_term_heldout_rules"] = {
        "mean": float(gap[inert].mean()),
        "median": float(np.median(gap[inert])),
        "max": float(gap[inert].max()),
    }
    metrics["base_reward_std"] = float(base.std())
    data = {"triplets": len(triplets), "rules": len({t.rule_id for t in triplets}), "l1": l1, "pairs": fit.pairs}
    data["inert_weight"] = inert_weight
    return RuleWeights(list(RULE_FEATURES), [float(w) for w in fit.weights], rule_grader, data, metrics)


def report_table(report: dict, weights: RuleWeights) -> str:
    lines = ["proposition      acc    AUROC  (5-fold CV by rule)"]
    for p in RULE_PROPOSITIONS:
        m = report["propositions"][p]
        lines.append(f"{p:16s} {m['accuracy']:.3f}  {m['auroc']:.3f}")
    h = report["harmful_rules"]["propositions"][RULE_HARMFUL]
    lines.append(f"{RULE_HARMFUL:16s} {h['accuracy']:.3f}  {h['auroc']:.3f}  (5-fold CV over rules)")
    lines.append("\npairwise error rate  kind       pairs  base reward  + rule term (held-out rules)")
    for kind in RULE_ORDERING:
        m = weights.metrics[kind]
        base, held = m["error_base_reward"], m["error_with_rule_term_heldout_rules"]
        lines.append(f"{'':20s} {kind:10s} {m['pairs']:5d}  {base:11.3f}  {held:.3f}")
    inert = weights.metrics["unrelated_helpful_abs_rule_term_heldout_rules"]
    lines.append(
        f"|rule term| on helpful answers to unrelated requests (held-out rules): median {inert['median']:.2f}, "
        f"mean {inert['mean']:.2f}, max {inert['max']:.2f} (base reward std {weights.metrics['base_reward_std']:.2f})"
    )
    lines.append(
        "weights: " + json.dumps(dict(zip(RULE_FEATURES, [round(w, 3) for w in weights.weights], strict=True)))
    )
    return "\n".join(lines)
