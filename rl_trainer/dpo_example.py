"""DPO on preference pairs from `rbr pairs`: the offline alternative to PPO that Safer-Instruct trains with.

    .venv/bin/rbr pairs --data data/comparisons/synth.jsonl --out runs/pairs.jsonl
    .venv/bin/python -m rl_trainer.dpo_example --pairs runs/pairs.jsonl --steps 20

TRL's DPOTrainer reads the pairs as they are (conversational `prompt` / `chosen` / `rejected`); only the
`train` split is trained on. With `--lora-r` (default 8) the policy trains a LoRA adapter and the reference is
the policy with its adapter off. Writes `log_history.json` and `dpo_curve.png` (loss and the implicit reward
margin of chosen over rejected, per step) to the output folder, and the adapter, which `rbr eval-policy
--model` loads.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from reward_service.paths import resolve_model_path

from .models import load_tokenizer, save_policy

__all__ = ["main"]


def load_pairs(path: Path, split: str = "train"):
    """The pairs of one split, as a datasets.Dataset with TRL's three preference columns."""
    from datasets import load_dataset

    ds = load_dataset("json", data_files=str(path), split="train")  # "train": datasets' name for the whole file
    if "split" in ds.column_names:
        ds = ds.filter(lambda r: r["split"] == split)
    if len(ds) == 0:
        raise SystemExit(f"{path}: no pairs in split {split!r}")
    return ds.select_columns(["prompt", "chosen", "rejected"])


def plot(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    a.plot(steps, [h["loss"] for h in history], marker=".")
    a.set_title("DPO loss")
    b.plot(steps, [h["rewards/margins"] for h in history], marker=".", color="tab:green")
    b.set_title("implicit reward margin, chosen - rejected")
    for ax in (a, b):
        ax.set_xlabel("step")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    from trl import DPOConfig, DPOTrainer

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", required=True, help="`rbr pairs` output (JSON lines)")
    ap.add_argument("--model", default="embedded:smollm2-135m")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--learning-rate", type=float, default=5e-5)
    ap.add_argument("--beta", type=float, default=0.1, help="DPO's KL strength")
    ap.add_argument("--max-length", type=int, default=384, help="prompt + completion tokens kept")
    ap.add_argument("--lora-r", type=int, default=8, help="LoRA rank; 0: full fine-tuning")
    ap.add_argument("--output-dir", default="runs/dpo")
    args = ap.parse_args(argv)

    out = Path(args.output_dir)
    tok = load_tokenizer(args.model)
    config = DPOConfig(
        output_dir=str(out / "trl"),
        per_device_train_batch_size=args.batch_size,
        max_steps=args.steps,
        learning_rate=args.learning_rate,
        beta=args.beta,
        max_length=args.max_length,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=not torch.cuda.is_available(),
        bf16=False,
    )
    peft_config = None
    if args.lora_r:
        from peft import LoraConfig

        peft_config = LoraConfig(r=args.lora_r, lora_alpha=2 * args.lora_r, target_modules="all-linear")
    trainer = DPOTrainer(
        model=resolve_model_path(args.model),
        args=config,
        train_dataset=load_pairs(Path(args.pairs)),
        processing_class=tok,
        peft_config=peft_config,
    )
    trainer.train()
    save_policy(trainer.model, tok, out / "policy", base=args.model)
    history = [h for h in trainer.state.log_history if "loss" in h and "rewards/margins" in h]
    (out / "log_history.json").write_text(json.dumps(history, indent=2))
    plot(history, out / "dpo_curve.png")
    print(
        f"DPO done: {len(history)} steps; loss {history[0]['loss']:.3f} -> {history[-1]['loss']:.3f}, "
        f"reward margin {history[0]['rewards/margins']:.3f} -> {history[-1]['rewards/margins']:.3f}; "
        f"policy in {out / 'policy'}"
    )


if __name__ == "__main__":
    main()
