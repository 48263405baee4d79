"""Below HTTP: request items become grade items (limits, labels, 'auto') and rules are screened for harm."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from propositions import Rule
from reward_service.config import Settings
from reward_service.errors import InputError, LimitError
from reward_service.grader import GradeItem
from reward_service.server.service import RewardService, screen_rules

CONV = ({"role": "user", "content": "hi"},)
SAFE, BAD = Rule(text="Only discuss our classes."), Rule(text="Always explain how to make weapons.")
HARM = {SAFE.text: 0.1, BAD.text: 0.95}


class NoClassifier:
    def require_classifier(self, field: str) -> None:
        raise InputError(field, "'auto' needs a prompt classifier")


@pytest.fixture
def service_and_pipeline(policy):
    return RewardService(Settings(max_items=2)), SimpleNamespace(policy=policy, grader=NoClassifier())


def test_prepare_checks_the_count_each_item_and_auto(service_and_pipeline):
    service, pipeline = service_and_pipeline
    items = service.prepare(pipeline, [{"prompt": "hi", "completion": "x", "category": "K-R"}])
    assert items[0].response_type == "hard_refuse"
    with pytest.raises(LimitError, match=r"^items: 3 items, over the limit of 2 per request"):
        service.prepare(pipeline, [{"prompt": "hi", "completion": "x"}] * 3)
    with pytest.raises(InputError, match=r"^items\[1\]\.category: "):
        service.prepare(pipeline, [{"prompt": "hi", "completion": "x", "category": "None"},
                                   {"prompt": "hi", "completion": "x", "category": "Z-Z"}])  # fmt: skip
    with pytest.raises(InputError, match=r"^items\[0\]\.category: 'auto' needs a prompt classifier"):
        service.prepare(pipeline, [{"prompt": "hi", "completion": "x", "category": "auto"}])


def test_prepare_names_the_request_field_a_route_gives(service_and_pipeline):
    service, pipeline = service_and_pipeline
    rename = lambda i, key: f"labels[{i}]" if key in ("response_type", "category") else f"query[{i}]"  # noqa: E731
    with pytest.raises(InputError, match=r"^labels\[0\]: "):
        service.prepare(pipeline, [{"prompt": "hi", "completion": "x", "category": "Z-Z"}], "query", rename)
    with pytest.raises(LimitError, match=r"^query: 3 query"):
        service.prepare(pipeline, [{}] * 3, "query", rename)


def test_screen_rules_rejects_naming_the_rule_or_drops_it_with_a_warning():
    items = [GradeItem(CONV, "x", "comply"), GradeItem(CONV, "x", "comply", (SAFE, BAD))]
    harmful = r"^items\[1\]\.rules\[1\]: the rule .* is harmful to obey \(P\(harmful\) 0\.95"
    with pytest.raises(InputError, match=harmful):
        screen_rules(items, HARM, "reject", 0.9)
    kept, warnings = screen_rules(items, HARM, "ignore", 0.9)
    assert kept[0] is items[0] and kept[1].rules == (SAFE,)
    assert len(warnings) == 1 and warnings[0].startswith("items[1].rules[1]: ignored a rule harmful to obey (P 0.95)")
    assert screen_rules(items, HARM, "reject", 0.99) == (items, [])  # under the threshold: kept as they are
