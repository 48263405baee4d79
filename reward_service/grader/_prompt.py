"""The grader prompt, split into token-exact pieces so a shared prefix can be computed once.

Layout of one grader prompt (chat-templated by the grader model's own template):

    [system] instructions
    [user]   <conversation> ... </conversation>  <response> COMPLETION </response>   | Question: ... yes or no.
    [assistant] ->  next token: yes / no
             \\__________________ prefix: once per completion ________________/   \\_ suffix: per proposition _/

Every piece is tokenised on its own and the ids are concatenated, in every code path, so the
prefix's ids are identical whether it is run alone, cached, or as part of a full sequence (tokenising
the joined text can merge tokens across a boundary, e.g. "\\n\\n" + "Question").
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from propositions import PropositionSpec

__all__ = ["PROMPT_VERSION", "EncodedItem", "PromptFormat"]

PROMPT_VERSION = "v1"

INSTRUCTIONS = (
    "You are a careful grader of AI assistant responses. You read a conversation between a user and an "
    "assistant, then the assistant's response, and answer one yes/no question about that response. "
    "Answer with a single word: yes or no."
)
_CONV, _COMP, _QUEST = "\x00CONV\x00", "\x00COMP\x00", "\x00QUEST\x00"
_BODY = f"<conversation>\n{_CONV}\n</conversation>\n\n<response>\n{_COMP}\n</response>\n\n{_QUEST}"


def question_text(spec: PropositionSpec) -> str:
    """The per-proposition suffix body: the question, its examples, and the answer instruction."""
    lines = [f"Question: {spec.question}"]
    if spec.examples:
        lines.append("Examples:")
        lines += [f'- "{ex.text}" -> {ex.answer}' for ex in spec.examples]
    lines.append("Answer yes or no.")
    return "\n".join(lines)


@dataclass(frozen=True)
class EncodedItem:
    prefix_ids: list[int]  # instructions + conversation + completion, shared by all questions
    completion_span: tuple[int, int]  # [start, end) of the completion's tokens inside prefix_ids
    suffix_ids: list[list[int]]  # one per proposition: question + end of turn + assistant header
    conversation_span: tuple[int, int] = (0, 0)  # [start, end) of the conversation's tokens (the prompt)
    last_turn_span: tuple[int, int] = (0, 0)  # [start, end) of its last message's tokens (the request)


def _bos(tokenizer) -> list[int]:
    """[BOS] when the tokenizer starts every text with it (Gemma's does; SmolLM2's adds nothing), else []."""
    bos = getattr(tokenizer, "bos_token_id", None)
    return [bos] if bos is not None and tokenizer("")["input_ids"][:1] == [bos] else []


class PromptFormat:
    """Renders and tokenises grader prompts for one tokenizer."""

    def __init__(self, tokenizer, max_conversation_tokens: int = 384, max_completion_tokens: int = 640) -> None:
        self.tok = tokenizer
        self.max_conversation_tokens = max_conversation_tokens
        self.max_completion_tokens = max_completion_tokens
        messages = [{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": _BODY}]
        if getattr(tokenizer, "chat_template", None):
            rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            lead: list[int] = []
        else:  # a base model: plain text, after the BOS it was trained on
            rendered = f"{INSTRUCTIONS}\n\n{_BODY}\nAnswer:"
            lead = _bos(tokenizer)
        head, rest = rendered.split(_CONV)
        mid, rest = rest.split(_COMP)
        tail, end = rest.split(_QUEST)
        self._head, self._mid, self._tail = lead + self._ids(head), self._ids(mid), self._ids(tail)
        self._end_text = end
        self._suffix_cache: dict[str, list[int]] = {}
        bos = "|bos" if lead else ""
        key = f"{PROMPT_VERSION}|{rendered}|{max_conversation_tokens}|{max_completion_tokens}{bos}"
        self.version = hashlib.sha256(key.encode()).hexdigest()[:12]

    def _ids(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def suffix(self, spec: PropositionSpec) -> list[int]:
        body = question_text(spec)
        if body not in self._suffix_cache:
            self._suffix_cache[body] = self._ids(body) + self._ids(self._end_text)
        return self._suffix_cache[body]

    def encode(self, conversation: list[dict], completion: str, specs: list[PropositionSpec]) -> EncodedItem:
        turns = [f"{m['role'].capitalize()}: {m['content']}" for m in conversation]
        conv_text = "\n\n".join(turns)
        full = self._ids(conv_text)
        conv = full[-self.max_conversation_tokens :]  # keep the latest turns
        # The last message's tokens: those after the earlier turns' (a boundary merge can shift it by one token).
        earlier = len(self._ids("\n\n".join(turns[:-1]) + "\n\n")) if len(turns) > 1 else 0
        last_start = max(0, earlier - (len(full) - len(conv)))
        comp = self._ids(completion)[: self.max_completion_tokens]  # keep the start of the answer
        c0 = len(self._head)
        start = c0 + len(conv) + len(self._mid)
        prefix = self._head + conv + self._mid + comp + self._tail
        return EncodedItem(
            prefix,
            (start, start + len(comp)),
            [self.suffix(s) for s in specs],
            (c0, c0 + len(conv)),
            (c0 + max(0, min(last_start, len(conv) - 1)), c0 + len(conv)),
        )
