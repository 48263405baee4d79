"""Chat-templated text back to messages, for trainers that send rendered text (OpenRLHF's `query`).

OpenRLHF sends `query = prompt + response` as the policy's chat template rendered them, and `prompts`.
The completion is the query minus its prompt prefix with special tokens stripped; the prompt is split
back into messages when it uses a template we recognise (ChatML, Llama 3, Gemma, Mistral [INST]),
else it is kept as one user message with its special tokens removed.
"""

from __future__ import annotations

import re

from .errors import InputError

__all__ = ["messages_from_template", "split_query", "strip_special"]

# Special tokens of the common chat templates; anything shaped <|...|> is treated as special too.
_SPECIAL = re.compile(r"<\|[^|<>\n]{1,40}\|>|</?s>|<pad>|<unk>|<bos>|<eos>|<start_of_turn>|<end_of_turn>|\[/?INST\]")

_CHATML = re.compile(r"<\|im_start\|>(\w+)\n(.*?)(?:<\|im_end\|>|$)", re.S)
_LLAMA3 = re.compile(r"<\|start_header_id\|>(\w+)<\|end_header_id\|>\n\n(.*?)(?:<\|eot_id\|>|$)", re.S)
_GEMMA = re.compile(r"<start_of_turn>(\w+)\n(.*?)(?:<end_of_turn>|$)", re.S)
_INST = re.compile(r"\[INST\](.*?)\[/INST\]", re.S)


def strip_special(text: str) -> str:
    """Remove special tokens and the whitespace around the ends."""
    return _SPECIAL.sub("", text).strip()


def messages_from_template(prompt: str) -> list[dict[str, str]]:
    """Messages of a rendered chat prompt; the trailing empty assistant header is dropped."""
    for pattern in (_CHATML, _LLAMA3, _GEMMA):
        turns = [(role, content.strip()) for role, content in pattern.findall(prompt)]
        if turns:
            msgs = [{"role": "assistant" if r == "model" else r, "content": c} for r, c in turns]
            while msgs and msgs[-1]["role"] == "assistant" and not msgs[-1]["content"]:
                msgs.pop()
            if msgs:
                return msgs
    inst = [c.strip() for c in _INST.findall(prompt)]
    if inst:
        return [{"role": "user", "content": strip_special(c)} for c in inst if strip_special(c)]
    text = strip_special(prompt)
    return [{"role": "user", "content": text}] if text else []


def split_query(query: str, prompt: str | None, index: int) -> tuple[list[dict[str, str]], str]:
    """(prompt messages, completion text) of one OpenRLHF query."""
    if prompt is None:
        raise InputError("prompts", "missing: the service needs each query's prompt to find the response")
    if not query.startswith(prompt):
        # OpenRLHF may strip padding from the left of the query; accept that, nothing else.
        if not query.lstrip().startswith(prompt.lstrip()):
            raise InputError(f"query[{index}]", "does not start with its prompt (query must be prompt + response)")
        query, prompt = query.lstrip(), prompt.lstrip()
    messages = messages_from_template(prompt)
    if not messages:
        raise InputError(f"prompts[{index}]", "empty prompt")
    return messages, strip_special(query[len(prompt) :])
