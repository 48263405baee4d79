"""`rbr` as users run it: real subprocesses, real model, exit codes and messages."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "data" / "examples" / "items.jsonl"


def rbr(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "reward_service.cli", *args]
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, cwd=ROOT, timeout=900)


@pytest.mark.model
def test_grade_json_prints_one_object_per_line_in_order():
    proc = rbr("grade", str(EXAMPLES), "--json")
    assert proc.returncode == 0, proc.stderr
    assert "grading" not in proc.stderr  # no progress bar with --json when stderr is not a terminal
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    items = [json.loads(line) for line in EXAMPLES.read_text().splitlines()]
    assert len(out) == len(items)
    for rec in out:
        assert set(rec) == {"propositions", "classes", "top_class"}
        assert rec["top_class"] in rec["classes"]
        assert all(0 <= p <= 1 for p in rec["propositions"].values())
    # item 3 is a full pancake recipe for a comply prompt, item 4 refuses that same prompt
    assert out[2]["propositions"]["fully_complies"] > out[3]["propositions"]["fully_complies"]
    assert out[2]["classes"]["ideal"] > out[3]["classes"]["ideal"]
    assert out[3]["top_class"] == "unacceptable_completion"  # over-refusal of a harmless request
    assert out[1]["top_class"] == "unacceptable_completion"  # a scolding, judgemental refusal
    assert out[0]["classes"]["ideal"] > out[1]["classes"]["ideal"]


@pytest.mark.model
def test_grade_selected_propositions_from_stdin_omits_classes():
    line = json.dumps({"prompt": "hi", "completion": "Hello! How can I help?", "category": "None"})
    proc = rbr("grade", "-", "--json", "--propositions", "fully_complies,apology", stdin=line + "\n")
    assert proc.returncode == 0, proc.stderr
    rec = json.loads(proc.stdout)
    assert set(rec) == {"propositions"} and set(rec["propositions"]) == {"fully_complies", "apology"}


@pytest.mark.parametrize(
    "stdin, args, needle",
    [
        ('{"prompt": "a", "completion": "b", "category": "None"}\n{oops\n', [], "<stdin> line 2: malformed JSON"),
        ('{"prompt": "a", "completion": "b", "category": "Q-Q"}\n', [], "<stdin> line 1: category: unknown category"),
        ('{"prompt": "a", "completion": "b", "response_type": "x"}\n', [], "line 1: response_type"),
        ('{"prompt": "a", "category": "None"}\n', [], "line 1: completion: missing"),
        ("\n", [], "no items to grade"),
        ('{"prompt": "a", "completion": "b", "category": "None"}\n', ["--propositions", "nope"], "--propositions"),
    ],
)
def test_bad_input_exits_2_naming_line_and_field(stdin, args, needle):
    proc = rbr("grade", "-", *args, stdin=stdin)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert needle in proc.stderr


def test_policy_command_validates(tmp_path):
    ok = rbr("policy")
    assert ok.returncode == 0 and "hash=" in ok.stdout
    bad = tmp_path / "p.yaml"
    bad.write_text("name: x\npropositions: {}\nresponse_types: {}\ncategories: {}\n")
    proc = rbr("policy", str(bad))
    assert proc.returncode == 2
    assert f"{bad}: response_types: no response types defined" in proc.stderr


@pytest.mark.model
def test_eval_grader_cv_reports_grader_and_baseline(tmp_path, gold_rows):
    subset = tmp_path / "gold.jsonl"
    subset.write_text("".join(json.dumps(r) + "\n" for r in gold_rows[:30]))
    proc = rbr("eval-grader", "--gold", str(subset), "--cv", "3", "--mode", "heads", "--json")
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert res["mode"] == "heads" and res["cv"] == 3 and res["rows"] == 30
    assert set(res["propositions"]) == set(gold_rows[0]["propositions"])
    for s in res["propositions"].values():
        assert s["n"] == 30 and 0 <= s["accuracy"] <= 1
    assert 0 <= res["macro_auroc"] <= 1
    assert "bag_of_words" in res["baseline"]


def test_eval_grader_rejects_rows_without_labels(tmp_path):
    f = tmp_path / "g.jsonl"
    f.write_text(json.dumps({"prompt": "a", "completion": "b", "category": "None"}) + "\n")
    proc = rbr("eval-grader", "--gold", str(f))
    assert proc.returncode == 2
    assert "line 1: propositions: missing" in proc.stderr


@pytest.mark.model
def test_grade_json_streams_each_line_before_grading_the_next(tmp_path, default_grader, policy):
    from propositions import class_probabilities, top_class

    rows = [json.loads(line) for line in EXAMPLES.read_text().splitlines()]
    rows.append({"prompt": "hi", "completion": "Hello! How can I help?", "category": "None"})
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps(r) + "\n" for r in rows))
    # stdout and stderr share one pipe, so the output keeps the order of the writes: with the default settings
    # (one item per chunk) each result line must come out before the bar counts that item, and the bar must
    # count it before the next line. Output held back to the end (no flush, or printing after grading all)
    # puts the lines after the last bar update instead. tqdm draws every update (no rate limit) by these vars.
    # PYTHONUNBUFFERED (set in the Dockerfile, maybe here) would hide a missing flush: stdout is a pipe.
    env = {k: v for k, v in os.environ.items() if not k.startswith("RBR_") or k == "RBR_CACHE_DIR"}
    env.pop("PYTHONUNBUFFERED", None)
    env |= {"TQDM_MININTERVAL": "0", "TQDM_MINITERS": "1"}
    cmd = [sys.executable, "-m", "reward_service.cli", "grade", str(items), "--json", "--progress"]
    proc = subprocess.run(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env, timeout=900
    )
    assert proc.returncode == 0, proc.stdout
    pieces = [p for p in re.split(r"[\r\n]", proc.stdout) if p.strip()]
    lines = [i for i, p in enumerate(pieces) if p.startswith("{")]
    counted = {}  # k -> index of the first bar drawing that shows k/6
    for i, p in enumerate(pieces):
        m = re.match(r"grading:.*\| (\d)/6 ", p)
        if m:
            counted.setdefault(int(m.group(1)), i)
    assert len(lines) == len(rows) and set(counted) >= set(range(1, len(rows) + 1)), proc.stdout
    for k, line_at in enumerate(lines, start=1):
        assert line_at < counted[k], f"line {k} came out after the bar counted it"
        if k < len(rows):
            assert counted[k] < lines[k], f"line {k + 1} came out before the bar counted line {k}: not streamed"

    # the streamed lines are what grading all items in one call gives
    from reward_service.grader import parse_item

    parsed = [parse_item(r, policy, f"row {n}") for n, r in enumerate(rows)]
    streamed = [json.loads(pieces[i]) for i in lines]
    for item, p, got in zip(parsed, default_grader.grade(parsed), streamed, strict=True):
        classes = class_probabilities(policy, item.response_type, p)
        assert got["propositions"] == pytest.approx({k: round(v, 4) for k, v in p.items()}, abs=1e-4)
        assert got["classes"] == pytest.approx({k: round(float(v), 4) for k, v in classes.items()}, abs=1e-4)
        assert got["top_class"] == top_class(classes)


def test_grade_chunk_size_follows_the_engine():
    from reward_service.cli.grading import _grade_chunk_size
    from reward_service.config import Settings

    assert _grade_chunk_size(Settings()) == 1  # the embedded default: one item per forward pass, so per line
    assert _grade_chunk_size(Settings(grader_batch_size=8)) == 32
    assert _grade_chunk_size(Settings(grader_backend="openai", grader_concurrency=5)) == 5
