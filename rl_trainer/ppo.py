"""PPO with rule-based rewards from the reward service: TRL's PPOTrainer, rewards from POST /v1/rewards.

Read it top to bottom beside the paper:
  1. prompts with their response types (or categories), rendered with the policy's chat template;
  2. policy, reference and value models from one base model, with a pad token distinct from EOS;
  3. each rollout batch: TRL samples completions; the batch is decoded and sent as ONE /v1/rewards call
     (prompt messages, completion texts, response types); the returned rewards are PPO's scores, to
     which TRL adds the per-token KL penalty to the reference;
  4. per step: metrics to CSV and TensorBoard; a checkpoint every `save_every` steps; `--resume`;
  5. `train`: the loop, 1 to 4 in order.

Prompts are prompts.py; how TRL's PPOTrainer is made to ask the service is _trl_ppo.py.

The trainer is its own process: it knows the service only through `reward_service.client` and the
request/response schemas. If the service fails after the client's retries, training stops with the
error and the last checkpoint intact; no step ever trains on a missing reward.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import TrainerCallback

from reward_service.client import RewardClient, ServiceError

from .config import TrainConfig
from .models import autocast_dtype, load_policy, load_tokenizer, save_policy
from .normalize import ResponseTypeNormalizer
from .prompts import PromptRecord, load_prompts, tokenize_prompts
from .report import plot_curves

__all__ = ["TrainingStopped", "latest_checkpoint", "train"]

log = logging.getLogger("rbr.train")


class TrainingStopped(RuntimeError):
    """Training stopped on an error; `checkpoint` is the last one saved (or None)."""

    def __init__(self, message: str, checkpoint: Path | None) -> None:
        self.checkpoint = checkpoint
        super().__init__(f"{message}; last checkpoint: {checkpoint or 'none saved yet'}")


# -- 2. models --------------------------------------------------------------------------------------------


def _load_models(cfg: TrainConfig, resume_from: Path | None):
    """(tokenizer, policy, reference or None, value, LoRA config or None). With LoRA the reference is the
    policy with its adapter off (TRL), and the value model gets its own adapter and a trainable score head."""
    dtype = getattr(torch, cfg.dtype)
    start = str(resume_from) if resume_from else cfg.model
    tok = load_tokenizer(start)
    # a fresh run from an adapter (an SFT warm start) trains a new adapter over it, merged: the reference is
    # then the warm start itself; a resumed run continues its own adapter
    policy = load_policy(start, dtype, trainable=resume_from is not None)
    value = load_policy(str(resume_from / "value") if resume_from else cfg.model, dtype, trainable=True, kind="value")
    ref = None if cfg.lora_r else load_policy(cfg.model, dtype)  # the reference is always the start model
    for m in filter(None, (policy, value, ref)):
        if m.get_input_embeddings().weight.shape[0] < len(tok):  # a tokenizer that needed a new <|pad|>
            m.resize_token_embeddings(len(tok))
        m.config.pad_token_id = tok.pad_token_id
    peft_config = None
    if cfg.lora_r:
        from peft import LoraConfig, PeftModel, get_peft_model

        lora = {"r": cfg.lora_r, "lora_alpha": cfg.lora_alpha, "target_modules": "all-linear"}
        if not isinstance(value, PeftModel):
            value = get_peft_model(value, LoraConfig(task_type="SEQ_CLS", **lora))
        if not isinstance(policy, PeftModel):  # TRL wraps it (a resumed adapter comes in wrapped)
            peft_config = LoraConfig(task_type="CAUSAL_LM", **lora)
    return tok, policy, ref, value, peft_config


# -- 3. rewards from the service --------------------------------------------------------------------------


@dataclass
class RewardBridge:
    """Decodes a rollout batch, asks the service once, and keeps what the step log needs."""

    client: RewardClient
    tok: object
    lookup: dict[tuple[int, ...], PromptRecord]
    normalizer: ResponseTypeNormalizer | None = None  # None: PPO gets the service's rewards as they are
    step_stats: dict = field(default_factory=dict)
    calls: int = 0

    def __call__(self, query_responses: torch.Tensor, context_length: int) -> torch.Tensor:
        pad = self.tok.pad_token_id
        queries = query_responses[:, :context_length]  # (B, P), left-padded
        responses = query_responses[:, context_length:]  # (B, R), right-padded after the stop token
        records = []
        for q in queries.tolist():
            key = tuple(t for t in q if t != pad)
            if key not in self.lookup:
                raise RuntimeError("a rollout prompt is not one of the training prompts (tokenisation drift)")
            records.append(self.lookup[key])
        completions = self.tok.batch_decode(responses, skip_special_tokens=True)
        items = [
            {
                "prompt": [{"role": r, "content": c} for r, c in rec.messages],
                "completion": text.strip(),
                **({"response_type": rec.response_type} if rec.response_type else {"category": rec.category}),
                **({"rules": list(rec.rules)} if rec.rules else {}),
            }
            for rec, text in zip(records, completions, strict=True)
        ]
        t0 = time.perf_counter()
        out = self.client.rewards(items, return_components=True)  # ServiceError after the client's retries
        wait = time.perf_counter() - t0
        self.calls += 1
        comps = out.components or []
        tops = Counter((c.response_type, c.top_class) for c in comps)
        per_rt = Counter(c.response_type for c in comps)
        rewards = torch.tensor(out.rewards, dtype=torch.float32)  # (B,)
        self.step_stats = {
            "reward/mean": rewards.mean().item(),
            "reward/std": rewards.std().item() if len(rewards) > 1 else 0.0,
            "reward/rm": sum(c.rm for c in comps) / len(comps),
            "reward/rbr": sum(c.rbr for c in comps) / len(comps),
            "response/length": (responses != pad).sum(1).float().mean().item(),
            "time/reward_s": wait,
            **{f"class/{rt}/{cls}": n / per_rt[rt] for (rt, cls), n in tops.items()},
            **{
                f"reward/{rt}": sum(r for r, c in zip(out.rewards, comps, strict=True) if c.response_type == rt) / n
                for rt, n in per_rt.items()
            },
        }
        if self.normalizer is not None:
            rewards = torch.tensor(self.normalizer(out.rewards, [c.response_type for c in comps]))  # (B,)
        return rewards


# -- 4. logging and checkpoints --------------------------------------------------------------------------


class StepLog:
    """One row per PPO step to metrics.csv (fixed columns) and TensorBoard (every number)."""

    def __init__(self, out: Path, class_columns: list[str], resume: bool) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.columns = [
            "step",
            "reward/mean",
            "reward/std",
            "reward/rm",
            "reward/rbr",
            *class_columns,
            "objective/kl",
            "objective/entropy",
            "objective/scores",
            "objective/rlhf_reward",
            "loss/policy_avg",
            "loss/value_avg",
            "policy/approxkl_avg",
            "response/length",
            "lr",
            "time/step_s",
            "time/generation_s",
            "time/reward_s",
            "time/other_s",
            "time/reward_share",
        ]
        self.path = out / "metrics.csv"
        if not (resume and self.path.exists()):
            with self.path.open("w", newline="") as f:
                csv.writer(f).writerow(self.columns)
        self.tb = SummaryWriter(str(out / "tensorboard"))

    def write(self, row: dict) -> None:
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow([row.get(c, "") for c in self.columns])
        for k, v in row.items():
            if k != "step" and isinstance(v, int | float) and math.isfinite(v):
                self.tb.add_scalar(k, v, row["step"])
        self.tb.flush()


class StepCallback(TrainerCallback):
    """After each PPO step: one metrics row (reward parts, TRL's losses, the step's time split); checkpoints."""

    def __init__(
        self, trainer, bridge: RewardBridge, tok, cfg: TrainConfig, steplog: StepLog, done: int, last: Path | None
    ) -> None:
        self.trainer, self.bridge, self.tok, self.cfg, self.steplog = trainer, bridge, tok, cfg, steplog
        self.done, self.last = done, last  # steps before this run (resume) and the newest checkpoint
        self.t0 = time.perf_counter()

    def on_log(self, args, state, control, logs=None, **kwargs) -> None:
        step_s, gen_s = time.perf_counter() - self.t0, self.trainer.generation_s
        reward_s = self.bridge.step_stats.get("time/reward_s", 0.0)
        row = {
            "step": self.done + state.global_step,
            **(logs or {}),
            **self.bridge.step_stats,
            "time/step_s": step_s,
            "time/generation_s": gen_s,
            "time/other_s": step_s - gen_s - reward_s,
            "time/reward_share": reward_s / step_s if step_s else 0.0,
        }
        self.steplog.write(row)

    def on_step_end(self, args, state, control, **kwargs) -> None:
        step = self.done + state.global_step
        if step % self.cfg.save_every == 0 or step == self.cfg.total_steps:
            unwrapped = self.trainer.accelerator.unwrap_model(self.trainer.model)
            out = Path(self.cfg.output_dir)
            norm = self.bridge.normalizer
            self.last = save_checkpoint(
                out,
                step,
                unwrapped.policy,
                unwrapped.value_model,
                self.tok,
                self.trainer.optimizer,
                self.cfg,
                extra={"reward_normalizer": norm.state_dict()} if norm else {},
            )
        self.trainer.generation_s, self.t0 = 0.0, time.perf_counter()


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    pointer = Path(output_dir) / "checkpoints" / "latest"
    if not pointer.exists():
        return None
    d = pointer.parent / pointer.read_text().strip()
    return d if (d / "state.json").exists() else None


def save_checkpoint(
    out: Path, step: int, policy, value, tok, optimizer, cfg: TrainConfig, extra: dict | None = None
) -> Path:
    """Written to a temporary folder, then renamed: a checkpoint is whole or absent. Then only the newest
    `cfg.keep_checkpoints` are kept (as `save_total_limit` in HF's Trainer): policy + value + AdamW state
    is 6x the model's fp32 size."""
    root = out / "checkpoints"
    final, tmp = root / f"step-{step:06d}", root / f".step-{step:06d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    save_policy(policy, tok, tmp / "policy", base=cfg.model)
    save_policy(value, tok, tmp / "value", base=cfg.model)
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    state = {"step": step, "config": cfg.to_dict(), **(extra or {})}
    (tmp / "state.json").write_text(json.dumps(state, indent=2))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    (root / "latest").write_text(final.name)
    if cfg.keep_checkpoints:
        for old in sorted(root.glob("step-*"))[: -cfg.keep_checkpoints]:
            shutil.rmtree(old)
    return final


# -- 5. the loop: 1 to 4 in order ------------------------------------------------------------------------


def train(cfg: TrainConfig, resume: bool = False) -> Path:
    """Run PPO; returns the final checkpoint. Raises TrainingStopped if the reward service fails."""
    from ._trl_ppo import ServicePPOTrainer

    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    resume_from = latest_checkpoint(out) if resume else None
    state = json.loads((resume_from / "state.json").read_text()) if resume_from else {}
    done = state.get("step", 0)
    if resume and resume_from is None:
        log.warning("--resume: no checkpoint in %s; starting from the beginning", out)
    if done >= cfg.total_steps:
        log.warning("nothing to do: %s already has step %d of %d", out, done, cfg.total_steps)
        return resume_from  # type: ignore[return-value]
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    client, class_columns = _connect(cfg, resume_from)  # 1. fails fast, before minutes of model loading

    torch.manual_seed(cfg.seed + done)
    tok, policy, ref, value, peft_config = _load_models(cfg, resume_from)  # 2.
    dataset, lookup = tokenize_prompts(load_prompts(cfg), tok, cfg.max_prompt_tokens)
    normalizer = ResponseTypeNormalizer() if cfg.reward_normalization == "response_type" else None
    if normalizer is not None and "reward_normalizer" in state:
        normalizer.load_state_dict(state["reward_normalizer"])
    bridge = RewardBridge(client, tok, lookup, normalizer)  # 3.
    trainer = ServicePPOTrainer(
        bridge,
        autocast_dtype(cfg.mixed_precision),
        args=_ppo_args(cfg, out, cfg.total_steps - done, seed=cfg.seed + done),
        processing_class=tok,
        model=policy,
        ref_model=ref,
        train_dataset=dataset,
        value_model=value,
        eval_dataset=dataset,
        peft_config=peft_config,
    )
    if resume_from is not None:
        trainer.optimizer.load_state_dict(torch.load(resume_from / "optimizer.pt"))
    steplog = StepLog(out, class_columns, resume_from is not None)
    steps = StepCallback(trainer, bridge, tok, cfg, steplog, done, last=resume_from)
    trainer.add_callback(steps)  # 4.
    try:
        trainer.train()
    except ServiceError as e:
        step = done + trainer.state.global_step + 1
        raise TrainingStopped(f"the reward service failed at step {step}: {e}", steps.last) from e
    finally:
        plot_curves(out)
    log.info("done: %d reward calls, checkpoint %s", bridge.calls, steps.last)
    return steps.last  # type: ignore[return-value]


def _connect(cfg: TrainConfig, resume_from: Path | None) -> tuple[RewardClient, list[str]]:
    """The service's client, and the per-response-type columns of the step log (from the policy it serves)."""
    client = RewardClient(
        cfg.service_url,
        token=cfg.service_token,
        timeout=cfg.reward_timeout_s,
        retries=cfg.reward_retries,
        backoff_s=cfg.reward_backoff_s,
    )
    try:
        served = client.policy()
    except ServiceError as e:
        raise TrainingStopped(f"the reward service at {cfg.service_url} is not answering: {e}", resume_from) from e
    rts = served.response_types
    classes = [f"class/{rt}/{c}" for rt, spec in rts.items() for c in spec["classes"]]
    return client, [f"reward/{rt}" for rt in rts] + classes


def _ppo_args(cfg: TrainConfig, out: Path, steps: int, seed: int):
    """TRL's PPOConfig for `steps` more updates: one rollout batch (one reward call) per update."""
    from trl.experimental.ppo import PPOConfig

    return PPOConfig(
        output_dir=str(out / "trl"),
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=1,
        local_rollout_forward_batch_size=cfg.batch_size,  # one reward call per rollout batch
        num_mini_batches=cfg.num_mini_batches,
        total_episodes=steps * cfg.batch_size,
        num_ppo_epochs=cfg.num_ppo_epochs,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type="constant",
        response_length=cfg.response_length,
        temperature=cfg.temperature,
        kl_coef=cfg.kl_coef,
        stop_token="eos",
        missing_eos_penalty=cfg.missing_eos_penalty,
        num_sample_generations=0,  # evaluation is `rbr eval-policy`
        save_strategy="no",  # checkpoints are ours (policy, value, optimizer, step)
        report_to=[],
        logging_steps=1,
        seed=seed,
        use_cpu=not torch.cuda.is_available(),
        bf16=False,
        disable_tqdm=False,
    )
