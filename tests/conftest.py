"""Shared fixtures. The gold set is read from ../shared (never copied into the project)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GOLD = Path(os.environ.get("RBR_GOLD", ROOT.parent / "shared" / "data" / "rbr_gold" / "train.jsonl"))


@pytest.fixture(scope="session")
def gold_rows() -> list[dict]:
    if not GOLD.exists():
        pytest.skip(f"gold set not found at {GOLD} (set RBR_GOLD)")
    return [json.loads(line) for line in GOLD.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="session")
def policy():
    from propositions import load_policy

    return load_policy()


@pytest.fixture(scope="session")
def settings():
    from reward_service.config import load_settings

    return load_settings()


@pytest.fixture(scope="session")
def default_grader(settings, policy):
    """The embedded default grader, exactly as `rbr grade` builds it (loaded once per session)."""
    from reward_service.grader import Grader

    return Grader.from_settings(settings, policy=policy)


@pytest.fixture(scope="session")
def prompted_grader(default_grader):
    from reward_service.grader import Grader

    g = default_grader
    return Grader(g.policy, g.engine, g.fmt, "prompted", None, g.engine_id)


@pytest.fixture(scope="session")
def default_server():
    """Base URL of a real `rbr serve` with default settings, shared by the end-to-end tests that only score through
    it (trainers, eval-policy, TRL); tests that change settings or kill the server start their own."""
    from tests._server import rbr_server

    with rbr_server() as (url, proc, log):
        yield url
        assert proc.poll() is None, f"the shared server died during the tests:\n{log.read_text()[-2000:]}"
