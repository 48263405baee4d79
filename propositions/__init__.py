"""The behaviour policy and its rule arithmetic. No model code lives here."""

from ._errors import InputError, PolicyError, RBRError
from ._policy import (
    CLASS_NAMES,
    DEFAULT_POLICY_PATH,
    Conjunction,
    Policy,
    PropositionSpec,
    ResponseTypeSpec,
    label_fields,
    load_policy,
    normalize_response_type,
    policy_from_dict,
)
from ._rules import class_probabilities, conjunction_probability, feature_vector, graded_classes, top_class

__all__ = [
    "CLASS_NAMES",
    "DEFAULT_POLICY_PATH",
    "Conjunction",
    "InputError",
    "Policy",
    "PolicyError",
    "PropositionSpec",
    "RBRError",
    "ResponseTypeSpec",
    "class_probabilities",
    "conjunction_probability",
    "feature_vector",
    "graded_classes",
    "label_fields",
    "load_policy",
    "normalize_response_type",
    "policy_from_dict",
    "top_class",
]
