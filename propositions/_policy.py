"""The behaviour policy: propositions, derived propositions, completion classes and the content policy.

A policy is loaded from YAML, validated with pydantic plus the cross-references pydantic cannot see
(unknown proposition, cycle among derived propositions, ordering that names no class...), and
versioned by a hash of its validated content, so reformatting the file does not change the version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ._errors import InputError, PolicyError

__all__ = [
    "CLASS_NAMES",
    "DEFAULT_POLICY_PATH",
    "Conjunction",
    "Policy",
    "PolicyError",
    "PropositionSpec",
    "ResponseTypeSpec",
    "load_policy",
    "label_fields",
    "normalize_response_type",
    "policy_from_dict",
]

DEFAULT_POLICY_PATH = Path(__file__).with_name("default_policy.yaml")

#: The completion classes of the paper; every response type defines each of them.
CLASS_NAMES = (
    "ideal",
    "minimum_acceptable_style",
    "unacceptable_completion",
    "illogical_completion",
    "disallowed_completion",
)

#: A conjunction: proposition (or derived proposition) name -> the truth value it must have.
Conjunction = dict[str, bool]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Example(_Strict):
    text: str = Field(min_length=1)
    answer: Literal["yes", "no"]

    @field_validator("answer", mode="before")
    @classmethod
    def _yaml_bool(cls, v: Any) -> Any:  # YAML 1.1 reads a bare yes/no as a boolean
        return {True: "yes", False: "no"}.get(v, v) if isinstance(v, bool) else v


class PropositionSpec(_Strict):
    question: str = Field(min_length=1, description="A yes/no question about the last assistant message.")
    examples: tuple[Example, ...] = ()


class ResponseTypeSpec(_Strict):
    description: str = ""
    classes: dict[str, Conjunction]
    ordering: tuple[str, ...] = Field(description="Completion labels, best first, for weight fitting.")
    features: tuple[str, ...] = Field(
        default=(), description="Extra propositions to grade and expose as features beyond the classes'."
    )


class Policy(_Strict):
    name: str
    description: str = ""
    propositions: dict[str, PropositionSpec]
    derived: dict[str, Conjunction] = {}
    response_types: dict[str, ResponseTypeSpec]
    categories: dict[str, str]
    source: str = Field(default="<memory>", exclude=True)

    # -- derived facts -------------------------------------------------------------------------------

    @cached_property
    def hash(self) -> str:
        """Stable content hash: the policy's version."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @cached_property
    def derived_order(self) -> tuple[str, ...]:
        """Derived propositions in an order where each comes after those it uses."""
        return _topological_order(self.derived, self.source)

    def base_propositions(self, name: str) -> set[str]:
        """The graded propositions a (derived) proposition depends on."""
        if name in self.propositions:
            return {name}
        return set().union(*(self.base_propositions(n) for n in self.derived[name]))

    def required_propositions(self, response_type: str) -> tuple[str, ...]:
        """The propositions a response type needs graded, in policy order (AUTO: every response type's)."""
        specs = self.response_types.values() if response_type == AUTO else [self.response_type(response_type)]
        needed: set[str] = set()
        for spec in specs:
            needed |= set(spec.features)
            for conj in spec.classes.values():
                for name in conj:
                    needed |= self.base_propositions(name)
        return tuple(p for p in self.propositions if p in needed)

    def feature_names(self, response_type: str) -> tuple[str, ...]:
        """Named features of a response type: its proposition probabilities, then its class probabilities."""
        spec = self.response_type(response_type)
        return tuple(f"prop:{p}" for p in self.required_propositions(response_type)) + tuple(
            f"class:{c}" for c in spec.classes
        )

    def response_type_probabilities(self, p_category: Mapping[str, float]) -> dict[str, float]:
        """P(response type): the sum of P(category) over the categories the content policy maps to it."""
        out = dict.fromkeys(self.response_types, 0.0)
        for cat, p in p_category.items():
            out[normalize_response_type(self.categories[cat])] += p
        return out

    def check_propositions(self, names: Collection[str], field: str = "propositions") -> None:
        """InputError naming `field` if any of `names` is not one of this policy's propositions (the one check)."""
        unknown = [n for n in names if n not in self.propositions]
        if unknown:
            raise InputError(field, f"unknown proposition(s): {', '.join(unknown)}")

    def response_type(self, name: str) -> ResponseTypeSpec:
        key = normalize_response_type(name)
        if key not in self.response_types:
            raise KeyError(f"unknown response type {name!r}; known: {', '.join(self.response_types)}")
        return self.response_types[key]

    def resolve_response_type(self, response_type: str | None = None, category: str | None = None) -> str:
        """The response type of an item: given directly, else from its category via the content policy; AUTO
        (category or response type 'auto') when the service is to read it from the prompt."""
        if response_type is not None:
            key = normalize_response_type(response_type)
            if key == AUTO:
                return AUTO
            if key not in self.response_types:
                raise KeyError(f"unknown response type {response_type!r}; known: {', '.join(self.response_types)}")
            return key
        if category == AUTO:
            return AUTO
        if category is not None:
            if category not in self.categories:
                raise KeyError(f"unknown category {category!r}; known: {', '.join(self.categories)}")
            return self.categories[category]
        raise KeyError("neither response_type nor category given")


#: The category of an unlabelled prompt: the service reads P(category) from the prompt (its prompt classifier).
AUTO = "auto"


def normalize_response_type(name: str) -> str:
    """'Hard Refuse' / 'hard-refuse' / 'hard_refuse' -> 'hard_refuse'."""
    return "_".join(name.strip().lower().replace("-", " ").split())


def label_fields(label: str, response_types: Collection[str]) -> dict[str, str]:
    """The item field a bare label fills: `response_type` if it names one of `response_types`, else `category`.

    The one place a trainer's label column (OpenRLHF's `labels`, verl's `ground_truth`) is read.
    """
    return {"response_type": label} if normalize_response_type(label) in response_types else {"category": label}


# -- loading and validation ---------------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that rejects duplicate keys instead of silently keeping the last one."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate name {key!r} (first at line {seen[key] + 1})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_policy(path: str | Path | None = None) -> Policy:
    """Load and validate a policy file (the default policy when `path` is None)."""
    path = Path(path) if path is not None else DEFAULT_POLICY_PATH
    source = str(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise PolicyError(source, "<file>", f"cannot read: {e.strerror or e}") from e
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "<yaml>"
        raise PolicyError(source, where, str(getattr(e, "problem", e))) from e
    return policy_from_dict(raw, source)


def policy_from_dict(raw: Any, source: str = "<memory>") -> Policy:
    """Validate a policy given as plain data (what the YAML parses to)."""
    if not isinstance(raw, Mapping):
        raise PolicyError(source, "<root>", "the policy must be a mapping")
    try:
        policy = Policy.model_validate({**raw, "source": source})
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "<root>"
        raise PolicyError(source, key, err["msg"]) from e
    _check_references(policy)
    return policy


def _check_references(p: Policy) -> None:
    src = p.source
    for name in p.derived:
        if name in p.propositions:
            raise PolicyError(src, f"derived.{name}", "duplicate name: already a proposition")
    known = set(p.propositions) | set(p.derived)
    for name, conj in p.derived.items():
        if not conj:
            raise PolicyError(src, f"derived.{name}", "empty conjunction")
        for ref in conj:
            if ref not in known:
                raise PolicyError(src, f"derived.{name}.{ref}", "unknown proposition")
    _topological_order(p.derived, src)
    if not p.response_types:
        raise PolicyError(src, "response_types", "no response types defined")
    for rt, spec in p.response_types.items():
        if normalize_response_type(rt) != rt:
            raise PolicyError(src, f"response_types.{rt}", f"write the name as {normalize_response_type(rt)!r}")
        if not spec.classes:
            raise PolicyError(src, f"response_types.{rt}.classes", "response type without classes")
        for cls in CLASS_NAMES:
            if cls not in spec.classes:
                raise PolicyError(src, f"response_types.{rt}.classes.{cls}", "class with no rule")
        for cls, conj in spec.classes.items():
            if cls not in CLASS_NAMES:
                raise PolicyError(
                    src, f"response_types.{rt}.classes.{cls}", f"unknown class; classes are {', '.join(CLASS_NAMES)}"
                )
            if not conj:
                raise PolicyError(src, f"response_types.{rt}.classes.{cls}", "class with no rule")
            for ref in conj:
                if ref not in known:
                    raise PolicyError(src, f"response_types.{rt}.classes.{cls}.{ref}", "unknown proposition")
        for ref in spec.features:
            if ref not in p.propositions:
                raise PolicyError(src, f"response_types.{rt}.features.{ref}", "unknown proposition")
        if len(set(spec.ordering)) != len(spec.ordering):
            dup = next(x for x in spec.ordering if spec.ordering.count(x) > 1)
            raise PolicyError(src, f"response_types.{rt}.ordering", f"duplicate label {dup!r} (ties are not allowed)")
        if len(spec.ordering) < 2:
            raise PolicyError(src, f"response_types.{rt}.ordering", "needs at least two labels to order")
        for label in spec.ordering:
            if label not in spec.classes:
                raise PolicyError(src, f"response_types.{rt}.ordering", f"unknown completion label {label!r}")
    for cat, rt in p.categories.items():
        if cat == AUTO:
            raise PolicyError(src, f"categories.{cat}", f"{AUTO!r} is reserved: it asks the service for the category")
        if normalize_response_type(rt) not in p.response_types:
            raise PolicyError(src, f"categories.{cat}", f"unknown response type {rt!r}")


def _topological_order(derived: Mapping[str, Conjunction], source: str) -> tuple[str, ...]:
    order: list[str] = []
    state: dict[str, int] = {}  # 1 = visiting, 2 = done

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = path[path.index(name) :] + [name]
            raise PolicyError(source, f"derived.{name}", "cycle among derived propositions: " + " -> ".join(cycle))
        state[name] = 1
        for ref in derived[name]:
            if ref in derived:
                visit(ref, path + [name])
        state[name] = 2
        order.append(name)

    for name in derived:
        visit(name, [])
    return tuple(order)
