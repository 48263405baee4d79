"""A real `rbr serve` process for the route tests (started once per session, embedded default model)."""

from __future__ import annotations

import pytest

from tests._server import rbr_server

ADMIN_TOKEN = "test-admin-token"


@pytest.fixture(scope="session")
def server():
    """Base URL of a served embedded default with small limits (8 items, 4,000 characters)."""
    env = {"RBR_MAX_ITEMS": "8", "RBR_MAX_CHARS": "4000", "RBR_ADMIN_TOKEN": ADMIN_TOKEN}
    with rbr_server(env) as (url, proc, log):
        yield url
        assert proc.poll() is None, f"the server died during the tests:\n{log.read_text()[-2000:]}"
