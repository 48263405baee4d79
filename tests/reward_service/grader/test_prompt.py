"""Grader prompt rendering: a base model's plain-text prompt starts with the BOS its tokenizer adds to every text."""

from propositions import PropositionSpec
from reward_service.grader._prompt import PromptFormat

SPEC = PropositionSpec(question="Does the response apologise?")


class PlainTok:
    """A base model's tokenizer: no chat template; one id per character; BOS (id 2) before every text."""

    chat_template = None

    def __init__(self, bos: bool) -> None:
        self.bos_token_id = 2 if bos else None

    def __call__(self, text, add_special_tokens=True):
        ids = [3 + ord(c) % 90 for c in text]
        return {"input_ids": ([2] if add_special_tokens and self.bos_token_id else []) + ids}


def test_a_base_model_prompt_starts_with_bos_and_the_completion_span_still_holds_the_completion():
    tok = PlainTok(bos=True)
    enc = PromptFormat(tok).encode([{"role": "user", "content": "hi"}], "Sorry, no.", [SPEC])
    assert enc.prefix_ids[0] == 2 and enc.prefix_ids.count(2) == 1
    a, b = enc.completion_span
    assert enc.prefix_ids[a:b] == tok("Sorry, no.", add_special_tokens=False)["input_ids"]


def test_no_bos_where_the_tokenizer_adds_none_and_the_prompt_version_says_which():
    with_bos, without = PromptFormat(PlainTok(bos=True)), PromptFormat(PlainTok(bos=False))
    enc = without.encode([{"role": "user", "content": "hi"}], "Sorry, no.", [SPEC])
    assert 2 not in enc.prefix_ids
    assert with_bos.version != without.version  # heads fitted on one refuse to serve the other


def test_the_conversation_and_last_turn_spans_hold_the_prompt_and_its_last_message():
    tok = PlainTok(bos=False)
    fmt = PromptFormat(tok)
    conv = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "x?"},
    ]
    enc = fmt.encode(conv, "Sorry, no.", [SPEC])
    ids = lambda t: tok(t, add_special_tokens=False)["input_ids"]  # noqa: E731
    a, b = enc.conversation_span
    assert enc.prefix_ids[a:b] == ids("User: hi\n\nAssistant: hello\n\nUser: x?")
    a, b = enc.last_turn_span
    assert enc.prefix_ids[a:b] == ids("User: x?") and b == enc.conversation_span[1]
    short = PromptFormat(tok, max_conversation_tokens=5).encode(conv, "ok", [])  # the kept tail: "r: x?"
    a, b = short.last_turn_span
    assert (a, b) == short.conversation_span and short.prefix_ids[a:b] == ids("r: x?")
    one = fmt.encode(conv[:1], "ok", [])
    assert one.last_turn_span == one.conversation_span
