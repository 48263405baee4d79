"""The service with a stand-in grader LLM, served in this process on a real port (route tests only).

Everything but the LLM is the real thing: the policy, the rules, the linear model and shipped weights, the judge
RM, the batcher, the FastAPI app and uvicorn. The stand-in engine answers each question with log-odds derived
from a hash of the conversation, the completion and the question (the same item always gets the same
probabilities, different items different ones) and can be told to take time per item or to fail. What the real
model reads is tested through a real `rbr serve` process (the `server` fixture, tests marked e2e).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import uvicorn

from propositions import load_policy
from reward_service.config import load_settings
from reward_service.grader import Grader
from reward_service.grader._engine import Readout
from reward_service.grader._prompt import EncodedItem, PromptFormat
from reward_service.grader.rule_reading import RuleReading
from reward_service.server.app import create_app
from reward_service.server.service import RewardService
from tests._server import free_port

__all__ = ["HashEngine", "InProcessServer", "stand_in_server"]


class CharTokenizer:
    """One id per character (no chat template: the prompt format's plain-text layout)."""

    chat_template = None
    bos_token_id = None

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": [ord(c) for c in text]}


class HashEngine:
    """The grader engine's stand-in: log-odds in [-4, 4] from a hash of (grader prompt, question)."""

    layers: tuple[int, ...] = ()

    def __init__(self, seconds_per_item: float = 0.0) -> None:
        self.seconds_per_item = seconds_per_item
        self.fail: Exception | None = None
        self.items = 0  # items read so far

    def readout(self, enc: EncodedItem, strategy: str = "prefix", answer_states: bool = True) -> Readout:
        return self.readout_many([enc], answer_states)[0]

    def readout_many(self, encs, answer_states: bool = False) -> list[Readout]:
        if self.fail is not None:
            raise self.fail
        time.sleep(self.seconds_per_item * len(encs))
        self.items += len(encs)
        return [Readout(np.array([_log_odds(e, q) for q in e.suffix_ids]), np.zeros((4, 0, 0)), None, 1) for e in encs]

    def pooled(self, encs) -> list[Readout]:
        raise AssertionError("the stand-in grades in mode 'prompted': pooled() is never called")


def _log_odds(enc: EncodedItem, question: list[int]) -> float:
    key = repr((enc.prefix_ids, question)).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "big") / 2**32 * 8 - 4


@dataclass
class InProcessServer:
    url: str
    service: RewardService
    engine: HashEngine
    grader: Grader  # over `engine`: what service.load(grader) serves


@contextmanager
def stand_in_server(seconds_per_item: float = 0.0, load: bool = True, **settings: object) -> Iterator[InProcessServer]:
    """uvicorn in a thread serving `create_app` over the stand-in grader, with these settings (Settings fields).
    Without `load` the service stays unloaded (/readyz 503) until the test calls service.load(...)."""
    st = load_settings(**settings)
    policy = load_policy(st.policy_file)
    engine = HashEngine(seconds_per_item)
    grader = Grader(
        policy, engine, PromptFormat(CharTokenizer()), "prompted", None, "stand-in", rules=RuleReading("prompted")
    )
    service = RewardService(st)
    if load:
        service.load(grader)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(st, service, load=False), port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="stand-in-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the in-process server did not start")
        time.sleep(0.01)
    try:
        yield InProcessServer(f"http://127.0.0.1:{port}", service, engine, grader)
    finally:
        server.should_exit = True
        thread.join(30)
