"""HTTP routes, one module per resource: rewards (+ grade), OpenRLHF, policy and health, admin."""

from fastapi import APIRouter

from reward_service.server.api import admin, meta, openrlhf, rewards

__all__ = ["router"]

router = APIRouter()
for module in (rewards, openrlhf, meta, admin):
    router.include_router(module.router)
