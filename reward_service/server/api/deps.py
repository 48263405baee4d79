"""FastAPI dependencies: the service, the serving pipeline, and bearer-token checks."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable
from typing import Annotated, TypeVar

from fastapi import Depends, Header, Request

from reward_service.errors import AuthError
from reward_service.server.service import Pipeline, RewardService

__all__ = ["AdminAuth", "ApiAuth", "PipelineDep", "ClientGone", "ServiceDep", "while_connected"]

T = TypeVar("T")


def get_service(request: Request) -> RewardService:
    return request.app.state.service


ServiceDep = Annotated[RewardService, Depends(get_service)]


def get_pipeline(service: ServiceDep) -> Pipeline:
    """The pipeline serving this request (503 while loading); a reload never changes it mid-request."""
    return service.ready()


PipelineDep = Annotated[Pipeline, Depends(get_pipeline)]


def _check_bearer(expected: str, authorization: str | None) -> None:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise AuthError("missing or wrong bearer token (Authorization: Bearer <token>)")


def api_auth(service: ServiceDep, authorization: Annotated[str | None, Header()] = None) -> None:
    if service.settings.api_token:
        _check_bearer(service.settings.api_token, authorization)


def admin_auth(service: ServiceDep, authorization: Annotated[str | None, Header()] = None) -> None:
    if not service.settings.admin_token:
        raise AuthError("admin routes are off: start the service with RBR_ADMIN_TOKEN set")
    _check_bearer(service.settings.admin_token, authorization)


ApiAuth = Depends(api_auth)
AdminAuth = Depends(admin_auth)


class ClientGone(Exception):
    """The client closed the connection before its answer was ready (nothing is sent back)."""


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def while_connected(request: Request, work: Awaitable[T]) -> T:
    """Await `work`, cancelling it if the client disconnects first (its queued items are then never graded)."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
    if not task.done():
        task.cancel()  # the batcher drops its items unless they are already running
        raise ClientGone()
    return task.result()
