"""POST /get_reward: OpenRLHF's remote reward model protocol (`--remote_rm_url http://host:port/get_reward`).

Request  {"query": [prompt + response text], "prompts": [prompt text], "labels": [response type | category]}
Response {"rewards": [...], "scores": [...], "extra_logs": {name: batch mean}}
`labels[i]` is a response type or category name, or {"response_type": ...} / {"category": ...}.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter

from .._chat import split_query
from ..errors import InputError, LimitError
from ..grader import parse_item
from ..schemas import OpenRLHFRequest, OpenRLHFResponse
from .deps import ApiAuth, PipelineDep, ServiceDep

__all__ = ["router"]

router = APIRouter(tags=["openrlhf"], dependencies=[ApiAuth])


def _label_fields(label: Any, policy, where: str) -> dict[str, str]:
    if label is None:
        return {}
    if isinstance(label, dict):
        return {k: label[k] for k in ("response_type", "category") if isinstance(label.get(k), str)}
    if not isinstance(label, str):
        raise InputError(where, "must be a response type or category name, or an object holding one")
    try:
        policy.response_type(label)
        return {"response_type": label}
    except KeyError:
        return {"category": label}


@router.post("/get_reward", response_model=OpenRLHFResponse)
async def get_reward(body: OpenRLHFRequest, service: ServiceDep, pipeline: PipelineDep) -> OpenRLHFResponse:
    n, s = len(body.query), service.settings
    if n > s.max_items:
        raise LimitError("query", f"{n} queries, over the limit of {s.max_items} per request")
    for name, values in (("prompts", body.prompts), ("labels", body.labels)):
        if values is not None and len(values) != n:
            raise InputError(name, f"{len(values)} entries for {n} queries")
    items = []
    for i, query in enumerate(body.query):
        messages, completion = split_query(query, body.prompts[i] if body.prompts else None, i)
        obj = {"prompt": messages, "completion": completion}
        obj |= _label_fields(body.labels[i] if body.labels else None, pipeline.policy, f"labels[{i}]")
        try:
            items.append(parse_item(obj, pipeline.policy, "", s.max_chars, "", s.default_response_type))
        except InputError as e:  # name the request field the problem came from
            where = f"labels[{i}]" if e.field in ("response_type", "category") else f"query[{i}]"
            raise type(e)(where, e.problem) from None
    scored = await service.score(pipeline, items)
    service.metrics.items.labels("get_reward").inc(n)
    rewards = [x.reward for x in scored]
    logs: dict[str, float] = {}
    if scored:
        logs = {"rbr/rm": float(np.mean([x.rm for x in scored])), "rbr/rbr": float(np.mean([x.rbr for x in scored]))}
        for x in scored:
            top = max(x.classes, key=x.classes.__getitem__)
            key = f"rbr/class/{x.response_type}/{top}"
            logs[key] = logs.get(key, 0.0) + 1.0 / n
    return OpenRLHFResponse(rewards=rewards, scores=rewards, extra_logs=logs)
