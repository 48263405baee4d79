"""Ten-line glue for trainers that take a reward *function*: TRL (GRPO/RLOO) and verl.

TRL:   GRPOTrainer(..., reward_funcs=[trl_reward_function("http://127.0.0.1:8000")])
       The dataset carries a `response_type` (or `category`) column; TRL passes it in **kwargs.
verl:  custom_reward_function.path=<this file>, custom_reward_function.name=compute_score
       with the service URL in $RBR_SERVICE_URL; the prompt travels in extra_info["prompt"] and the
       response type (or category) in ground_truth.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from .client import DEFAULT_URL, AsyncRewardClient, RewardClient, build_items

__all__ = ["compute_score", "trl_reward_function"]


def trl_reward_function(
    base_url: str | None = None, *, token: str | None = None, timeout: float = 300.0, retries: int = 3
) -> Callable[..., Awaitable[list[float]]]:
    """An async TRL reward function backed by the service; logs RM/RBR means when TRL passes `log_metric`."""
    url = base_url or os.environ.get("RBR_SERVICE_URL", DEFAULT_URL)

    async def rbr_reward(prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float]:
        items = build_items(prompts, completions, kwargs.get("response_type"), kwargs.get("category"))
        async with AsyncRewardClient(url, token=token, timeout=timeout, retries=retries) as client:
            out = await client.rewards(items, return_components=True)
        log_metric = kwargs.get("log_metric")
        if callable(log_metric) and out.components:
            n = len(out.components)
            log_metric("rbr/rm", sum(c.rm for c in out.components) / n)
            log_metric("rbr/rbr", sum(c.rbr for c in out.components) / n)
        log_extra = kwargs.get("log_extra")
        if callable(log_extra) and out.components:
            log_extra("rbr_class", [max(c.classes, key=c.classes.__getitem__) for c in out.components])
        return out.rewards

    return rbr_reward


_VERL: dict[str, Any] = {}  # one client and the served response types, per process


def _norm(name: str) -> str:
    return "_".join(name.strip().lower().replace("-", " ").split())


def compute_score(
    data_source: str, solution_str: str, ground_truth: Any, extra_info: dict | None = None, **_: Any
) -> dict[str, float]:
    """verl's custom reward function: {"score": reward, "rm": ..., "rbr": ...} for one response.

    `ground_truth` (or extra_info["response_type"] / ["category"]) names the response type or category.
    """
    extra = extra_info or {}
    prompt = extra.get("prompt") or extra.get("question")
    if prompt is None:
        raise ValueError("extra_info must carry the prompt (extra_info['prompt']) for the RBR service")
    if not _VERL:
        _VERL["client"] = RewardClient(os.environ.get("RBR_SERVICE_URL", DEFAULT_URL))
        _VERL["response_types"] = set(_VERL["client"].policy().response_types)
    rt, category = extra.get("response_type"), extra.get("category")
    if rt is None and category is None and isinstance(ground_truth, str):
        if _norm(ground_truth) in _VERL["response_types"]:
            rt = ground_truth
        else:
            category = ground_truth
    out = _VERL["client"].rewards(build_items([prompt], [solution_str], [rt], [category]), return_components=True)
    c = out.components[0]
    return {"score": out.rewards[0], "rm": c.rm, "rbr": c.rbr}
