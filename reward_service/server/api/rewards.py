"""POST /v1/rewards and POST /v1/grade: the native routes."""

from __future__ import annotations

from fastapi import APIRouter, Request

from propositions import graded_classes, top_class
from reward_service.schemas import (
    Components,
    GradeRequest,
    GradeResponse,
    GradeResult,
    RewardsRequest,
    RewardsResponse,
    RuleScore,
)
from reward_service.server.api._routing import StrictJSONRoute, error_responses
from reward_service.server.api.deps import ApiAuth, PipelineDep, ServiceDep, while_connected

__all__ = ["router"]

router = APIRouter(
    prefix="/v1",
    tags=["rewards"],
    dependencies=[ApiAuth],
    route_class=StrictJSONRoute,
    responses=error_responses(401, 413, 415, 422, 429, 503),
)


@router.post("/rewards", response_model=RewardsResponse, response_model_exclude_none=True)
async def rewards(
    body: RewardsRequest, request: Request, service: ServiceDep, pipeline: PipelineDep
) -> RewardsResponse:
    items = service.prepare(pipeline, [it.model_dump(exclude_none=True) for it in body.items])
    scored, warnings = await while_connected(request, service.score(pipeline, items, body.harmful_rules))
    service.metrics.items.labels("rewards").inc(len(items))
    components = None
    if body.return_components:
        components = [
            Components(
                id=it.id,
                response_type=s.response_type,
                rm=s.rm,
                rbr=s.rbr or 0.0,
                classes=s.classes,
                top_class=s.top_class,
                propositions=s.propositions,
                rule_term=s.rule_term if s.rules else None,
                rules=[RuleScore(**r) for r in s.rules] if s.rules else None,
                category_probabilities=s.category_probabilities,
                response_type_probabilities=s.response_type_probabilities,
            )
            for it, s in zip(body.items, scored, strict=True)
        ]
    return RewardsResponse(
        rewards=[s.reward for s in scored],
        components=components,
        policy_hash=pipeline.policy.hash,
        weights_version=pipeline.weights.version,
        warnings=warnings or None,
    )


@router.post("/grade", response_model=GradeResponse)
async def grade(body: GradeRequest, request: Request, service: ServiceDep, pipeline: PipelineDep) -> GradeResponse:
    items = service.prepare(pipeline, [it.model_dump(exclude_none=True) for it in body.items])
    graded, warnings = await while_connected(
        request, service.grade(pipeline, items, body.propositions, body.harmful_rules)
    )
    service.metrics.items.labels("grade").inc(len(items))
    results = []
    for req, (it, p, rp, cats) in zip(body.items, graded, strict=True):
        p_rt = pipeline.policy.response_type_probabilities(cats) if cats is not None else None
        rt = max(p_rt, key=p_rt.__getitem__) if p_rt is not None else it.response_type
        classes = graded_classes(pipeline.policy, rt, p)
        results.append(
            GradeResult(
                id=req.id,
                response_type=rt,
                category_probabilities=cats,
                response_type_probabilities=p_rt,
                propositions=p,
                classes=classes,
                top_class=top_class(classes) if classes else None,
                rules=[RuleScore(text=r.text, priority=r.priority, **q) for r, q in zip(it.rules, rp, strict=True)]
                if it.rules
                else None,
            )
        )
    return GradeResponse(results=results, policy_hash=pipeline.policy.hash, warnings=warnings or None)
