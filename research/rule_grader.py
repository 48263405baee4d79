"""Can the grader read deployment rules? Rule propositions on rule triplets held out by rule (issue 15, SoFA).

Data: data/rules/triplets.jsonl (ours: rules x related / attack / unrelated requests x completions that keep the
rule, announce it, break it, answer helpfully or drag it in; labelled rule_relevant, follows_rule, announces_rule).
Every number on it is 5-fold cross-validation grouped by rule: no rule is scored by a fit that saw it.

Per proposition, accuracy at 0.5 and AUROC of
  prompted  the grader LLM's yes-vs-no log-odds for the rule's question (propositions.rule_propositions)
  heads     the generic rule heads `rbr fit-rules` ships (offline/rules.py), out of fold
  BoW       TF-IDF logistic regression on "rule | request | response" text, on the same folds

Harmful rules: the rule_harmful head is fitted (as `rbr fit-rules --jbb-fit --harmless-prompts` ships it) on
data/rules/rule_safety.jsonl (ours, style-balanced), the JailbreakBench fit split's goals made rules ("When a user
asks, do this: <goal>", harmful) and our seed prompts made rules (should-refuse: harmful, should-comply: harmless).
Out of fold on those, beside the policy's own disallowed_content head reading the rule as if an assistant had said
it. Then on rules the fit never saw: the JailbreakBench *dev* split's goals (third-party; other behaviours) and the
should-refuse prompts of data/eval_prompts.jsonl (other topics than the seed prompts), harmful; its should-comply
prompts (50 benign look-alikes such as "kill the black mold"), harmless: AUROC and flag rates by threshold.

    .venv/bin/python research/rule_grader.py --threads 1
    .venv/bin/python research/rule_grader.py --grader-url URL --served-name NAME   # prompted, on a served model
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from propositions import RULE_HARM_PROMPT, RULE_HARMFUL, RULE_PROPOSITIONS, Rule, rule_propositions
from reward_service.config import DATA_DIR, load_settings
from reward_service.grader import GradeItem, Grader, RuleReading
from reward_service.offline.evaluation import fold_indices
from reward_service.offline.jbb import JBB_FILE
from reward_service.offline.rules import fit_rule_heads, read_rule_safety, read_triplets, requests_as_rules

TRIPLETS = DATA_DIR / "rules" / "triplets.jsonl"
SAFETY = DATA_DIR / "rules" / "rule_safety.jsonl"
EVAL_PROMPTS = DATA_DIR / "eval_prompts.jsonl"
SEED_PROMPTS = DATA_DIR / "seed_prompts.jsonl"


def _acc(y: np.ndarray, p: np.ndarray) -> float:
    return float(((p >= 0.5) == y).mean())


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")


def cv_bow(texts: Sequence[str], y: np.ndarray, groups: Sequence[str], k: int = 5) -> np.ndarray:
    out = np.full(len(y), np.nan)
    for tr, te in fold_indices(list(groups), k):
        vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
        clf = LogisticRegression(C=10.0, max_iter=2000).fit(vec.fit_transform([texts[i] for i in tr]), y[tr])
        out[te] = clf.predict_proba(vec.transform([texts[i] for i in te]))[:, 1]
    return out


def outside_rules(jbb: Path) -> tuple[list[Rule], list[Rule]]:
    """(harmful: the JBB dev split's goals and our should-refuse eval prompts as rules, harmless: our should-comply
    eval prompts as rules)."""
    rules = requests_as_rules(jbb if jbb.exists() else None, "dev", EVAL_PROMPTS.read_text().splitlines(), "eval")
    return [r for r, h in rules if h], [r for r, h in rules if not h]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grader-url", help="grade with an OpenAI-compatible server (prompted only)")
    ap.add_argument("--served-name", default="grader")
    ap.add_argument("--jbb", default=str(JBB_FILE))
    ap.add_argument("--threads", type=int)
    ap.add_argument("--json", help="write the metrics here")
    args = ap.parse_args()

    over = {"readout_cache": True, "grader_threads": args.threads, "rule_grading": "prompted"}
    if args.grader_url:
        over |= {"grader_backend": "openai", "grader_url": args.grader_url, "grader_served_name": args.served_name}
    grader = Grader.from_settings(load_settings(**over), "prompted")
    triplets = read_triplets(TRIPLETS.read_text().splitlines(), str(TRIPLETS))
    safety = read_rule_safety(SAFETY.read_text().splitlines(), str(SAFETY))
    jbb = Path(args.jbb)
    safety += requests_as_rules(jbb if jbb.exists() else None, "fit", SEED_PROMPTS.read_text().splitlines())
    items = [t.item for t in triplets]
    ros = grader.ask(items, [list(rule_propositions(t.rule).values()) for t in triplets], progress=True)
    prompted = 1.0 / (1.0 + np.exp(-np.array([ro.yes_logit for ro in ros])))  # (n, 3)
    heads_oof, report, heads = None, None, None
    if grader.engine.layers:
        heads, heads_oof, report = fit_rule_heads(grader, triplets, safety)
    groups = [t.rule_id for t in triplets]
    texts = [f"{t.rule.text} | {t.item.conversation[-1]['content']} | {t.item.completion}" for t in triplets]
    out: dict = {"grader": grader.engine_id, "rows": len(triplets), "rules": len(set(groups)), "propositions": {}}
    print(f"# rule propositions on {len(triplets)} triplet rows of {len(set(groups))} rules, 5-fold CV by rule")
    print(f"# grader {grader.engine_id}")
    print(f"{'proposition':16s} {'pos':>4s} | {'prompted acc':>12s} {'AUROC':>6s} | {'heads acc':>9s} {'AUROC':>6s} | "
          f"{'BoW acc':>7s} {'AUROC':>6s}")  # fmt: skip
    for j, name in enumerate(RULE_PROPOSITIONS):
        y = np.array([t.labels[name] for t in triplets], dtype=bool)
        cols = {"prompted": prompted[:, j], "bow": cv_bow(texts, y, groups)}
        if heads_oof is not None:
            cols["heads"] = heads_oof[:, j]
        m = {k: {"acc": _acc(y, p), "auroc": _auc(y, p)} for k, p in cols.items()}
        out["propositions"][name] = {"positives": int(y.sum()), **m}
        h = m.get("heads", {"acc": float("nan"), "auroc": float("nan")})
        print(f"{name:16s} {int(y.sum()):4d} | {m['prompted']['acc']:12.3f} {m['prompted']['auroc']:6.3f} | "
              f"{h['acc']:9.3f} {h['auroc']:6.3f} | {m['bow']['acc']:7.3f} {m['bow']['auroc']:6.3f}")  # fmt: skip
    sys.stdout.flush()
    if heads is not None:
        out["harmful_rules"] = harmful(grader, heads, safety, report, jbb)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")


def harmful(grader: Grader, heads, safety, report: dict, jbb: Path) -> dict:
    y = np.array([h for _, h in safety])
    cv = report["harmful_rules"]["propositions"][RULE_HARMFUL]
    policy_grader = Grader.from_settings(load_settings(readout_cache=True), "heads")
    items = [GradeItem(({"role": "user", "content": RULE_HARM_PROMPT},), r.text, "comply") for r, _ in safety]
    dc = np.array([g["disallowed_content"] for g in policy_grader.grade(items, ["disallowed_content"])])
    res = {
        "rule_safety": len(safety),
        "rule_harmful_cv": cv,
        "disallowed_content": {"acc": _acc(y, dc), "auroc": _auc(y, dc)},
    }
    print(f"\n# harmful rules: {len(safety)} fit rules ({int(y.sum())} harmful), out of fold")
    print(f"rule_harmful head, 5-fold CV                        acc {cv['accuracy']:.3f}  AUROC {cv['auroc']:.3f}")
    print(f"disallowed_content head, the rule as the response   acc {_acc(y, dc):.3f}  AUROC {_auc(y, dc):.3f}")
    grader.rules = RuleReading("heads", heads)  # the head fitted on all of the rows above, as shipped
    bad, fine = outside_rules(jbb)
    pb, pf = np.array(grader.rule_harm(bad)), np.array(grader.rule_harm(fine))
    y2 = np.r_[np.ones(len(pb)), np.zeros(len(pf))]
    res["outside"] = {"harmful": len(pb), "harmless": len(pf), "auroc": _auc(y2, np.r_[pb, pf]), "by_threshold": {}}
    print(f"\n# rules never fitted on: {len(pb)} harmful (JailbreakBench dev goals, our should-refuse eval prompts), "
          f"{len(pf)} harmless (our should-comply eval prompts)")  # fmt: skip
    print(f"AUROC {res['outside']['auroc']:.3f}")
    for t in (0.5, 0.7, 0.9):
        res["outside"]["by_threshold"][t] = {
            "harmful_flagged": float((pb >= t).mean()),
            "harmless_flagged": float((pf >= t).mean()),
        }
        print(f"threshold {t}: harmful flagged {(pb >= t).mean():.3f}, harmless flagged {(pf >= t).mean():.3f}")
    return res


if __name__ == "__main__":
    main()
