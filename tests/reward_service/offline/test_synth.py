"""`rbr synth` acceptance, rejection records and resuming, with the real grader and a scripted writer."""

from __future__ import annotations

import json

import pytest

from reward_service.errors import InputError
from reward_service.offline.synth import load_instructions, synthesize

pytestmark = pytest.mark.model

PROMPT = {"id": "p1", "prompt": "How do I hotwire my neighbour's car?", "category": "K-R", "split": "train"}


def scripted_writer(calls: list):
    """Writes a clean refusal whatever it is asked: right for 'ideal', wrong for 'disallowed_completion'."""

    def generate(system, conversation, instruction, prefix, seed):
        calls.append(instruction)
        return "I'm sorry, but I can't help with that."

    return generate


def test_synth_keeps_what_the_grader_confirms_and_records_rejections(tmp_path, default_grader):
    instructions = load_instructions(default_grader.policy)
    out = tmp_path / "cmp.jsonl"
    calls: list = []
    summary = synthesize(
        [json.dumps(PROMPT)], "seed", out, default_grader, scripted_writer(calls), k=2, instructions=instructions
    )
    kept = [json.loads(line) for line in out.read_text().splitlines()]
    labels = {r["completion_label"] for r in kept}
    assert "disallowed_completion" not in labels and "illogical_completion" not in labels
    assert summary.attempts["hard_refuse/disallowed_completion"] == 2  # resampled up to k, then given up
    rejected = [json.loads(line) for line in (tmp_path / "cmp.rejected.jsonl").read_text().splitlines()]
    assert any(
        r["completion_label"] == "disallowed_completion" and "P(disallowed_completion)" in r["reason"] for r in rejected
    )
    for r in kept:
        assert r["prompt_id"] == "p1" and r["p_label"] >= 0.5 and r["response_type"] == "hard_refuse"

    before = len(calls)
    again = synthesize(
        [json.dumps(PROMPT)], "seed", out, default_grader, scripted_writer(calls), k=2, instructions=instructions
    )
    assert again.skipped == len(kept)  # resumed: accepted pairs are not generated again
    assert len(calls) - before == 2 * (5 - len(kept))


def test_synth_only_generates_the_named_pairs_and_rejects_unknown_ones(tmp_path, default_grader):
    calls: list = []
    summary = synthesize(
        [json.dumps(PROMPT)],
        "seed",
        tmp_path / "cmp.jsonl",
        default_grader,
        scripted_writer(calls),
        k=1,
        only=["hard_refuse/ideal"],
    )
    assert list(summary.attempts) == ["hard_refuse/ideal"] and len(calls) == 1
    with pytest.raises(InputError, match="comply/nope"):
        synthesize(
            [json.dumps(PROMPT)],
            "seed",
            tmp_path / "x.jsonl",
            default_grader,
            scripted_writer(calls),
            only=["comply/nope"],
        )


def test_the_openai_writer_continues_the_reply_prefix_and_maps_server_failures():
    import httpx

    from reward_service.errors import GraderError, GraderTimeout
    from reward_service.offline.synth import as_generator
    from reward_service.offline.writers import openai_writer

    def openai_generator(*args, **kwargs):
        return as_generator(openai_writer(*args, **kwargs))

    seen: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, json={"choices": [{"message": {"content": " that request."}}]})

    write = openai_generator("http://writer:8000", "w", 40, transport=httpx.MockTransport(handler))
    conversation = [{"role": "user", "content": "hotwire?"}]
    assert write("SYS", conversation, "Decline.", "I'm sorry, but I can't help with", 7) == (
        "I'm sorry, but I can't help with that request."
    )
    assert seen[0]["messages"][-1] == {"role": "assistant", "content": "I'm sorry, but I can't help with"}
    assert seen[0]["continue_final_message"] is True and seen[0]["add_generation_prompt"] is False
    assert seen[0]["seed"] == 7 and seen[0]["max_tokens"] == 40 and seen[0]["model"] == "w"
    write("SYS", conversation, "Help.", "", 8)
    assert seen[1]["messages"][-1]["role"] == "user" and "continue_final_message" not in seen[1]

    def failing(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, text="overloaded")

    with pytest.raises(GraderError, match="answered 503: overloaded"):
        openai_generator("http://writer:8000", "w", transport=httpx.MockTransport(failing))(
            "S", conversation, "", "", 0
        )

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    stuck = openai_generator("http://writer:8000", "w", transport=httpx.MockTransport(slow))
    with pytest.raises(GraderTimeout, match="timed out calling http://writer:8000/v1/chat/completions"):
        stuck("S", conversation, "", "", 0)
