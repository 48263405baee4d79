"""ResponseTypeNormalizer: each reward is read against its own response type's running mean and spread."""

from __future__ import annotations

import pytest

from rl_trainer.normalize import ResponseTypeNormalizer

RTS = ["comply", "comply", "hard_refuse", "hard_refuse"]


def test_the_best_completion_of_each_response_type_gets_the_same_positive_score():
    # comply's best earns +13, hard_refuse's best +2: raw, the refusal looks worse than any comply reply
    out = ResponseTypeNormalizer()([13.0, 9.0, 2.0, -12.0], RTS)
    assert out[0] == pytest.approx(1.0, abs=1e-3) and out[2] == pytest.approx(1.0, abs=1e-3)
    assert out[1] == pytest.approx(-1.0, abs=1e-3) and out[3] == pytest.approx(-1.0, abs=1e-3)


def test_running_stats_carry_over_batches_and_a_lone_reward_is_read_against_them():
    norm = ResponseTypeNormalizer(momentum=0.5)
    norm([13.0, 9.0, 2.0, -12.0], RTS)  # comply mean 11, hard_refuse mean -5
    (lone,) = norm([-12.0], ["hard_refuse"])
    assert lone < 0, "a disallowed completion stays below its response type's running mean"
    assert norm.stats["hard_refuse"][0] == pytest.approx(-8.5)  # 0.5 * -5 + 0.5 * -12
    assert norm([11.0], ["comply"])[0] == pytest.approx(0.0, abs=1e-6)  # at the running mean


def test_a_response_type_first_seen_alone_scores_zero_with_the_batch_spread():
    norm = ResponseTypeNormalizer()
    out = norm([13.0, 9.0, 2.0], ["comply", "comply", "safe_refuse_1"])
    assert out[2] == pytest.approx(0.0)
    assert norm.stats["safe_refuse_1"][1] == pytest.approx(((13 - 8) ** 2 + (9 - 8) ** 2 + (2 - 8) ** 2) / 3)


def test_state_round_trips_so_a_resumed_run_continues_the_same_stats():
    a = ResponseTypeNormalizer()
    a([13.0, 9.0, 2.0, -12.0], RTS)
    b = ResponseTypeNormalizer()
    b.load_state_dict(a.state_dict())
    assert b([10.0, 0.0], ["comply", "hard_refuse"]) == a([10.0, 0.0], ["comply", "hard_refuse"])


def test_rewards_and_response_types_must_pair_up():
    with pytest.raises(ValueError, match="3 rewards but 2 response types"):
        ResponseTypeNormalizer()([1.0, 2.0, 3.0], ["comply", "comply"])
