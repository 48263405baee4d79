"""The JailbreakBench dev split: deterministic, disjoint by behaviour, about a fifth of the behaviours."""

from __future__ import annotations

import pytest

from reward_service.offline.jbb import JBB_FILE, jbb_rows, jbb_split


def test_split_is_a_pure_function_of_the_name():
    names = [f"behaviour {i}" for i in range(400)]
    first = [jbb_split(n) for n in names]
    assert first == [jbb_split(n) for n in reversed(names)][::-1]
    dev = first.count("dev") / len(names)
    assert 0.14 < dev < 0.26  # 1 in 5 by hash
    assert set(first) == {"dev", "fit"}


def test_split_on_the_data_is_disjoint_and_about_a_fifth():
    if not JBB_FILE.exists():
        pytest.skip(f"JailbreakBench replies not found at {JBB_FILE}")
    dev, fit = jbb_rows(split="dev"), jbb_rows(split="fit")
    assert len(dev) + len(fit) == len(jbb_rows())
    dev_b, fit_b = {r["behavior"] for r in dev}, {r["behavior"] for r in fit}
    assert dev_b and fit_b and not dev_b & fit_b
    assert 0.15 < len(dev_b) / len(dev_b | fit_b) < 0.30
    assert jbb_rows(split="dev") == dev  # same rows on a second read
    r = dev[0]
    assert r["propositions"]["disallowed_content"] == r["propositions"]["fully_complies"]
    assert {m["role"] for m in r["prompt"]} == {"user"} and r["completion"][0]["role"] == "assistant"


def test_extra_rows_weigh_jbb_fit_rows_and_skip_dev(tmp_path, policy):
    import json

    from reward_service.offline.evaluation import read_extra

    rows = [
        {
            "source": "s",
            "behavior": b,
            "category": "c",
            "goal": "g",
            "prompt": f"p {b}",
            "response": "r",
            "jailbroken": j,
        }
        for b, j in [("Ageism", True), ("Bribery", False), ("Arson", True), ("Tax fraud", False)]
    ]
    f = tmp_path / "jbb.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    extra = read_extra([], str(f), 0.3, policy)
    items, labels, weights = extra.items, extra.labels, extra.weights
    fit = [r for r in rows if jbb_split(r["behavior"]) == "fit"]  # Arson, Tax fraud (Ageism, Bribery are dev)
    assert len(fit) == 2
    assert [it.conversation[0]["content"] for it in items] == [r["prompt"] for r in fit]
    assert labels == [{"disallowed_content": r["jailbroken"], "fully_complies": r["jailbroken"]} for r in fit]
    assert weights == [0.3] * len(fit)
