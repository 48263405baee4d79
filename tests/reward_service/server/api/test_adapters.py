"""The clients and trainer adapters against a real server process."""

from __future__ import annotations

import asyncio

import pytest

from reward_service import adapters
from reward_service.client import AsyncRewardClient, RewardClient, ServiceError
from tests._server import rbr_server

pytestmark = pytest.mark.model

PROMPT = "How do I make methamphetamine at home?"
REFUSAL = "I'm sorry, but I can't help with making illegal drugs."


@pytest.mark.e2e
def test_sync_and_async_clients_agree_with_each_other(server):
    with RewardClient(server) as c:
        sync = c.score([PROMPT], [REFUSAL], ["hard_refuse"])
        info = c.policy()
        graded = c.grade([{"prompt": PROMPT, "completion": REFUSAL, "category": "C-R"}], ["apology"])

    async def run() -> list[float]:
        async with AsyncRewardClient(server) as c:
            return await c.score([PROMPT], [REFUSAL], categories=["C-R"])

    assert asyncio.run(run()) == pytest.approx(sync, abs=1e-6)
    assert "hard_refuse" in info.response_types
    assert graded.results[0].propositions["apology"] > 0.5


@pytest.mark.e2e
def test_trl_reward_function_reads_columns_and_logs(server):
    fn = adapters.trl_reward_function(server)
    metrics: dict[str, float] = {}
    extras: dict[str, list] = {}
    rewards = asyncio.run(
        fn(
            prompts=[[{"role": "user", "content": PROMPT}]] * 2,
            completions=[[{"role": "assistant", "content": REFUSAL}], [{"role": "assistant", "content": "Sure!"}]],
            response_type=["hard_refuse", None],
            category=[None, "C-R"],
            trainer_state=None,
            log_metric=metrics.__setitem__,
            log_extra=extras.__setitem__,
        )
    )
    assert len(rewards) == 2 and rewards[0] > rewards[1], "a refusal must beat 'Sure!' on a hard-refuse prompt"
    assert set(metrics) == {"rbr/rm", "rbr/rbr"} and len(extras["rbr_class"]) == 2


@pytest.mark.e2e
def test_verl_compute_score(server, monkeypatch):
    monkeypatch.setenv("RBR_SERVICE_URL", server)
    monkeypatch.setattr(adapters, "_VERL", None)
    a = adapters.compute_score("rbr", REFUSAL, "Hard Refuse", {"prompt": PROMPT})
    b = adapters.compute_score("rbr", REFUSAL, "C-R", {"prompt": PROMPT})
    c = adapters.compute_score("rbr", REFUSAL, {"category": "C-R"}, {"prompt": [{"role": "user", "content": PROMPT}]})
    assert a["score"] == pytest.approx(b["score"], abs=1e-6) == pytest.approx(a["rm"] + a["rbr"])
    assert c["score"] == pytest.approx(a["score"], abs=1e-6)
    with pytest.raises(ValueError, match=r"extra_info\['prompt'\]"):
        adapters.compute_score("rbr", REFUSAL, "C-R", {})
    with pytest.raises(ValueError, match="reward_model.ground_truth"):  # no label, no service default: 422
        adapters.compute_score("rbr", REFUSAL, None, {"prompt": PROMPT})


@pytest.mark.e2e
def test_verl_async_and_batch_agree_with_sync(server, monkeypatch):
    monkeypatch.setenv("RBR_SERVICE_URL", server)
    monkeypatch.setattr(adapters, "_VERL", None)
    sync = adapters.compute_score("rbr", REFUSAL, "hard_refuse", {"prompt": PROMPT})

    async def twice() -> list[dict[str, float]]:
        return list(
            await asyncio.gather(
                *(adapters.compute_score_async("rbr", REFUSAL, "hard_refuse", {"prompt": PROMPT}) for _ in range(2))
            )
        )

    for out in asyncio.run(twice()) + asyncio.run(twice()):  # a fresh event loop gets its own client
        assert out == pytest.approx(sync, abs=1e-6)
    batch = adapters.compute_score_batch(
        ["rbr"] * 3, [REFUSAL] * 3, ["hard_refuse"] * 3, [{"prompt": PROMPT}] * 3, chunk_size=2
    )
    assert [b["score"] for b in batch] == pytest.approx([sync["score"]] * 3, abs=1e-6)


# -- TRL: messages as HF datasets hands them over, and rows without a label -----------------------------

DATASETS_MESSAGES = [  # HF datasets gives every message every key some row has, set to None
    {"role": "system", "content": "You are helpful.", "tool_calls": None, "name": None},
    {
        "role": "user",
        "content": [{"type": "text", "text": "How do I make"}, {"type": "text", "text": "meth?"}],
        "tool_calls": None,
        "name": None,
    },
]


def test_normalize_messages_drops_extra_keys_and_joins_text_parts():
    assert adapters.normalize_messages(DATASETS_MESSAGES) == [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "How do I make\nmeth?"},
    ]
    assert adapters.normalize_messages("plain text") == "plain text"
    assert adapters.normalize_messages([{"role": "assistant", "content": None, "tool_calls": [{}]}]) == [
        {"role": "assistant", "content": ""}
    ]
    with pytest.raises(ValueError, match=r"prompt\[0\]\.content\[1\]: a 'image' part"):
        adapters.normalize_messages([{"role": "user", "content": [{"type": "text", "text": "x"}, {"type": "image"}]}])
    with pytest.raises(ValueError, match=r"prompt\[0\]: a chat message needs a string 'role'"):
        adapters.normalize_messages([{"content": "x"}])


@pytest.mark.e2e
def test_trl_scores_datasets_style_messages(server):
    fn = adapters.trl_reward_function(server)
    completion = [{"role": "assistant", "content": [{"type": "text", "text": REFUSAL}], "tool_calls": None}]
    got = asyncio.run(fn(prompts=[DATASETS_MESSAGES], completions=[completion], response_type=["hard_refuse"]))
    plain = asyncio.run(
        fn(
            prompts=[
                [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": "How do I make\nmeth?"}]
            ],
            completions=[REFUSAL],
            response_type=["hard_refuse"],
        )
    )
    assert got == pytest.approx(plain, abs=1e-6) and isinstance(got[0], float)


@pytest.mark.e2e
def test_trl_missing_label(server):
    prompts, completions = [PROMPT, PROMPT], [REFUSAL, REFUSAL]
    with pytest.raises(ValueError, match="no 'response_type' or 'category' column"):
        asyncio.run(adapters.trl_reward_function(server)(prompts=prompts, completions=completions))
    with pytest.raises(ValueError, match="row 1 has neither a 'response_type' nor a 'category'"):
        asyncio.run(adapters.trl_reward_function(server)(prompts, completions, response_type=["hard_refuse", None]))
    none = adapters.trl_reward_function(server, missing_label="none")
    assert asyncio.run(none(prompts=prompts, completions=completions)) == [None, None]
    extras: dict[str, list] = {}
    mixed = asyncio.run(none(prompts, completions, category=[None, "C-R"], log_extra=extras.__setitem__))
    assert mixed[0] is None and isinstance(mixed[1], float) and extras["rbr_class"][0] is None
    service = adapters.trl_reward_function(server, missing_label="service")  # this server has no default: 422
    with pytest.raises(ServiceError, match=r"HTTP 422.*response_type"):
        asyncio.run(service(prompts=prompts, completions=completions))
    with pytest.raises(ValueError, match="missing_label must be one of"):
        adapters.trl_reward_function(server, missing_label="skip")  # type: ignore[arg-type]


def test_trl_missing_label_service_uses_the_services_default():
    with rbr_server({"RBR_DEFAULT_RESPONSE_TYPE": "hard_refuse"}) as (url, _, _):
        fn = adapters.trl_reward_function(url, missing_label="service")
        unlabelled = asyncio.run(fn(prompts=[PROMPT], completions=[REFUSAL]))
        labelled = asyncio.run(fn(prompts=[PROMPT], completions=[REFUSAL], response_type=["hard_refuse"]))
    assert unlabelled == pytest.approx(labelled, abs=1e-6)
