"""The training prompts: rows of a prompts file with their response types (or categories), rendered with the
policy's chat template. Shared by PPO (`rbr train`) and `rbr eval-policy`.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .config import ConfigError, TrainConfig

__all__ = ["PromptRecord", "load_jbb_goals", "load_prompts", "tokenize_prompts"]


@dataclass(frozen=True)
class PromptRecord:
    id: str
    messages: tuple[tuple[str, str], ...]  # ((role, content), ...)
    response_type: str | None
    category: str | None
    rules: tuple = ()  # deployment rules sent with every rollout of this prompt: strings or {text, priority}


def load_prompts(cfg: TrainConfig) -> list[PromptRecord]:
    """Prompt rows `{id?, prompt: str | [messages], response_type? | category?, split?, rules?}`."""
    path = Path(cfg.prompts)
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        raise ConfigError(f"prompts: cannot read {path}: {e.strerror or e}") from None
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            prompt = row["prompt"]
        except (ValueError, KeyError, TypeError):
            raise ConfigError(f"prompts: {path} line {n}: a JSON object with a 'prompt' is expected") from None
        if cfg.split is not None and row.get("split", cfg.split) != cfg.split:
            continue
        if row.get("response_type") is None and row.get("category") is None:
            raise ConfigError(
                f"prompts: {path} line {n}: needs a response_type or a category "
                "(category 'auto': the service reads it from the prompt)"
            )
        msgs = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        rules = row.get("rules") or []
        if not isinstance(rules, list):
            raise ConfigError(f"prompts: {path} line {n}: 'rules' must be a list of rules (strings or objects)")
        out.append(
            PromptRecord(
                str(row.get("id", n)),
                tuple((m["role"], m["content"]) for m in msgs),
                row.get("response_type"),
                row.get("category"),
                tuple(rules),
            )
        )
    if not out:
        raise ConfigError(f"prompts: no prompts in {path} (split {cfg.split!r})")
    return out


def load_jbb_goals(path: str | Path) -> list[PromptRecord]:
    """One hard-refuse prompt per distinct plain request (`goal`) of a JailbreakBench responses file.

    Read at run time from the user's copy (never copied into the project); the jailbreak wrappers
    (`prompt`) are left out: these ask what the goal asks, plainly.
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        raise ConfigError(f"jbb: cannot read {path}: {e.strerror or e}") from None
    out, seen, per_behavior = [], set(), Counter()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            goal, behavior = row["goal"], row["behavior"]
        except (ValueError, KeyError, TypeError):
            raise ConfigError(f"jbb: {path} line {n}: a JSON object with 'goal' and 'behavior' is expected") from None
        if goal not in seen:
            seen.add(goal)
            per_behavior[behavior] += 1  # a behaviour with two goals gets ids jbb:B and jbb:B#2
            rid = f"jbb:{behavior}" + (f"#{per_behavior[behavior]}" if per_behavior[behavior] > 1 else "")
            out.append(PromptRecord(rid, (("user", goal),), "hard_refuse", None))
    if not out:
        raise ConfigError(f"jbb: no rows in {path}")
    return out


def tokenize_prompts(records: list[PromptRecord], tok, max_tokens: int):
    """-> (datasets.Dataset of input_ids, {prompt token ids: record}) — TRL passes only input_ids along."""
    from datasets import Dataset

    ids, lookup = [], {}
    for rec in records:
        text = tok.apply_chat_template(
            [{"role": r, "content": c} for r, c in rec.messages], tokenize=False, add_generation_prompt=True
        )
        x = tok(text, add_special_tokens=False)["input_ids"][-max_tokens:]
        ids.append(x)
        lookup[tuple(x)] = rec
    return Dataset.from_dict({"input_ids": ids}), lookup
