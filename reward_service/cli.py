"""`rbr`: the one command-line entry point.

    rbr grade [FILE|-] [--json] [--propositions a,b]     grade items (JSON lines), printing each chunk as it is done
    rbr eval-grader --gold FILE [--cv K] [--mode M]      measure the grader against human labels
    rbr fit-grader --gold FILE [--aug FILE] [--out F]    fit calibrators and trained heads
    rbr serve [--config F] [--host H] [--port P]         the reward service over HTTP (default 127.0.0.1:8000)
    rbr train --config F [--resume]                      PPO against the reward service (separate process)
    rbr eval-policy --model M [--compare M2]             Not-Unsafe / Not-Overrefuse / style of a policy
    rbr policy [FILE]                                    validate a policy and print its version
    rbr fetch-model                                      fetch and convert the embedded grader model

Bad input exits with code 2 and a message naming the line and field; a model failure exits with 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import ValidationError

from .config import DATA_DIR, Settings, load_settings
from .errors import InputError, RBRError

if TYPE_CHECKING:
    from propositions import Policy

    from .grader import GradeItem

# The policy and the grader are imported inside the commands that use them: `rbr train` and
# `rbr eval-policy` run the trainer, a separate process that knows the service only through its client.
MODES = ("prompted", "calibrated", "heads")  # = reward_service.grader.MODES (tested)

__all__ = ["main"]

GOLD_PROPOSITIONS_KEY = "propositions"
SIGPIPE_EXIT = 141  # 128 + SIGPIPE: what a shell reports for a tool whose reader closed the pipe


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(
        getattr(args, "config", None),
        policy_file=getattr(args, "policy", None),
        grader_model=getattr(args, "model", None),
        grader_heads=getattr(args, "heads", None),
    )


def _read_lines(path: str) -> tuple[list[str], str]:
    if path == "-":
        return sys.stdin.read().splitlines(), "<stdin>"
    try:
        return Path(path).read_text().splitlines(), path
    except OSError as e:
        raise InputError(path, f"cannot read: {e.strerror or e}") from None


def _split_names(value: str | None, known: Sequence[str]) -> list[str] | None:
    if value is None:
        return None
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise InputError("--propositions", "empty list")
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InputError("--propositions", f"unknown proposition(s): {', '.join(unknown)}")
    return names


# -- rbr grade -----------------------------------------------------------------------------------------


def cmd_grade(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from propositions import load_policy

    from .grader import Grader, iter_jsonl, parse_item

    settings = _settings(args)
    policy = load_policy(settings.policy_file)
    lines, source = _read_lines(args.file)
    items = [parse_item(obj, policy, f"{source} line {n}") for n, obj in iter_jsonl(lines, source)]
    if not items:
        raise InputError(source, "no items to grade (empty input)")
    names = _split_names(args.propositions, list(policy.propositions))
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


def _read_gold(path: str, policy) -> tuple[list[GradeItem], list[dict[str, bool]]]:

    from .grader import iter_jsonl, parse_item

    lines, source = _read_lines(path)
    items, labels = [], []
    for n, obj in iter_jsonl(lines, source):
        where = f"{source} line {n}"
        if not isinstance(obj, dict) or not isinstance(obj.get(GOLD_PROPOSITIONS_KEY), dict):
            raise InputError(f"{where}: propositions", "missing: a gold row needs a {name: true|false} map")
        lab = obj[GOLD_PROPOSITIONS_KEY]
        bad = [k for k, v in lab.items() if not isinstance(v, bool)]
        if bad:
            raise InputError(f"{where}: propositions.{bad[0]}", "must be true or false")
        items.append(parse_item(obj, policy, where))
        labels.append({k: v for k, v in lab.items() if k in policy.propositions})
    if not items:
        raise InputError(source, "no labelled rows")
    return items, labels


def _labelled_names(policy, labels: Sequence[dict]) -> list[str]:

    seen = {k for lab in labels for k in lab}
    return [p for p in policy.propositions if p in seen]


def cmd_eval_grader(args: argparse.Namespace) -> int:
    from propositions import load_policy

    from .evaluation import LabelledRow, bow_baseline, fold_indices, score_propositions
    from .grader import Grader
    from .heads import fit_heads

    settings = _settings(args).model_copy(update={"readout_cache": not args.no_cache})
    policy = load_policy(settings.policy_file)
    mode = args.mode or settings.mode
    items, labels = _read_gold(args.gold, policy)
    aug_items, aug_labels, aug_weights = _read_extra(args, policy)
    names = _labelled_names(policy, labels)
    grader = Grader.from_settings(settings, "prompted" if args.cv else mode, policy)
    ros = grader.readouts(items, [names] * len(items), progress=not args.json)
    y = {p: np.array([lab.get(p) for lab in labels]) for p in names}
    have = {p: np.array([p in lab for lab in labels]) for p in names}

    if mode == "prompted":
        probs = {p: 1 / (1 + np.exp(-np.array([ro.yes_logit[j] for ro in ros]))) for j, p in enumerate(names)}
    elif not args.cv:
        grader.heads.check_questions(grader.question_hashes(), names, mode)
        probs = {p: np.zeros(len(items)) for p in names}
        for i, ro in enumerate(ros):
            pr = grader.probabilities(ro, names)
            for p in names:
                probs[p][i] = pr[p]
    else:
        aug_ros = grader.readouts(aug_items, [names] * len(aug_items), progress=not args.json) if aug_items else []
        spec, overrides = _head_specs(args.head_spec)
        groups = [LabelledRow(it.conversation, it.completion, lab).group for it, lab in zip(items, labels, strict=True)]
        probs = {p: np.full(len(items), np.nan) for p in names}
        for train, test in fold_indices(groups, args.cv):
            fitted = fit_heads(
                [ros[i] for i in train] + aug_ros,
                [labels[i] for i in train] + aug_labels,
                names,
                spec,
                engine_id=grader.engine_id,
                prompt_version=grader.fmt.version,
                layers=grader.engine.layers,
                questions=grader.question_hashes(),
                overrides=overrides,
                weights=[1.0] * len(train) + aug_weights,
            )
            for i in test:
                if mode == "calibrated":
                    pr = {p: fitted.calibrate(p, float(ros[i].yes_logit[j])) for j, p in enumerate(names)}
                else:
                    pr = dict(zip(names, fitted.predict(ros[i], names), strict=True))
                for p in names:
                    probs[p][i] = pr[p]
    report = score_propositions({p: y[p][have[p]].astype(bool) for p in names}, {p: probs[p][have[p]] for p in names})
    result = {"mode": mode, "cv": args.cv, "rows": len(items), **report.as_dict()}
    if not args.no_baseline:
        rows = [LabelledRow(it.conversation, it.completion, lab) for it, lab in zip(items, labels, strict=True)]
        aug_rows = [
            LabelledRow(it.conversation, it.completion, lab) for it, lab in zip(aug_items, aug_labels, strict=True)
        ]
        bow = bow_baseline(rows, names, args.cv or 5, extra=aug_rows)
        base = score_propositions({p: y[p][have[p]].astype(bool) for p in names}, {p: bow[p][have[p]] for p in names})
        result["baseline"] = {"bag_of_words": base.as_dict()}
    if args.json:
        print(json.dumps(result))
    else:
        _print_eval(result, in_sample=mode != "prompted" and not args.cv)
    return 0


def _head_specs(text: str | None):
    """(default FeatureSpec, per-proposition overrides) from --head-spec JSON or data/grader/head_spec.json."""
    from .heads import load_head_specs

    return load_head_specs(json.loads(text if text else (DATA_DIR / "grader" / "head_spec.json").read_text()))


def _read_extra(args: argparse.Namespace, policy) -> tuple[list[GradeItem], list[dict[str, bool]], list[float]]:
    """Extra training rows and their fit weights: every --aug file (1), then the JBB fit split (--jbb-weight)."""
    from .grader import parse_item

    items, labels = [], []
    for f in args.aug or []:
        i, lab = _read_gold(f, policy)
        items, labels = items + i, labels + lab
    weights = [1.0] * len(items)
    if getattr(args, "jbb_fit", None):
        from .jbb import jbb_rows

        for n, r in enumerate(jbb_rows(args.jbb_fit, "fit"), 1):
            items.append(parse_item(r, policy, f"{args.jbb_fit} fit row {n}"))
            labels.append(dict(r["propositions"]))
            weights.append(args.jbb_weight)
    return items, labels, weights


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
        print(
            row.format(
                name,
                s["n"],
                s["positives"],
                f(s["accuracy"]),
                f(s["auroc"]),
                f(s["ece"]),
                f(b.get("accuracy")),
                f(b.get("auroc")),
            )
        )
    print(
        row.format(
            "macro (>=5 positives and negatives)",
            "",
            "",
            f(result["macro_accuracy"]),
            f(result["macro_auroc"]),
            "",
            f(base.get("macro_accuracy")),
            f(base.get("macro_auroc")),
        )
    )
    print("* not in the macro averages (fewer than 5 positives or negatives)")


def cmd_fit_grader(args: argparse.Namespace) -> int:
    from propositions import load_policy

    from .grader import Grader
    from .heads import fit_heads

    settings = _settings(args).model_copy(update={"readout_cache": not args.no_cache})
    policy = load_policy(settings.policy_file)
    items, labels = _read_gold(args.gold, policy)
    extra_items, extra_labels, extra_weights = _read_extra(args, policy)
    weights = [1.0] * len(items) + extra_weights
    items, labels = items + extra_items, labels + extra_labels
    names = _labelled_names(policy, labels)
    grader = Grader.from_settings(settings, "prompted", policy)
    ros = grader.readouts(items, [names] * len(items), progress=True)
    spec, overrides = _head_specs(args.head_spec)
    info = {
        "fitted_on": [Path(f).name for f in [args.gold, *(args.aug or [])]]
        + ([f"jbb fit split (weight {args.jbb_weight})"] if args.jbb_fit else []),
        "rows": len(items),
        "spec": spec.__dict__,
        "overrides": {n: sp.__dict__ for n, sp in overrides.items()},
    }
    heads = fit_heads(
        ros,
        labels,
        names,
        spec,
        engine_id=grader.engine_id,
        prompt_version=grader.fmt.version,
        layers=grader.engine.layers,
        questions=grader.question_hashes(),
        info=info,
        overrides=overrides,
        weights=weights,
    )
    out = Path(args.out) if args.out else settings.heads_path
    heads.save(out)
    print(f"wrote {out}: {len(heads.heads)} heads, {len(heads.calibrators)} calibrators, fitted on {len(items)} rows")
    return 0


# -- rbr features / fit / eval-rewards ----------------------------------------------------------------


def cmd_features(args: argparse.Namespace) -> int:
    from propositions import load_policy

    from .fitting import FeatureRow, read_comparisons
    from .grader import Grader
    from .models import cache_dir
    from .reward_models import build_reward_model
    from .scoring import FeatureCache, Scorer

    settings = _settings(args)
    policy = load_policy(settings.policy_file)
    lines, source = _read_lines(args.data)
    rows = read_comparisons(lines, source, policy)
    grader = Grader.from_settings(settings, policy=policy)
    scorer = Scorer(policy, grader, build_reward_model(settings, grader.identity), None)
    cache = None if args.no_cache else FeatureCache(cache_dir() / "features", scorer.identity)
    scored = scorer.score([r.item for r in rows], cache, progress=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w") as f:
        for r, s in zip(rows, scored, strict=True):
            names = policy.feature_names(s.response_type)
            feats = {n: round(float(v), 6) for n, v in zip(names, s.features, strict=True)}
            f.write(
                FeatureRow(
                    r.prompt_id, s.response_type, r.completion_label, r.split, round(s.rm, 6), feats, scorer.identity
                ).as_json()
            )
            f.write("\n")
    print(f"wrote {out}: {len(rows)} rows ({scorer.identity})", file=sys.stderr)
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from propositions import load_policy

    from .grader import Grader
    from .synth import load_writer, synthesize

    settings = _settings(args)
    policy = load_policy(settings.policy_file)
    lines, source = _read_lines(args.prompts)
    if args.limit is not None:
        lines = [ln for ln in lines if ln.strip()][: args.limit]
    grader = Grader.from_settings(settings, policy=policy)
    generate = load_writer(settings, grader, args.max_new_tokens)
    summary = synthesize(
        lines, source, Path(args.out), grader, generate, args.k, args.threshold, seed=args.seed, only=args.only
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
    from propositions import load_policy

    from .fitting import error_rates, fit_weights, plot_reward_histograms, read_features

    settings = _settings(args)
    policy = load_policy(settings.policy_file)
    rows = read_features(args.features)
    data = {
        "features": Path(args.features).name,
        "rows": len(rows),
        "train_rows": sum(r.split == "train" for r in rows),
    }
    scorers = sorted({r.scorer for r in rows})
    if len(scorers) > 1:
        raise InputError(args.features, f"rows were scored by different graders/RMs: {scorers}")
    try:
        rm_identity = json.loads(scorers[0])["reward_model"]
    except (ValueError, KeyError, TypeError):
        raise InputError(args.features, "rows do not say which RM scored them; rerun `rbr features`") from None
    weights = fit_weights(rows, policy, rm_identity, data, _margins(args.margin), args.l1, args.l2)
    report = error_rates(rows, policy, weights, "heldout")
    weights.metrics["heldout"] = report
    weights.save(args.out)
    print(f"wrote {args.out} (version {weights.version}); held-out pairs: {report['pairs']}")
    _print_error_table(report)
    if args.report:
        d = Path(args.report)
        d.mkdir(parents=True, exist_ok=True)
        full = {**report, "train": error_rates(rows, policy, weights, "train"), "weights_version": weights.version}
        (d / "report.json").write_text(json.dumps(full, indent=2) + "\n")
        plot_reward_histograms([r for r in rows if r.split == "heldout"] or rows, policy, weights, d / "rewards.png")
        print(f"wrote {d / 'report.json'} and {d / 'rewards.png'}")
    return 0


def cmd_eval_rewards(args: argparse.Namespace) -> int:
    from propositions import load_policy

    from .fitting import error_rates, read_features
    from .linear import RBRWeights

    settings = _settings(args)
    policy = load_policy(settings.policy_file)
    rows = read_features(args.features)
    weights = RBRWeights.load(args.weights, policy)
    report = error_rates(rows, policy, weights, None if args.split == "all" else args.split)
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{args.features}: {report['pairs']} ordered pairs ({report['split']}); weights {weights.version}")
        _print_error_table(report)
    return 0


def _print_error_table(report: dict) -> None:
    er = report["error_rate"]
    cols = list(er["rm"])
    print(f"{'pairwise error rate':20s}" + "".join(f"{c:>15s}" for c in cols))
    for key, name in (("rm", "RM only"), ("rbr", "RBR only"), ("rm_rbr", "RM + RBR")):
        print(f"{name:20s}" + "".join(f"{er[key].get(c, float('nan')):15.3f}" for c in cols))


# -- small commands ------------------------------------------------------------------------------------


def cmd_policy(args: argparse.Namespace) -> int:
    from propositions import load_policy

    policy = load_policy(args.file)
    print(f"{policy.source}: valid. name={policy.name} hash={policy.hash}")
    print(f"  {len(policy.propositions)} propositions, {len(policy.derived)} derived")
    for rt in policy.response_types:
        n_props, n_feats = len(policy.required_propositions(rt)), len(policy.feature_names(rt))
        print(f"  {rt}: grades {n_props} propositions, {n_feats} features")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .app import create_app

    settings = load_settings(
        args.config,
        policy_file=args.policy,
        grader_model=args.model,
        grader_heads=args.heads,
        host=args.host,
        port=args.port,
        weights_file=args.weights,
    )
    failure: list[BaseException] = []
    server: uvicorn.Server | None = None

    def on_load_failure(e: BaseException) -> None:
        failure.append(e)
        if server is not None:
            server.should_exit = True

    app = create_app(settings, on_load_failure=on_load_failure)
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level=args.log_level, timeout_graceful_shutdown=5
    )
    server = uvicorn.Server(config)
    logging.getLogger("rbr").setLevel(logging.INFO)
    print(
        f"rbr serve: http://{settings.host}:{settings.port} (models load in the background; GET /readyz)",
        file=sys.stderr,
        flush=True,
    )
    server.run()
    if failure:
        e = failure[0]
        if isinstance(e, RBRError):
            raise e
        print(f"rbr serve: loading the models failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from rl_trainer.config import ConfigError, load_config

    try:
        cfg = load_config(args.config, service_url=args.service_url, total_steps=args.steps, output_dir=args.output_dir)
    except ConfigError as e:
        raise InputError(args.config or "config", str(e)) from None
    try:
        from rl_trainer.ppo import TrainingStopped, train
    except ImportError as e:
        raise InputError("rbr train", f"needs the train extra: pip install -e '.[train]' ({e})") from None
    logging.getLogger("rbr").setLevel(logging.INFO)
    try:
        final = train(cfg, resume=args.resume)
    except TrainingStopped as e:
        print(f"rbr train: stopped: {e}", file=sys.stderr)
        return 1
    print(f"rbr train: done; checkpoint {final}")
    return 0


def cmd_eval_policy(args: argparse.Namespace) -> int:
    from rl_trainer.config import ConfigError, load_config

    try:
        cfg = load_config(args.config, service_url=args.service_url, prompts=args.prompts, split=args.split)
    except ConfigError as e:
        raise InputError(args.config or "config", str(e)) from None
    from rl_trainer.evaluate import evaluate_policy, write_report

    from .errors import ServiceError

    models = [args.model] + ([args.compare] if args.compare else [])
    try:
        reports = [evaluate_policy(m, cfg, args.max_new_tokens) for m in models]
    except ServiceError as e:
        print(f"rbr eval-policy: the reward service failed: {e}", file=sys.stderr)
        return 1
    table = write_report(reports, Path(args.out))
    if args.json:
        print(json.dumps([{"model": r["model"], **r["measures"]} for r in reports], indent=2))
    else:
        print(table)
        print(f"wrote {Path(args.out) / 'report.json'} and {Path(args.out) / 'policy_eval.png'}")
    return 0


def cmd_fetch_model(args: argparse.Namespace) -> int:
    from .models import fetch_embedded_model

    print(fetch_embedded_model(force=args.force))
    return 0


# -- entry point ---------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="rbr", description="Rule-based rewards for safety RL of language models.")
    sub = ap.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", help="settings file (TOML/YAML/JSON); RBR_* environment variables override it")
        p.add_argument("--policy", help="policy YAML (default: the built-in policy)")
        p.add_argument("--model", help="grader model: embedded:smollm2-135m, a local folder or a hub id")
        p.add_argument("--heads", help="fitted heads file (default: data/grader/heads.npz)")

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
    common(g)
    g.set_defaults(func=cmd_grade)

    e = sub.add_parser("eval-grader", help="measure the grader on a gold-format file")
    e.add_argument("--gold", required=True, help="gold-format JSON lines with a propositions map per row")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--cv", type=int, help="fit heads/calibrators K-fold (grouped by prompt) instead of loading them")
    e.add_argument("--mode", choices=MODES, help="grader mode (default: the embedded default's)")
    e.add_argument("--aug", action="append", help="extra labelled rows added to every fold's training data")
    e.add_argument("--head-spec", help="JSON FeatureSpec for --cv (default: data/grader/head_spec.json)")
    e.add_argument("--jbb-fit", metavar="FILE", help="also fit every fold on the JailbreakBench fit split of FILE")
    e.add_argument("--jbb-weight", type=float, default=0.3, help="fit weight of each JBB row (default 0.3)")
    e.add_argument("--no-baseline", action="store_true", help="skip the bag-of-words baseline")
    e.add_argument("--no-cache", action="store_true", help="do not cache grader readouts on disk")
    common(e)
    e.set_defaults(func=cmd_eval_grader)

    f = sub.add_parser("fit-grader", help="fit calibrators and trained heads on labelled rows")
    f.add_argument("--gold", required=True, help="gold-format JSON lines")
    f.add_argument("--aug", action="append", help="more labelled rows (repeatable)")
    f.add_argument("--out", help="output .npz (default: the configured heads path)")
    f.add_argument("--head-spec", help="JSON FeatureSpec (default: data/grader/head_spec.json)")
    f.add_argument("--jbb-fit", metavar="FILE", help="also fit on the JailbreakBench fit split of FILE (jbb.py)")
    f.add_argument("--jbb-weight", type=float, default=0.3, help="fit weight of each JBB row (default 0.3)")
    f.add_argument("--no-cache", action="store_true", help="do not cache grader readouts on disk")
    common(f)
    f.set_defaults(func=cmd_fit_grader)

    ft = sub.add_parser("features", help="grader features and RM scores for comparison data")
    ft.add_argument("--data", required=True, help="comparison data (JSON lines)")
    ft.add_argument("--out", required=True, help="features file to write (JSON lines)")
    ft.add_argument("--no-cache", action="store_true", help="recompute every row")
    common(ft)
    ft.set_defaults(func=cmd_features)

    sy = sub.add_parser("synth", help="generate graded comparison data from seed prompts with the local LLM")
    sy.add_argument("--prompts", required=True, help="seed prompts (JSON lines: id, prompt, category|response_type)")
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
    common(sy)
    sy.set_defaults(func=cmd_synth)

    fi = sub.add_parser("fit", help="fit RBR weights on a features file (exact hinge-loss LP)")
    fi.add_argument("--features", required=True, help="features file from `rbr features`")
    fi.add_argument("--out", required=True, help="weights JSON to write")
    fi.add_argument("--report", help="folder for report.json and rewards.png")
    fi.add_argument("--margin", action="append", help="LABEL=X: margin of pairs whose worse label is LABEL (default 1)")
    fi.add_argument("--l1", type=float, default=0.0, help="L1 penalty on the weights")
    fi.add_argument(
        "--l2",
        type=float,
        default=1e-3,
        help="L2 penalty on the weights (a QP; default 1e-3: without it, features that separate a few "
        "pairs get unbounded weights)",
    )
    common(fi)
    fi.set_defaults(func=cmd_fit)

    ev = sub.add_parser("eval-rewards", help="pairwise error rates of weights on a features file")
    ev.add_argument("--features", required=True)
    ev.add_argument("--weights", required=True)
    ev.add_argument("--split", choices=["heldout", "train", "all"], default="all")
    ev.add_argument("--json", action="store_true")
    common(ev)
    ev.set_defaults(func=cmd_eval_rewards)

    sv = sub.add_parser("serve", help="serve rewards over HTTP (FastAPI on uvicorn)")
    sv.add_argument("--host", help="address to bind (default 127.0.0.1; RBR_HOST)")
    sv.add_argument("--port", type=int, help="port (default 8000; RBR_PORT)")
    sv.add_argument("--weights", help="RBR weights JSON (default: data/weights/default.json)")
    sv.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    common(sv)
    sv.set_defaults(func=cmd_serve)

    tr = sub.add_parser("train", help="PPO against the reward service (TRL's PPOTrainer; a separate process)")
    tr.add_argument("--config", help="trainer config (YAML/TOML/JSON, see rl_trainer/config.py)")
    tr.add_argument("--resume", action="store_true", help="continue from the last checkpoint in output_dir")
    tr.add_argument("--service-url", help="reward service base URL (overrides the config)")
    tr.add_argument("--steps", type=int, help="total PPO steps (overrides the config)")
    tr.add_argument("--output-dir", help="run folder (overrides the config)")
    tr.set_defaults(func=cmd_train)

    ep = sub.add_parser("eval-policy", help="generate with a model/checkpoint, grade via the service, report")
    ep.add_argument("--model", required=True, help="run checkpoint folder, model folder, hub id or embedded id")
    ep.add_argument("--compare", help="a second model or checkpoint, reported side by side")
    ep.add_argument("--config", help="trainer config: service_url, prompts (see rl_trainer/config.py)")
    ep.add_argument("--prompts", help="eval prompts (default: data/seed_prompts.jsonl)")
    ep.add_argument("--split", default="heldout", help="only prompts of this split (default heldout)")
    ep.add_argument("--service-url", help="reward service base URL")
    ep.add_argument("--max-new-tokens", type=int, default=96)
    ep.add_argument("--out", default="runs/eval", help="folder for report.json and policy_eval.png")
    ep.add_argument("--json", action="store_true", help="print the measures as JSON")
    ep.set_defaults(func=cmd_eval_policy)

    p = sub.add_parser("policy", help="validate a policy file and print its hash")
    p.add_argument("file", nargs="?", help="policy YAML (default: the built-in policy)")
    p.set_defaults(func=cmd_policy)

    m = sub.add_parser("fetch-model", help="fetch and convert the embedded grader model")
    m.add_argument("--force", action="store_true", help="fetch again even if cached")
    m.set_defaults(func=cmd_fetch_model)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore", category=FutureWarning)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValidationError as e:  # settings from the file or RBR_* environment
        problems = "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors())
        print(f"rbr {args.command}: error: invalid settings: {problems}", file=sys.stderr)
        return 2
    except Exception as e:
        if isinstance(e, InputError):  # PolicyError included
            print(f"rbr {args.command}: error: {e}", file=sys.stderr)
            return 2
        if isinstance(e, RBRError):
            print(f"rbr {args.command}: {type(e).__name__}: {e}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
