"""One place where httpx errors become this project's errors: calls to model servers (grader, RM, writer).

    post_json(client, "/v1/completions", body, who="grader server", error=GraderError, timeout=GraderTimeout)

raises `timeout` (default `error`) when the call times out, `unavailable` (default `error`) when the server cannot
be reached or answers 5xx, `error` when it answers another status or no JSON; every message names the URL.
The service's own client (client.py) has its own retry policy and maps to ServiceError.
"""

from __future__ import annotations

from typing import Any

import httpx

from reward_service.errors import RBRError

__all__ = ["post_json"]


def post_json(
    client: httpx.Client,
    path: str,
    body: dict,
    who: str,
    error: type[RBRError],
    timeout: type[RBRError] | None = None,
    unavailable: type[RBRError] | None = None,
) -> Any:
    """POST `body` as JSON to `path` (or a full URL); the decoded JSON answer, or an error of the given types."""
    url = f"{str(client.base_url).rstrip('/')}{path}"
    try:
        resp = client.post(path, json=body)
    except httpx.TimeoutException as e:
        raise (timeout or error)(f"{who}: timed out calling {url}") from e
    except httpx.HTTPError as e:
        raise (unavailable or error)(f"{who}: cannot reach {url}: {type(e).__name__}: {e}") from e
    if resp.status_code >= 500:
        raise (unavailable or error)(f"{who}: {url} answered {resp.status_code}: {resp.text[:300]}")
    if resp.status_code != 200:
        raise error(f"{who}: {url} answered {resp.status_code}: {resp.text[:300]}")
    try:
        return resp.json()
    except ValueError as e:
        raise error(f"{who}: malformed answer from {url} (not JSON): {resp.text[:300]}") from e
