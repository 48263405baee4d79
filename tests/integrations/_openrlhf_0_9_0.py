"""Subprocess driver: OpenRLHF 0.9.0's batch remote reward path against a real `rbr serve`.

Run by test_openrlhf.py as `python _openrlhf_0_9_0.py OUT.json < SPEC.json` with
PYTHONPATH=.upstream/openrlhf-0.9.0:.upstream/deps (never another version on the path).
SPEC: {"runs": [{"name", "urls": str | [str], "samples": [{"prompt", "label", "completion"}]}]}.

Upstream code that runs, from the installed openrlhf 0.9.0 (both modules import ray at top level, so the
definitions are loaded from the files by _upstream_code.load, with LocalRay standing in for Ray):
  openrlhf/utils/remote_rm_utils.py: request_api_wrapper, remote_rm_fn_ray, RemoteRewardModel.get_rewards
      (shards a batch over the URLs with batch_size = ceil(n / num_servers): extra URLs get empty lists);
  openrlhf/trainer/ppo_utils/experience_maker.py: Experience, update_samples_with_rewards;
  openrlhf/utils/utils.py: remove_pad_token (imported).
Replayed, not imported (it is inside RemoteExperienceMaker.make_experience, experience_maker.py of
0.9.0): queries_list = sum([tokenizer.batch_decode(remove_pad_token(seq, attention_mask),
skip_special_tokens=False) for ...], []), and the Experience of each vLLM output (prompt + output token
ids, attention mask of ones, prompts=[prompt], labels=[label]) as SamplesGenerator builds it there.
"""

from __future__ import annotations

import json
import sys
import traceback
from types import SimpleNamespace

import openrlhf
import torch
from _upstream_code import LocalRay, floats, guard_absent, load, post, tokenizer
from openrlhf.utils.utils import remove_pad_token


def samples_of(tok, Experience, rows: list[dict]) -> list:
    samples = []
    for r in rows:
        prompt_ids = tok(text=r["prompt"], add_special_tokens=False)["input_ids"]
        # vLLM's output token ids of a fixed completion that stopped on EOS (vLLM itself is not run)
        output_ids = tok(text=r["completion"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        input_ids = prompt_ids + output_ids
        action_mask = torch.zeros(len(input_ids), dtype=torch.long)
        action_mask[len(prompt_ids) :] = 1
        samples.append(
            Experience(
                sequences=torch.tensor(input_ids, dtype=torch.long).unsqueeze(0),
                attention_mask=torch.ones(len(input_ids), dtype=torch.long).unsqueeze(0),
                action_mask=action_mask[1:].unsqueeze(0),
                prompts=[r["prompt"]],
                labels=[r["label"]],
                info={"response_length": torch.tensor([len(output_ids)])},
            )
        )
    return samples


def main() -> None:
    out_path = sys.argv[1]
    spec = json.load(sys.stdin)
    tok = tokenizer()
    ray = LocalRay()
    rm = load(
        "utils/remote_rm_utils.py",
        ["logger", "request_api_wrapper", "remote_rm_fn_ray", "RemoteRewardModel"],
        stand_ins={"ray": ray},
    )
    em = load(
        "trainer/ppo_utils/experience_maker.py", ["to", "pin_memory", "Experience", "update_samples_with_rewards"]
    )
    result: dict = {
        "openrlhf": openrlhf.__file__,
        "skipped_imports": rm["__skipped_imports__"] + em["__skipped_imports__"],
        "runs": {},
    }
    for run in spec["runs"]:
        out: dict = {"stages": {}}
        result["runs"][run["name"]] = out
        samples = samples_of(tok, em["Experience"], run["samples"])
        queries = sum(
            [
                tok.batch_decode(remove_pad_token(s.sequences, s.attention_mask), skip_special_tokens=False)
                for s in samples
            ],
            [],
        )
        prompts = sum([s.prompts for s in samples], [])
        labels = sum([s.labels for s in samples], [])
        model = rm["RemoteRewardModel"](SimpleNamespace(micro_rollout_batch_size=4), run["urls"])
        first_call = len(ray.calls)
        try:
            rewards_info = ray.get(model.get_rewards(queries, prompts, labels))
            out["stages"]["get_rewards"] = {"ok": True}
        except Exception:
            out["stages"]["get_rewards"] = {"ok": False, "error": traceback.format_exc()}
            rewards_info = None
        out["shards"] = [
            {"url": args[0], "query": kwargs["queries"], "prompts": kwargs["prompts"], "labels": kwargs["labels"]}
            for _, args, kwargs in ray.calls[first_call:]
        ]
        if rewards_info is None:
            out["server_said"] = [
                post(s["url"], {"query": s["query"], "prompts": s["prompts"], "labels": s["labels"]})
                for s in out["shards"]
            ]
            continue
        out["answers"] = rewards_info
        try:
            rm_update = em["update_samples_with_rewards"]
            rm_update(rewards_info, samples)
            out["stages"]["update_samples_with_rewards"] = {"ok": True}
        except Exception:
            out["stages"]["update_samples_with_rewards"] = {"ok": False, "error": traceback.format_exc()}
            continue
        out["samples"] = [
            {
                "rewards": floats(s.rewards),
                "scores": floats(s.scores),
                "info": {k: floats(torch.as_tensor(v)) for k, v in s.info.items()},
            }
            for s in samples
        ]
    guard_absent()
    with open(out_path, "w") as fh:
        json.dump(result, fh)


if __name__ == "__main__":
    main()
