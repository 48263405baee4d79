"""How a readout of the grader LLM becomes P(yes): one small reader per mode behind one interface.

prompted    sigmoid of the yes-vs-no log-odds of the next token after the question (zero-shot);
calibrated  the same log-odds through a per-proposition logistic calibrator fitted on labelled data;
heads       a per-proposition logistic regression on the LLM's hidden states (trained heads); a head that
            reads no question's answer state or log-odds needs no question asked (one prefix forward).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

from reward_service.config import MODES, Mode
from reward_service.errors import HeadsError, InputError
from reward_service.grader._engine import Readout, sigmoid

if TYPE_CHECKING:
    from reward_service.grader.heads import GraderHeads

__all__ = ["Reader", "make_reader"]


class Reader(Protocol):
    mode: Mode
    heads: GraderHeads | None

    def asked(self, names: Sequence[str]) -> list[str]:
        """The propositions among `names` whose question the grader LLM must be asked (readout rows follow it)."""
        ...

    def needs_answer_states(self, names: Sequence[str]) -> bool:
        """Whether reading `names` needs the hidden states at the questions' answer positions."""
        ...

    def probabilities(self, ro: Readout, names: Sequence[str]) -> np.ndarray:
        """(len(names),) P(yes) of each proposition from a readout asked `asked(names)`."""
        ...

    def check_questions(self, current: Mapping[str, str], names: Sequence[str]) -> None:
        """HeadsError unless the fitted heads were fitted for these questions (nothing to check when prompted)."""
        ...


class _Prompted:
    mode: Mode = "prompted"
    heads = None

    def asked(self, names: Sequence[str]) -> list[str]:
        return list(names)

    def needs_answer_states(self, names: Sequence[str]) -> bool:
        return False

    def probabilities(self, ro: Readout, names: Sequence[str]) -> np.ndarray:
        return sigmoid(ro.yes_logit)

    def check_questions(self, current: Mapping[str, str], names: Sequence[str]) -> None:
        return None


class _Calibrated(_Prompted):
    mode: Mode = "calibrated"

    def __init__(self, heads: GraderHeads) -> None:
        self.heads = heads

    def probabilities(self, ro: Readout, names: Sequence[str]) -> np.ndarray:
        return np.array([self.heads.calibrate(n, float(z)) for n, z in zip(names, ro.yes_logit, strict=True)])

    def check_questions(self, current: Mapping[str, str], names: Sequence[str]) -> None:
        self.heads.check_questions(current, names, self.mode)


class _Heads(_Calibrated):
    mode: Mode = "heads"

    def asked(self, names: Sequence[str]) -> list[str]:
        return [n for n in names if self.heads.uses_question(n)]

    def needs_answer_states(self, names: Sequence[str]) -> bool:
        return any(self.heads.heads[n].spec.answer_layers for n in names)

    def probabilities(self, ro: Readout, names: Sequence[str]) -> np.ndarray:
        return self.heads.predict(ro, names, self.asked(names))


def make_reader(mode: str, heads: GraderHeads | None) -> Reader:
    """The reader of `mode`; a fitted mode without heads is a HeadsError, an unknown mode an InputError."""
    if mode not in MODES:
        raise InputError("mode", f"unknown mode {mode!r}; modes are {', '.join(MODES)}")
    if mode == "prompted":
        return _Prompted()
    if heads is None:
        raise HeadsError(f"mode {mode!r} needs fitted heads; run `rbr fit-grader` or use mode 'prompted'")
    return _Calibrated(heads) if mode == "calibrated" else _Heads(heads)
