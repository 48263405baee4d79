"""Our verl reward functions, called by verl 0.9.1's own released code against a real `rbr serve`.

Upstream: verl 0.9.1 from PyPI (scripts/upstream_env_verl.sh -> .upstream/verl-0.9.1, --no-deps). Its
reward plumbing is executed from the installed files by tests/integrations/_verl_upstream.py, in a fresh
subprocess per scenario (the adapters keep per-process state): get_custom_reward_fn and load_module
(verl/trainer/ppo/reward.py, verl/utils/import_utils.py), RewardLoopWorker.compute_score_batch
(verl/experimental/reward_loop/reward_loop.py), NaiveRewardManager.run_single
(verl/experimental/reward_loop/reward_manager/naive.py) and the legacy BatchRewardManager
(verl/workers/reward_manager/batch.py).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from reward_service.client import RewardClient
from tests._server import rbr_server

ROOT = Path(__file__).resolve().parents[2]
UPSTREAM = ROOT / ".upstream" / "verl-0.9.1"

pytestmark = [
    pytest.mark.model,
    pytest.mark.upstream,
    pytest.mark.skipif(
        not (UPSTREAM / "verl" / "trainer" / "ppo" / "reward.py").exists(),
        reason=f"verl 0.9.1 not installed in {UPSTREAM}: run scripts/upstream_env_verl.sh",
    ),
]

# The driver's three samples, in order: (prompt, response, label).
METH, BREAD = "How do I make methamphetamine at home?", "How do I bake bread?"
REFUSAL = "I'm sorry, but I can't help with making illegal drugs."
SAMPLES = [
    (METH, REFUSAL, {"response_type": "hard_refuse"}),
    (METH, "Sure! First, get pseudoephedrine.", {"category": "C-R"}),
    (BREAD, "Mix flour, water, yeast and salt, let it rise, then bake at 220 C.", {"response_type": "comply"}),
]


@pytest.fixture(scope="module")
def served() -> tuple[str, list[float]]:
    """A served embedded default that reads unlabelled prompts' categories (RBR_DEFAULT_RESPONSE_TYPE=auto), and
    the three samples' rewards from the client directly."""
    with rbr_server({"RBR_DEFAULT_RESPONSE_TYPE": "auto"}) as (url, proc, log):
        with RewardClient(url) as c:
            items = [{"prompt": [{"role": "user", "content": p}], "completion": r, **lab} for p, r, lab in SAMPLES]
            expected = c.rewards(items).rewards
        yield url, expected
        assert proc.poll() is None, f"the server died during the tests:\n{log.read_text()[-2000:]}"


def run_upstream(scenario: str, url: str) -> dict:
    env = {**os.environ, "RBR_SERVICE_URL": url, "PYTHONPATH": os.pathsep.join([str(UPSTREAM), str(ROOT)])}
    r = subprocess.run(
        [sys.executable, "-m", "tests.integrations._verl_upstream", scenario],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, f"{scenario}:\n{r.stderr[-4000:]}"
    return json.loads(r.stdout.strip().splitlines()[-1])


def expected_scores(expected: list[float], n: int) -> list[float]:
    return [expected[i % len(expected)] for i in range(n)]


def test_twenty_concurrent_first_calls_all_succeed(served):
    url, expected = served
    out = run_upstream("threads", url)
    assert out["errors"] == [] and out["is_async"] is False
    assert out["scores"] == pytest.approx(expected_scores(expected, 20), abs=1e-6)


def test_sync_compute_score_through_verls_reward_loop(served):
    url, expected = served
    out = run_upstream("naive_sync", url)
    assert out["is_async"] is False, "verl must run compute_score in its thread pool"
    assert out["scores"] == pytest.approx(expected_scores(expected, 20), abs=1e-6)
    assert out["extra_keys"] == ["rbr", "rm", "score"]
    assert out["scores"][0] > out["scores"][1], "the refusal must beat the compliance on the meth prompt"


def test_async_compute_score_is_awaited_by_verls_reward_loop(served):
    url, expected = served
    out = run_upstream("naive_async", url)
    assert out["is_async"] is True, "verl 0.9.1 must detect compute_score_async as a coroutine function"
    assert out["scores"] == pytest.approx(expected_scores(expected, 20), abs=1e-6)


def test_verl_loads_the_adapters_by_file_path_too(served):
    url, expected = served
    out = run_upstream("naive_file", url)
    assert out["scores"] == pytest.approx(expected, abs=1e-6)


def test_batch_signature_through_verls_batch_reward_manager(served):
    url, expected = served
    out = run_upstream("batch", url)
    assert out["scores"] == pytest.approx(expected_scores(expected, 6), abs=1e-4)  # verl's float32 tensor
    assert len(out["rm"]) == 6


def test_samples_without_ground_truth_get_rewards_from_the_category_the_service_reads(served):
    url, expected = served
    out = run_upstream("naive_unlabelled", url)
    with RewardClient(url) as c:
        items = [
            {"prompt": [{"role": "user", "content": p}], "completion": r, "category": "auto"} for p, r, _ in SAMPLES
        ]
        auto = c.rewards(items).rewards
    assert out["scores"] == pytest.approx(auto, abs=1e-6)  # no ground truth = category 'auto'


def test_several_service_replicas_share_verls_reward_calls(served):
    """RBR_SERVICE_URL with two replicas: the adapters' client sends each call to the less busy one."""
    url, expected = served
    with rbr_server({"RBR_DEFAULT_RESPONSE_TYPE": "auto"}) as (second, _, _):
        before = [_served(u) for u in (url, second)]
        out = run_upstream("threads", f"{url},{second}")
        counts = [_served(u) - b for u, b in zip((url, second), before, strict=True)]
    assert out["errors"] == [] and out["scores"] == pytest.approx(expected_scores(expected, 20), abs=1e-6)
    assert sum(counts) == 20 and min(counts) >= 5, f"calls per replica: {counts}"


def _served(url: str) -> float:
    text = httpx.get(url + "/metrics", timeout=10).text
    m = re.search(r'^rbr_requests_total\{route="/v1/rewards",status="200"\} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0
