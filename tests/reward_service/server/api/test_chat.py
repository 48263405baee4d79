"""Chat-templated text back to messages (OpenRLHF queries)."""

from __future__ import annotations

import pytest

from reward_service.errors import InputError
from reward_service.server.api._chat import messages_from_template, split_query, strip_special

CHATML = "<|im_start|>system\nBe nice.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n"
LLAMA3 = (
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n"
)
GEMMA = "<bos><start_of_turn>user\nHi there<end_of_turn>\n<start_of_turn>model\n"


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        (CHATML, [{"role": "system", "content": "Be nice."}, {"role": "user", "content": "Hi there"}]),
        (LLAMA3, [{"role": "user", "content": "Hi there"}]),
        (GEMMA, [{"role": "user", "content": "Hi there"}]),
        ("<s>[INST] Hi there [/INST]", [{"role": "user", "content": "Hi there"}]),
        ("Human: Hi there\n\nAssistant:", [{"role": "user", "content": "Human: Hi there\n\nAssistant:"}]),
    ],
)
def test_templates_become_messages(prompt, expected):
    assert messages_from_template(prompt) == expected


def test_split_query_strips_the_prompt_and_special_tokens():
    messages, completion = split_query(CHATML + "Hello! How can I help?<|im_end|><|endoftext|>", CHATML, 0)
    assert messages[-1] == {"role": "user", "content": "Hi there"}
    assert completion == "Hello! How can I help?"
    assert strip_special("</s> ok <pad>") == "ok"


def test_split_query_errors_name_the_field():
    with pytest.raises(InputError) as e:
        split_query("something else", CHATML, 3)
    assert e.value.field == "query[3]"
    with pytest.raises(InputError) as e:
        split_query("x", None, 0)
    assert e.value.field == "prompts"
