"""POST /get_reward: OpenRLHF's remote reward model protocol (`--remote_rm_url http://host:port/get_reward`).

Request  {"query": [prompt + response text], "prompts": [prompt text], "labels": [response type | category]}
Response {"rewards": [r_i], "scores": [r_i], "extra_logs": {name: [value_i]}}, the shape of upstream's own
`openrlhf/cli/serve_rm.py`: one value per sample under every key, so OpenRLHF can keep each sample's logs
and join samples into batches (v0.11 sends one sample per request, v0.9 a whole batch or an empty shard).

`extra_logs` has the same keys for every request of a served policy (`extra_log_keys`):
  rbr/rm, rbr/rbr                      the reward's two terms
  rbr/response_type/<rt>               1.0 if the sample's response type is <rt>, else 0.0
  rbr/class/<rt>/<class>               the class probability; 0.0 when <rt> is not the sample's response type
`labels[i]` is a response type or category name, or {"response_type": ...} / {"category": ...}; an empty or
missing label means the configured default response type (RBR_DEFAULT_RESPONSE_TYPE).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from propositions import Policy, label_fields
from reward_service.errors import InputError
from reward_service.reward.scoring import Scored
from reward_service.schemas import OpenRLHFRequest, OpenRLHFResponse
from reward_service.server.api._chat import split_query
from reward_service.server.api._routing import StrictJSONRoute, error_responses
from reward_service.server.api.deps import ApiAuth, PipelineDep, ServiceDep, while_connected

__all__ = ["extra_log_keys", "router"]


def _request_field(i: int, key: str) -> str:
    """Where in the request an item's problem came from: its label, or its query."""
    return f"labels[{i}]" if key in ("response_type", "category") else f"query[{i}]"


router = APIRouter(
    tags=["openrlhf"],
    dependencies=[ApiAuth],
    route_class=StrictJSONRoute,
    responses=error_responses(401, 413, 415, 422, 429, 503),
)


def extra_log_keys(policy: Policy) -> list[str]:
    """The fixed `extra_logs` keys of a policy, in order."""
    keys = ["rbr/rm", "rbr/rbr"] + [f"rbr/response_type/{rt}" for rt in policy.response_types]
    return keys + [f"rbr/class/{rt}/{c}" for rt, spec in policy.response_types.items() for c in spec.classes]


def _extra_logs(policy: Policy, scored: list[Scored]) -> dict[str, list[float]]:
    logs: dict[str, list[float]] = {k: [0.0] * len(scored) for k in extra_log_keys(policy)}
    for i, x in enumerate(scored):
        logs["rbr/rm"][i], logs["rbr/rbr"][i] = x.rm, x.rbr or 0.0
        logs[f"rbr/response_type/{x.response_type}"][i] = 1.0
        for c, p in x.classes.items():
            logs[f"rbr/class/{x.response_type}/{c}"][i] = float(p)
    return logs


def _label_fields(label: Any, policy: Policy, where: str) -> dict[str, str]:
    if label is None or label == "":
        return {}
    if isinstance(label, dict):
        return {k: label[k] for k in ("response_type", "category") if isinstance(label.get(k), str)}
    if not isinstance(label, str):
        raise InputError(where, "must be a response type or category name, or an object holding one")
    return label_fields(label, policy.response_types)


@router.post("/get_reward", response_model=OpenRLHFResponse)
async def get_reward(
    body: OpenRLHFRequest, request: Request, service: ServiceDep, pipeline: PipelineDep
) -> OpenRLHFResponse:
    n = len(body.query)
    service.check_count(n, "query")  # before the queries are split
    for name, values in (("prompts", body.prompts), ("labels", body.labels)):
        if values is not None and len(values) != n:
            raise InputError(name, f"{len(values)} entries for {n} queries")
    objs = []
    for i, query in enumerate(body.query):
        messages, completion = split_query(query, body.prompts[i], i)
        label = _label_fields(body.labels[i] if body.labels else None, pipeline.policy, f"labels[{i}]")
        objs.append({"prompt": messages, "completion": completion, **label})
    items = service.prepare(pipeline, objs, "query", _request_field)  # a problem names the request field
    scored, _ = await while_connected(request, service.score(pipeline, items))
    service.metrics.items.labels("get_reward").inc(n)
    rewards = [x.reward for x in scored]
    return OpenRLHFResponse(rewards=rewards, scores=rewards, extra_logs=_extra_logs(pipeline.policy, scored))
