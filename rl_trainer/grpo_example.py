"""GRPO with the reward service as a TRL reward function: the route TRL recommends for rule-based rewards.

    .venv/bin/rbr serve &                       # the reward service
    .venv/bin/python -m rl_trainer.grpo_example --service-url http://127.0.0.1:8000 --steps 10

The dataset is conversational (`prompt` = messages) with a `response_type` (or `category`) column, which
TRL hands to the reward function in **kwargs; `trl_reward_function` sends each generation batch to
POST /v1/rewards and logs the RM and RBR means through TRL's `log_metric`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from reward_service.adapters import trl_reward_function
from reward_service.paths import DATA_DIR, resolve_model_path


def load_dataset(path: Path, split: str | None):
    from datasets import Dataset

    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    rows = [r for r in rows if split is None or r.get("split") == split]
    return Dataset.from_list(
        [
            {
                "prompt": [{"role": "user", "content": r["prompt"]}],
                "response_type": r.get("response_type"),
                "category": r.get("category"),
            }
            for r in rows
        ]
    )


def main(argv: list[str] | None = None) -> None:
    from trl import GRPOConfig, GRPOTrainer

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--service-url", default="http://127.0.0.1:8000")
    ap.add_argument("--model", default="embedded:smollm2-135m")
    ap.add_argument("--prompts", default=str(DATA_DIR / "seed_prompts.jsonl"))
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--num-generations", type=int, default=4, help="completions per prompt (the GRPO group)")
    ap.add_argument("--max-completion-length", type=int, default=48)
    ap.add_argument("--output-dir", default="runs/grpo")
    args = ap.parse_args(argv)

    config = GRPOConfig(
        output_dir=args.output_dir,
        per_device_train_batch_size=args.num_generations,  # one prompt's group per step on a CPU
        num_generations=args.num_generations,
        max_completion_length=args.max_completion_length,
        max_steps=args.steps,
        learning_rate=1e-5,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=not torch.cuda.is_available(),
        bf16=False,
    )
    trainer = GRPOTrainer(
        model=resolve_model_path(args.model),
        reward_funcs=[trl_reward_function(args.service_url)],
        args=config,
        train_dataset=load_dataset(Path(args.prompts), "train"),
    )
    trainer.train()
    trainer.save_model(args.output_dir)
    history = [h for h in trainer.state.log_history if "reward" in h]
    (Path(args.output_dir) / "log_history.json").write_text(json.dumps(history, indent=2))
    print(
        f"GRPO done: {len(history)} logged steps; mean reward first {history[0]['reward']:.3f}, "
        f"last {history[-1]['reward']:.3f}"
    )


if __name__ == "__main__":
    main()
