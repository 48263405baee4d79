"""POST /v1/rewards and POST /v1/grade: the native routes."""

from __future__ import annotations

from dataclasses import replace

from fastapi import APIRouter, Request

from propositions import AUTO, graded_classes, top_class
from reward_service.errors import InputError, LimitError
from reward_service.grader import GradeItem, ItemLimits, parse_item
from reward_service.schemas import (
    Components,
    GradeRequest,
    GradeResponse,
    GradeResult,
    HarmfulRules,
    RewardItem,
    RewardsRequest,
    RewardsResponse,
    RuleScore,
)
from reward_service.server.api._routing import StrictJSONRoute, error_responses
from reward_service.server.api.deps import ApiAuth, PipelineDep, ServiceDep, while_connected
from reward_service.server.service import Pipeline, RewardService

__all__ = ["parse_items", "router"]

router = APIRouter(
    prefix="/v1",
    tags=["rewards"],
    dependencies=[ApiAuth],
    route_class=StrictJSONRoute,
    responses=error_responses(401, 413, 415, 422, 429, 503),
)


def parse_items(items: list[RewardItem], service: RewardService, pipeline: Pipeline) -> list[GradeItem]:
    """Request items -> grade items, with the limits (413) and response-type resolution (422)."""
    s = service.settings
    if len(items) > s.max_items:
        raise LimitError("items", f"{len(items)} items, over the limit of {s.max_items} per request")
    limits = ItemLimits.from_settings(s)
    out = [
        parse_item(it.model_dump(exclude_none=True), pipeline.policy, f"items[{i}]", limits)
        for i, it in enumerate(items)
    ]
    auto = [i for i, it in enumerate(out) if it.response_type == AUTO]
    if auto:
        field = "category" if items[auto[0]].category is not None else "response_type"
        pipeline.grader.require_classifier(f"items[{auto[0]}].{field}")
    return out


async def screen_rules(
    items: list[GradeItem], mode: HarmfulRules, request: Request, service: RewardService, pipeline: Pipeline
) -> tuple[list[GradeItem], list[str] | None]:
    """Deployment rules that are harmful to obey: a 422 naming the first (mode reject), or dropped with a warning."""
    if not any(it.rules for it in items):
        return items, None
    harm = await while_connected(request, service.rule_harm(pipeline, items))
    threshold = service.settings.rule_harm_threshold
    out, warnings = [], []
    for i, it in enumerate(items):
        keep = []
        for j, rule in enumerate(it.rules):
            p = harm[rule.text]
            if p < threshold:
                keep.append(rule)
            elif mode == "reject":
                raise InputError(
                    f"items[{i}].rules[{j}]",
                    f"the rule {rule.text!r} is harmful to obey (P(harmful) {p:.2f}, limit {threshold:g}, "
                    "RBR_RULE_HARM_THRESHOLD): refused; send harmful_rules: ignore to drop such rules instead",
                )
            else:
                warnings.append(f"items[{i}].rules[{j}]: ignored a rule harmful to obey (P {p:.2f}): {rule.text!r}")
        out.append(it if len(keep) == len(it.rules) else replace(it, rules=tuple(keep)))
    return out, warnings or None


@router.post("/rewards", response_model=RewardsResponse, response_model_exclude_none=True)
async def rewards(
    body: RewardsRequest, request: Request, service: ServiceDep, pipeline: PipelineDep
) -> RewardsResponse:
    items = parse_items(body.items, service, pipeline)
    items, warnings = await screen_rules(items, body.harmful_rules, request, service, pipeline)
    scored = await while_connected(request, service.score(pipeline, items))
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
                rule_term=s.rule_term if gi.rules else None,
                rules=[RuleScore(**r) for r in s.rules] if gi.rules else None,
                category_probabilities=s.category_probabilities,
                response_type_probabilities=s.response_type_probabilities,
            )
            for it, gi, s in zip(body.items, items, scored, strict=True)
        ]
    return RewardsResponse(
        rewards=[s.reward for s in scored],
        components=components,
        policy_hash=pipeline.policy.hash,
        weights_version=pipeline.weights.version,
        warnings=warnings,
    )


@router.post("/grade", response_model=GradeResponse)
async def grade(body: GradeRequest, request: Request, service: ServiceDep, pipeline: PipelineDep) -> GradeResponse:
    items = parse_items(body.items, service, pipeline)
    if body.propositions is not None:
        unknown = [p for p in body.propositions if p not in pipeline.policy.propositions]
        if unknown:
            raise InputError("propositions", f"unknown proposition(s): {', '.join(unknown)}")
    items, warnings = await screen_rules(items, body.harmful_rules, request, service, pipeline)
    graded = await while_connected(request, service.grade(pipeline, items, body.propositions))
    service.metrics.items.labels("grade").inc(len(items))
    results = []
    for req, it, (p, rp, cats) in zip(body.items, items, graded, strict=True):
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
    return GradeResponse(results=results, policy_hash=pipeline.policy.hash, warnings=warnings)
