"""`rbr sft`: a warm start that can refuse, by LoRA supervised fine-tuning with TRL's SFTTrainer.

The rows come from `rbr sft-data` (third-party replies in the policy's styles: brief refusals, supportive
self-harm replies, answers). The loss is on the reply only (TRL's prompt-completion format). The result is a
LoRA adapter in `output_dir/policy` that names its base (`model`), loadable by `rbr eval-policy --model` and
usable as the `model` of `rbr train`; `output_dir/sft_curve.png` and `log_history.json` show the loss.
Checkpoints every `save_every` steps; `--resume` continues from the last one.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .config import SFTConfig
from .models import autocast_dtype, load_policy, load_tokenizer, save_policy

__all__ = ["fitting_rows", "read_rows", "train_sft"]


def read_rows(path: str | Path) -> list[dict]:
    """TRL prompt-completion rows from an `rbr sft-data` file; a bad row is a ValueError naming its line."""
    rows = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            prompt, completion = obj["prompt"], obj["completion"]
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"data: {path} line {n}: a JSON object with prompt and completion is expected") from None
        if isinstance(prompt, str):
            prompt = [{"role": "user", "content": prompt}]
        if not isinstance(completion, str) or not completion.strip() or not isinstance(prompt, list) or not prompt:
            raise ValueError(f"data: {path} line {n}: prompt must be messages and completion a non-empty string")
        rows.append({"prompt": prompt, "completion": [{"role": "assistant", "content": completion}]})
    if not rows:
        raise ValueError(f"data: {path} has no rows")
    return rows


def fitting_rows(rows: list[dict], tok, max_length: int) -> list[dict]:
    """The rows whose reply starts within `max_length` tokens (a longer conversation would be cut before its reply
    and teach nothing); says on stderr how many were left out."""
    keep = []
    for r in rows:
        head = tok.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True)
        if len(tok(head, add_special_tokens=False)["input_ids"]) < max_length:
            keep.append(r)
    if len(keep) < len(rows):
        print(
            f"rbr sft: {len(rows) - len(keep)} of {len(rows)} rows left out: their conversation alone fills "
            f"max_length {max_length}",
            file=sys.stderr,
        )
    if not keep:
        raise ValueError(f"max_length: {max_length} tokens leave no room for any reply")
    return keep


def train_sft(cfg: SFTConfig, rows: list[dict], resume: bool = False) -> Path:
    """Fine-tune on `rows` (read_rows, fitting_rows), save the adapter and the loss curve; returns the policy
    folder."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig as TRLSFTConfig
    from trl import SFTTrainer

    out = Path(cfg.output_dir)
    tok = load_tokenizer(cfg.model)
    tok.padding_side = "right"  # training pads on the right; generation (eval) loads its own, left-padded
    model = load_policy(cfg.model, torch.float32)
    checkpoints = out / "checkpoints"
    last = max(checkpoints.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]), default=None)
    args = TRLSFTConfig(
        output_dir=str(checkpoints),
        num_train_epochs=cfg.epochs,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=0.05,  # a ratio of the total steps
        max_length=cfg.max_length,
        completion_only_loss=True,
        logging_steps=1,
        save_steps=cfg.save_every,
        save_total_limit=1,
        bf16=autocast_dtype(cfg.mixed_precision) == torch.bfloat16,
        use_cpu=not torch.cuda.is_available(),
        seed=cfg.seed,
        report_to=[],
        dataloader_num_workers=0,
    )
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok, peft_config=lora
    )
    trainer.train(resume_from_checkpoint=str(last) if resume and last is not None else None)
    save_policy(trainer.model, tok, out / "policy", base=cfg.model)
    history = trainer.state.log_history
    (out / "log_history.json").write_text(json.dumps(history, indent=1) + "\n")
    (out / "config.json").write_text(cfg.model_dump_json(indent=2) + "\n")
    _plot(history, out / "sft_curve.png")
    return out / "policy"


def _plot(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in history if "loss" in h]
    loss = [h["loss"] for h in history if "loss" in h]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, loss)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("loss on the reply tokens")
    ax.set_title("Warm start: supervised fine-tuning")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
