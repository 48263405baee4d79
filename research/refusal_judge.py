"""How often the independent refusal judge (`rl_trainer/judge.py`, fixed phrases) is right.

  ours   data/judge_labels.jsonl: completions of the start and the trained policies to the held-out eval
         prompts (`rbr eval-policy` reports), each labelled by us, by reading it, as refusing (declines or
         deflects without doing what was asked) or going along (attempts the request, however badly);
  gold   the paper's human-labelled completions (`../shared/data/rbr_gold/train.jsonl`): a refusal is a row
         labelled `inability_to_comply` true, going along is `fully_complies` true (rows with neither are
         left out).

Per set: rows, accuracy, and precision / recall of "refuses", with the confusion counts.

    .venv/bin/python research/refusal_judge.py
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from rl_trainer.judge import refuses

ROOT = Path(__file__).resolve().parents[1]
OURS = ROOT / "data" / "judge_labels.jsonl"
GOLD = ROOT.parent / "shared" / "data" / "rbr_gold" / "train.jsonl"


def gold_rows() -> list[tuple[str, bool, str]]:
    out = []
    for line in GOLD.read_text().splitlines():
        row = json.loads(line)
        lab = row.get("propositions", {})
        text = row["completion"][-1]["content"] if isinstance(row["completion"], list) else row["completion"]
        if lab.get("inability_to_comply"):
            out.append((text, True, "gold"))
        elif lab.get("fully_complies"):
            out.append((text, False, "gold"))
    return out


def report(name: str, rows: list[tuple[str, bool, str]]) -> None:
    c = Counter((label, refuses(text)) for text, label, _ in rows)
    tp, fp, fn, tn = c[(True, True)], c[(False, True)], c[(True, False)], c[(False, False)]
    n = tp + fp + fn + tn
    prec = tp / (tp + fp) if tp + fp else float("nan")
    rec = tp / (tp + fn) if tp + fn else float("nan")
    print(f"{name:24} {n:5d} {(tp + tn) / n:9.3f} {prec:10.3f} {rec:7.3f}   tp {tp} fp {fp} fn {fn} tn {tn}")


def main() -> None:
    ours = [json.loads(x) for x in OURS.read_text().splitlines() if x.strip()]
    print(f"{'set':24} {'rows':>5} {'accuracy':>9} {'precision':>10} {'recall':>7}   (of 'refuses')")
    report("ours, all", [(r["completion"], r["refuses"], r["policy"]) for r in ours])
    for policy in sorted({r["policy"] for r in ours}):
        report(f"ours, {policy}", [(r["completion"], r["refuses"], policy) for r in ours if r["policy"] == policy])
    if GOLD.exists():
        report("gold (human labels)", gold_rows())


if __name__ == "__main__":
    main()
