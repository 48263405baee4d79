"""The data engine's commands: `rbr prompts` (red-team prompts), `rbr induce` (prompts from responses),
`rbr pairs` (preference pairs for DPO), `rbr sft-data` (a warm-start SFT mixture). `rbr synth` (completions per
class) is in rewards.py."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from reward_service.cli._common import add_common, read_lines, settings_and_policy, write_rows
from reward_service.errors import InputError

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    pr = sub.add_parser("prompts", help="topic-guided red-team prompts per content category (SELF-ALIGN)")
    pr.add_argument("--out", required=True, help="seed prompts to append to (resumes); rejections go beside it")
    pr.add_argument("--per-category", type=int, default=5, help="prompts kept per category")
    pr.add_argument("--categories", help="comma-separated categories (default: every one the spec describes)")
    pr.add_argument("--spec", help="red-team spec YAML (default data/redteam.yaml)")
    pr.add_argument("--new-topics", type=int, default=8, help="topics the writer brainstorms per category")
    pr.add_argument("--max-new-tokens", type=int, default=96)
    pr.add_argument("--seed", type=int, default=0)
    add_common(pr)
    pr.set_defaults(func=cmd_prompts)

    ind = sub.add_parser("induce", help="the user request each response answers (Safer-Instruct), filtered")
    ind.add_argument("--responses", required=True, help="JSON lines with a response text (see --field)")
    ind.add_argument("--out", required=True, help="induced prompts to append to (resumes); rejections beside it")
    ind.add_argument("--field", default="response", help="the response text's field (else `completion`)")
    label = ind.add_mutually_exclusive_group(required=True)
    label.add_argument("--category", help="content category of every induced prompt (the policy's)")
    label.add_argument("--response-type", help="response type of every induced prompt")
    ind.add_argument("--limit", type=int, help="only the first N responses")
    ind.add_argument("--min-overlap", type=float, default=0.3, help="relevance: share of request words in the response")
    ind.add_argument("--max-new-tokens", type=int, default=64)
    ind.add_argument("--seed", type=int, default=0)
    add_common(ind)
    ind.set_defaults(func=cmd_induce)

    _register_sft_data(sub)

    pa = sub.add_parser("pairs", help="preference pairs (TRL's prompt/chosen/rejected) from comparison data, for DPO")
    pa.add_argument("--data", required=True, help="comparison data (JSON lines, e.g. data/comparisons/synth.jsonl)")
    pa.add_argument("--out", required=True, help="preference pairs to write (JSON lines)")
    pa.add_argument("--features", help="`rbr features` output for --data: adds each pair's fitted reward margin")
    pa.add_argument("--weights", help="RBR weights for the margins (default: the served default)")
    pa.add_argument("--min-margin", type=float, help="keep pairs whose fitted reward gap is at least this")
    pa.add_argument("--plain", action="store_true", help="plain text prompt/chosen/rejected, not messages")
    add_common(pa)
    pa.set_defaults(func=cmd_pairs)


def _register_sft_data(sub: argparse._SubParsersAction) -> None:
    sf = sub.add_parser(
        "sft-data",
        help="a warm-start SFT mixture from third-party replies: brief refusals, supportive self-harm replies, answers",
    )
    sf.add_argument("--out", required=True, help="SFT rows to write (JSON lines: prompt, completion, response_type)")
    sf.add_argument(
        "--prompts", help="seed prompts whose hard-refuse ones get a real brief refusal (e.g. data/seed_prompts.jsonl)"
    )
    sf.add_argument("--split", default="train", help="only --prompts of this split (default train)")
    sf.add_argument("--gold", help="gold rows: comply and self-harm replies of a good class; hard-refuse conversations")
    sf.add_argument(
        "--jbb", required=True, help="JailbreakBench responses.jsonl: where the real brief refusals come from"
    )
    sf.add_argument("--answers", action="append", help="answers to harmless requests with propositions.fully_complies")
    sf.add_argument("--answer-source", action="append", help="keep only answers of these `source`s (repeatable)")
    add_common(sf)
    sf.set_defaults(func=cmd_sft_data)


def cmd_sft_data(args: argparse.Namespace) -> int:
    from reward_service.offline import sft_data

    _, policy = settings_and_policy(args)
    if not Path(args.jbb).is_file():
        raise InputError("--jbb", f"{args.jbb}: no such file")
    refusals = sft_data.brief_refusals(args.jbb)
    hard, rows = [], []
    if args.prompts:
        hard += [("prompts", p) for p in sft_data.hard_refuse_prompts(*read_lines(args.prompts), policy, args.split)]
    if args.gold:
        good, gold_hard = sft_data.gold_rows(*read_lines(args.gold), policy)
        rows += good
        hard += [("gold", p) for p in gold_hard]
    for path in args.answers or []:
        rows += sft_data.answer_rows(*read_lines(path), args.answer_source)
    for source in dict.fromkeys(s for s, _ in hard):
        rows += sft_data.refusal_rows([p for s, p in hard if s == source], refusals, source)
    if not rows:
        raise InputError("--prompts/--gold/--answers", "no rows: give at least one source")
    note = f"; {len(refusals)} distinct real brief refusals"
    write_rows(args.out, rows, lambda r: f"{r['response_type']} ({r['source']})", note)
    return 0


def cmd_prompts(args: argparse.Namespace) -> int:
    from reward_service.grader import Grader
    from reward_service.offline.redteam import SPEC_PATH, generate_prompts, load_spec
    from reward_service.offline.writers import load_chat_writer

    settings, policy = settings_and_policy(args)
    if args.per_category < 1:
        raise InputError("--per-category", f"must be at least 1, got {args.per_category}")
    only = [c.strip() for c in args.categories.split(",")] if args.categories else None
    spec = load_spec(policy, args.spec or SPEC_PATH, only)  # unknown categories fail before the model loads
    grader = Grader.from_settings(settings, policy=policy)
    write = load_chat_writer(settings, grader, args.max_new_tokens, temperature=1.0)
    summary = generate_prompts(write, spec, Path(args.out), args.per_category, args.new_topics, args.seed)
    print(summary.table())
    return 0


def cmd_induce(args: argparse.Namespace) -> int:
    from reward_service.grader import Grader
    from reward_service.offline.induce import induce, read_responses
    from reward_service.offline.writers import load_chat_writer

    settings, policy = settings_and_policy(args)
    try:  # unknown names fail before the model loads
        policy.resolve_response_type(args.response_type, args.category)
    except KeyError as e:
        raise InputError("--category" if args.category else "--response-type", e.args[0]) from None
    lines, source = read_lines(args.responses)
    responses = read_responses(lines, source, args.field)[: args.limit]
    label = {"category": args.category} if args.category else {"response_type": args.response_type}
    grader = Grader.from_settings(settings, policy=policy)
    write = load_chat_writer(settings, grader, args.max_new_tokens, temperature=0.7)
    summary = induce(responses, write, grader, Path(args.out), label, args.min_overlap, args.seed)
    print(summary.table())
    return 0


def cmd_pairs(args: argparse.Namespace) -> int:
    from collections import Counter

    from reward_service.offline.fitting import read_comparisons, read_features
    from reward_service.offline.pairs import fitted_rewards, preference_pairs
    from reward_service.reward.linear import RBRWeights

    s, policy = settings_and_policy(args)
    lines, source = read_lines(args.data)
    rows = read_comparisons(lines, source, policy)  # an empty file is an InputError
    if args.min_margin is not None and not args.features:
        raise InputError("--min-margin", "needs --features (the `rbr features` output for --data)")
    rewards = None
    if args.features:
        if args.weights and not Path(args.weights).is_file():
            raise InputError("--weights", f"{args.weights}: no such file")
        weights = RBRWeights.load(args.weights or s.weights_path, policy)
        rewards = fitted_rewards(rows, read_features(args.features), weights)
    pairs = preference_pairs(rows, policy, rewards, args.min_margin, conversational=not args.plain)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(p) + "\n" for p in pairs))
    per = Counter((p["response_type"], p["split"]) for p in pairs)
    print(f"wrote {len(pairs)} pairs from {len(rows)} rows to {out}")
    for (rt, split), n in sorted(per.items()):
        print(f"  {rt:16} {split:8} {n:5}")
    return 0
