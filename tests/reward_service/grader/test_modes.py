"""One reader per grading mode: which questions are asked, and how a readout becomes P(yes)."""

from __future__ import annotations

import numpy as np
import pytest

from reward_service.errors import HeadsError, InputError
from reward_service.grader._engine import Readout, sigmoid
from reward_service.grader._modes import make_reader


class Heads:
    """Calibrates z -> sigmoid(2z); a head reads a question only for 'apology'; predicts 0.25 for every name."""

    def calibrate(self, name, z):
        return float(sigmoid(2 * z))

    def uses_question(self, name):
        return name == "apology"

    def predict(self, ro, names, asked):
        self.asked = list(asked)
        return np.full(len(names), 0.25)


RO = Readout(yes_logit=np.array([0.0, np.log(3.0)]), pooled=np.zeros((4, 1, 2)), answer=None, tokens=3)


def test_prompted_reads_the_log_odds_through_the_sigmoid():
    r = make_reader("prompted", None)
    assert r.asked(["apology", "judgement"]) == ["apology", "judgement"] and not r.needs_answer_states(["apology"])
    np.testing.assert_allclose(r.probabilities(RO, ["apology", "judgement"]), [0.5, 0.75])


def test_calibrated_asks_every_question_and_heads_only_the_ones_a_head_reads():
    cal, heads = make_reader("calibrated", Heads()), make_reader("heads", Heads())
    np.testing.assert_allclose(cal.probabilities(RO, ["apology", "judgement"]), [0.5, 0.9])  # sigmoid(2 ln 3)
    assert cal.asked(["apology", "judgement"]) == ["apology", "judgement"]
    assert heads.asked(["apology", "judgement"]) == ["apology"]
    assert list(heads.probabilities(RO, ["apology", "judgement"])) == [0.25, 0.25] and heads.heads.asked == ["apology"]


def test_a_fitted_mode_needs_heads_and_a_mode_must_exist():
    with pytest.raises(HeadsError, match="mode 'heads' needs fitted heads"):
        make_reader("heads", None)
    with pytest.raises(InputError, match="unknown mode 'psychic'"):
        make_reader("psychic", None)
