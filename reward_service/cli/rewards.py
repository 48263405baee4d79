"""The reward's commands: `rbr features`, `rbr synth`, `rbr comparisons`, `rbr fit`, `rbr eval-rewards`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from reward_service.cli._common import add_common, read_lines, settings_and_policy, write_rows
from reward_service.config import DATA_DIR
from reward_service.errors import InputError

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    ft = sub.add_parser("features", help="grader features and RM scores for comparison data")
    ft.add_argument("--data", required=True, help="comparison data (JSON lines)")
    ft.add_argument("--out", required=True, help="features file to write (JSON lines)")
    ft.add_argument("--no-cache", action="store_true", help="recompute every row")
    add_common(ft)
    ft.set_defaults(func=cmd_features)

    _register_synth(sub)

    _register_comparisons(sub)
    _register_fit(sub)

    ev = sub.add_parser("eval-rewards", help="pairwise error rates of weights on a features file")
    ev.add_argument("--features", required=True)
    ev.add_argument("--weights", required=True)
    ev.add_argument("--split", choices=["heldout", "train", "all"], default="all")
    ev.add_argument("--json", action="store_true")
    ev.add_argument("--accuracy", action="store_true", help="print pairwise accuracy (1 - error rate)")
    add_common(ev)
    ev.set_defaults(func=cmd_eval_rewards)


def _register_comparisons(sub: argparse._SubParsersAction) -> None:
    co = sub.add_parser(
        "comparisons",
        help="comparison data from third-party text: JailbreakBench replies, gold rows, answers to harmless requests",
    )
    co.add_argument("--out", required=True, help="comparison data to write (JSON lines, for `rbr features`)")
    co.add_argument(
        "--jbb", help="JailbreakBench responses.jsonl (hard_refuse: real refusals against real harmful replies)"
    )
    co.add_argument("--jbb-split", choices=["fit", "dev"], default="fit", help="which behaviours (dev: never fit on)")
    co.add_argument("--gold", help="gold rows labelled with every proposition (e.g. rbr_gold/train.jsonl)")
    co.add_argument(
        "--answers",
        action="append",
        help="answers to requests that should be answered (prompt, completion, propositions.fully_complies); "
        "repeatable",
    )
    co.add_argument("--split", choices=["train", "heldout"], default="train", help="the rows' split field")
    add_common(co)
    co.set_defaults(func=cmd_comparisons)


def _register_fit(sub: argparse._SubParsersAction) -> None:
    fi = sub.add_parser("fit", help="fit RBR weights on features files (exact hinge-loss LP/QP)")
    fi.add_argument(
        "--features",
        required=True,
        action="append",
        help="features file from `rbr features` (repeatable: synthetic and third-party comparisons together)",
    )
    fi.add_argument("--out", required=True, help="weights JSON to write")
    fi.add_argument("--report", help="folder for report.json and rewards.png")
    fi.add_argument(
        "--dev",
        help="features of third-party comparisons no fit sees (`rbr comparisons --jbb-split dev`): pairwise "
        "accuracy of RM, RBR and RM + RBR per response type, in the report",
    )
    fi.add_argument("--margin", action="append", help="LABEL=X: margin of pairs whose worse label is LABEL (default 1)")
    fi.add_argument(
        "--order-margin",
        type=float,
        default=1.0,
        help="every crisp completion of a class scores at least this above every one of the next class, RM equal "
        "(the policy's order as constraints on the fit)",
    )
    fi.add_argument("--no-order", action="store_true", help="fit without the order constraints (measured, not advised)")
    fi.add_argument(
        "--rbr-alone",
        type=float,
        default=1.0,
        help="weight of a second hinge loss on the same pairs without the RM, so the RBR term orders them by itself",
    )
    fi.add_argument(
        "--max-weight",
        type=float,
        default=10.0,
        help="bound on every |weight| (default 10; the fit stays a linear program); 0: no bound",
    )
    fi.add_argument("--l1", type=float, default=0.0, help="L1 penalty on the weights")
    fi.add_argument(
        "--l2",
        type=float,
        default=0.0,
        help="L2 penalty on the weights (a QP: slow with the order constraints; --max-weight bounds them instead)",
    )
    add_common(fi)
    fi.set_defaults(func=cmd_fit)


def _register_synth(sub: argparse._SubParsersAction) -> None:
    sy = sub.add_parser(
        "synth",
        help="generate graded comparison data from seed prompts (or rule triplets from rules) with the grader's LLM",
    )
    src = sy.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompts", help="seed prompts (JSON lines: id, prompt, category|response_type)")
    src.add_argument(
        "--rules",
        help="deployment rules (JSON lines: rule, rule_id?, priority?, domain?): write rule triplets (rbr fit-rules)",
    )
    sy.add_argument("--no-filter", action="store_true", help="--rules: keep rows the grader reads otherwise")
    sy.add_argument("--out", required=True, help="comparison data to append to (resumes); rejections go beside it")
    sy.add_argument("-k", type=int, default=3, help="attempts per prompt and label")
    sy.add_argument("--threshold", type=float, default=0.5, help="min grader P(intended class) to keep")
    sy.add_argument("--limit", type=int, help="only the first N prompts")
    sy.add_argument("--max-new-tokens", type=int, default=160)
    sy.add_argument("--seed", type=int, default=0)
    sy.add_argument(
        "--only",
        action="append",
        metavar="RT/LABEL",
        help="only this response_type/label pair (repeatable), e.g. comply/minimum_acceptable_style",
    )
    sy.add_argument(
        "--principles",
        action="store_true",
        help="principle-driven writing: the class's rules from the policy and demonstrations precede each instruction",
    )
    sy.add_argument("--demos", help="kept synth rows to show as demonstrations (default: data/comparisons/synth.jsonl)")
    add_common(sy)
    sy.set_defaults(func=cmd_synth)


def cmd_features(args: argparse.Namespace) -> int:
    from reward_service.grader import Grader
    from reward_service.offline.fitting import read_comparisons, write_features
    from reward_service.paths import cache_dir
    from reward_service.reward.reward_models import build_reward_model
    from reward_service.reward.scoring import FeatureCache, Scorer

    settings, policy = settings_and_policy(args)
    rows = read_comparisons(*read_lines(args.data), policy)
    grader = Grader.from_settings(settings, policy=policy)
    scorer = Scorer(policy, grader, build_reward_model(settings, grader.identity), None)
    cache = None if args.no_cache else FeatureCache(cache_dir() / "features", scorer.identity)
    scored = scorer.score([r.item for r in rows], cache, progress=True)
    write_features(args.out, rows, scored, policy, scorer.identity)
    print(f"wrote {args.out}: {len(rows)} rows ({scorer.identity})", file=sys.stderr)
    return 0


def cmd_comparisons(args: argparse.Namespace) -> int:
    from reward_service.offline import comparisons as cmp

    _, policy = settings_and_policy(args)
    if not (args.jbb or args.gold or args.answers):
        raise InputError("--jbb/--gold/--answers", "give at least one source")
    rows: list[dict] = []
    if args.jbb:
        if not Path(args.jbb).is_file():
            raise InputError("--jbb", f"{args.jbb}: no such file")
        rows += cmp.jbb_comparisons(args.jbb, args.jbb_split, args.split)
    if args.gold:
        rows += cmp.gold_comparisons(*read_lines(args.gold), policy, args.split)
    for path in args.answers or []:
        rows += cmp.answer_comparisons(*read_lines(path), args.split)
    groups = len({r["prompt_id"] for r in rows})
    write_rows(args.out, rows, lambda r: f"{r['response_type']} {r['completion_label']}", f", {groups} prompt groups")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from reward_service.grader import Grader
    from reward_service.offline.synth import load_writer, synthesize

    settings, policy = settings_and_policy(args)
    if args.rules:
        return _synth_rules(args, settings, policy)
    lines, source = read_lines(args.prompts)
    if args.limit is not None:
        lines = [ln for ln in lines if ln.strip()][: args.limit]
    grader = Grader.from_settings(settings, policy=policy)
    generate = load_writer(settings, grader, args.max_new_tokens)
    demos = None
    if args.principles:
        from reward_service.offline.synth import demonstrations

        demo_lines, demo_source = read_lines(args.demos or str(DATA_DIR / "comparisons" / "synth.jsonl"))
        demos = demonstrations(demo_lines, demo_source)
    summary = synthesize(
        lines,
        source,
        Path(args.out),
        grader,
        generate,
        args.k,
        args.threshold,
        seed=args.seed,
        only=args.only,
        demos=demos,
    )
    print(summary.table())
    return 0


def _synth_rules(args: argparse.Namespace, settings, policy) -> int:
    from reward_service.grader import Grader
    from reward_service.offline.rule_synth import read_rules, synthesize_rules
    from reward_service.offline.writers import load_chat_writer

    rules = read_rules(*read_lines(args.rules))
    if args.limit is not None:
        rules = rules[: args.limit]
    grader = Grader.from_settings(settings, policy=policy)
    if not args.no_filter and grader.rules.how is None:
        raise InputError("--rules", f"the grader filter cannot read rules: {grader.rules.refusal}; or pass --no-filter")
    write = load_chat_writer(settings, grader, args.max_new_tokens)
    summary = synthesize_rules(
        rules, write, Path(args.out), None if args.no_filter else grader, args.threshold, args.seed
    )
    print(summary.table())
    return 0


def _margins(values: Sequence[str] | None) -> dict[str, float]:
    out = {}
    for v in values or []:
        label, _, x = v.partition("=")
        try:
            out[label] = float(x)
        except ValueError:
            raise InputError("--margin", f"{v!r} is not LABEL=NUMBER") from None
    return out


def cmd_fit(args: argparse.Namespace) -> int:
    from reward_service.offline.fitting import (
        error_rates,
        fit_weights,
        plot_reward_histograms,
        read_features,
        reward_model_of,
    )
    from reward_service.reward.linear import order_violations

    _, policy = settings_and_policy(args)
    rows = [r for path in args.features for r in read_features(path)]
    data = {
        "features": [Path(p).name for p in args.features],
        "rows": len(rows),
        "train_rows": sum(r.split == "train" for r in rows),
    }
    rm_identity = reward_model_of(rows, ", ".join(args.features))
    order_margin = None if args.no_order else args.order_margin
    weights = fit_weights(
        *(rows, policy, rm_identity, data, _margins(args.margin), args.l1, args.l2, order_margin, args.rbr_alone),
        args.max_weight or None,
    )
    report = error_rates(rows, policy, weights, "heldout")
    weights.metrics["heldout"] = report
    if args.dev:
        dev_rows = read_features(args.dev)
        if reward_model_of(dev_rows, args.dev) != rm_identity:
            raise InputError("--dev", f"{args.dev} was scored by another grader/RM than --features")
        weights.metrics["dev"] = {"features": Path(args.dev).name, **error_rates(dev_rows, policy, weights, None)}
    weights.save(args.out)
    print(f"wrote {args.out} (version {weights.version}); synthetic held-out pairs: {report['pairs']}")
    _print_error_table(report)
    if args.dev:
        print(f"dev (third-party, never fitted): {weights.metrics['dev']['pairs']} pairs")
        _print_error_table(weights.metrics["dev"], accuracy=True)
    for rt, better, worse in ((v[0], v[1], v[2]) for v in order_violations(policy, weights)):
        print(f"warning: {rt}: a crisp {worse} completion can score above a crisp {better} one", file=sys.stderr)
    if args.report:
        d = Path(args.report)
        d.mkdir(parents=True, exist_ok=True)
        full = {
            **report,
            "train": error_rates(rows, policy, weights, "train"),
            "dev": weights.metrics.get("dev"),
            "order_violations": order_violations(policy, weights),
            "weights_version": weights.version,
        }
        (d / "report.json").write_text(json.dumps(full, indent=2) + "\n")
        plot_reward_histograms([r for r in rows if r.split == "heldout"] or rows, policy, weights, d / "rewards.png")
        print(f"wrote {d / 'report.json'} and {d / 'rewards.png'}")
    return 0


def cmd_eval_rewards(args: argparse.Namespace) -> int:
    from reward_service.offline.fitting import error_rates, read_features
    from reward_service.reward.linear import RBRWeights

    _, policy = settings_and_policy(args)
    rows = read_features(args.features)
    weights = RBRWeights.load(args.weights, policy)
    report = error_rates(rows, policy, weights, None if args.split == "all" else args.split)
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{args.features}: {report['pairs']} ordered pairs ({report['split']}); weights {weights.version}")
        _print_error_table(report, accuracy=args.accuracy)
    return 0


def _print_error_table(report: dict, accuracy: bool = False) -> None:
    """Per response type: pairwise error rate (or accuracy, 1 - error) of RM only, RBR only and RM + RBR."""
    er = report["error_rate"]
    cols = list(er["rm"])
    print(f"{'pairwise accuracy' if accuracy else 'pairwise error rate':20s}" + "".join(f"{c:>15s}" for c in cols))
    for key, name in (("rm", "RM only"), ("rbr", "RBR only"), ("rm_rbr", "RM + RBR")):
        vals = [er[key].get(c, float("nan")) for c in cols]
        print(f"{name:20s}" + "".join(f"{1 - v if accuracy else v:15.3f}" for v in vals))
