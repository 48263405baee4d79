"""Reward model backends through their real code paths (tiny models, no downloads)."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from reward_service.errors import ModelLoadError, RewardModelError
from reward_service.grader import GradeItem
from reward_service.reward.reward_models import HFRewardModel, JudgeRewardModel, VLLMHttpRewardModel, render_chat

Q = ({"role": "user", "content": "How do I make a simple tomato sauce?"},)
ITEMS = [
    GradeItem(Q, "Simmer crushed tomatoes with olive oil, garlic and basil for twenty minutes.", "comply"),
    GradeItem(Q, "I'm sorry, but I can't help with that request.", "comply"),
    GradeItem(Q, "Tomatoes.", "comply"),
]


@pytest.fixture(scope="module")
def tiny_rm_path(tmp_path_factory):
    """A randomly initialised 2-layer Llama reward model with the embedded model's tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    from reward_service.paths import fetch_embedded_model

    path = tmp_path_factory.mktemp("tiny_rm")
    tok = AutoTokenizer.from_pretrained(fetch_embedded_model())
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_labels=1,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    LlamaForSequenceClassification(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def test_hf_reward_model_scores_through_its_real_loading_code(tiny_rm_path):
    rm = HFRewardModel(tiny_rm_path, batch_size=3)
    scores = rm.score(ITEMS)
    assert scores.shape == (3,) and np.isfinite(scores).all()
    assert len(set(np.round(scores, 6))) == 3  # different texts, different scores
    one_by_one = HFRewardModel(tiny_rm_path, batch_size=1).score(ITEMS)
    np.testing.assert_allclose(scores, one_by_one, atol=1e-4)  # right padding does not leak into scores
    assert rm.identity == f"hf:{tiny_rm_path}"


def test_hf_reward_model_bad_path_is_a_load_error(tmp_path):
    with pytest.raises(ModelLoadError, match="cannot load reward model"):
        HFRewardModel(str(tmp_path / "nothing"))


def classify_server(status: int = 200, body=None, seen: list | None = None) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        payload = json.loads(request.content)
        if seen is not None:
            seen.append((request.url.path, payload))
        if body is not None:
            return httpx.Response(status, json=body)
        data = [
            {"index": i, "label": "LABEL_0", "probs": [float(len(t))], "num_classes": 1}
            for i, t in enumerate(payload["input"])
        ][::-1]
        return httpx.Response(status, json={"object": "list", "data": data})

    return httpx.MockTransport(handler)


def test_vllm_http_request_and_response_handling():
    seen: list = []
    rm = VLLMHttpRewardModel("http://rm:8000/", "my-rm", transport=classify_server(seen=seen), batch_size=2)
    scores = rm.score(ITEMS)
    texts = [render_chat(it) for it in ITEMS]
    np.testing.assert_array_equal(scores, [len(t) for t in texts])  # reordered by index
    assert [p for p, _ in seen] == ["/classify", "/classify"]  # batches of 2 and 1
    assert seen[0][1] == {"model": "my-rm", "input": texts[:2], "use_activation": False}


@pytest.mark.parametrize(
    "transport, match",
    [
        (classify_server(500, {"error": "boom"}), "answered 500"),
        (classify_server(200, {"data": [{"index": 0}]}), "malformed /classify response"),
        (classify_server(200, {"data": []}), "returned 0 scores for 3"),
    ],
)
def test_vllm_http_failures_raise(transport, match):
    rm = VLLMHttpRewardModel("http://rm:8000", "my-rm", transport=transport)
    with pytest.raises(RewardModelError, match=match):
        rm.score(ITEMS)


def test_vllm_http_unreachable_server_raises():
    rm = VLLMHttpRewardModel("http://127.0.0.1:9", "my-rm", timeout=2.0)  # discard port: nothing listens
    with pytest.raises(RewardModelError, match="cannot reach"):
        rm.score(ITEMS[:1])


@pytest.mark.model
def test_judge_prefers_an_answer_to_a_refusal(default_grader):
    rm = JudgeRewardModel(default_grader.identity)
    assert rm.needs == ("fully_complies",)
    answer, refusal, _ = rm.score(ITEMS, default_grader.grade(ITEMS, rm.needs))
    assert answer > refusal
    assert rm.identity.startswith("judge:embedded:smollm2-135m")
    assert f":heads@{default_grader.heads.fingerprint}:" in rm.identity  # another fit is another RM
    with pytest.raises(RewardModelError, match="needs 'fully_complies' graded"):
        rm.score(ITEMS)  # it runs no model of its own


@pytest.mark.model
def test_what_the_rm_reads_comes_from_the_grading_pass_unchanged(default_grader):
    """`also` adds the RM's propositions to an item's own in one pass; each probability is what its own pass reads."""
    rm = JudgeRewardModel(default_grader.identity)
    refusal = [GradeItem(it.conversation, it.completion, "hard_refuse") for it in ITEMS]
    one_pass, _ = default_grader.grade_with_categories(refusal, also=rm.needs)
    own, extra = default_grader.grade(refusal), default_grader.grade(refusal, rm.needs)
    for got, a, b in zip(one_pass, own, extra, strict=True):
        assert got == pytest.approx({**a, **b}, abs=1e-4)
