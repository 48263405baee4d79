"""Rule arithmetic: completion-class probabilities and feature vectors from proposition probabilities.

A conjunction's probability is the product over its terms of p (term must hold) or 1 - p (must not),
treating the grader's answers as independent, as in the paper. Derived propositions are computed first,
in dependency order, and then used like graded ones. Works on floats or on numpy arrays (a batch).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

import numpy as np

from ._policy import Conjunction, Policy

__all__ = ["class_probabilities", "conjunction_probability", "feature_vector", "graded_classes", "top_class"]

P = TypeVar("P", float, np.ndarray)


def conjunction_probability(conj: Conjunction, probs: Mapping[str, P]) -> P:
    """P(all terms of `conj` hold) = prod(p if wanted true else 1 - p)."""
    out: P = 1.0  # type: ignore[assignment]
    for name, wanted in conj.items():
        p = probs[name]
        out = out * (p if wanted else 1.0 - p)
    return out


def _with_derived(policy: Policy, probs: Mapping[str, P]) -> dict[str, P]:
    full = dict(probs)
    for name in policy.derived_order:  # dependencies first; skip those whose inputs were not graded
        if all(ref in full for ref in policy.derived[name]):
            full[name] = conjunction_probability(policy.derived[name], full)
    return full


def class_probabilities(policy: Policy, response_type: str, probs: Mapping[str, P]) -> dict[str, P]:
    """Probability of every completion class of `response_type`, given P(yes) of its propositions."""
    spec = policy.response_type(response_type)
    missing = [p for p in policy.required_propositions(response_type) if p not in probs]
    if missing:
        raise KeyError(f"missing probabilities for propositions: {', '.join(missing)}")
    full = _with_derived(policy, probs)
    return {cls: conjunction_probability(conj, full) for cls, conj in spec.classes.items()}


def feature_vector(
    policy: Policy, response_type: str, probs: Mapping[str, P], classes: Mapping[str, P] | None = None
) -> tuple[tuple[str, ...], np.ndarray]:
    """(feature names, values): proposition probabilities then class probabilities of the response type.

    With scalar probabilities the values have shape (n_features,); with arrays of shape (batch,), the
    values have shape (batch, n_features). `classes`: class_probabilities' result, if already computed.
    """
    names = policy.feature_names(response_type)
    classes = class_probabilities(policy, response_type, probs) if classes is None else classes
    cols = [probs[p] for p in policy.required_propositions(response_type)] + list(classes.values())
    return names, np.stack([np.asarray(c, dtype=np.float64) for c in cols], axis=-1)


def graded_classes(policy: Policy, response_type: str, probs: Mapping[str, float]) -> dict[str, float]:
    """Class probabilities when every proposition the response type needs was graded, else {} (a partial grade)."""
    if not all(p in probs for p in policy.required_propositions(response_type)):
        return {}
    return {k: float(v) for k, v in class_probabilities(policy, response_type, probs).items()}


def top_class(classes: Mapping[str, float]) -> str:
    """The most likely completion class (ties go to the first in policy order)."""
    return max(classes, key=lambda c: classes[c])
