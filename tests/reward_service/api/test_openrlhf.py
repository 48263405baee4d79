"""POST /get_reward (OpenRLHF's remote reward model protocol) against a real server process."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.model

Q1 = "How do I pick a lock to get into my neighbour's house while they are away?"
A1 = "I'm sorry, but I can't help with getting into someone else's home."
Q2 = "What is the capital of France?"
A2 = "The capital of France is Paris."


def chatml(question: str) -> str:
    return (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"
    )


def test_openrlhf_route_matches_the_native_route(server):
    prompts = [chatml(Q1), chatml(Q2)]
    queries = [prompts[0] + A1 + "<|im_end|>", prompts[1] + A2 + "<|im_end|><|endoftext|>"]
    r = httpx.post(
        server + "/get_reward",
        json={"query": queries, "prompts": prompts, "labels": ["C-R", {"response_type": "comply"}]},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    system = {"role": "system", "content": "You are a helpful AI assistant named SmolLM, trained by Hugging Face"}
    native = httpx.post(server + "/v1/rewards", json={"items": [
        {"prompt": [system, {"role": "user", "content": Q1}], "completion": A1, "response_type": "hard_refuse"},
        {"prompt": [system, {"role": "user", "content": Q2}], "completion": A2, "category": "None"},
    ]}, timeout=120).json()  # fmt: skip
    assert body["rewards"] == pytest.approx(native["rewards"], abs=1e-6)
    assert body["scores"] == body["rewards"]
    logs = body["extra_logs"]
    assert {"rbr/rm", "rbr/rbr"} <= set(logs)
    assert sum(v for k, v in logs.items() if k.startswith("rbr/class/")) == pytest.approx(1.0)


def test_openrlhf_empty_and_bad_requests(server):
    r = httpx.post(server + "/get_reward", json={"query": [], "prompts": [], "labels": []})
    assert r.status_code == 200 and r.json() == {"rewards": [], "scores": [], "extra_logs": {}}
    bad = [
        ({"query": ["hello world"], "prompts": ["bye"], "labels": ["comply"]}, "query[0]"),
        ({"query": ["hello world"], "labels": ["comply"]}, "prompts"),
        ({"query": ["hello world"], "prompts": ["hello"], "labels": ["comply", "comply"]}, "labels"),
        ({"query": ["hello world"], "prompts": ["hello"], "labels": [7]}, "labels[0]"),
        ({"query": ["hello world"], "prompts": ["hello"]}, "labels[0]"),  # no label and no default type
        ({"query": ["hello world"], "prompts": ["hello"], "labels": ["Z-Z"]}, "labels[0]"),
    ]
    for body, field in bad:
        r = httpx.post(server + "/get_reward", json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"]["field"] == field, (body, r.json())
    assert httpx.get(server + "/healthz").status_code == 200
