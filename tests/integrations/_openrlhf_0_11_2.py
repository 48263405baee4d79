"""Subprocess driver: OpenRLHF 0.11.2's per-sample remote reward path against a real `rbr serve`.

Run by test_openrlhf.py as `python _openrlhf_0_11_2.py OUT.json < SPEC.json` with
PYTHONPATH=.upstream/openrlhf-0.11.2:.upstream/deps (never another version on the path).
SPEC: {"urls": [...], "rollouts": [{"prompt", "label", "completion", "max_length", "max_tokens"}]}.

Upstream code that runs, from the installed openrlhf 0.11.2:
  openrlhf/utils/agent.py: SingleTurnAgentExecutor (imported): tokenises, left-truncates, generates, sends
      one sample per request with _fetch_rewards_via_http, rotating over the endpoints;
  openrlhf/trainer/ppo_utils/samples_generator.py: SamplesGenerator._process_response_into_experience
      (loaded from the file by _upstream_code.load: the module imports ray and vllm at top level);
  openrlhf/trainer/ppo_utils/experience.py: Experience.concat_experiences, make_experience_batch,
      split_experience_batch (imported).
The 8 `execute` calls run concurrently, as upstream's LLMRayActor.generate_responses gathers them.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import math
import sys
import traceback
from types import SimpleNamespace

import openrlhf
import openrlhf.utils.agent as agent
from _upstream_code import floats, guard_absent, load, post, tokenizer
from openrlhf.trainer.ppo_utils.experience import Experience, make_experience_batch, split_experience_batch


class FixedCompletionEngine:
    """Stands in for vLLM only: `generate` answers the token ids of a fixed completion text followed by
    EOS (as vLLM's output has them when it stops on EOS), cut at `params.max_tokens` like vLLM."""

    def __init__(self, tokenizer, text: str):
        self.tokenizer = tokenizer
        self.ids = tokenizer(text=text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]

    async def generate(self, prompt_token_ids, params, multi_modal_data=None):
        ids = self.ids[: params.max_tokens]
        out = SimpleNamespace(
            token_ids=ids,
            text=self.tokenizer.decode(ids, skip_special_tokens=False),
            finish_reason="length" if len(ids) < len(self.ids) else "stop",
            logprobs=None,
        )
        return SimpleNamespace(outputs=[out])


async def rollouts(spec: dict, tok) -> tuple[list[dict], list[dict]]:
    executor = agent.SingleTurnAgentExecutor(spec["urls"])
    current = contextvars.ContextVar("rollout")
    sent: dict[int, dict] = {}
    upstream_fetch = executor._fetch_rewards_via_http

    async def recording_fetch(queries, prompts, labels):  # records what upstream sends, then sends it
        sent[current.get()] = {"query": queries, "prompts": prompts, "labels": labels}
        return await upstream_fetch(queries, prompts, labels)

    executor._fetch_rewards_via_http = recording_fetch

    async def one(i: int, r: dict) -> dict:
        current.set(i)
        # stands in for vllm.SamplingParams: the executor reads max_tokens and logprobs
        params = SimpleNamespace(max_tokens=r["max_tokens"], logprobs=None, temperature=1.0, top_p=1.0)
        engine = FixedCompletionEngine(tok, r["completion"])
        return await executor.execute(r["prompt"], r["label"], params, r["max_length"], tok, engine)

    responses = await asyncio.gather(*(one(i, r) for i, r in enumerate(spec["rollouts"])))
    return list(responses), [sent.get(i) for i in range(len(responses))]


def main() -> None:
    out_path = sys.argv[1]
    spec = json.load(sys.stdin)
    tok = tokenizer()
    process = load("trainer/ppo_utils/samples_generator.py", ["SamplesGenerator._process_response_into_experience"])
    process_response = process["SamplesGenerator._process_response_into_experience"]
    result: dict = {
        "openrlhf": openrlhf.__file__,
        "skipped_imports": process["__skipped_imports__"],
        "rollouts": [],
        "stages": {},
    }
    responses, sent = asyncio.run(rollouts(spec, tok))
    for r, resp, req in zip(spec["rollouts"], responses, sent, strict=True):
        prompt_ids = tok(text=r["prompt"], add_special_tokens=False)["input_ids"]
        row = {
            "sent": req,
            "reward": resp["reward"],
            "scores": resp["scores"],
            "extra_logs": resp["extra_logs"],
            "truncated": resp["truncated"],
            "prompt_tokens": len(prompt_ids),
            "prompt_tokens_kept": resp["action_ranges"][0][0],
        }
        if resp["reward"] is None and req is not None:
            row["server_said"] = post(spec["urls"][0], req)
        result["rollouts"].append(row)

    def stage(name, fn):
        try:
            value = fn()
            result["stages"][name] = {"ok": True}
            return value
        except Exception:
            result["stages"][name] = {"ok": False, "error": traceback.format_exc()}
            return None

    exps = stage(
        "process_response_into_experience",
        lambda: [
            process_response(None, resp, max_len=r["max_length"])
            for r, resp in zip(spec["rollouts"], responses, strict=True)
        ],
    )
    if exps is not None:
        batch = stage("make_experience_batch", lambda: make_experience_batch(exps))
        if batch is not None:
            result["joined"] = {
                "rewards": floats(batch.rewards) if batch.rewards is not None else None,
                "scores": floats(batch.scores) if batch.scores is not None else None,
                "info": {
                    k: floats(v) if hasattr(v, "flatten") else [y for x in v for y in floats(x)]
                    for k, v in batch.info.items()
                },
            }
            items = stage("split_experience_batch", lambda: split_experience_batch(batch))
            if items is not None:
                again = stage("make_experience_batch(split)", lambda: make_experience_batch(items))
                if again is not None:
                    result["rejoined_rewards"] = floats(again.rewards) if again.rewards is not None else None
        concat = stage("Experience.concat_experiences", lambda: Experience.concat_experiences(exps, tok.pad_token_id))
        if concat is not None:
            result["concat"] = {k: floats(v) for k, v in concat.info.items() if hasattr(v, "flatten")}
    guard_absent()
    nan = [k for k, v in result.get("joined", {}).get("info", {}).items() if any(math.isnan(x) for x in v)]
    result["nan_info_keys"] = nan
    with open(out_path, "w") as fh:
        json.dump(result, fh)


if __name__ == "__main__":
    main()
