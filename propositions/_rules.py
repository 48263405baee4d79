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

__all__ = [
    "class_probabilities",
    "class_vertices",
    "classes_holding",
    "conjunction_probability",
    "feature_vector",
    "graded_classes",
    "top_class",
]

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


def classes_holding(policy: Policy, response_type: str, labels: Mapping[str, bool]) -> list[str]:
    """The classes of `response_type` whose conjunction holds for true/false labels of its propositions."""
    probs = {p: float(labels[p]) for p in policy.required_propositions(response_type)}
    return [c for c, v in class_probabilities(policy, response_type, probs).items() if v == 1.0]


def class_vertices(policy: Policy, response_type: str) -> dict[str, np.ndarray]:
    """Per class, the feature vectors of every crisp completion of that class alone.

    A crisp completion answers each of the response type's propositions with a sure yes or no; it belongs
    to a class when the class's conjunction holds, and counts here when exactly one class holds (a
    labelling that fits two classes, or none, has no place in the ordering). The reward is linear in
    these features, so its order on crisp completions is what "never score a worse class above a better
    one" means for a fitted weight vector (linear.order_violations, the fit's order constraints).
    Returns {class: (m_c, d) array} for the classes with at least one crisp completion, in policy order.
    """
    props = policy.required_propositions(response_type)
    grid = (np.arange(2 ** len(props))[:, None] >> np.arange(len(props))[None, :]) & 1  # (2^p, p)
    probs = {p: grid[:, j].astype(np.float64) for j, p in enumerate(props)}
    classes = class_probabilities(policy, response_type, probs)  # class -> (2^p,)
    member = np.stack(list(classes.values()), axis=-1) == 1.0  # (2^p, C)
    _, x = feature_vector(policy, response_type, probs, classes)  # (2^p, d)
    alone = member.sum(axis=1) == 1
    return {c: x[alone & member[:, j]] for j, c in enumerate(classes) if (alone & member[:, j]).any()}
