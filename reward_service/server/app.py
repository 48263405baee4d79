"""The FastAPI application: routes, the one error handler, metrics middleware, background model loading.

Errors map to HTTP statuses in one place (`STATUS`); every error body is
`{"error": {"type", "message", "field"}}`. A grader or reward-model failure is a 503 with the reason:
the request gets no reward rather than a made-up one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from reward_service.config import Settings, load_settings
from reward_service.errors import (
    AuthError,
    GraderError,
    GraderTimeout,
    HeadsError,
    InputError,
    LimitError,
    ModelLoadError,
    NotReadyError,
    OverloadedError,
    PolicyError,
    RBRError,
    RequestTimeout,
    RewardModelError,
    WeightsMismatchError,
)
from reward_service.schemas import ErrorBody, ErrorDetail, ValidationIssue
from reward_service.server.api import router
from reward_service.server.api.deps import ClientGone
from reward_service.server.service import RewardService

__all__ = ["STATUS", "create_app"]

log = logging.getLogger("rbr.app")

#: exception -> (HTTP status, error type). The first matching class wins (subclasses first).
STATUS: tuple[tuple[type[Exception], int, str], ...] = (
    (LimitError, 413, "too_large"),
    (PolicyError, 422, "invalid_policy"),
    (InputError, 422, "invalid_input"),
    (WeightsMismatchError, 422, "weights_mismatch"),
    (AuthError, 401, "unauthorized"),
    (OverloadedError, 429, "overloaded"),
    (RequestTimeout, 503, "request_timeout"),
    (NotReadyError, 503, "not_ready"),
    (GraderTimeout, 503, "grader_timeout"),
    (GraderError, 503, "grader_error"),
    (RewardModelError, 503, "reward_model_error"),
    (HeadsError, 503, "grader_heads_error"),
    (ModelLoadError, 503, "model_load_error"),
    (RBRError, 500, "internal_error"),
)


def _field(error: Mapping) -> str | None:
    """A validation error's location as the field a user wrote: items[0].prompt[1].role."""
    loc = [str(x) for x in error.get("loc", ()) if x != "body" and not _is_type_tag(x)]
    return "".join(f"[{x}]" if x.isdigit() else f".{x}" for x in loc).lstrip(".") or None


def _is_type_tag(part: object) -> bool:
    """Pydantic puts the tried union member into error locations ('str', 'constrained-str', 'Message',
    'list[Message]'); field names are lower-case identifiers."""
    if not isinstance(part, str) or part.isdigit():
        return False
    return part[:1].isupper() or not part.isidentifier() or part in {"str", "int", "float", "bool"}


#: HTTP errors raised by the framework itself (unknown path, wrong method, unreadable body) -> error type.
_HTTP_KINDS = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}


def _error(
    status: int,
    kind: str,
    message: str,
    field: str | None = None,
    headers: dict | None = None,
    detail: list[ValidationIssue] | None = None,
) -> JSONResponse:
    body = ErrorBody(error=ErrorDetail(type=kind, message=message, field=field), detail=detail)
    return JSONResponse(body.model_dump(exclude_none=True), status, headers=headers)


def _is_json(request: Request) -> bool:
    ctype = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    return ctype == "application/json" or ctype.endswith("+json")


def _served_schema(schema: dict, service: RewardService) -> dict:
    """The OpenAPI schema with what the served policy and settings allow: response types, categories and
    propositions as enums, and the item, message and character limits (413 past them)."""
    from propositions import load_policy

    pipeline, st = service.pipeline, service.settings
    policy = pipeline.policy if pipeline is not None else load_policy(st.policy_file)
    models = schema.get("components", {}).get("schemas", {})

    def props(model: str) -> dict:
        return models.get(model, {}).get("properties", {})

    def constrain(node: dict, kind: str, **limits: object) -> None:
        """Add `limits` to the `kind` ("string"/"array") branch of a property (itself or inside anyOf)."""
        for branch in node.get("anyOf", [node]):
            if branch.get("type") == kind:
                branch.update(limits)

    item = props("RewardItem")
    for name, values in (("response_type", list(policy.response_types)), ("category", list(policy.categories))):
        if name in item:
            item[name] = {**item[name], "anyOf": [{"type": "string", "enum": values}, {"type": "null"}]}
    constrain(item.get("prompt", {}), "string", maxLength=st.max_chars)
    constrain(item.get("prompt", {}), "array", maxItems=st.max_messages)
    constrain(item.get("completion", {}), "string", maxLength=st.max_chars)
    for name in ("role", "content"):
        constrain(props("Message").get(name, {}), "string", maxLength=st.max_chars)
    for model in ("RewardsRequest", "GradeRequest"):
        constrain(props(model).get("items", {}), "array", maxItems=st.max_items)
    constrain(
        props("GradeRequest").get("propositions", {}),
        "array",
        items={"type": "string", "enum": list(policy.propositions)},
    )
    for name in ("query", "prompts", "labels"):
        constrain(props("OpenRLHFRequest").get(name, {}), "array", maxItems=st.max_items)
    return schema


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
        if service.settings.default_response_type is None:
            log.warning(
                "RBR_DEFAULT_RESPONSE_TYPE is unset: OpenRLHF samples with an empty label (and items with "
                "neither response_type nor category) will be answered 422"
            )
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
    for exc_class, handler in ERROR_HANDLERS:
        app.add_exception_handler(exc_class, handler)

    def openapi() -> dict:
        if app.openapi_schema is None or app.state.openapi_policy != _served_hash(service):
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            app.openapi_schema = _served_schema(schema, service)
            app.state.openapi_policy = _served_hash(service)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.state.openapi_policy = None
    app.add_middleware(_MetricsMiddleware, metrics=service.metrics)
    return app


# -- errors: one JSON shape for every failure ------------------------------------------------------------


def _service(request: Request) -> RewardService:
    return request.app.state.service


async def _rbr_error(request: Request, exc: Exception) -> JSONResponse:
    status, kind = next((s, k) for cls, s, k in STATUS if isinstance(exc, cls))
    _service(request).metrics.errors.labels(kind).inc()
    if status >= 500:
        log.warning("%s %s -> %d %s: %s", request.method, request.url.path, status, kind, exc)
    field = exc.field if isinstance(exc, InputError) else None
    message = exc.problem if isinstance(exc, InputError) else str(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if isinstance(exc, OverloadedError | RequestTimeout):
        headers = {"Retry-After": str(exc.retry_after)}
    return _error(status, kind, message, field, headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors, metrics = exc.errors(), _service(request).metrics
    if not _is_json(request):
        metrics.errors.labels("unsupported_media_type").inc()
        ctype = request.headers.get("content-type")
        message = f"the body must be JSON (Content-Type: application/json), not {ctype}"
        return _error(415, "unsupported_media_type", message, "body")
    metrics.errors.labels("invalid_request").inc()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    field = _field(first)
    # a union (a prompt as text or as messages) fails once per member: name the deepest failure under the first
    # field (items[0].prompt[1].role: "Input should be 'system', ...", not items[0].prompt: "a valid string")
    under = [e for e in errors if field and (_field(e) or "").startswith(field)]
    first = max(under, key=lambda e: len(_field(e) or ""), default=first)
    field = _field(first)
    message = first.get("msg", "")
    if first.get("type") == "string_unicode":
        message = "not valid Unicode text (a lone surrogate such as \\ud800?)"
    if first.get("type") == "json_invalid":
        field, message = "body", f"invalid JSON: {first.get('ctx', {}).get('error', message)}"
    detail = [ValidationIssue(loc=list(e.get("loc", ())), msg=e.get("msg", ""), type=e.get("type", "")) for e in errors]
    return _error(422, "invalid_request", message, field, detail=detail)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    kind = _HTTP_KINDS.get(exc.status_code, "http_error")
    _service(request).metrics.errors.labels(kind).inc()
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 404:
        message = f"no route {request.url.path}; see /docs for the routes"
    return _error(exc.status_code, kind, message, None, dict(exc.headers or {}) or None)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    _service(request).metrics.errors.labels("internal_error").inc()
    log.exception("%s %s -> 500", request.method, request.url.path, exc_info=exc)
    return _error(500, "internal_error", f"unexpected {type(exc).__name__}; the server log has the traceback")


async def _client_gone(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({}, 499)  # nobody reads it; logged as nginx's "client closed request"


ERROR_HANDLERS: tuple[tuple[type[Exception], Callable], ...] = (
    (RBRError, _rbr_error),
    (RequestValidationError, _validation_error),
    (HTTPException, _http_error),
    (Exception, _unexpected),
    (ClientGone, _client_gone),
)


def _served_hash(service: RewardService) -> str | None:
    return service.pipeline.policy.hash if service.pipeline is not None else None


class _MetricsMiddleware:
    """Counts requests by route and status and times them (plain ASGI: leaves disconnect detection intact)."""

    def __init__(self, app, metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0, status = time.perf_counter(), [500]

        async def send_status(message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            name = getattr(route, "path", "unmatched")
            self.metrics.requests.labels(name, str(status[0])).inc()
            self.metrics.latency.labels(name).observe(time.perf_counter() - t0)
