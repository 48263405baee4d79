"""The root of the project's exception tree, here because every layer (this one included) raises into it.

reward_service.errors builds the rest of the tree on RBRError and InputError; see its docstring.
"""

from __future__ import annotations

__all__ = ["InputError", "PolicyError", "RBRError"]


class RBRError(Exception):
    """Base of every error the project raises on purpose."""


class InputError(RBRError, ValueError):
    """Bad input. `field` is where (e.g. 'line 3: completion'), the message says what limit it broke."""

    def __init__(self, field: str, problem: str) -> None:
        self.field, self.problem = field, problem
        super().__init__(f"{field}: {problem}")


class PolicyError(InputError):
    """A policy file is invalid. `field` is "<file>: <key>"; the message names the file, the key and the problem."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source, self.key = source, key
        super().__init__(f"{source}: {key}", problem)
