"""The two servers the route tests use.

`stand_in`: the app in this process over a stand-in grader LLM (tests/reward_service/server/stand_in.py): what
HTTP does with requests, limits, errors and concurrency, in milliseconds. `server`: a real `rbr serve` process with
the embedded model (started once per session): what the real model reads, end to end.
"""

from __future__ import annotations

import pytest

from tests._server import rbr_server
from tests.reward_service.server.stand_in import InProcessServer, stand_in_server

ADMIN_TOKEN = "test-admin-token"
LIMITS = {"max_items": 8, "max_chars": 4000, "admin_token": ADMIN_TOKEN}


@pytest.fixture(scope="session")
def server():
    """Base URL of a served embedded default with small limits (8 items, 4,000 characters)."""
    env = {"RBR_MAX_ITEMS": "8", "RBR_MAX_CHARS": "4000", "RBR_ADMIN_TOKEN": ADMIN_TOKEN}
    with rbr_server(env) as (url, proc, log):
        yield url
        assert proc.poll() is None, f"the server died during the tests:\n{log.read_text()[-2000:]}"


@pytest.fixture(scope="module")
def stand_in() -> InProcessServer:
    """The app with the same small limits over the stand-in grader, in this process (one per test module)."""
    with stand_in_server(**LIMITS) as s:
        yield s
