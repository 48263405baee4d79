"""The one item model: what every source (HTTP routes, OpenRLHF's queries, JSON-lines files, adapters' rows)
turns into before grading, through one function, `parse_item`; and the one JSON-lines reader, `iter_jsonl`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from propositions import AUTO, MAX_RULE_CHARS, Policy, Rule, rules_from_system
from reward_service.errors import InputError, LimitError

__all__ = ["GradeItem", "ItemLimits", "iter_jsonl", "messages", "parse_item"]


@dataclass(frozen=True)
class GradeItem:
    """One completion to grade. `conversation` is the prompt's messages up to the last user turn."""

    conversation: tuple[Mapping[str, str], ...]
    completion: str
    response_type: str
    rules: tuple[Rule, ...] = ()  # deployment rules that outrank the user (SoFA), graded beside the policy

    def key(self) -> str:
        parts: list = [list(map(dict, self.conversation)), self.completion]
        if self.rules:  # items without rules keep the keys they always had
            parts.append([r.model_dump() for r in self.rules])
        blob = json.dumps(parts, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _text(value: str, field: str) -> str:
    """`value`, checked to be encodable text (a lone surrogate such as "\\ud800" would fail the tokenizer later)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        bad = value[e.start : e.end].encode("unicode_escape").decode()
        raise InputError(field, f"holds {bad} at character {e.start}: not valid Unicode (a lone surrogate)") from None
    return value


def messages(value: Any, field: str, max_messages: int | None) -> tuple[dict[str, str], ...]:
    if isinstance(value, str):
        if not value.strip():
            raise InputError(field, "must not be empty")
        return ({"role": "user", "content": _text(value, field)},)
    if not isinstance(value, list) or not value:
        raise InputError(field, "must be a string or a non-empty list of {role, content} messages")
    if max_messages is not None and len(value) > max_messages:
        raise LimitError(field, f"{len(value)} messages, over the limit of {max_messages}")
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, Mapping) or not isinstance(m.get("content"), str) or not isinstance(m.get("role"), str):
            raise InputError(f"{field}[{i}]", "must be an object with string 'role' and 'content'")
        role, content = _text(m["role"], f"{field}[{i}].role"), _text(m["content"], f"{field}[{i}].content")
        out.append({"role": role, "content": content})
    return tuple(out)


@dataclass(frozen=True)
class ItemLimits:
    """What an item may hold (the service's settings; none for offline files)."""

    max_chars: int | None = None  # every character that reaches the grader: roles, messages, completion
    max_messages: int | None = None
    default_response_type: str | None = None  # for items with neither a response type nor a category
    max_rules: int | None = None  # deployment rules per item
    auto: bool = False  # category 'auto' allowed (the service reads it from the prompt); offline files label rows

    @classmethod
    def from_settings(cls, s) -> ItemLimits:
        return cls(s.max_chars, s.max_messages, s.default_response_type, s.max_rules, auto=True)


def _field(where: str, name: str) -> str:
    """Where a field is, for errors: 'items[0].prompt' after an index, 'f.jsonl line 3: prompt' after a place."""
    return name if not where else f"{where}.{name}" if where.endswith("]") else f"{where}: {name}"


def _rules(value: Any, from_system: Any, conversation: tuple[dict[str, str], ...], where: str, limit: int | None):
    """`rules` ([{"text", "priority"?}] or strings) plus, if `rules_from_system`, the system message's lines."""
    field = _field(where, "rules")
    if not isinstance(from_system, bool):
        raise InputError(_field(where, "rules_from_system"), "must be true or false")
    if value is None:
        value = []
    if not isinstance(value, list):
        raise InputError(field, 'must be a list of {"text": str, "priority": int} rules')
    rules = []
    for i, r in enumerate(value):
        r = {"text": r} if isinstance(r, str) else r
        if not isinstance(r, Mapping) or set(r) - {"text", "priority"} or not isinstance(r.get("text"), str):
            raise InputError(f"{field}[{i}]", 'must be a string or {"text": str, "priority": int}')
        text = _text(r["text"], f"{field}[{i}].text").strip()
        if not text or len(text) > MAX_RULE_CHARS:
            raise InputError(f"{field}[{i}].text", f"must hold 1 to {MAX_RULE_CHARS} characters, not {len(text)}")
        prio = r.get("priority", 1)
        if isinstance(prio, bool) or not isinstance(prio, int) or not 1 <= prio <= 10:
            raise InputError(f"{field}[{i}].priority", f"must be an integer from 1 to 10, not {prio!r}")
        rules.append(Rule(text=text, priority=prio))
    if from_system:
        rules += rules_from_system(conversation)
    if limit is not None and len(rules) > limit:
        raise LimitError(field, f"{len(rules)} rules, over the limit of {limit} per item")
    return tuple(rules)


def parse_item(obj: Any, policy: Policy, where: str = "item", limits: ItemLimits = ItemLimits()) -> GradeItem:
    """The one validation of an item `{"prompt", "completion", "response_type" | "category"}`, from any source,
    optionally with deployment rules (`rules`, `rules_from_system`).

    Raises InputError naming `where` and the field; LimitError past `limits`. A missing response type and
    category mean `limits.default_response_type`.
    """
    if not isinstance(obj, Mapping):
        raise InputError(where or "item", "must be a JSON object")
    for name in ("prompt", "completion"):
        if name not in obj:
            raise InputError(_field(where, name), "missing")
    conversation = messages(obj["prompt"], _field(where, "prompt"), limits.max_messages)
    comp = obj["completion"]
    if isinstance(comp, list):  # [{"role": "assistant", "content": ...}] as in the gold files
        if len(comp) != 1:
            raise InputError(_field(where, "completion"), "a list must hold exactly one assistant message")
        comp = comp[0]
    role = ""
    if isinstance(comp, Mapping):
        role, comp = comp.get("role", ""), comp.get("content")
    if not isinstance(comp, str):
        raise InputError(_field(where, "completion"), "must be a string, a message or a one-message list")
    _text(comp, _field(where, "completion"))
    if limits.max_chars is not None:
        n = len(comp) + len(role) + sum(len(m["content"]) + len(m["role"]) for m in conversation)
        if n > limits.max_chars:
            raise LimitError(
                _field(where, "prompt+completion"), f"{n} characters, over the limit of {limits.max_chars}"
            )
    rt, cat = obj.get("response_type"), obj.get("category")
    if rt is None and cat is None:
        if limits.default_response_type is None:
            raise InputError(
                _field(where, "response_type"),
                "missing: give a response_type or a category, or set a default response type "
                "(RBR_DEFAULT_RESPONSE_TYPE, e.g. comply)",
            )
        rt = limits.default_response_type
    try:
        response_type = policy.resolve_response_type(rt, cat)
    except KeyError as e:
        field = "response_type" if rt is not None else "category" if cat is not None else "response_type"
        raise InputError(_field(where, field), e.args[0]) from None
    if response_type == AUTO and not limits.auto:
        field = "category" if cat is not None else "response_type"
        raise InputError(_field(where, field), "'auto' is for the reward service; here every row needs its label")
    if response_type == AUTO and (conversation[-1]["role"] != "user" or not conversation[-1]["content"].strip()):
        raise InputError(
            _field(where, "prompt"),
            f"category 'auto' reads the request in the prompt's last message, which must be a user message with "
            f"text (here: {conversation[-1]['role']}); label this item with a response_type or category",
        )
    rules = _rules(obj.get("rules"), obj.get("rules_from_system", False), conversation, where, limits.max_rules)
    return GradeItem(conversation, comp, response_type, rules)


def iter_jsonl(lines: Iterable[str], source: str) -> Iterable[tuple[int, Any]]:
    """(line number, object) for each non-blank line; a malformed line is an InputError naming it."""
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield n, json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{source} line {n}", f"malformed JSON: {e.msg} at column {e.colno}") from None
