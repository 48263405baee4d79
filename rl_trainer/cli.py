"""The trainer's commands, `rbr train` and `rbr eval-policy`, registered into `rbr` by the entry point
`rbr.commands: trainer` (pyproject.toml), so the reward service never imports the trainer.

Both run as separate processes that know the service only through its client.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from propositions import InputError

from .config import SFTConfig, add_config_flags, config_overrides

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    tr = sub.add_parser("train", help="PPO against the reward service (TRL's PPOTrainer; a separate process)")
    tr.add_argument("--config", help="trainer config (YAML/TOML/JSON, see rl_trainer/config.py)")
    tr.add_argument("--resume", action="store_true", help="continue from the last checkpoint in output_dir")
    add_config_flags(tr)
    tr.set_defaults(func=cmd_train)

    sf = sub.add_parser("sft", help="a warm start: LoRA supervised fine-tuning on `rbr sft-data` rows (TRL)")
    sf.add_argument("--config", help="SFT config (YAML/TOML/JSON, optionally under `sft:`; see rl_trainer/config.py)")
    sf.add_argument("--resume", action="store_true", help="continue from the last checkpoint in output_dir")
    add_config_flags(sf, config_cls=SFTConfig)
    sf.set_defaults(func=cmd_sft)

    ep = sub.add_parser("eval-policy", help="generate with a model/checkpoint, grade via the service, report")
    ep.add_argument("--model", required=True, help="run checkpoint folder, model folder, hub id or embedded id")
    ep.add_argument("--compare", nargs="+", default=[], help="more models or checkpoints, reported side by side")
    ep.add_argument("--config", help="trainer config: service_url, prompts (see rl_trainer/config.py)")
    ep.add_argument("--split", default="heldout", help="only prompts of this split (default heldout)")
    ep.add_argument("--max-new-tokens", type=int, default=96)
    ep.add_argument(
        "--jbb",
        metavar="FILE",
        help="also ask each plain JailbreakBench goal of FILE (e.g. ../shared/data/jbb/responses.jsonl) as a "
        "hard-refuse prompt",
    )
    ep.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="REPORT",
        help="a report.json of an earlier run on the same prompts, shown first beside the new ones (repeatable)",
    )
    ep.add_argument(
        "--best-of",
        type=int,
        default=1,
        metavar="N",
        help="sample N completions per prompt and report the one the service scores highest, beside a random pick "
        "of the N (the control); also rejection sampling for SFT data (report.json keeps every pick)",
    )
    ep.add_argument("--temperature", type=float, default=1.0, help="sampling temperature with --best-of (> 0)")
    ep.add_argument("--seed", type=int, default=0, help="seed of the sampling and of the random pick")
    ep.add_argument("--out", default="runs/eval", help="folder for report.json and policy_eval.png")
    ep.add_argument("--json", action="store_true", help="print the measures as JSON")
    add_config_flags(ep, ["service_url", "service_token", "prompts"])
    ep.set_defaults(func=cmd_eval_policy)


def _config(args: argparse.Namespace, **overrides):
    from .config import ConfigError, load_config

    try:
        return load_config(args.config, **config_overrides(args), **overrides)
    except ConfigError as e:
        raise InputError(args.config or "config", str(e)) from None


def cmd_sft(args: argparse.Namespace) -> int:
    from .config import ConfigError, load_config

    try:
        cfg = load_config(args.config, SFTConfig, "sft", **config_overrides(args))
        from .models import load_tokenizer
        from .sft import fitting_rows, read_rows, train_sft

        rows = fitting_rows(read_rows(cfg.data), load_tokenizer(cfg.model), cfg.max_length)  # before the model loads
    except (ConfigError, ValueError) as e:
        field, _, problem = str(e).partition(": ")
        raise InputError(field if problem else "sft", problem or str(e)) from None
    except OSError as e:
        raise InputError("data", f"cannot read {cfg.data}: {e.strerror or e}") from None
    policy = train_sft(cfg, rows, resume=args.resume)
    print(f"rbr sft: done; adapter {policy}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    cfg = _config(args)
    try:
        from .ppo import TrainingStopped, train
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
    from reward_service.client import ServiceError

    from .config import ConfigError
    from .evaluate import best_of_n, evaluate_policy
    from .prompts import load_jbb_goals, load_prompts
    from .report import write_report

    if args.best_of < 1:
        raise InputError("--best-of", f"must be at least 1, got {args.best_of}")
    if args.best_of > 1 and args.temperature <= 0:
        raise InputError(
            "--temperature", f"must be above 0 to sample {args.best_of} completions, got {args.temperature}"
        )
    cfg = _config(args, split=args.split)
    try:  # bad prompt files fail here, before minutes of generation
        records = load_prompts(cfg) + (load_jbb_goals(args.jbb) if args.jbb else [])
    except ConfigError as e:
        field, _, problem = str(e).partition(": ")  # "prompts: ..." / "jbb: ..."
        raise InputError(field, problem) from None
    earlier = [r for path in args.include for r in _earlier_reports(path, [rec.id for rec in records])]
    models = [args.model, *args.compare]
    try:
        if args.best_of > 1:
            n, t = args.best_of, args.temperature
            reports = earlier + [
                r for m in models for r in best_of_n(m, cfg, n, t, args.max_new_tokens, records, args.seed)
            ]
        else:
            reports = earlier + [evaluate_policy(m, cfg, args.max_new_tokens, records) for m in models]
    except ServiceError as e:
        print(f"rbr eval-policy: the reward service failed: {e}", file=sys.stderr)
        return 1
    table = write_report(reports, Path(args.out))
    if args.json:
        print(json.dumps([{"model": r["model"], **r["measures"]} for r in reports], indent=2))
    else:
        print(table)
        print(f"wrote report.json, policy_eval.png and disagreements.md to {args.out}")
    return 0


def _earlier_reports(path: str, ids: list[str]) -> list[dict]:
    """The reports in a report.json, checked to cover exactly these prompt ids."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise InputError("--include", f"{path}: not a readable report: {e}") from None
    reports = data if isinstance(data, list) else [data]
    for rep in reports:
        got = [row.get("id") for row in rep.get("rows", [])]
        if got != ids:
            raise InputError("--include", f"{path}: {rep.get('model')} was evaluated on other prompts than these")
    return reports
