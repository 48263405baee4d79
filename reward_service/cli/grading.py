"""The grader's commands: `rbr grade`, `rbr eval-grader`, `rbr fit-grader`, `rbr fit-rules`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from reward_service.cli._common import add_common, read_lines, settings_and_policy
from reward_service.config import DATA_DIR, MODES, Settings
from reward_service.errors import InputError

if TYPE_CHECKING:
    from propositions import Policy
    from reward_service.grader import GradeItem

__all__ = ["register"]

SIGPIPE_EXIT = 141  # 128 + SIGPIPE: what a shell reports for a tool whose reader closed the pipe


def register(sub: argparse._SubParsersAction) -> None:
    g = sub.add_parser("grade", help="grade items given as JSON lines")
    g.add_argument("file", nargs="?", default="-", help="JSON-lines file, or - for stdin")
    g.add_argument("--json", action="store_true", help="one JSON object per input line")
    g.add_argument("--propositions", help="comma-separated names: grade only these (classes omitted)")
    g.add_argument("--mode", choices=MODES, help="how P(yes) is read (default: from settings)")
    g.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        help="progress bar on stderr (default: on for several items, with --json only if stderr is a terminal)",
    )
    add_common(g)
    g.set_defaults(func=cmd_grade)

    e = sub.add_parser("eval-grader", help="measure the grader on a gold-format file")
    e.add_argument("--gold", required=True, help="gold-format JSON lines with a propositions map per row")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--cv", type=int, help="fit heads/calibrators K-fold (grouped by prompt) instead of loading them")
    e.add_argument("--mode", choices=MODES, help="grader mode (default: the embedded default's)")
    e.add_argument("--no-baseline", action="store_true", help="skip the bag-of-words baseline")
    _fit_data_flags(e, "added to every fold's training data")
    add_common(e)
    e.set_defaults(func=cmd_eval_grader)

    f = sub.add_parser("fit-grader", help="fit calibrators and trained heads on labelled rows")
    f.add_argument("--gold", required=True, help="gold-format JSON lines")
    f.add_argument("--out", help="output .npz (default: the configured heads path)")
    _fit_data_flags(f, "fitted on too")
    add_common(f)
    f.set_defaults(func=cmd_fit_grader)

    r = sub.add_parser("fit-rules", help="fit generic rule heads and the rule term's weights on rule triplets (SoFA)")
    r.add_argument("--triplets", default=str(DATA_DIR / "rules" / "triplets.jsonl"), help="rule triplets, JSON lines")
    r.add_argument("--safety", default=str(DATA_DIR / "rules" / "rule_safety.jsonl"), help="rules labelled harmful")
    r.add_argument(
        "--jbb-fit",
        metavar="FILE",
        help="also fit the harmful-rule head on the JailbreakBench fit split's goals as rules",
    )
    r.add_argument("--harmless-prompts", help="seed prompts whose should-comply requests are harmless rules")
    r.add_argument("--out-heads", help="rule heads .npz (default: the configured rule_heads path)")
    r.add_argument("--out-weights", help="rule-term weights JSON (default: the configured rule_weights path)")
    r.add_argument("--C", type=float, default=0.01, help="inverse L2 strength of the heads")
    r.add_argument("--json", action="store_true", help="print the report as JSON")
    add_common(r)
    r.set_defaults(func=cmd_fit_rules)


def _fit_data_flags(p: argparse.ArgumentParser, use: str) -> None:
    p.add_argument("--aug", action="append", default=[], help=f"more labelled rows (repeatable), {use}")
    p.add_argument("--jbb-fit", metavar="FILE", help=f"the JailbreakBench fit split of FILE (jbb.py), {use}")
    p.add_argument("--jbb-weight", type=float, default=0.3, help="fit weight of each JBB row (default 0.3)")
    p.add_argument("--head-spec", help="JSON FeatureSpec (default: data/grader/head_spec.json)")
    p.add_argument("--no-cache", action="store_true", help="do not cache grader readouts on disk")


# -- rbr grade -----------------------------------------------------------------------------------------


def cmd_grade(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from reward_service.grader import Grader, iter_jsonl, parse_item

    settings, policy = settings_and_policy(args)
    lines, source = read_lines(args.file)
    items = [parse_item(obj, policy, f"{source} line {n}") for n, obj in iter_jsonl(lines, source)]
    if not items:
        raise InputError(source, "no items to grade (empty input)")
    names = _split_names(args.propositions, policy)
    # Everything above validated the whole input: from here on only the grader can fail (exit 1).
    grader = Grader.from_settings(settings, args.mode, policy)
    progress = args.progress if args.progress is not None else len(items) > 1 and (not args.json or sys.stderr.isatty())
    size = _grade_chunk_size(settings)
    try:
        with tqdm(total=len(items), desc="grading", unit="item", disable=not progress, file=sys.stderr) as bar:
            for start in range(0, len(items), size):  # stream: each chunk's lines are out before the next is graded
                chunk = items[start : start + size]
                probs = grader.grade(chunk, names)
                with tqdm.external_write_mode(file=sys.stdout):  # clear the bar while printing to the same terminal
                    for item, p in zip(chunk, probs, strict=True):
                        record = _grade_record(policy, item, p, with_classes=names is None)
                        if args.json:
                            print(json.dumps(record))
                        else:
                            _print_item(item, record)
                    sys.stdout.flush()  # stdout is block-buffered when it is a pipe or a file
                bar.update(len(chunk))
    except BrokenPipeError:  # the reader went away (`rbr grade ... | head`): stop grading, as a shell tool would
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return SIGPIPE_EXIT
    return 0


def cmd_fit_rules(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from reward_service.grader import Grader
    from reward_service.offline.rules import (
        fit_rule_heads,
        fit_rule_weights,
        read_rule_safety,
        read_triplets,
        report_table,
        requests_as_rules,
    )
    from reward_service.reward.linear import RBRWeights
    from reward_service.reward.reward_models import build_reward_model
    from reward_service.reward.scoring import Scorer

    settings, policy = settings_and_policy(args, readout_cache=True)
    triplets = read_triplets(*read_lines(args.triplets))
    safety = read_rule_safety(*read_lines(args.safety))
    harmless = read_lines(args.harmless_prompts) if args.harmless_prompts else ([], "")
    safety += requests_as_rules(args.jbb_fit, "fit", *harmless)
    if settings.grader_backend != "transformers":
        raise InputError("grader_backend", "rule heads read hidden states: fit them on the transformers backend")
    grader = Grader.from_settings(settings.model_copy(update={"rule_grading": "prompted"}), policy=policy)
    heads, oof, report = fit_rule_heads(grader, triplets, safety, args.C)
    out_heads = Path(args.out_heads) if args.out_heads else settings.rule_heads_path
    heads.save(out_heads)
    # The base reward each completion gets without its rule: what the rule term must outweigh.
    rm = build_reward_model(settings, grader.identity)
    scorer = Scorer(policy, grader, rm, RBRWeights.load(settings.weights_path, policy).scaled(settings.rbr_scale))
    base = np.array([s.reward for s in scorer.score([replace(t.item, rules=()) for t in triplets], progress=True)])
    weights = fit_rule_weights(triplets, oof, base, f"{grader.engine_id}:rule-heads@{heads.fingerprint}")
    out_weights = Path(args.out_weights) if args.out_weights else settings.rule_weights_path
    weights.save(out_weights)
    if args.json:
        print(json.dumps({"heads": report, "weights": weights.metrics, "v": weights.weights}, indent=1))
    else:
        print(report_table(report, weights))
        print(f"wrote {out_heads} and {out_weights}")
    return 0


def _split_names(value: str | None, policy: Policy) -> list[str] | None:
    if value is None:
        return None
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise InputError("--propositions", "empty list")
    policy.check_propositions(names, "--propositions")
    return names


def _grade_record(policy: Policy, item: GradeItem, probs: dict[str, float], with_classes: bool) -> dict:
    from propositions import class_probabilities, top_class

    record: dict = {"propositions": {k: round(v, 4) for k, v in probs.items()}}
    if with_classes:
        classes = class_probabilities(policy, item.response_type, probs)
        record["classes"] = {k: round(float(v), 4) for k, v in classes.items()}
        record["top_class"] = top_class(classes)
    return record


def _grade_chunk_size(settings: Settings) -> int:
    """Items `rbr grade` grades per chunk: enough to keep the engine's batches full, few enough to stream."""
    if settings.grader_backend == "openai":
        return settings.grader_concurrency  # requests in flight at once
    if settings.grader_backend == "vllm":
        return 64  # vLLM schedules a chunk as one batch
    b = settings.grader_batch_size
    return b if b == 1 else 4 * b  # several padded batches per chunk keep their length sorting useful


def _print_item(item: GradeItem, record: dict) -> None:
    text = item.completion.replace("\n", " ")
    print(f"# {item.response_type}: {text[:90]}{'...' if len(text) > 90 else ''}")
    for name, p in record["propositions"].items():
        print(f"  {name:38s} {p:6.3f}  {'#' * round(p * 20)}")
    if "classes" in record:
        for name, p in record["classes"].items():
            print(f"  class:{name:32s} {p:6.3f}{'   <- top' if name == record['top_class'] else ''}")
    print()


# -- rbr eval-grader / fit-grader ----------------------------------------------------------------------


def _fit_data(args: argparse.Namespace, policy: Policy):
    """(gold rows, extra rows: --aug files and the JBB fit split) as evaluation.Labelled."""
    from reward_service.offline.evaluation import read_extra, read_labelled

    lines, source = read_lines(args.gold)
    return read_labelled(lines, source, policy), read_extra(args.aug, args.jbb_fit, args.jbb_weight, policy)


def _head_specs(text: str | None):
    """(default FeatureSpec, per-proposition overrides) from --head-spec JSON or data/grader/head_spec.json."""
    from reward_service.grader.heads import load_head_specs

    return load_head_specs(json.loads(text if text else (DATA_DIR / "grader" / "head_spec.json").read_text()))


def cmd_eval_grader(args: argparse.Namespace) -> int:
    from reward_service.grader import Grader
    from reward_service.offline.evaluation import (
        bow_baseline,
        cross_validated_probs,
        labelled_names,
        score_propositions,
    )

    settings, policy = settings_and_policy(args, readout_cache=not args.no_cache)
    mode = args.mode or settings.mode
    gold, extra = _fit_data(args, policy)
    names = labelled_names(policy, gold.labels)
    grader = Grader.from_settings(settings, "prompted" if args.cv else mode, policy)
    if args.cv and mode != "prompted":
        spec, overrides = _head_specs(args.head_spec)
        probs = cross_validated_probs(grader, gold, extra, names, args.cv, mode, spec, overrides, not args.json)
    else:
        if mode != "prompted":
            grader.heads.check_questions(grader.question_hashes(), names, mode)
        ros = grader.readouts(gold.items, [names] * len(gold.items), progress=not args.json)
        graded = [grader.probabilities(ro, names) for ro in ros]
        probs = {p: np.array([g[p] for g in graded]) for p in names}
    y = {p: np.array([lab.get(p) for lab in gold.labels]) for p in names}
    have = {p: np.array([p in lab for lab in gold.labels]) for p in names}

    def scored(pr: dict) -> dict:
        return score_propositions({p: y[p][have[p]].astype(bool) for p in names}, {p: pr[p][have[p]] for p in names})

    result = {"mode": mode, "cv": args.cv, "rows": len(gold.items), **scored(probs).as_dict()}
    if not args.no_baseline:
        bow = bow_baseline(gold.rows(), names, args.cv or 5, extra=extra.rows())
        result["baseline"] = {"bag_of_words": scored(bow).as_dict()}
    if args.json:
        print(json.dumps(result))
    else:
        _print_eval(result, in_sample=mode != "prompted" and not args.cv)
    return 0


def _print_eval(result: dict, in_sample: bool) -> None:
    base = result.get("baseline", {}).get("bag_of_words", {})
    cv = f", {result['cv']}-fold CV grouped by prompt" if result["cv"] else ""
    print(f"grader mode: {result['mode']}{cv}; {result['rows']} rows")
    if in_sample:
        print("note: the shipped heads were fitted on the gold train set; pass --cv K for out-of-sample figures")
    row = "{:38s} {:>4} {:>4} {:>6} {:>6} {:>6} | {:>7} {:>9}"
    print(row.format("proposition", "n", "pos", "acc", "AUROC", "ECE", "BoW acc", "BoW AUROC"))

    def f(x: float | None) -> str:
        return "-" if x is None else f"{x:.3f}"

    for p, s in result["propositions"].items():
        b = base.get("propositions", {}).get(p, {})
        name = p + ("" if p in result["macro_over"] else "*")
        cells = (s["accuracy"], s["auroc"], s["ece"], b.get("accuracy"), b.get("auroc"))
        print(row.format(name, s["n"], s["positives"], *map(f, cells)))
    macro = (result["macro_accuracy"], result["macro_auroc"])
    base_macro = (base.get("macro_accuracy"), base.get("macro_auroc"))
    print(row.format("macro (>=5 positives and negatives)", "", "", *map(f, macro), "", *map(f, base_macro)))
    print("* not in the macro averages (fewer than 5 positives or negatives)")


def cmd_fit_grader(args: argparse.Namespace) -> int:
    from reward_service.grader import Grader
    from reward_service.offline.evaluation import labelled_names

    settings, policy = settings_and_policy(args, readout_cache=not args.no_cache)
    gold, extra = _fit_data(args, policy)
    rows = gold + extra
    names = labelled_names(policy, rows.labels)
    grader = Grader.from_settings(settings, "prompted", policy)
    ros = grader.readouts(rows.items, [names] * len(rows.items), progress=True)
    spec, overrides = _head_specs(args.head_spec)
    info = {
        "fitted_on": [Path(f).name for f in [args.gold, *args.aug]]
        + ([f"jbb fit split (weight {args.jbb_weight})"] if args.jbb_fit else []),
        "rows": len(rows.items),
        "spec": spec.__dict__,
        "overrides": {n: sp.__dict__ for n, sp in overrides.items()},
    }
    heads = grader.fit_heads(ros, rows.labels, rows.weights, names, spec, overrides, info)
    out = Path(args.out) if args.out else settings.heads_path
    heads.save(out)
    print(
        f"wrote {out}: {len(heads.heads)} heads, {len(heads.calibrators)} calibrators, fitted on {len(rows.items)} rows"
    )
    return 0
