"""Chat-templated text back to messages, for trainers that send rendered text (OpenRLHF's `query`).

OpenRLHF sends `query = prompt + response` as the policy's chat template rendered them, and `prompts`.
The completion is the query minus its prompt prefix with special tokens stripped; the prompt is split
back into messages when it uses a template we recognise (ChatML, Llama 3, Gemma, Mistral [INST]),
else it is kept as one user message with its special tokens removed.
"""

from __future__ import annotations

import re

from reward_service.errors import InputError

__all__ = ["messages_from_template", "response_start", "split_query", "strip_special"]

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


def _squeeze(text: str) -> tuple[str, list[int]]:
    """`text` without whitespace, and the index in `text` of each character kept."""
    keep = [i for i, ch in enumerate(text) if not ch.isspace()]
    return "".join(text[i] for i in keep), keep


def response_start(query: str, prompt: str, garbled: int = 3, tail_chars: int = 16) -> int | None:
    """Where the response begins in `query`, which is `prompt + response` as a trainer re-decoded it.

    Handles what OpenRLHF really sends: the whole prompt, or only its last tokens (it left-truncates long
    prompts before generation and decodes prompt + response ids again), with whitespace changed by the
    re-decoding and up to `garbled` characters at the cut mangled (a token split inside a character).
    The query, compared without whitespace, must start with a suffix of the prompt; None if it does not.
    """
    if query.startswith(prompt):
        return len(prompt)
    q, q_index = _squeeze(query)
    p, _ = _squeeze(prompt)
    if not p or not q:
        return None
    tail = p[-tail_chars:]  # the prompt's end (e.g. the assistant header) must survive any truncation
    k = q.find(tail)
    while k >= 0:
        end = k + len(tail)
        if any(p.endswith(q[skip:end]) for skip in range(min(garbled, end - len(tail)) + 1)):
            return q_index[end - 1] + 1
        k = q.find(tail, k + 1)
    return None


def split_query(query: str, prompt: str | None, index: int) -> tuple[list[dict[str, str]], str]:
    """(prompt messages, completion text) of one OpenRLHF query (`prompt` is the full, untruncated prompt)."""
    if prompt is None:
        raise InputError("prompts", "missing: the service needs each query's prompt to find the response")
    start = response_start(query, prompt)
    if start is None:
        raise InputError(
            f"query[{index}]", "holds neither its prompt nor the end of it (query must be prompt + response)"
        )
    messages = messages_from_template(prompt)
    if not messages:
        raise InputError(f"prompts[{index}]", "empty prompt")
    return messages, strip_special(query[start:])
