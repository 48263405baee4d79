"""`rbr`: the one command-line entry point. Each command group registers its commands, flags beside handlers.

    rbr grade [FILE|-] [--json] [--propositions a,b]     grade items (JSON lines), printing each chunk as it is done
    rbr eval-grader --gold FILE [--cv K] [--mode M]      measure the grader against human labels
    rbr fit-grader --gold FILE [--aug FILE] [--out F]    fit calibrators and trained heads
    rbr fit-classifier [--gold F] [--jbb F] [--prompts F]  fit the prompt classifier behind category 'auto'
    rbr classify FILE                                    add category and response type to prompts
    rbr features --data F --out F                        grader features and RM scores for comparison data
    rbr synth --prompts F --out F                        graded comparison data written by the grader's LLM
    rbr comparisons --out F [--jbb F] [--gold F] [--answers F]  comparison data from third-party text
    rbr fit --features F --out W [--dev F]               fit the RBR weights (hinge loss, the policy's order kept)
    rbr eval-rewards --features F --weights W            pairwise error rates of weights
    rbr prompts --out F [--per-category N]               topic-guided red-team prompts per category (SELF-ALIGN)
    rbr induce --responses F --out F --category C        the request each response answers (Safer-Instruct)
    rbr pairs --data F --out F [--min-margin M]          preference pairs for DPO from comparison data
    rbr serve [--config F] [--host H] [--port P]         the reward service over HTTP (default 127.0.0.1:8000)
    rbr policy [FILE]                                    validate a policy and print its version
    rbr fetch-model                                      fetch and convert the embedded grader model
    rbr train --config F [--resume]                      PPO against the reward service (registered by rl_trainer)
    rbr eval-policy --model M [--compare M2]             Not-Unsafe / Not-Overrefuse of a policy (rl_trainer)

Command groups: grading.py (grade, eval-grader, fit-grader), categories.py (fit-classifier, classify), rewards.py
(features, synth, comparisons, fit, eval-rewards), data.py (prompts, induce, pairs), serving.py (serve, policy,
fetch-model). Other packages add commands through the entry-point group `rbr.commands` (a `register(subparsers)`
function): rl_trainer adds train and eval-policy, so the service never imports the trainer. Bad input exits with
code 2 and a message naming the line and field; a model failure exits with 1.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Sequence
from importlib.metadata import entry_points

from pydantic import ValidationError

from reward_service.cli import categories, data, grading, rewards, serving
from reward_service.errors import InputError, RBRError

__all__ = ["build_parser", "main"]

ENTRY_POINT_GROUP = "rbr.commands"


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="rbr", description="Rule-based rewards for safety RL of language models.")
    sub = ap.add_subparsers(dest="command", required=True)
    for register in (grading.register, categories.register, rewards.register, data.register, serving.register):
        register(sub)
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        ep.load()(sub)
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
    except InputError as e:  # PolicyError included
        print(f"rbr {args.command}: error: {e}", file=sys.stderr)
        return 2
    except RBRError as e:
        print(f"rbr {args.command}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
