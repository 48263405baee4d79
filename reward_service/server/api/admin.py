"""POST /v1/admin/reload: swap in a new policy / weights pair atomically (bearer token)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from reward_service.schemas import ReloadRequest, ReloadResponse
from reward_service.server.api._routing import StrictJSONRoute, error_responses
from reward_service.server.api.deps import AdminAuth, ServiceDep

__all__ = ["router"]

router = APIRouter(
    prefix="/v1/admin",
    tags=["admin"],
    dependencies=[AdminAuth],
    route_class=StrictJSONRoute,
    responses=error_responses(401, 415, 422, 503),
)


@router.post("/reload", response_model=ReloadResponse)
async def reload(body: ReloadRequest, service: ServiceDep) -> ReloadResponse:
    """Load and validate the new pair beside the serving one; on any error the old pair keeps serving (422)."""
    old, new = await asyncio.to_thread(service.reload, body.policy_file, body.weights_file)
    return ReloadResponse(
        reloaded=True,
        policy_hash=new.policy.hash,
        weights_version=new.weights.version,
        previous={"policy_hash": old.policy.hash, "weights_version": old.weights.version},
    )
