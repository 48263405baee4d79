"""Helpful-only reward models: R_rm in R = R_rm + w[response_type] . features.

Backends:
  hf         any AutoModelForSequenceClassification (local folder or hub id) on the chat-templated
             conversation + completion; the score is the first logit;
  vllm-http  a reward model served by vLLM's pooling runner (`vllm serve RM --runner pooling`), called
             with POST /classify {"model", "input": [texts], "use_activation": false};
  judge      the local grader LLM: the log-odds that the completion fully does what the user asked
             (the embedded default, so the whole stack runs on a CPU; see the README for its limits).
Every backend is a `RewardModel`: it declares the grader propositions it reads (`needs`; the judge reads
one, the others none) and the scorer hands it those graded probabilities with the items, so no backend
is special-cased. A failed call raises RewardModelError; it never becomes a default score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np

from reward_service.errors import ModelLoadError, RewardModelError
from reward_service.grader import GradeItem

__all__ = [
    "build_reward_model",
    "HFRewardModel",
    "JudgeRewardModel",
    "RewardModel",
    "VLLMHttpRewardModel",
    "render_chat",
]


Graded = Sequence[Mapping[str, float]]  # per item: proposition -> P(yes), as Grader.grade returns


class RewardModel(Protocol):
    """Scores completions; higher is more helpful. `identity` is recorded with fitted weights.

    `needs` names the grader propositions `score` reads; the caller passes them graded, one mapping per
    item (at least those names), or None when `needs` is empty.
    """

    identity: str
    needs: tuple[str, ...]

    def score(self, items: Sequence[GradeItem], graded: Graded | None = None) -> np.ndarray:  # (n,) float
        ...


def render_chat(item: GradeItem, tokenizer=None) -> str:
    """The conversation + completion as one text, with the RM's chat template when it has one."""
    messages = [*map(dict, item.conversation), {"role": "assistant", "content": item.completion}]
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False)
    return "".join(f"{m['role'].capitalize()}: {m['content']}\n\n" for m in messages).rstrip()


class HFRewardModel:
    """AutoModelForSequenceClassification; score = logits[:, 0] of the last non-pad token."""

    def __init__(self, path: str, dtype: str = "float32", batch_size: int = 4, max_length: int = 2048) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        try:
            self.tok = AutoTokenizer.from_pretrained(path)
            self.model = AutoModelForSequenceClassification.from_pretrained(path, dtype=getattr(torch, dtype))
        except Exception as e:
            raise ModelLoadError(f"cannot load reward model {path!r}: {e}") from e
        if self.tok.pad_token_id is None:
            self.tok.pad_token = self.tok.eos_token
        self.tok.padding_side = "right"
        self.model.config.pad_token_id = self.tok.pad_token_id
        self.model.eval()
        self.identity = f"hf:{path}"
        self.needs: tuple[str, ...] = ()
        self.batch_size, self.max_length = batch_size, max_length

    def score(self, items: Sequence[GradeItem], graded: Graded | None = None) -> np.ndarray:
        import torch

        out = []
        try:
            for start in range(0, len(items), self.batch_size):
                texts = [render_chat(it, self.tok) for it in items[start : start + self.batch_size]]
                enc = self.tok(
                    texts,
                    return_tensors="pt",
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    add_special_tokens=False,
                )
                with torch.inference_mode():
                    logits = self.model(**enc).logits  # (b, num_labels)
                out.append(logits[:, 0].float().numpy())
        except Exception as e:
            raise RewardModelError(f"{self.identity} failed: {type(e).__name__}: {e}") from e
        return np.concatenate(out) if out else np.zeros(0)


class VLLMHttpRewardModel:
    """A reward model behind vLLM's /classify route (pooling runner); score = data[i].probs[0]."""

    def __init__(
        self,
        base_url: str,
        model: str,
        tokenizer: str | None = None,
        timeout: float = 60.0,
        batch_size: int = 64,
        transport=None,  # an httpx transport, for tests of the request/response handling
    ) -> None:
        import httpx

        self.base_url, self.model, self.batch_size = base_url.rstrip("/"), model, batch_size
        self.client = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)
        self.tok = None
        if tokenizer:
            from transformers import AutoTokenizer

            self.tok = AutoTokenizer.from_pretrained(tokenizer)
        self.identity = f"vllm-http:{model}"
        self.needs: tuple[str, ...] = ()

    def score(self, items: Sequence[GradeItem], graded: Graded | None = None) -> np.ndarray:
        from reward_service._http import post_json

        out: list[float] = []
        for start in range(0, len(items), self.batch_size):
            texts = [render_chat(it, self.tok) for it in items[start : start + self.batch_size]]
            body = {"model": self.model, "input": texts, "use_activation": False}
            answer = post_json(self.client, "/classify", body, self.identity, RewardModelError)
            try:
                data = sorted(answer["data"], key=lambda d: d["index"])
                scores = [float(d["probs"][0]) for d in data]
            except (ValueError, KeyError, TypeError, IndexError) as e:
                raise RewardModelError(f"{self.identity}: malformed /classify response: {str(answer)[:300]}") from e
            if len(scores) != len(texts):
                raise RewardModelError(f"{self.identity}: /classify returned {len(scores)} scores for {len(texts)}")
            out += scores
        return np.array(out, dtype=float)


class JudgeRewardModel:
    """The grader LLM as a helpful-only RM: log-odds that the completion fully complies.

    It rewards answering over refusing whatever the request, which is what a helpful-only RM does; the
    RBR terms then add the safety behaviour. With the embedded 135M grader it reads the trained
    `fully_complies` head, the one proposition it grades well on text it was not fitted on. It runs no
    model of its own: it declares the proposition it `needs` and reads it from the grader's pass.
    `grader_id` ("engine:mode") names the grader in the identity, so another grader is another RM.
    """

    def __init__(self, grader_id: str, proposition: str = "fully_complies") -> None:
        self.proposition = proposition
        self.needs = (proposition,)
        self.identity = f"judge:{grader_id}:{proposition}"

    def score(self, items: Sequence[GradeItem], graded: Graded | None = None) -> np.ndarray:
        if graded is None or len(graded) != len(items) or any(self.proposition not in g for g in graded):
            raise RewardModelError(f"{self.identity}: needs {self.proposition!r} graded for every item")
        p = np.clip(np.array([g[self.proposition] for g in graded], dtype=float), 1e-6, 1 - 1e-6)
        return np.log(p / (1 - p))


def build_reward_model(settings, grader_id: str) -> RewardModel:
    """The configured reward model (`rm_backend`, `rm_model`, `rm_url`); `grader_id`: "engine:mode"."""
    if settings.rm_backend == "judge":
        return JudgeRewardModel(grader_id)
    if settings.rm_backend == "hf":
        if not settings.rm_model:
            raise ModelLoadError("rm_backend 'hf' needs rm_model (RBR_RM_MODEL): a folder or hub id")
        return HFRewardModel(settings.rm_model)
    if not settings.rm_url or not settings.rm_model:
        raise ModelLoadError("rm_backend 'vllm-http' needs rm_url (RBR_RM_URL) and rm_model (RBR_RM_MODEL)")
    return VLLMHttpRewardModel(settings.rm_url, settings.rm_model, settings.rm_tokenizer, settings.rm_timeout_s)
