"""What every command shares: the settings/policy flags, reading input files or stdin."""

from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Union, get_args, get_origin

from reward_service.config import SETTING_GROUPS, Settings, load_settings
from reward_service.errors import InputError

if TYPE_CHECKING:
    from propositions import Policy

__all__ = [
    "add_common",
    "add_settings_flags",
    "read_lines",
    "settings",
    "settings_and_policy",
    "settings_overrides",
    "write_rows",
]


def add_common(p: argparse.ArgumentParser) -> None:
    """--config, --policy, --model, --heads: the settings every grading command reads."""
    p.add_argument("--config", help="settings file (TOML/YAML/JSON); RBR_* environment variables override it")
    p.add_argument("--policy", help="policy YAML (default: the built-in policy)")
    p.add_argument("--model", help="grader model: embedded:smollm2-135m, a local folder or a hub id")
    p.add_argument("--heads", help="fitted heads file (default: data/grader/heads.npz)")


def add_settings_flags(p: argparse.ArgumentParser, aliases: dict[str, str] | None = None) -> None:
    """One `--field-name` flag per field of `Settings`, in its SETTING_GROUPS group: Settings is the one source of
    the flags, their types, choices and help. An unset flag leaves the file and environment alone."""
    aliases = aliases or {}
    for group, names in SETTING_GROUPS.items():
        g = p.add_argument_group(f"{group} settings (a flag beats its RBR_* variable, which beats --config)")
        for name in names:
            field = Settings.model_fields[name]
            default = field.default_factory() if field.default_factory else field.default  # type: ignore[call-arg]
            help_ = f"{field.description} (RBR_{name.upper()}; default {default})".replace("%", "%%")
            flags = ["--" + name.replace("_", "-"), *([aliases[name]] if name in aliases else [])]
            kwargs = _flag_kwargs(field.annotation)
            if "type" in kwargs:
                kwargs.setdefault("metavar", name.upper())
            g.add_argument(*flags, dest=f"setting.{name}", default=None, help=help_, **kwargs)


def settings_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The Settings fields given as flags."""
    return {k.removeprefix("setting."): v for k, v in vars(args).items() if k.startswith("setting.") and v is not None}


def _flag_kwargs(annotation: Any) -> dict[str, Any]:
    """argparse arguments for a field type: a bool is --x / --no-x, a Literal has choices, a dict or tuple is JSON."""
    if get_origin(annotation) in (Union, types.UnionType):
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    if annotation is bool:
        return {"action": argparse.BooleanOptionalAction}
    if get_origin(annotation) is Literal:
        return {"choices": get_args(annotation)}
    if annotation in (int, float, str):
        return {"type": annotation}
    if get_origin(annotation) in (dict, tuple):
        return {"type": _json, "metavar": "JSON"}
    return {"type": str}


def _json(text: str) -> Any:
    return json.loads(text)


_json.__name__ = "JSON"  # argparse's message: "invalid JSON value: '[8'"


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
