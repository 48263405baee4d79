"""Completions of a policy to the training seed prompts, for labelling by hand (data/grader_aug/policy.jsonl).

Greedy once per prompt, and for should-refuse prompts also `--samples` sampled completions at T=1 (what PPO
rollouts look like); 96 new tokens, as `rbr eval-policy`. Appends JSON lines; a rerun skips what is done.

    .venv/bin/python scripts/policy_completions.py embedded:smollm2-135m,data/runs/rbr-ppo/policy out.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from rl_trainer.models import load_policy, load_tokenizer

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", help="comma-separated policies; comply prompts are answered by the first only")
    ap.add_argument("out")
    ap.add_argument("--prompts", default=str(ROOT / "data" / "seed_prompts.jsonl"))
    ap.add_argument("--samples", type=int, default=2, help="sampled completions per should-refuse prompt")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = [json.loads(x) for x in Path(args.prompts).read_text().splitlines() if x.strip()]
    rows = [r for r in rows if r.get("split") == "train"]  # never the held-out prompts
    out = Path(args.out)
    done = (
        {(d["model"], d["id"], d["k"]) for d in map(json.loads, out.read_text().splitlines())}
        if out.exists()
        else set()
    )
    models = args.models.split(",")
    with out.open("a") as f:
        for model in models:
            tok, lm = load_tokenizer(model), load_policy(model).eval()
            for r in rows:
                comply = r["response_type"] == "comply"
                if comply and model != models[0]:
                    continue
                text = tok.apply_chat_template(
                    [{"role": "user", "content": r["prompt"]}], tokenize=False, add_generation_prompt=True
                )
                enc = tok([text], return_tensors="pt", add_special_tokens=False)
                for k in range(1 if comply else 1 + args.samples):
                    if (model, r["id"], k) in done:
                        continue
                    torch.manual_seed(k)
                    with torch.inference_mode():
                        ids = lm.generate(
                            **enc, max_new_tokens=96, do_sample=k > 0, temperature=1.0, pad_token_id=tok.pad_token_id
                        )  # (1, T + new)
                    completion = tok.decode(ids[0, enc["input_ids"].shape[1] :], skip_special_tokens=True).strip()
                    row = {"model": model, "id": r["id"], "k": k, "response_type": r["response_type"]}
                    f.write(json.dumps({**row, "prompt": r["prompt"], "completion": completion}) + "\n")
                    f.flush()


if __name__ == "__main__":
    main()
