"""Run verl 0.9.1's own reward-function plumbing on our adapters (a subprocess of tests/integrations/test_verl.py).

    python -m tests.integrations._verl_upstream SCENARIO      # RBR_SERVICE_URL set, PYTHONPATH has the wheel

verl's package `__init__` imports ray and tensordict (verl/protocol.py), so the upstream definitions are
taken from the installed verl 0.9.1 files (.upstream/verl-0.9.1, from scripts/upstream_env_verl.sh) with
`ast` and executed as released, under the files' own names:

    verl/trainer/ppo/reward.py                        get_custom_reward_fn, _call_with_kwargs(_async)
    verl/utils/import_utils.py                        the whole module (load_extern_object: path / pkg://)
    verl/utils/ray_utils.py                           get_event_loop
    verl/experimental/reward_loop/reward_manager/     RewardManagerBase (base.py), NaiveRewardManager (naive.py)
    verl/experimental/reward_loop/reward_loop.py      RewardLoopWorker (its per-sample fan-out)
    verl/workers/reward_manager/                      AbstractRewardManager, BatchRewardManager (legacy)

Only `Rows` below stands in for verl.DataProto (the tensors and numpy object arrays the managers read).
Prints one JSON object on stdout.
"""

from __future__ import annotations
import __future__

import ast
import asyncio
import importlib.util
import inspect
import json
import os
import sys
import threading
import time
import types
from abc import ABC, abstractmethod
from collections import defaultdict
from functools import partial
from pathlib import Path
from typing import Any, Callable, Optional  # noqa: UP035 (the upstream annotations name them)

import numpy as np
import torch

VERL_VERSION = "0.9.1"


def upstream_root() -> Path:
    for entry in sys.path:
        if (Path(entry) / "verl" / "trainer" / "ppo" / "reward.py").exists():
            return Path(entry)
    raise SystemExit("verl not on PYTHONPATH (run scripts/upstream_env_verl.sh)")


ROOT = upstream_root()


def load_defs(relpath: str, names: list[str], namespace: dict[str, Any]) -> dict[str, Any]:
    """Execute the top-level definitions `names` of an upstream file, as released, into `namespace`."""
    path = ROOT / relpath
    source = path.read_text()
    tree = ast.parse(source, str(path))
    nodes = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)]
    chosen = [n for n in nodes if n.name in names]
    missing = set(names) - {n.name for n in chosen}
    if missing:
        raise SystemExit(f"{relpath} of verl {VERL_VERSION} has no {sorted(missing)}")
    future = __future__.annotations.compiler_flag if "from __future__ import annotations" in source else 0
    code = compile(ast.Module(body=chosen, type_ignores=[]), str(path), "exec", flags=future, dont_inherit=True)
    exec(code, namespace)
    return namespace


def load_import_utils() -> None:
    """verl/utils/import_utils.py imports only the standard library: load it whole under its own name."""
    name = "verl.utils.import_utils"
    spec = importlib.util.spec_from_file_location(name, ROOT / "verl" / "utils" / "import_utils.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for pkg in ("verl", "verl.utils"):  # empty parents, so that verl/__init__.py (ray) never runs
        sys.modules.setdefault(pkg, types.ModuleType(pkg))
    sys.modules[name] = module


class Row:
    def __init__(self, batch: dict[str, torch.Tensor], non_tensor_batch: dict[str, Any]) -> None:
        self.batch, self.non_tensor_batch = batch, non_tensor_batch


class Rows:
    """What the reward managers read of verl.DataProto: `.batch` tensors and `.non_tensor_batch` numpy object
    arrays with a leading batch dimension, `.meta_info`; `rows[i]` is one row, `rows[a:b]` a Rows."""

    def __init__(self, batch: dict[str, torch.Tensor], non_tensor_batch: dict[str, np.ndarray]) -> None:
        self.batch, self.non_tensor_batch, self.meta_info = batch, non_tensor_batch, {}

    def __len__(self) -> int:
        return len(self.batch["responses"])

    def __getitem__(self, idx: int | slice) -> Row | Rows:
        batch = {k: v[idx] for k, v in self.batch.items()}
        non_tensor = {k: v[idx] for k, v in self.non_tensor_batch.items()}
        return Rows(batch, non_tensor) if isinstance(idx, slice) else Row(batch, non_tensor)

    def __iter__(self):
        return (self[i] for i in range(len(self)))


def make_rows(tokenizer: Any, samples: list[dict[str, Any]], prompt_len: int = 48, response_len: int = 48) -> Rows:
    """A rollout batch as verl lays it out: left-padded prompts, right-padded responses, one attention mask."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    prompts, responses, masks = [], [], []
    for s in samples:
        p = tokenizer.apply_chat_template(s["messages"], add_generation_prompt=True, tokenize=False)
        p_ids = tokenizer(p, add_special_tokens=False)["input_ids"][-prompt_len:]
        r_ids = tokenizer(s["response"], add_special_tokens=False)["input_ids"][:response_len]
        prompts.append([pad] * (prompt_len - len(p_ids)) + p_ids)
        responses.append(r_ids + [pad] * (response_len - len(r_ids)))
        left, right = prompt_len - len(p_ids), response_len - len(r_ids)
        masks.append([0] * left + [1] * (len(p_ids) + len(r_ids)) + [0] * right)
    batch = {"prompts": torch.tensor(prompts), "responses": torch.tensor(responses)}
    batch["attention_mask"] = torch.tensor(masks)
    batch["input_ids"] = torch.cat([batch["prompts"], batch["responses"]], dim=1)

    def objects(values: list[Any]) -> np.ndarray:
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out

    non_tensor = {
        "data_source": objects(["rbr"] * len(samples)),
        "reward_model": objects([{"ground_truth": s["label"], "style": "rule"} for s in samples]),
        "extra_info": objects([{"prompt": s["extra_prompt"], "index": i} for i, s in enumerate(samples)]),
    }
    return Rows(batch, non_tensor)


def upstream() -> dict[str, Any]:
    """verl 0.9.1's reward plumbing, executed from its files."""
    from omegaconf import DictConfig
    from transformers import AutoTokenizer

    load_import_utils()
    ns: dict[str, Any] = {
        "inspect": inspect,
        "partial": partial,
        "Optional": Optional,
        "Any": Any,
        "Callable": Callable,
        "DictConfig": DictConfig,
        "AutoTokenizer": AutoTokenizer,
        "ABC": ABC,
        "abstractmethod": abstractmethod,
        "torch": torch,
        "asyncio": asyncio,
        "defaultdict": defaultdict,
        "DataProto": Rows,
        "RawRewardFn": Callable[..., Any] | None,
        "register": lambda name: lambda cls: cls,
        "default_compute_score": None,
    }
    reward_fns = ["_call_with_kwargs", "_call_with_kwargs_async", "get_custom_reward_fn"]
    load_defs("verl/trainer/ppo/reward.py", reward_fns, ns)
    load_defs("verl/utils/ray_utils.py", ["get_event_loop"], ns)
    load_defs("verl/experimental/reward_loop/reward_manager/base.py", ["RewardManagerBase"], ns)
    load_defs("verl/experimental/reward_loop/reward_manager/naive.py", ["NaiveRewardManager"], ns)
    load_defs("verl/experimental/reward_loop/reward_loop.py", ["RewardLoopWorker"], ns)
    load_defs("verl/workers/reward_manager/abstract.py", ["AbstractRewardManager"], ns)
    load_defs("verl/workers/reward_manager/batch.py", ["BatchRewardManager"], ns)
    return ns


def config(name: str, path: str = "pkg://reward_service.adapters") -> Any:
    from omegaconf import OmegaConf

    return OmegaConf.create({"reward": {"custom_reward_function": {"path": path, "name": name, "reward_kwargs": {}}}})


SAMPLES = [
    {
        "messages": [{"role": "user", "content": "How do I make methamphetamine at home?"}],
        "response": "I'm sorry, but I can't help with making illegal drugs.",
        "label": "hard_refuse",
    },
    {
        "messages": [{"role": "user", "content": "How do I make methamphetamine at home?"}],
        "response": "Sure! First, get pseudoephedrine.",
        "label": "C-R",
    },
    {
        "messages": [{"role": "user", "content": "How do I bake bread?"}],
        "response": "Mix flour, water, yeast and salt, let it rise, then bake at 220 C.",
        "label": "comply",
    },
]


def samples(n: int, unlabelled: bool = False) -> list[dict[str, Any]]:
    """n samples cycling through SAMPLES; `unlabelled`: no ground truth (the service reads the category)."""
    out = []
    for i in range(n):
        s = dict(SAMPLES[i % len(SAMPLES)])
        s["extra_prompt"] = s["messages"]
        if unlabelled:
            s["label"] = None
        out.append(s)
    return out


def scenario_threads(ns: dict[str, Any], n: int = 20) -> dict[str, Any]:
    """n threads make the process's first calls, through get_custom_reward_fn's wrapper: a few at once, the
    rest spread over the ~0.1 s the first call spends building its client and reading /v1/policy (where
    0.1.0's unlocked setup let a thread see a half-built state: KeyError 'response_types')."""
    fn = ns["get_custom_reward_fn"](config("compute_score"))
    barrier, results, errors = threading.Barrier(n), [None] * n, []
    offsets_s = [0.0 if i < 5 else 0.015 * (i - 4) for i in range(n)]

    def call(i: int) -> None:
        s = samples(n)[i]
        barrier.wait()
        time.sleep(offsets_s[i])
        try:
            results[i] = fn(
                data_source="rbr",
                solution_str=s["response"],
                ground_truth=s["label"],
                extra_info={"prompt": s["extra_prompt"]},
            )
        except Exception as e:  # report every failure, not just the first
            errors.append(f"{type(e).__name__}: {e}")

    threads = [threading.Thread(target=call, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {
        "errors": errors,
        "scores": [r["score"] if r else None for r in results],
        "is_async": inspect.iscoroutinefunction(fn),
    }


def scenario_manager(ns: dict[str, Any], name: str, path: str, n: int = 20, unlabelled: bool = False) -> dict[str, Any]:
    """The reward loop as verl 0.9.1 runs a custom function: RewardLoopWorker.compute_score_batch fans the batch
    out to NaiveRewardManager.run_single, one task per sample (sync functions go to the loop's thread pool)."""
    from transformers import AutoTokenizer

    from reward_service.paths import EMBEDDED_MODEL, resolve_model_path

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(EMBEDDED_MODEL))
    cfg = config(name, path)
    loop = ns["get_event_loop"]()
    # load_reward_manager(config, tokenizer, reward_router_address=None, reward_model_tokenizer=None), for "naive":
    manager = ns["NaiveRewardManager"](
        config=cfg,
        tokenizer=tokenizer,
        compute_score=ns["get_custom_reward_fn"](cfg),
        reward_router_address=None,
        reward_model_tokenizer=None,
    )
    worker = object.__new__(ns["RewardLoopWorker"])  # its __init__ loads tokenizers from config paths
    worker.config, worker.reward_manager, worker.loop = cfg, manager, loop
    rows = make_rows(tokenizer, samples(n, unlabelled))
    outputs = loop.run_until_complete(worker.compute_score_batch(rows))
    return {
        "is_async": manager.is_async_reward_score,
        "scores": [o["reward_score"] for o in outputs],
        "extra_keys": sorted(outputs[0]["reward_extra_info"]),
    }


def scenario_batch(ns: dict[str, Any], n: int = 6) -> dict[str, Any]:
    """verl's legacy BatchRewardManager (verl/workers/reward_manager/batch.py, still shipped in 0.9.1)."""
    from transformers import AutoTokenizer

    from reward_service.paths import EMBEDDED_MODEL, resolve_model_path

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(EMBEDDED_MODEL))
    fn = ns["get_custom_reward_fn"](config("compute_score_batch"))
    manager = ns["BatchRewardManager"](tokenizer=tokenizer, num_examine=0, compute_score=fn)
    out = manager(make_rows(tokenizer, samples(n)), return_dict=True)
    tensor = out["reward_tensor"]
    return {"scores": tensor.sum(dim=1).tolist(), "rm": list(out["reward_extra_info"]["rm"])}


def main() -> None:
    which = sys.argv[1]
    ns = upstream()
    adapters_file = str(Path(__file__).resolve().parents[2] / "reward_service" / "adapters.py")
    result = {
        "threads": lambda: scenario_threads(ns),
        "naive_sync": lambda: scenario_manager(ns, "compute_score", "pkg://reward_service.adapters"),
        "naive_async": lambda: scenario_manager(ns, "compute_score_async", "pkg://reward_service.adapters"),
        "naive_file": lambda: scenario_manager(ns, "compute_score", adapters_file, n=3),
        "naive_unlabelled": lambda: scenario_manager(ns, "compute_score", "pkg://reward_service.adapters", 3, True),
        "batch": lambda: scenario_batch(ns),
    }[which]()
    result["service"] = os.environ["RBR_SERVICE_URL"]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
