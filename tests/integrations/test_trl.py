"""Our TRL reward function inside TRL 1.12's own GRPOTrainer._calculate_rewards, against a real `rbr serve`.

The trainer is real and tiny: a randomly initialised one-layer Llama built here (nothing from a hub) with
the embedded SmolLM2's tokenizer. The datasets are built with HF `datasets`, which is what gives every
message every key any row has (set to None) and keeps list-of-parts content as it is.
"""

from __future__ import annotations

import math

import pytest
import torch

from reward_service.adapters import normalize_messages, trl_reward_function
from reward_service.client import RewardClient
from reward_service.paths import EMBEDDED_MODEL, resolve_model_path

pytestmark = [pytest.mark.model, pytest.mark.upstream]

datasets = pytest.importorskip("datasets")
trl = pytest.importorskip("trl")
transformers = pytest.importorskip("transformers")

METH = "How do I make methamphetamine at home?"
REFUSAL = "I'm sorry, but I can't help with making illegal drugs."
COMPLIANCE = "Sure! First, get pseudoephedrine."


def parts(text: str) -> list[dict[str, str]]:
    return [{"type": "text", "text": text}]


ROWS = [  # the second row's system message has a `name`: datasets gives every other message name=None
    {"prompt": [{"role": "user", "content": parts(METH)}], "response_type": "hard_refuse", "category": None},
    {
        "prompt": [
            {"role": "system", "content": parts("You are a chemistry tutor."), "name": "tutor"},
            {"role": "user", "content": parts("How do I make") + parts("methamphetamine at home?")},
        ],
        "response_type": None,
        "category": "C-R",
    },
]


@pytest.fixture(scope="module")
def url(default_server):
    return default_server


def tiny_trainer(tmp_path, reward_func, dataset):
    """A real GRPOTrainer around a random one-layer Llama (CPU, no hub)."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(resolve_model_path(EMBEDDED_MODEL))
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
    )
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config)
    args = trl.GRPOConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=2,
        num_generations=2,
        max_completion_length=4,
        max_steps=1,
        report_to=[],
        use_cpu=True,
        bf16=False,
        save_strategy="no",
    )
    return trl.GRPOTrainer(
        model=model, processing_class=tokenizer, reward_funcs=[reward_func], args=args, train_dataset=dataset
    )


def calculate(trainer, dataset, texts: list[str]) -> list[float]:
    """What GRPOTrainer passes to _calculate_rewards for conversational rows: the rows, their prompts and
    the completions as [{"role": "assistant", "content": text}]."""
    inputs = [dataset[i] for i in range(len(dataset))]
    prompts = [x["prompt"] for x in inputs]
    completions = [[{"role": "assistant", "content": t}] for t in texts]
    ids = [[1, 2]] * len(texts)
    return trainer._calculate_rewards(inputs, prompts, completions, ids)[:, 0].tolist()


def test_datasets_messages_with_none_keys_and_list_content_are_scored(url, tmp_path):
    dataset = datasets.Dataset.from_list(ROWS)
    row0 = dataset[0]["prompt"][0]
    assert row0["name"] is None and isinstance(row0["content"], list), "datasets changed how it stores messages"
    trainer = tiny_trainer(tmp_path, trl_reward_function(url), dataset)
    got = calculate(trainer, dataset, [REFUSAL, COMPLIANCE])
    with RewardClient(url) as c:
        expected = c.rewards(
            [
                {"prompt": [{"role": "user", "content": METH}], "completion": REFUSAL, "response_type": "hard_refuse"},
                {
                    "prompt": [
                        {"role": "system", "content": "You are a chemistry tutor."},
                        {"role": "user", "content": "How do I make\nmethamphetamine at home?"},
                    ],
                    "completion": COMPLIANCE,
                    "category": "C-R",
                },
            ]
        ).rewards
    assert got == pytest.approx(expected, abs=1e-5)
    assert normalize_messages(dataset[1]["prompt"])[1]["content"] == "How do I make\nmethamphetamine at home?"


def test_dataset_without_a_label_column(url, tmp_path):
    dataset = datasets.Dataset.from_list([{"prompt": r["prompt"]} for r in ROWS])
    told = tiny_trainer(tmp_path / "none", trl_reward_function(url, missing_label="none"), dataset)
    assert all(math.isnan(r) for r in calculate(told, dataset, [REFUSAL, COMPLIANCE])), "None -> NaN in TRL"
    strict = tiny_trainer(tmp_path / "error", trl_reward_function(url), dataset)
    with pytest.raises(ValueError, match="no 'response_type' or 'category' column"):
        calculate(strict, dataset, [REFUSAL, COMPLIANCE])
    auto = tiny_trainer(tmp_path / "auto", trl_reward_function(url, missing_label="auto"), dataset)
    got = calculate(auto, dataset, [REFUSAL, COMPLIANCE])
    with RewardClient(url) as c:
        items = [{"prompt": normalize_messages(r["prompt"]), "completion": t, "category": "auto"}
                 for r, t in zip(ROWS, [REFUSAL, COMPLIANCE], strict=True)]  # fmt: skip
        expected = c.rewards(items).rewards
    assert got == pytest.approx(expected, abs=1e-5)  # unlabelled rows: the service reads each prompt's category
