"""What every route shares: strict JSON bodies and the documented error answers.

`StrictJSONRoute` parses request bodies so that duplicate keys, invalid UTF-8 and absurd nesting are
answered like any other malformed JSON (422 `invalid_request`, naming the problem), never accepted
silently (last key wins) or answered with FastAPI's own `{"detail": ...}` 400.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from reward_service.schemas import ErrorBody

__all__ = ["StrictJSONRoute", "error_responses"]

_MAX_DEPTH = 64  # objects/arrays nested deeper than this are refused (the wire format needs 4)

_DESCRIPTIONS = {
    401: "Missing or wrong bearer token.",
    413: "Too many items, messages or characters (the message names the limit).",
    415: "The body is not JSON (send Content-Type: application/json).",
    422: "Malformed request (invalid JSON, a wrong field, an unknown response type or category).",
    429: "Too much work is queued; retry after the Retry-After header's seconds.",
    503: "Not ready, the request's deadline passed, or the grader or reward model failed (no reward is made up).",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these statuses, each with the one error body."""
    return {s: {"model": ErrorBody, "description": _DESCRIPTIONS[s]} for s in statuses}


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _depth_ok(body: bytes) -> bool:
    """Nesting depth of a JSON text is at most _MAX_DEPTH (brackets inside strings are counted too: an upper bound)."""
    depth = 0
    for byte in body:
        if byte in b"[{":
            depth += 1
            if depth > _MAX_DEPTH:
                return False
        elif byte in b"]}":
            depth -= 1
    return True


class _StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError as e:
                raise json.JSONDecodeError(f"body is not valid UTF-8 ({e.reason})", "", e.start) from None
            if not _depth_ok(body):
                raise json.JSONDecodeError(f"nested deeper than {_MAX_DEPTH} levels", "", 0)
            try:
                self._json = json.loads(text, object_pairs_hook=_unique_keys)
            except json.JSONDecodeError:
                raise
            except ValueError as e:  # a duplicate key
                raise json.JSONDecodeError(str(e), "", 0) from None
        return self._json


class StrictJSONRoute(APIRoute):
    """An APIRoute whose JSON bodies are parsed strictly (see the module docstring)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(_StrictJSONRequest(request.scope, request.receive))

        return strict_handler
