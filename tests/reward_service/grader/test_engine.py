"""The Grader's side of the engine interface (`GraderEngine`), with a stand-in engine (unit test only).

The real engines are tested against the real model (test_grader_model.py) and a mock HTTP transport
(test_logprob_engines.py); here: what the Grader does with whatever an engine returns or raises.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from reward_service.errors import GraderError
from reward_service.grader import READOUT_CHUNK, GradeItem, Grader
from reward_service.grader._engine import GraderEngine, Readout, TransformersEngine
from reward_service.grader._logprob_engines import OpenAIEngine, VLLMEngine
from reward_service.grader._prompt import EncodedItem

ITEM = GradeItem(({"role": "user", "content": "hi"},), "hello", "comply")


class Tok:
    chat_template = None

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [ord(c) % 97 for c in text]}


class StandInEngine:
    """Counts calls; answers log-odds 1.0 per question, or raises `fail`."""

    layers: tuple[int, ...] = ()

    def __init__(self, fail: Exception | None = None) -> None:
        self.fail, self.calls = fail, []

    def readout(self, enc: EncodedItem, strategy="prefix", answer_states=True) -> Readout:
        return self.readout_many([enc], answer_states)[0]

    def readout_many(self, encs, answer_states=False) -> list[Readout]:
        self.calls.append(len(encs))
        if self.fail:
            raise self.fail
        return [Readout(np.ones(len(e.suffix_ids), np.float32), np.zeros((2, 0, 0)), None, 1) for e in encs]

    def pooled(self, encs) -> list[Readout]:
        raise AssertionError("prompted mode asks questions: pooled() is never called")


def _grader(policy, engine) -> Grader:
    from reward_service.grader._prompt import PromptFormat

    return Grader(policy, engine, PromptFormat(Tok()), "prompted")


@pytest.mark.parametrize("cls", [TransformersEngine, OpenAIEngine, VLLMEngine, StandInEngine])
def test_every_engine_implements_the_protocol(cls):
    """Each Protocol method exists and takes the Protocol's parameters (by name, in order)."""
    for name in ("readout", "readout_many", "pooled"):
        want = list(inspect.signature(getattr(GraderEngine, name)).parameters)
        have = list(inspect.signature(getattr(cls, name)).parameters)
        assert have[: len(want)] == want, f"{cls.__name__}.{name}{tuple(have)} != GraderEngine.{name}{tuple(want)}"


def test_items_go_to_the_engine_in_chunks(policy):
    engine = StandInEngine()
    n = READOUT_CHUNK + 3
    probs = _grader(policy, engine).grade([ITEM] * n, ["apology"])
    assert engine.calls == [READOUT_CHUNK, 3]
    assert [p["apology"] for p in probs] == pytest.approx([1 / (1 + np.exp(-1.0))] * n)


def test_an_engine_failure_is_a_grader_error_never_a_default(policy):
    with pytest.raises(GraderError, match="grader forward pass failed: RuntimeError: boom"):
        _grader(policy, StandInEngine(RuntimeError("boom"))).grade([ITEM], ["apology"])
    own = GraderError("grader server http://x answered 500")
    with pytest.raises(GraderError) as e:
        _grader(policy, StandInEngine(own)).grade([ITEM], ["apology"])
    assert e.value is own  # engine errors pass through unchanged


def test_serving_engines_refuse_hidden_state_readouts():
    engine = OpenAIEngine.__new__(OpenAIEngine)  # no server needed: pooled() fails before any I/O
    with pytest.raises(GraderError, match="grader_backend 'openai' returns no hidden states.*'transformers'"):
        engine.pooled([])


def test_pooled_stats_read_the_whole_completion_its_opening_and_its_closing():
    """`_pool` (POOL_STATS): mean and max over the completion span; opening / closing = the mean over its first /
    last EDGE_TOKENS tokens, which are the mean itself when the completion is shorter than that."""
    from types import SimpleNamespace

    import torch

    from reward_service.grader._engine import EDGE_TOKENS, POOL_STATS

    rng = np.random.default_rng(0)
    t, a = EDGE_TOKENS * 3, 5
    hs = [torch.tensor(rng.normal(size=(1, t, 8)), dtype=torch.float32) for _ in range(3)]  # layers x (1, T, H)
    fake = SimpleNamespace(layers=(0, 2))
    pooled = TransformersEngine._pool(fake, hs, 0, (a, t))  # (4, L, H)
    assert pooled.shape == (len(POOL_STATS), 2, 8)
    span = hs[2][0, a:t].numpy()  # layer 2, the completion's tokens
    np.testing.assert_allclose(pooled[POOL_STATS.index("mean"), 1], span.mean(0), atol=1e-6)
    np.testing.assert_allclose(pooled[POOL_STATS.index("max"), 1], span.max(0), atol=1e-6)
    np.testing.assert_allclose(pooled[POOL_STATS.index("opening"), 1], span[:EDGE_TOKENS].mean(0), atol=1e-6)
    np.testing.assert_allclose(pooled[POOL_STATS.index("closing"), 1], span[-EDGE_TOKENS:].mean(0), atol=1e-6)
    assert not np.allclose(pooled[POOL_STATS.index("opening")], pooled[POOL_STATS.index("mean")])
    short = TransformersEngine._pool(fake, hs, 0, (a, a + 3))  # 3 tokens: every mean is the same mean
    np.testing.assert_allclose(short[POOL_STATS.index("opening")], short[POOL_STATS.index("mean")], atol=1e-6)
    np.testing.assert_allclose(short[POOL_STATS.index("closing")], short[POOL_STATS.index("mean")], atol=1e-6)


def test_category_auto_without_a_prompt_classifier_is_an_input_error_before_any_forward_pass(policy):
    from propositions import AUTO
    from reward_service.errors import InputError

    engine = StandInEngine()
    with pytest.raises(InputError, match=r"category: 'auto' needs a prompt classifier.*rbr fit-classifier"):
        _grader(policy, engine).grade([ITEM, GradeItem(ITEM.conversation, "hello", AUTO)])
    assert engine.calls == []
    labelled, categories = _grader(policy, engine).grade_with_categories([ITEM])  # labelled items need none
    assert categories == [None] and set(labelled[0]) == set(policy.required_propositions("comply"))
