"""Helpful-only reward models: R_rm in R = R_rm + w[response_type] . features.

Backends:
  hf         any AutoModelForSequenceClassification (local folder or hub id) on the chat-templated
             conversation + completion; the score is the first logit;
  vllm-http  a reward model served by vLLM's pooling runner (`vllm serve RM --runner pooling`), called
             with POST /classify {"model", "input": [texts], "use_activation": false};
  judge      the local grader LLM: the log-odds that the completion fully does what the user asked
             (the embedded default, so the whole stack runs on a CPU; see the README for its limits).
A failed call raises RewardModelError; it never becomes a default score.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from .errors import ModelLoadError, RewardModelError
from .grader import GradeItem, Grader

__all__ = [
    "build_reward_model",
    "HFRewardModel",
    "JudgeRewardModel",
    "RewardModel",
    "VLLMHttpRewardModel",
    "render_chat",
]


class RewardModel(Protocol):
    """Scores completions; higher is more helpful. `identity` is recorded with fitted weights."""

    identity: str

    def score(self, items: Sequence[GradeItem]) -> np.ndarray:  # (n,) float
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
        self.batch_size, self.max_length = batch_size, max_length

    def score(self, items: Sequence[GradeItem]) -> np.ndarray:
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

    def score(self, items: Sequence[GradeItem]) -> np.ndarray:
        import httpx

        out: list[float] = []
        for start in range(0, len(items), self.batch_size):
            texts = [render_chat(it, self.tok) for it in items[start : start + self.batch_size]]
            body = {"model": self.model, "input": texts, "use_activation": False}
            try:
                resp = self.client.post("/classify", json=body)
            except httpx.TimeoutException as e:
                raise RewardModelError(f"{self.identity}: timed out calling {self.base_url}/classify") from e
            except httpx.HTTPError as e:
                raise RewardModelError(f"{self.identity}: cannot reach {self.base_url}/classify: {e}") from e
            if resp.status_code != 200:
                raise RewardModelError(f"{self.identity}: /classify answered {resp.status_code}: {resp.text[:300]}")
            try:
                data = sorted(resp.json()["data"], key=lambda d: d["index"])
                scores = [float(d["probs"][0]) for d in data]
            except (ValueError, KeyError, TypeError, IndexError) as e:
                raise RewardModelError(f"{self.identity}: malformed /classify response: {resp.text[:300]}") from e
            if len(scores) != len(texts):
                raise RewardModelError(f"{self.identity}: /classify returned {len(scores)} scores for {len(texts)}")
            out += scores
        return np.array(out, dtype=float)


class JudgeRewardModel:
    """The grader LLM as a helpful-only RM: log-odds that the completion fully complies.

    It rewards answering over refusing whatever the request, which is what a helpful-only RM does; the
    RBR terms then add the safety behaviour. With the embedded 135M grader it reads the trained
    `fully_complies` head, the one proposition it grades well on text it was not fitted on.
    """

    def __init__(self, grader: Grader, proposition: str = "fully_complies") -> None:
        if proposition not in grader.policy.propositions:
            raise ModelLoadError(f"judge RM: the policy has no proposition {proposition!r}")
        self.grader, self.proposition = grader, proposition
        self.identity = f"judge:{grader.engine_id}:{grader.mode_id}:{proposition}"

    def score(self, items: Sequence[GradeItem]) -> np.ndarray:
        try:
            probs = self.grader.grade(items, [self.proposition])
        except Exception as e:
            raise RewardModelError(f"{self.identity} failed: {e}") from e
        return self.from_probabilities(probs)

    def from_probabilities(self, probs: Sequence[dict[str, float]]) -> np.ndarray:
        """The score from already graded probabilities (the scorer reuses its grader pass)."""
        p = np.clip(np.array([d[self.proposition] for d in probs], dtype=float), 1e-6, 1 - 1e-6)
        return np.log(p / (1 - p))


def build_reward_model(settings, grader: Grader) -> RewardModel:
    """The configured reward model (`rm_backend`, `rm_model`, `rm_url`)."""
    if settings.rm_backend == "judge":
        return JudgeRewardModel(grader)
    if settings.rm_backend == "hf":
        if not settings.rm_model:
            raise ModelLoadError("rm_backend 'hf' needs rm_model (RBR_RM_MODEL): a folder or hub id")
        return HFRewardModel(settings.rm_model)
    if not settings.rm_url or not settings.rm_model:
        raise ModelLoadError("rm_backend 'vllm-http' needs rm_url (RBR_RM_URL) and rm_model (RBR_RM_MODEL)")
    return VLLMHttpRewardModel(settings.rm_url, settings.rm_model, settings.rm_tokenizer, settings.rm_timeout_s)
