"""What every command shares: the settings/policy flags, reading input files or stdin."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from reward_service.config import Settings, load_settings
from reward_service.errors import InputError

if TYPE_CHECKING:
    from propositions import Policy

__all__ = ["add_common", "read_lines", "settings", "settings_and_policy", "write_rows"]


def add_common(p: argparse.ArgumentParser) -> None:
    """--config, --policy, --model, --heads: the settings every grading command reads."""
    p.add_argument("--config", help="settings file (TOML/YAML/JSON); RBR_* environment variables override it")
    p.add_argument("--policy", help="policy YAML (default: the built-in policy)")
    p.add_argument("--model", help="grader model: embedded:smollm2-135m, a local folder or a hub id")
    p.add_argument("--heads", help="fitted heads file (default: data/grader/heads.npz)")


def settings(args: argparse.Namespace, **overrides) -> Settings:
    return load_settings(
        getattr(args, "config", None),
        policy_file=getattr(args, "policy", None),
        grader_model=getattr(args, "model", None),
        grader_heads=getattr(args, "heads", None),
        **overrides,
    )


def settings_and_policy(args: argparse.Namespace, **overrides) -> tuple[Settings, Policy]:
    """The settings (flags > RBR_* environment > --config file) and the policy they name."""
    from propositions import load_policy

    s = settings(args, **overrides)
    return s, load_policy(s.policy_file)


def read_lines(path: str) -> tuple[list[str], str]:
    """The lines of a file, or of stdin for '-'; and the name to quote in errors."""
    if path == "-":
        return sys.stdin.read().splitlines(), "<stdin>"
    try:
        return Path(path).read_text().splitlines(), path
    except OSError as e:
        raise InputError(path, f"cannot read: {e.strerror or e}") from None


def write_rows(path: str, rows: list[dict], group, note: str = "") -> None:
    """Rows as JSON lines to `path` (folders made), then on stderr their count per `group(row)` (a label)."""
    import json
    from collections import Counter

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"wrote {out}: {len(rows)} rows{note}", file=sys.stderr)
    for label, n in sorted(Counter(map(group, rows)).items()):
        print(f"  {label:50s} {n:5d}", file=sys.stderr)
