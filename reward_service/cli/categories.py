"""`rbr fit-classifier` and `rbr classify`: the prompt classifier behind category 'auto'."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from reward_service.cli._common import add_common, read_lines, settings_and_policy
from reward_service.errors import InputError

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    f = sub.add_parser("fit-classifier", help="fit the prompt classifier (category 'auto') on labelled prompts")
    f.add_argument("--gold", help="gold-format JSON lines (prompt, category): the paper's labelled rows")
    f.add_argument("--jbb", help="JailbreakBench responses JSON lines: goals and jailbreak prompts, harmful")
    f.add_argument("--prompts", action="append", default=[], help="JSON lines with prompt and category (repeatable)")
    f.add_argument("--stats", default="last_turn", help="prompt states read: conversation and/or last_turn")
    f.add_argument("--layers", default="2,3", help="indexes into the grader's read-out layers")
    f.add_argument("--C", type=float, default=0.003, help="inverse L2 strength of the logistic regression")
    f.add_argument(
        "--no-balance",
        action="store_true",
        help="weigh every prompt 1 (default: each source, gold / JailbreakBench / each prompt file, weighs the same)",
    )
    f.add_argument("--out", help="output .npz (default: the configured classifier path)")
    f.add_argument("--report", help="write the dev measures (and the bag-of-words baseline's) as JSON here")
    f.add_argument("--no-cache", action="store_true", help="do not cache the prompts' readouts on disk")
    add_common(f)
    f.set_defaults(func=cmd_fit_classifier)

    c = sub.add_parser("classify", help="add category, response_type and their probabilities to prompts")
    c.add_argument("file", nargs="?", default="-", help="JSON lines with a prompt (string or messages), or -")
    c.add_argument("--out", help="write here instead of stdout")
    add_common(c)
    c.set_defaults(func=cmd_classify)


def _ints(text: str, flag: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        raise InputError(flag, f"must be comma-separated integers, not {text!r}") from None


def cmd_fit_classifier(args: argparse.Namespace) -> int:
    from reward_service.grader import Grader
    from reward_service.grader.categories import CategoryClassifier, ClassifierSpec
    from reward_service.offline.prompt_sets import bag_of_words, evaluate, prompt_rows, source_weights

    if not (args.gold or args.jbb or args.prompts):
        raise InputError("--gold/--jbb/--prompts", "give at least one source of labelled prompts")
    try:
        spec = ClassifierSpec(tuple(args.stats.split(",")), _ints(args.layers, "--layers"), args.C)
    except ValueError as e:
        raise InputError("--stats/--layers", str(e)) from None
    settings, policy = settings_and_policy(args, readout_cache=not args.no_cache)
    rows = prompt_rows(policy, args.gold, args.jbb, args.prompts)
    fit = [r for r in rows if r.split == "fit"]
    dev = [r for r in rows if r.split == "dev"]
    grader = Grader.from_settings(settings, "prompted", policy)
    if max(spec.layers) >= len(grader.engine.layers):
        raise InputError("--layers", f"the grader reads out {len(grader.engine.layers)} layers: indexes 0 to "
                         f"{len(grader.engine.layers) - 1}")  # fmt: skip
    ros = grader.prompt_readouts([r.conversation for r in fit + dev], progress=True)
    weights = None if args.no_balance else source_weights(fit)
    clf = CategoryClassifier.fit(
        ros[: len(fit)], [r.category for r in fit], tuple(policy.categories), spec,
        engine_id=grader.engine_id, prompt_version=grader.fmt.version, layers=grader.engine.layers, weights=weights,
    )  # fmt: skip
    report = {"fit_rows": len(fit), "dev_rows": len(dev), "sources": sorted({r.source for r in rows})}
    if dev:
        report["classifier"] = evaluate(policy, dev, clf.predict(ros[len(fit) :]))
        report["bag_of_words"] = evaluate(policy, dev, bag_of_words(fit, dev, list(policy.categories), weights))
    clf.info = {k: v for k, v in report.items() if k != "bag_of_words"}
    out = Path(args.out) if args.out else settings.classifier_path
    clf.save(out)
    print(f"wrote {out}: {len(policy.categories)} categories, fitted on {len(fit)} prompts", file=sys.stderr)
    if dev:
        _print_dev(report)
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(json.dumps(report, indent=1))
    return 0


def _print_dev(report: dict) -> None:
    def f(x) -> str:
        return "  -  " if x is None else f"{x:.3f}"

    print(f"dev: {report['dev_rows']} third-party prompts no fit saw", file=sys.stderr)
    keys = ("harmful_f1", "false_harmful_lookalike", "response_type_accuracy", "category_accuracy")
    print(f"  {'':28s}" + "".join(f"{k:>26s}" for k in keys), file=sys.stderr)
    for name in ("classifier", "bag_of_words"):
        m = report[name]
        print(f"  {name:28s}" + "".join(f"{f(m[k]):>26s}" for k in keys), file=sys.stderr)
        for src, ms in m["by_source"].items():
            label = f"{src} ({ms['n']})"
            print(f"    {label:26s}" + "".join(f"{f(ms[k]):>26s}" for k in keys), file=sys.stderr)


def cmd_classify(args: argparse.Namespace) -> int:
    from reward_service.grader import Grader, iter_jsonl
    from reward_service.grader.items import messages

    settings, policy = settings_and_policy(args)
    lines, source = read_lines(args.file)
    objs = list(iter_jsonl(lines, source))
    convs = []
    for n, obj in objs:
        if not isinstance(obj, dict) or "prompt" not in obj:
            raise InputError(f"{source} line {n}: prompt", "missing")
        convs.append(messages(obj["prompt"], f"{source} line {n}: prompt", settings.max_messages))
    grader = Grader.from_settings(settings, policy=policy)
    grader.require_classifier("--classifier")  # before reading anything
    out = open(args.out, "w") if args.out else sys.stdout  # noqa: SIM115
    try:
        from tqdm import tqdm

        with tqdm(total=len(objs), desc="classifying", file=sys.stderr, disable=len(objs) < 2) as bar:
            for start in range(0, len(objs), 32):
                chunk = slice(start, start + 32)
                probs = grader.category_probabilities(grader.prompt_readouts(convs[chunk]))
                for (_, obj), p in zip(objs[chunk], probs, strict=True):
                    p_rt = policy.response_type_probabilities(p)
                    rt = max(p_rt, key=p_rt.__getitem__)  # as the service scores it; then its likeliest category
                    cat = max((c for c in p if policy.categories[c] == rt), key=p.__getitem__)
                    obj |= {"category": cat, "response_type": rt}
                    obj |= {"category_probabilities": p, "response_type_probabilities": p_rt}
                    out.write(json.dumps(obj) + "\n")
                out.flush()
                bar.update(len(probs))
    finally:
        if args.out:
            out.close()
    return 0
