"""The transformers grader engine: one forward pass per prompt, P(yes) from next-token logits.

For each item it returns a `Readout`: the yes-vs-no log-odds of every proposition question, and the
hidden states the trained heads read (mean over the completion's tokens, and at the answer position of
each question). Three strategies compute the same numbers (they differ by float rounding only):
  naive    one full forward per (item, question), batch 1;
  batched  the full sequences of all questions of an item in one right-padded batch;
  prefix   the shared prefix once, then all question suffixes as one batch against its KV cache.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import torch

from reward_service.grader._prompt import EncodedItem

__all__ = [
    "EDGE_TOKENS",
    "GraderEngine",
    "POOL_STATS",
    "PROMPT_STATS",
    "READOUT_VERSION",
    "Readout",
    "Strategy",
    "sigmoid",
    "TransformersEngine",
    "YES_WORDS",
    "NO_WORDS",
]

YES_WORDS = ("yes", "Yes", " yes", " Yes", "YES")
NO_WORDS = ("no", "No", " no", " No", "NO")
Strategy = Literal["naive", "batched", "prefix"]
POOL_STATS = ("mean", "max", "opening", "closing")  # Readout.pooled's first axis
PROMPT_STATS = ("conversation", "last_turn")  # Readout.prompt's first axis: means over the prompt's tokens
DEFAULT_LAYERS = (8, 12, 16, 20)  # read-out layers unless settings' grader_layers says otherwise
EDGE_TOKENS = 24  # 'opening' / 'closing': the mean over the completion's first / last this many tokens
READOUT_VERSION = 4  # bump when what a Readout holds changes (cached readouts are keyed by it)


def sigmoid(z: np.ndarray | float) -> np.ndarray:
    """P(yes) from log-odds (a readout's yes_logit, a head's score): the one place the logistic function is written."""
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))


@dataclass
class Readout:
    yes_logit: np.ndarray  # (n_questions,) log P(yes-variants) - log P(no-variants)
    pooled: np.ndarray  # (4, n_layers, H) POOL_STATS of the hidden states over the completion's tokens
    answer: np.ndarray | None  # (n_questions, n_layers, H) hidden state at each question's answer position
    tokens: int  # tokens processed for this item
    prompt: np.ndarray | None = None  # (2, n_layers, H) PROMPT_STATS: what the prompt classifier reads


class GraderEngine(Protocol):
    """What the Grader asks of an engine (transformers here; `_logprob_engines` for vLLM and OpenAI servers)."""

    layers: tuple[int, ...]  # hidden-state layers read out; () = none (modes 'prompted'/'calibrated' only)

    def readout(self, enc: EncodedItem, strategy: Strategy = "prefix", answer_states: bool = True) -> Readout:
        """One item: the yes/no log-odds of each of its questions (and hidden states, where the engine has them)."""
        ...

    def readout_many(self, encs: Sequence[EncodedItem], answer_states: bool = False) -> list[Readout]:
        """Many items, as fast as the engine can (serving engines send them concurrently); one failure fails all."""
        ...

    def pooled(self, encs: Sequence[EncodedItem]) -> list[Readout]:
        """Prefix-only readouts (no questions): the pooled completion states that question-free heads read."""
        ...


class _Stop(Exception):
    """Raised by the hook on the deepest read-out layer: the layers above it are never run."""


def _read_layers(base, layers: tuple[int, ...], **inputs) -> dict[int, torch.Tensor]:
    """{layer: (n, T, H)} hidden states of `base` (0 = embeddings), running no layer above max(layers).

    Forward hooks capture the states and stop the pass after the deepest layer; they act only in the
    calling thread (another thread's forward through the same model is untouched) and are removed after.
    """
    if max(layers) >= len(base.layers):  # the last entry of hidden_states is the normed output: HF's own pass
        hs = base(**inputs, output_hidden_states=True, use_cache=False).hidden_states
        return {layer: hs[layer] for layer in layers}
    got: dict[int, torch.Tensor] = {}
    owner, deepest = threading.get_ident(), max(layers)

    def hook(layer: int):
        def capture(module, args, out) -> None:
            if threading.get_ident() == owner:
                got[layer] = out[0] if isinstance(out, tuple) else out
                if layer == deepest:
                    raise _Stop

        return capture

    mods = {layer: base.embed_tokens if layer == 0 else base.layers[layer - 1] for layer in set(layers)}
    handles = [m.register_forward_hook(hook(layer)) for layer, m in mods.items()]
    try:
        base(**inputs, use_cache=False)
    except _Stop:
        pass
    finally:
        for h in handles:
            h.remove()
    return got


def _single_token_ids(tok, words: tuple[str, ...]) -> list[int]:
    ids = []
    for w in words:
        enc = tok(w, add_special_tokens=False)["input_ids"]
        if len(enc) == 1 and enc[0] not in ids:
            ids.append(enc[0])
    return ids


class TransformersEngine:
    """Wraps a causal LM for grading. `layers` are the hidden-state layers read out (0 = embeddings)."""

    def __init__(self, tokenizer, model, layers: tuple[int, ...] | None = None, batch_size: int = 1) -> None:
        self.tok, self.model, self.batch_size = tokenizer, model, batch_size
        n = model.config.num_hidden_layers
        self.layers = tuple(min(layer, n) for layer in (layers or DEFAULT_LAYERS))
        self.yes_ids = _single_token_ids(tokenizer, YES_WORDS)
        self.no_ids = _single_token_ids(tokenizer, NO_WORDS)
        if not self.yes_ids or not self.no_ids:
            raise ValueError("the grader tokenizer has no single-token 'yes'/'no'")
        w = model.get_output_embeddings().weight  # (V, H)
        self._yes_w = w[self.yes_ids].detach()  # (n_yes, H)
        self._no_w = w[self.no_ids].detach()  # (n_no, H)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    @property
    def base(self):
        return self.model.get_decoder() if hasattr(self.model, "get_decoder") else self.model.model

    def _yes_logit(self, h: torch.Tensor) -> torch.Tensor:
        """h: (n, H) final-layer states at answer positions -> (n,) log-odds of yes over no variants."""
        h = h.to(self._yes_w.dtype)
        ly = torch.logsumexp(h @ self._yes_w.T, dim=-1)  # (n,)
        ln = torch.logsumexp(h @ self._no_w.T, dim=-1)  # (n,)
        return (ly - ln).float()

    @torch.inference_mode()
    def readout(self, enc: EncodedItem, strategy: Strategy = "prefix", answer_states: bool = True) -> Readout:
        if strategy == "prefix":
            return self._prefix(enc, answer_states)
        seqs = [enc.prefix_ids + s for s in enc.suffix_ids]
        if strategy == "batched":
            finals, answers, pooled, prompt = self._full(seqs, enc)
        else:
            parts = [self._full([s], enc) for s in seqs]
            finals = torch.cat([p[0] for p in parts])
            answers = torch.cat([p[1] for p in parts])
            pooled, prompt = parts[0][2], parts[0][3]
        return Readout(
            self._yes_logit(finals).numpy(),
            pooled,
            answers.float().numpy() if answer_states else None,
            sum(len(s) for s in seqs),
            prompt,
        )

    def readout_many(self, encs: Sequence[EncodedItem], answer_states: bool = False) -> list[Readout]:
        return [self.readout(enc, "prefix", answer_states) for enc in encs]

    @torch.inference_mode()
    def pooled(self, encs: Sequence[EncodedItem], batch_size: int | None = None) -> list[Readout]:
        """Prefix-only readouts (no questions) for many items, `batch_size` at a time, batched by similar length."""
        batch_size = batch_size or self.batch_size
        order = sorted(range(len(encs)), key=lambda i: len(encs[i].prefix_ids))
        out: list[Readout | None] = [None] * len(encs)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            seqs = [encs[i].prefix_ids for i in idx]
            n, t = len(seqs), max(len(s) for s in seqs)
            ids = torch.full((n, t), self.pad_id, dtype=torch.long)  # (n, T), right-padded
            mask = torch.zeros((n, t), dtype=torch.long)  # (n, T)
            for r, s in enumerate(seqs):
                ids[r, : len(s)] = torch.tensor(s)
                mask[r, : len(s)] = 1
            hs = _read_layers(self.base, self.layers, input_ids=ids, attention_mask=mask)  # no layer above the deepest
            for r, i in enumerate(idx):  # completion spans lie before the padding: pads never enter a pool
                out[i] = Readout(
                    np.zeros(0, np.float32),
                    self._pool(hs, r, encs[i].completion_span),
                    None,
                    len(seqs[r]),
                    self._prompt_pool(hs, r, encs[i]),
                )
        return out  # type: ignore[return-value]

    def _pool(self, hidden_states, row: int, span: tuple[int, int]) -> np.ndarray:
        """POOL_STATS over the completion's tokens, per read-out layer: (4, L, H)."""
        a, b = span
        b = max(b, a + 1)  # an empty completion still reads one position
        per_layer = [hidden_states[layer][row, a:b].float() for layer in self.layers]  # L x (T, H)
        mean = torch.stack([h.mean(0) for h in per_layer])  # (L, H)
        peak = torch.stack([h.max(0).values for h in per_layer])  # (L, H)
        opening = torch.stack([h[:EDGE_TOKENS].mean(0) for h in per_layer])  # (L, H) how it starts
        closing = torch.stack([h[-EDGE_TOKENS:].mean(0) for h in per_layer])  # (L, H) how it ends
        return torch.stack([mean, peak, opening, closing]).numpy()

    def _prompt_pool(self, hidden_states, row: int, enc: EncodedItem) -> np.ndarray:
        """PROMPT_STATS per read-out layer: (2, L, H). Causal attention: they do not depend on the completion."""
        out = []
        for a, b in (enc.conversation_span, enc.last_turn_span):
            b = max(b, a + 1)
            out.append(torch.stack([hidden_states[layer][row, a:b].float().mean(0) for layer in self.layers]))
        return torch.stack(out).numpy()

    def _full(self, seqs: list[list[int]], enc: EncodedItem):
        """Right-padded full forward. -> (final states (n,H), answer states (n,L,H), pooled (4,L,H), prompt (2,L,H))."""
        n, t = len(seqs), max(len(s) for s in seqs)
        ids = torch.full((n, t), self.pad_id, dtype=torch.long)  # (n, T)
        mask = torch.zeros((n, t), dtype=torch.long)  # (n, T)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s)
            mask[i, : len(s)] = 1
        out = self.base(input_ids=ids, attention_mask=mask, output_hidden_states=True, use_cache=False)
        last = torch.tensor([len(s) - 1 for s in seqs])  # (n,)
        rows = torch.arange(n)
        finals = out.last_hidden_state[rows, last]  # (n, H)
        answers = torch.stack([out.hidden_states[layer][rows, last] for layer in self.layers], 1)  # (n, L, H)
        hs = out.hidden_states
        return finals, answers, self._pool(hs, 0, enc.completion_span), self._prompt_pool(hs, 0, enc)

    def _prefix(self, enc: EncodedItem, answer_states: bool) -> Readout:
        p = len(enc.prefix_ids)
        pre = self.base(
            input_ids=torch.tensor([enc.prefix_ids]), use_cache=True, output_hidden_states=True
        )  # hidden_states: (L+1) x (1, P, H)
        pooled = self._pool(pre.hidden_states, 0, enc.completion_span)
        prompt = self._prompt_pool(pre.hidden_states, 0, enc)
        n = len(enc.suffix_ids)
        if n == 0:
            return Readout(np.zeros(0, np.float32), pooled, None, p, prompt)
        s = max(len(x) for x in enc.suffix_ids)
        ids = torch.full((n, s), self.pad_id, dtype=torch.long)  # (n, S)
        mask = torch.zeros((n, p + s), dtype=torch.long)  # (n, P+S): prefix + own suffix tokens
        mask[:, :p] = 1
        for i, x in enumerate(enc.suffix_ids):
            ids[i, : len(x)] = torch.tensor(x)
            mask[i, p : p + len(x)] = 1
        cache = pre.past_key_values
        cache.batch_repeat_interleave(n)  # (1, ...) -> (n, ...) in place
        pos = torch.arange(p, p + s).unsqueeze(0).expand(n, s)  # (n, S)
        out = self.base(
            input_ids=ids,
            attention_mask=mask,
            position_ids=pos,
            past_key_values=cache,
            use_cache=True,
            output_hidden_states=True,
        )
        last = torch.tensor([len(x) - 1 for x in enc.suffix_ids])  # (n,)
        rows = torch.arange(n)
        finals = out.last_hidden_state[rows, last]  # (n, H)
        answers = None
        if answer_states:
            answers = torch.stack([out.hidden_states[layer][rows, last] for layer in self.layers], 1).float().numpy()
        return Readout(
            self._yes_logit(finals).numpy(), pooled, answers, p + sum(len(x) for x in enc.suffix_ids), prompt
        )
