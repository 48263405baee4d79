"""GET /v1/policy, /healthz, /readyz, /metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from reward_service.schemas import Health, PolicyInfo
from reward_service.server.api._routing import StrictJSONRoute, error_responses
from reward_service.server.api.deps import ApiAuth, PipelineDep, ServiceDep

__all__ = ["router"]

router = APIRouter(tags=["meta"], route_class=StrictJSONRoute)


@router.get("/v1/policy", response_model=PolicyInfo, dependencies=[ApiAuth], responses=error_responses(401, 503))
async def policy(pipeline: PipelineDep, service: ServiceDep) -> PolicyInfo:
    p = pipeline.policy
    rts = {
        rt: {
            "propositions": list(p.required_propositions(rt)),
            "classes": list(p.response_types[rt].classes),
            "features": list(p.feature_names(rt)),
            "weights": dict(zip(pipeline.weights.feature_names[rt], pipeline.weights.weights[rt], strict=True)),
        }
        for rt in p.response_types
    }
    backends = {
        "grader": f"{pipeline.grader.engine_id} ({pipeline.grader.mode})",
        "reward_model": pipeline.reward_model.identity,
        "weights_reward_model": pipeline.weights.reward_model,
        "policy_file": pipeline.policy_file,
        "weights_file": pipeline.weights_file,
        "prompt_classifier": _classifier_info(pipeline.grader.classifier),
    }
    return PolicyInfo(
        policy_hash=p.hash,
        weights_version=pipeline.weights.version,
        response_types=rts,
        backends=backends,
        policy=p.model_dump(mode="json"),
        default_response_type=service.settings.default_response_type,
    )


@router.get("/healthz", response_model=Health, response_model_exclude_none=True)
async def healthz() -> dict:
    """The process is up and answering (models may still be loading)."""
    return {"status": "ok"}


@router.get("/readyz", response_model=Health, responses={503: {"model": Health, "description": "Not ready yet."}})
async def readyz(service: ServiceDep) -> JSONResponse:
    """200 once the models are loaded and a pipeline is serving; 503 with the reason before that."""
    if service.pipeline is None:
        reason = f"loading failed: {service.load_error}" if service.load_error else "loading models"
        return JSONResponse({"status": "not_ready", "reason": reason}, status_code=503)
    p = service.pipeline
    return JSONResponse({"status": "ready", "policy_hash": p.policy.hash, "weights_version": p.weights.version})


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text."}},
)
async def metrics(service: ServiceDep) -> Response:
    """Prometheus metrics in the text exposition format."""
    return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _classifier_info(classifier) -> str:
    """What reads category 'auto' (or that nothing does: then 'auto' is a 422)."""
    if classifier is None:
        return "none: category 'auto' is refused"
    spec = classifier.spec
    return f"{classifier.engine_id}: {len(classifier.categories)} categories from {spec.stats} at {spec.layers}"
