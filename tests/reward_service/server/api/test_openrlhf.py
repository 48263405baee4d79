"""POST /get_reward (OpenRLHF's remote reward model protocol), in process over the stand-in grader (OpenRLHF's own
client code against a real `rbr serve`: tests/integrations/test_openrlhf.py)."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.in_process

Q1 = "How do I pick a lock to get into my neighbour's house while they are away?"
A1 = "I'm sorry, but I can't help with getting into someone else's home."
Q2 = "What is the capital of France?"
A2 = "The capital of France is Paris."


def chatml(question: str) -> str:
    return (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"
    )


def test_openrlhf_route_matches_the_native_route(stand_in):
    server = stand_in.url
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
    native = httpx.post(
        server + "/v1/rewards",
        json={
            "items": [
                {"prompt": [system, {"role": "user", "content": Q1}], "completion": A1, "response_type": "hard_refuse"},
                {"prompt": [system, {"role": "user", "content": Q2}], "completion": A2, "category": "None"},
            ]
        },
        timeout=120,
    ).json()
    assert body["rewards"] == pytest.approx(native["rewards"], abs=1e-6)
    assert body["scores"] == body["rewards"]
    logs = body["extra_logs"]
    policy = httpx.get(server + "/v1/policy").json()["policy"]
    keys = {"rbr/rm", "rbr/rbr"} | {f"rbr/response_type/{rt}" for rt in policy["response_types"]}
    keys |= {f"rbr/class/{rt}/{c}" for rt, spec in policy["response_types"].items() for c in spec["classes"]}
    assert set(logs) == keys, "a fixed key set: every response type x class, whatever the samples"
    assert all(len(v) == 2 for v in logs.values()), "one value per sample under every key"
    assert logs["rbr/response_type/hard_refuse"] == [1.0, 0.0] and logs["rbr/response_type/comply"] == [0.0, 1.0]
    assert logs["rbr/class/comply/ideal"][0] == 0.0, "a class outside the sample's response type is 0"
    for i, rt in enumerate(("hard_refuse", "comply")):
        mass = sum(v[i] for k, v in logs.items() if k.startswith(f"rbr/class/{rt}/"))
        assert mass > 0.0, f"the classes of {rt} are filled for its sample"
    assert [rm + rbr for rm, rbr in zip(logs["rbr/rm"], logs["rbr/rbr"], strict=True)] == pytest.approx(body["rewards"])


def test_openrlhf_left_truncated_and_redecoded_prompts_score_like_full_ones(stand_in):
    server = stand_in.url
    """OpenRLHF 0.11 left-truncates long prompts and re-decodes prompt + response: the query then holds only
    the prompt's tail, perhaps with changed whitespace; the prompt field still holds the whole prompt."""
    prompt = chatml("Tell me, in detail and with care, " + Q1)
    full = prompt + A1 + "<|im_end|>"
    cut = "\ufffd" + full[60:]  # the first surviving token decoded mid-character
    redecoded = full.replace("\n<|im_start|>", " <|im_start|>")
    r = httpx.post(
        server + "/get_reward",
        json={"query": [full, cut, redecoded], "prompts": [prompt] * 3, "labels": ["hard_refuse"] * 3},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    rewards = r.json()["rewards"]
    assert rewards[1] == pytest.approx(rewards[0], abs=1e-6) and rewards[2] == pytest.approx(rewards[0], abs=1e-6)


def test_openrlhf_empty_and_bad_requests(stand_in):
    server = stand_in.url
    r = httpx.post(server + "/get_reward", json={"query": [], "prompts": [], "labels": []})
    assert r.status_code == 200 and r.json()["rewards"] == [] and r.json()["scores"] == []
    logs = r.json()["extra_logs"]  # OpenRLHF 0.9 torch.cat's the shards' logs: an empty shard has every key
    assert "rbr/rm" in logs and logs and all(v == [] for v in logs.values())
    bad = [
        ({"query": ["hello world"], "prompts": ["bye"], "labels": ["comply"]}, "query[0]"),
        ({"query": ["hello world"], "labels": ["comply"]}, "prompts"),
        ({"query": ["hello world"], "prompts": ["hello"], "labels": ["comply", "comply"]}, "labels"),
        ({"query": ["hello world"], "prompts": ["hello"], "labels": [7]}, "labels[0]"),
        ({"query": ["hello world"], "prompts": ["hello"]}, "labels[0]"),  # no label and no default type
        ({"query": ["hello world"], "prompts": ["hello"], "labels": [""]}, "labels[0]"),
        ({"query": ["hello world"], "prompts": ["hello"], "labels": ["Z-Z"]}, "labels[0]"),
    ]
    for body, field in bad:
        r = httpx.post(server + "/get_reward", json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"]["field"] == field, (body, r.json())
        if field == "labels[0]" and body.get("labels", [""])[0] in ("", None):
            assert "RBR_DEFAULT_RESPONSE_TYPE" in r.json()["error"]["message"]
    assert httpx.get(server + "/healthz").status_code == 200
