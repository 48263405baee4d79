"""From features to fitted weights and the error-rate report, through `rbr fit` / `rbr eval-rewards`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reward_service.offline.fitting import FeatureRow, error_rates, fit_weights
from reward_service.reward.linear import RBRWeights

ROOT = Path(__file__).resolve().parents[3]


SCORER = json.dumps({"grader": "g", "mode": "heads", "policy": "p", "reward_model": "judge:x"})


def synthetic_rows(policy, n_prompts: int = 40, seed: int = 0) -> list[FeatureRow]:
    """Per prompt, one completion per label; the RM prefers compliance everywhere (helpful-only), while
    the `class:<label>` feature is high for the completion's own label, so the rules can fix the RM."""
    rng = np.random.default_rng(seed)
    rows = []
    for rt, spec in policy.response_types.items():
        names = policy.feature_names(rt)
        for p in range(n_prompts):
            split = "heldout" if p % 4 == 0 else "train"
            for label in spec.ordering:
                feats = {n: float(rng.uniform(0, 0.2)) for n in names}
                feats[f"class:{label}"] = float(rng.uniform(0.6, 1.0))
                complies = label in ("disallowed_completion", "ideal" if rt == "comply" else "")
                rm = float(rng.normal(2.0 if complies else 0.0, 0.3))
                rows.append(FeatureRow(f"{rt}-{p}", rt, label, split, rm, feats, SCORER))
    return rows


def test_fit_makes_rm_plus_rbr_beat_the_rm_on_heldout_prompts(policy):
    rows = synthetic_rows(policy)
    w = fit_weights(rows, policy, "judge:x", {"rows": len(rows)})
    rep = error_rates(rows, policy, w, "heldout")["error_rate"]
    assert rep["rm"]["hard_refuse"] > 0.3  # the helpful-only RM ranks disallowed content first
    assert rep["rm_rbr"]["all"] < 0.05
    assert rep["rm_rbr"]["all"] < rep["rm"]["all"]
    assert set(rep["rm"]) == {*policy.response_types, "all"}
    assert w.metrics["fit"]["comply"]["pairs"] == 30 * 10  # 30 train prompts x C(5, 2) ordered pairs


def write_rows(path: Path, rows: list[FeatureRow]) -> None:
    path.write_text("".join(r.as_json() + "\n" for r in rows))


def rbr(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "reward_service.cli", *args], capture_output=True, text=True, cwd=ROOT, timeout=300
    )


def test_rbr_fit_writes_weights_report_and_plot(tmp_path, policy):
    feats, dev = tmp_path / "features.jsonl", tmp_path / "dev.jsonl"
    write_rows(feats, synthetic_rows(policy))
    write_rows(dev, synthetic_rows(policy, n_prompts=8, seed=1))
    proc = rbr(
        "fit",
        "--features",
        str(feats),
        "--dev",
        str(dev),
        "--out",
        str(tmp_path / "w.json"),
        "--report",
        str(tmp_path / "rep"),
        "--margin",
        "disallowed_completion=2",
    )
    assert proc.returncode == 0, proc.stderr
    w = RBRWeights.load(tmp_path / "w.json", policy)
    assert w.reward_model == "judge:x" and w.data["margins"] == {"disallowed_completion": 2.0}
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert set(report["error_rate"]) == {"rm", "rbr", "rm_rbr"}
    assert report["error_rate"]["rm_rbr"]["all"] < report["error_rate"]["rm"]["all"]
    assert (tmp_path / "rep" / "rewards.png").stat().st_size > 10_000
    assert report["dev"]["pairs"] == 8 * 4 * 10 and report["order_violations"] == []
    assert report["dev"]["error_rate"]["rm_rbr"]["all"] < 0.05 and "pairwise accuracy" in proc.stdout
    assert w.metrics["dev"]["features"] == "dev.jsonl" and w.data["max_weight"] == 10.0

    ev = rbr("eval-rewards", "--features", str(feats), "--weights", str(tmp_path / "w.json"), "--json")
    assert ev.returncode == 0, ev.stderr
    assert json.loads(ev.stdout)["error_rate"]["rm_rbr"]["all"] < 0.05


def test_unknown_label_and_mismatched_weights_exit_2_or_1(tmp_path, policy):
    rows = synthetic_rows(policy, n_prompts=4)
    rows[0].completion_label = "great"
    write_rows(tmp_path / "bad.jsonl", rows)
    proc = rbr("fit", "--features", str(tmp_path / "bad.jsonl"), "--out", str(tmp_path / "w.json"))
    assert proc.returncode == 2 and "unknown label(s) ['great']" in proc.stderr
    good = synthetic_rows(policy, n_prompts=4)
    write_rows(tmp_path / "good.jsonl", good)
    w = fit_weights(good, policy, "judge:x", {})
    w.policy_hash = "deadbeef"
    w.save(tmp_path / "old.json")
    proc = rbr("eval-rewards", "--features", str(tmp_path / "good.jsonl"), "--weights", str(tmp_path / "old.json"))
    assert proc.returncode == 1 and "policy hash deadbeef" in proc.stderr


@pytest.mark.model
def test_rbr_features_on_real_model(tmp_path):
    items = [json.loads(line) for line in (ROOT / "data" / "examples" / "items.jsonl").read_text().splitlines()]
    labels = ["ideal", "unacceptable_completion", "ideal", "unacceptable_completion"]
    data = tmp_path / "cmp.jsonl"
    data.write_text(
        "".join(json.dumps({**it, "completion_label": lab}) + "\n" for it, lab in zip(items, labels, strict=False))
    )
    out = tmp_path / "f.jsonl"
    proc = rbr("features", "--data", str(data), "--out", str(out), "--no-cache")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["completion_label"] for r in rows] == labels
    assert rows[0]["prompt_id"] == rows[1]["prompt_id"] != rows[2]["prompt_id"]
    assert rows[2]["rm"] > rows[3]["rm"]  # the judge RM prefers the recipe to the refusal
    assert "class:ideal" in rows[0]["features"] and "prop:apology" in rows[0]["features"]
    assert json.loads(rows[0]["scorer"])["reward_model"].startswith("judge:"), "weights must learn which RM"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({**items[0], "completion_label": "superb"}) + "\n")
    proc = rbr("features", "--data", str(bad), "--out", str(out))
    assert proc.returncode == 2 and "line 1: completion_label" in proc.stderr


def vertex_rows(policy, rt: str, rm_by_label: dict[str, float], n_prompts: int = 20) -> list[FeatureRow]:
    """Per prompt, one crisp completion of each class (propositions.class_vertices), RM by label."""
    from propositions import class_vertices

    vertices, names = class_vertices(policy, rt), policy.feature_names(rt)
    rows = []
    for p in range(n_prompts):
        for label, rm in rm_by_label.items():
            x = vertices[label][p % len(vertices[label])]
            rows.append(FeatureRow(f"p{p}", rt, label, "train", rm, dict(zip(names, map(float, x), strict=True))))
    return rows


def test_order_constraints_stop_the_fit_paying_for_refusals_of_benign_requests(policy):
    """The helpful RM scores a refusal far below an answer but above nonsense and harm. Fitting only the pairs,
    the cheapest weights pay refusals so much that, RM equal, a refusal outscores an answer (what the shipped
    comply weights did); with the policy's order as constraints it cannot."""
    from reward_service.reward.linear import order_violations

    rm = {"ideal": 3.0, "unacceptable_completion": -9.5, "illogical_completion": -6.0, "disallowed_completion": -2.5}
    rows = vertex_rows(policy, "comply", rm)
    free = fit_weights(rows, policy, "judge:x", {}, order_margin=None, max_weight=10.0)
    assert ("comply", "minimum_acceptable_style", "unacceptable_completion") in [
        v[:3] for v in order_violations(policy, free)
    ]
    kept = fit_weights(rows, policy, "judge:x", {}, order_margin=1.0, max_weight=10.0)
    assert [v for v in order_violations(policy, kept, margin=1.0 - 1e-6) if v[0] == "comply"] == []
    assert kept.data["order_margin"] == 1.0
    assert error_rates(rows, policy, kept, "train")["error_rate"]["rm_rbr"]["comply"] == 0.0  # the pairs still hold
