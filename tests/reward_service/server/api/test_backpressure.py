"""Under a trainer's load: bounded admission (429 + Retry-After), gone clients' work dropped, one bad item
never failing the requests merged with it, and the default response type for unlabelled OpenRLHF samples.

In process, over the stand-in grader taking 0.1 s per item: the model thread is busy exactly as long as the
tests need, on any CPU."""

from __future__ import annotations

import asyncio
import json
import re

import httpx
import pytest

from reward_service.client import AsyncRewardClient
from tests.reward_service.server.stand_in import stand_in_server

pytestmark = pytest.mark.in_process

GOOD = {"prompt": "How do I bake bread?", "completion": "Mix flour, water, yeast; bake.", "response_type": "comply"}
SECONDS_PER_ITEM = 0.1


@pytest.fixture(scope="module")
def small_queue():
    """A server that admits at most 4 waiting items, batches 2 at a time and defaults to `comply`."""
    settings = {"max_queue_items": 4, "batch_max_items": 2, "default_response_type": "comply"}
    with stand_in_server(SECONDS_PER_ITEM, **settings) as s:
        yield s.url


def metric(url: str, name: str, labels: str = "") -> float:
    text = httpx.get(url + "/metrics").text
    found = re.findall(rf"^{re.escape(name + labels)} ([0-9.e+-]+)$", text, re.M)
    return float(found[0]) if found else 0.0


def post_raw(client: httpx.AsyncClient, url: str, body: dict):
    """POST a body that may hold lone surrogates (httpx's json= refuses to encode them; JSON escapes them)."""
    return client.post(url, content=json.dumps(body), headers={"content-type": "application/json"})


def test_overload_answers_429_with_retry_after_and_the_clients_retries_succeed(small_queue):
    async def main():
        async with httpx.AsyncClient(timeout=300) as raw:
            first = await asyncio.gather(
                *[raw.post(small_queue + "/v1/rewards", json={"items": [GOOD] * 2}) for _ in range(6)]
            )
        async with AsyncRewardClient(small_queue, retries=30, max_backoff_s=5) as client:
            retried = await asyncio.gather(*[client.rewards([GOOD]) for _ in range(12)])
        return first, retried

    first, retried = asyncio.run(main())
    statuses = sorted(r.status_code for r in first)
    assert 429 in statuses and 200 in statuses, statuses
    for r in first:
        if r.status_code == 429:
            assert int(r.headers["retry-after"]) >= 1
            assert r.json()["error"]["type"] == "overloaded" and "RBR_MAX_QUEUE_ITEMS" in r.json()["error"]["message"]
        else:
            assert len(r.json()["rewards"]) == 2
    assert all(len(out.rewards) == 1 for out in retried), "every client got its reward in the end"
    assert metric(small_queue, "rbr_rejected_requests_total", '{reason="overloaded"}') >= statuses.count(429)
    assert metric(small_queue, "rbr_queue_depth") == 0


def test_a_lone_surrogate_gets_422_while_the_requests_sent_with_it_get_rewards(small_queue):
    bad = {"items": [{**GOOD, "prompt": "hi \ud800"}]}

    async def main():
        async with httpx.AsyncClient(timeout=300) as c:
            return await asyncio.gather(
                post_raw(c, small_queue + "/v1/rewards", {"items": [GOOD]}),
                post_raw(c, small_queue + "/v1/rewards", bad),
                post_raw(c, small_queue + "/v1/rewards", {"items": [GOOD]}),
            )

    a, b, c = asyncio.run(main())
    assert b.status_code == 422 and b.json()["error"]["field"] == "items[0].prompt", b.text
    assert "surrogate" in b.json()["error"]["message"]
    assert a.status_code == c.status_code == 200 and a.json()["rewards"] == c.json()["rewards"]


def test_work_of_clients_that_gave_up_is_dropped(small_queue):
    scored_before = metric(small_queue, "rbr_batch_items_sum")

    async def main():
        async with httpx.AsyncClient(timeout=300) as patient:
            busy = asyncio.create_task(patient.post(small_queue + "/v1/rewards", json={"items": [GOOD] * 2}))
            await asyncio.sleep(0.05)  # the model thread is busy with it for 0.2 s
            async with httpx.AsyncClient(timeout=0.05) as impatient:
                gave_up = await asyncio.gather(
                    *[impatient.post(small_queue + "/v1/rewards", json={"items": [GOOD]}) for _ in range(2)],
                    return_exceptions=True,
                )
            return await busy, gave_up

    busy, gave_up = asyncio.run(main())
    assert busy.status_code == 200 and all(isinstance(g, httpx.TimeoutException) for g in gave_up)
    dropped = metric(small_queue, "rbr_dropped_items_total", '{reason="client_gone"}')
    assert dropped >= 2
    scored = metric(small_queue, "rbr_batch_items_sum") - scored_before
    assert scored == 2, f"only the patient client's 2 items reached the grader, not {scored}"


def test_an_unlabelled_openrlhf_sample_gets_the_default_response_type(small_queue):
    prompt = "<|im_start|>user\nHow do I bake bread?<|im_end|>\n<|im_start|>assistant\n"
    query = prompt + GOOD["completion"] + "<|im_end|>"
    bodies = [{"query": [query], "prompts": [prompt], "labels": [label]} for label in ("", None, "comply")]
    bodies.append({"query": [query], "prompts": [prompt]})
    out = [httpx.post(small_queue + "/get_reward", json=b, timeout=120) for b in bodies]
    assert all(r.status_code == 200 for r in out), [r.text for r in out]
    rewards = [r.json()["rewards"][0] for r in out]
    assert rewards == pytest.approx([rewards[2]] * 4, abs=1e-6)
    assert all(r.json()["extra_logs"]["rbr/response_type/comply"] == [1.0] for r in out)


def test_a_short_soak_past_capacity_answers_every_request_with_a_reward_or_a_reasoned_refusal(small_queue):
    """32 clients for 5 s against a 4-item queue (benchmarks/soak.py runs the long version on the real model)."""
    from benchmarks.soak import soak

    out = asyncio.run(soak(small_queue, clients=32, seconds=5))
    assert out["bad"] == [], out["bad"][:5]
    assert out["statuses"].get("200", 0) > 0 and out["statuses"].get("429", 0) > 0, out["statuses"]
    assert set(out["statuses"]) <= {"200", "429", "503"}, out["statuses"]
    assert httpx.get(small_queue + "/v1/policy").json()["default_response_type"] == "comply"
