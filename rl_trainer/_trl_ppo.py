"""The one place the trainer reaches into TRL: a PPOTrainer whose rollouts are scored by the reward service.

TRL 1.12 (the last release with PPO) has no method to override for this: `PPOTrainer.train()` calls the
module-level functions `get_reward` (for the value model and for the reward model) and `batch_generation`
of `trl.experimental.ppo.ppo_trainer`. `ServicePPOTrainer.train()` points those two names at its own methods
while it runs and restores them after; the TRL version is checked when the trainer is built, because these
names are TRL internals.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import torch
import trl
from torch import nn
from trl.experimental.ppo import PPOTrainer
from trl.experimental.utils import first_true_indices

__all__ = ["SUPPORTED_TRL", "ServicePPOTrainer"]

SUPPORTED_TRL = "1.12."

#: (query_responses (B, P + R), context_length P) -> rewards (B,)
ScoreFn = Callable[[torch.Tensor, int], torch.Tensor]


class ServiceRewardModel(nn.Module):
    """Stands where TRL expects a reward model; parameter-free, never run: the service scores instead."""

    base_model_prefix = "none"


class ServicePPOTrainer(PPOTrainer):
    """TRL's PPOTrainer with `score` in place of the reward model's forward pass; `generation_s` times rollouts.

    `autocast` (e.g. torch.bfloat16) runs the whole loop under autocast: TRL 1.12's PPOTrainer builds its own
    Accelerator without a mixed-precision setting, so `PPOConfig.bf16` would not reach it."""

    def __init__(self, score: ScoreFn, autocast: torch.dtype | None = None, **kwargs) -> None:
        if not trl.__version__.startswith(SUPPORTED_TRL):
            raise RuntimeError(f"rl_trainer needs TRL {SUPPORTED_TRL}x (PPO), found {trl.__version__}")
        self.score, self.generation_s, self.autocast = score, 0.0, autocast
        self._service_rm = ServiceRewardModel()
        super().__init__(reward_model=self._service_rm, **kwargs)

    def train(self) -> None:
        module = sys.modules[PPOTrainer.__module__]
        saved = module.get_reward, module.batch_generation
        self._trl_get_reward, self._trl_generation = saved
        module.get_reward, module.batch_generation = self._get_reward, self._batch_generation
        device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            with torch.autocast(device, dtype=self.autocast or torch.float32, enabled=self.autocast is not None):
                super().train()
        finally:
            module.get_reward, module.batch_generation = saved

    def _get_reward(self, model, query_responses: torch.Tensor, pad_token_id: int, context_length: int):
        if model is not self._service_rm:  # the value model: TRL's own forward pass
            return self._trl_get_reward(model, query_responses, pad_token_id, context_length)
        scores = self.score(query_responses, context_length).to(query_responses.device)  # (B,)
        responses = query_responses[:, context_length:]  # (B, R)
        lengths = first_true_indices(responses == pad_token_id) - 1 + context_length  # (B,) last response token
        return None, scores, lengths

    def _batch_generation(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:  # sampling runs in the weights' dtype: autocast would re-cast every weight at every new token
            with torch.autocast("cuda" if torch.cuda.is_available() else "cpu", enabled=False):
                return self._trl_generation(*args, **kwargs)
        finally:
            self.generation_s += time.perf_counter() - t0
