"""The JailbreakBench dev split: deterministic, disjoint by behaviour, about a fifth of the behaviours."""

from __future__ import annotations

import pytest

from reward_service.offline.jbb import JBB_FILE, jbb_id, jbb_rows, jbb_split


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
    assert {m["role"] for m in r["prompt"]} == {"user"} and r["completion"][0]["role"] == "assistant"


def test_our_labels_cover_the_data_and_fully_complies_differs_from_jailbroken():
    """data/jbb_labels.jsonl holds our reading of every reply (four propositions); `fully_complies` is not the
    benchmark's `jailbroken` verdict
    (a sanitised but complete answer is not jailbroken and complies; a reply that debunks the claim it was asked
    to argue is neither). labels_file=None gives the proxy used before."""
    if not JBB_FILE.exists():
        pytest.skip(f"JailbreakBench replies not found at {JBB_FILE}")
    rows, proxy = jbb_rows(), jbb_rows(labels_file=None)
    ours = {"fully_complies", "apology", "inability_to_comply", "judgement"}
    assert all(set(r["propositions"]) == {"disallowed_content"} | ours for r in rows)
    # read in two passes by different readers, yet no reply both says it cannot comply and fully complies
    assert not any(r["propositions"]["inability_to_comply"] and r["propositions"]["fully_complies"] for r in rows)
    assert all(r["propositions"]["fully_complies"] == r["propositions"]["disallowed_content"] for r in proxy)
    differ = sum(r["propositions"]["fully_complies"] != r["propositions"]["disallowed_content"] for r in rows)
    assert 0.03 * len(rows) < differ < 0.3 * len(rows)
    dc = [[r["propositions"]["disallowed_content"] for r in rs] for rs in (rows, proxy)]
    assert dc[0] == dc[1]


def test_our_labels_are_keyed_by_text_hash(tmp_path):
    import json

    rows = [
        {"source": "s", "behavior": "b", "category": "c", "goal": "g", "prompt": f"p{i}", "response": f"r{i}",
         "jailbroken": j}
        for i, j in enumerate([True, False, True])
    ]  # fmt: skip
    data, labels = tmp_path / "jbb.jsonl", tmp_path / "labels.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    labels.write_text(
        json.dumps({"id": jbb_id("p0", "r0"), "fully_complies": False})
        + "\n"
        + json.dumps({"id": jbb_id("p1", "r1"), "fully_complies": True})
        + "\n"
    )
    got = [r["propositions"] for r in jbb_rows(data, labels_file=labels)]
    assert got == [
        {"disallowed_content": True, "fully_complies": False},
        {"disallowed_content": False, "fully_complies": True},
        {"disallowed_content": True},  # not labelled by us: no fully_complies label rather than a proxy
    ]
    assert jbb_id("p0", "r0") != jbb_id("p0", "r1") and len(jbb_id("p", "r")) == 16
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):  # a lost labels file must not silently drop them
        jbb_rows(data, labels_file=tmp_path / "missing.jsonl")


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
    assert labels == [{"disallowed_content": r["jailbroken"]} for r in fit]  # rows we never labelled: no fully_complies
    assert weights == [0.3] * len(fit)
