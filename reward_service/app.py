"""The FastAPI application: routes, the one error handler, metrics middleware, background model loading.

Errors map to HTTP statuses in one place (`STATUS`); every error body is
`{"error": {"type", "message", "field"}}`. A grader or reward-model failure is a 503 with the reason:
the request gets no reward rather than a made-up one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from propositions import PolicyError

from .api import router
from .config import Settings, load_settings
from .errors import (
    AuthError,
    GraderError,
    GraderTimeout,
    HeadsError,
    InputError,
    LimitError,
    ModelLoadError,
    NotReadyError,
    RBRError,
    RewardModelError,
    WeightsMismatchError,
)
from .schemas import ErrorBody, ErrorDetail
from .service import RewardService

__all__ = ["STATUS", "create_app"]

log = logging.getLogger("rbr.app")

#: exception -> (HTTP status, error type). The first matching class wins (subclasses first).
STATUS: tuple[tuple[type[Exception], int, str], ...] = (
    (LimitError, 413, "too_large"),
    (InputError, 422, "invalid_input"),
    (PolicyError, 422, "invalid_policy"),
    (WeightsMismatchError, 422, "weights_mismatch"),
    (AuthError, 401, "unauthorized"),
    (NotReadyError, 503, "not_ready"),
    (GraderTimeout, 503, "grader_timeout"),
    (GraderError, 503, "grader_error"),
    (RewardModelError, 503, "reward_model_error"),
    (HeadsError, 503, "grader_heads_error"),
    (ModelLoadError, 503, "model_load_error"),
    (RBRError, 500, "internal_error"),
)


def _is_type_tag(part: object) -> bool:
    """Pydantic puts the tried union member into error locations ('str', 'Message', 'list[Message]')."""
    return isinstance(part, str) and (part[:1].isupper() or "[" in part or part in {"str", "int", "float", "bool"})


def _error(status: int, kind: str, message: str, field: str | None = None, headers: dict | None = None):
    body = ErrorBody(error=ErrorDetail(type=kind, message=message, field=field))
    return JSONResponse(body.model_dump(), status, headers=headers)


def create_app(
    settings: Settings | None = None,
    service: RewardService | None = None,
    load: bool = True,
    on_load_failure: Callable[[BaseException], None] | None = None,
) -> FastAPI:
    """The app. With `load`, the models load in a background thread at startup (/readyz turns 200)."""
    service = service or RewardService(settings or load_settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.batcher.start()
        if load and service.pipeline is None:

            def _load() -> None:
                try:
                    service.load()
                except BaseException as e:  # shown by /readyz; `rbr serve` also exits with it
                    log.error("loading the models failed: %s", service.load_error)
                    if on_load_failure is not None:
                        on_load_failure(e)

            threading.Thread(target=_load, name="rbr-load", daemon=True).start()
        yield
        await service.batcher.stop()

    app = FastAPI(title="rbr reward service", version="0.1.0", lifespan=lifespan)
    app.state.service = service
    app.include_router(router)

    @app.exception_handler(RBRError)
    @app.exception_handler(PolicyError)
    async def _rbr_error(request: Request, exc: Exception) -> JSONResponse:
        status, kind = next((s, k) for cls, s, k in STATUS if isinstance(exc, cls))
        service.metrics.errors.labels(kind).inc()
        if status >= 500:
            log.warning("%s %s -> %d %s: %s", request.method, request.url.path, status, kind, exc)
        field = exc.field if isinstance(exc, InputError) else None
        message = exc.problem if isinstance(exc, InputError) else str(exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return _error(status, kind, message, field, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        service.metrics.errors.labels("invalid_request").inc()
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        loc = [str(x) for x in first.get("loc", ()) if x != "body" and not _is_type_tag(x)]
        field = "".join(f"[{x}]" if x.isdigit() else f".{x}" for x in loc).lstrip(".") or None
        body = ErrorBody(error=ErrorDetail(type="invalid_request", message=first.get("msg", ""), field=field))
        detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in errors]
        return JSONResponse({**body.model_dump(), "detail": detail}, 422)

    @app.middleware("http")
    async def _metrics(request: Request, call_next):
        t0 = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        name = getattr(route, "path", "unmatched")
        service.metrics.requests.labels(name, str(response.status_code)).inc()
        service.metrics.latency.labels(name).observe(time.perf_counter() - t0)
        return response

    return app
