"""Glue for trainers that take a reward *function*: TRL (GRPO/RLOO) and verl.

TRL 1.12:  GRPOTrainer(..., reward_funcs=[trl_reward_function("http://127.0.0.1:8000")])
    TRL passes the dataset's other columns by name: `response_type` and/or `category` label each row.
    Messages are sent as {role, content text}: extra keys (HF datasets fills `tool_calls`, `name`... with
    None) are dropped and list-of-parts content is joined. Rows without a label: see `missing_label`.
verl 0.9.1: reward.custom_reward_function.path=pkg://reward_service.adapters
    reward.custom_reward_function.name=compute_score        (sync; verl runs it in a thread pool)
                                      =compute_score_async  (async def; verl awaits it on its event loop)
    with the service URL in $RBR_SERVICE_URL; the prompt travels in extra_info["prompt"] (text or chat
    messages) and the response type or category in reward_model.ground_truth (or extra_info).
    `compute_score_batch` has the signature of verl's legacy BatchRewardManager (verl <= 0.6).

This module imports the client by absolute name, so verl may also load it by file path.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal, NamedTuple

from propositions import label_fields
from reward_service.client import DEFAULT_URL, AsyncRewardClient, RewardClient, ServiceError, build_items
from reward_service.schemas import RewardsResponse

__all__ = [
    "MissingLabel",
    "compute_score",
    "compute_score_async",
    "compute_score_batch",
    "normalize_messages",
    "trl_reward_function",
]

#: What `trl_reward_function` does with a row that has neither a response type nor a category:
#: "error" raises (naming the columns), "none" returns None for the row (TRL: not applicable, NaN),
#: "service" sends it unlabelled so the service applies its RBR_DEFAULT_RESPONSE_TYPE (422 if it has none),
#: "auto" sends it with category 'auto': the service reads the category from the prompt.
MissingLabel = Literal["error", "none", "service", "auto"]
_MISSING_LABEL = ("error", "none", "service", "auto")
_TEXT_JOIN = "\n"


# -- messages -----------------------------------------------------------------------------------------


def _content_text(content: Any, where: str) -> str:
    """Message content as text: a string, None (a tool-call turn: ""), or a list of text parts joined."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Mapping):
        content = [content]
    if not hasattr(content, "__iter__"):
        raise ValueError(f"{where}: content must be text or a list of text parts, not {type(content).__name__}")
    texts = []
    for j, part in enumerate(content):
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, Mapping) and part.get("type", "text") == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif isinstance(part, Mapping) and part.get("type") == "text" and part.get("text") is None:
            continue
        else:
            kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
            raise ValueError(f"{where}[{j}]: a {kind!r} part; the RBR service grades text only")
    return _TEXT_JOIN.join(texts)


def normalize_messages(messages: Any, where: str = "prompt") -> str | list[dict[str, str]]:
    """A prompt as the service takes it: text as is, chat messages as [{"role", "content": text}].

    Drops every other key (HF datasets gives each message every key any row has, set to None) and
    joins list-of-parts content (`[{"type": "text", "text": ...}]`) with newlines; a non-text part raises.
    Accepts any iterable of messages (verl hands parquet lists over as numpy arrays).
    """
    if isinstance(messages, str):
        return messages
    if isinstance(messages, Mapping) or not hasattr(messages, "__iter__"):
        raise ValueError(f"{where}: must be text or a list of chat messages, not {type(messages).__name__}")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or not isinstance(m.get("role"), str):
            raise ValueError(f"{where}[{i}]: a chat message needs a string 'role'")
        out.append({"role": m["role"], "content": _content_text(m.get("content"), f"{where}[{i}].content")})
    return out


def _completion_text(completion: Any, where: str) -> str:
    """TRL's completion: text, or the conversational [{"role": "assistant", "content": ...}] (its last message)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        return _content_text(completion.get("content"), f"{where}.content")
    messages = normalize_messages(completion, where)
    return messages[-1]["content"] if messages else ""


# -- TRL ----------------------------------------------------------------------------------------------


def _column(kwargs: Mapping[str, Any], name: str, n: int) -> list[Any] | None:
    values = kwargs.get(name)
    if values is None:
        return None
    values = list(values)
    if len(values) != n:
        raise ValueError(f"column {name!r}: {len(values)} values for {n} completions")
    return values


def trl_reward_function(
    base_url: str | None = None,
    *,
    token: str | None = None,
    timeout: float = 300.0,
    retries: int = 3,
    missing_label: MissingLabel = "error",
) -> Callable[..., Awaitable[list[float | None]]]:
    """An async TRL reward function backed by the service; logs RM/RBR means when TRL passes `log_metric`.

    Each row is labelled by its `response_type` or `category` column (TRL passes dataset columns by name); a
    `rules` column (a list of strings or {"text", "priority"} per row) carries deployment rules (SoFA).
    A row with neither is handled by `missing_label` (see `MissingLabel`); the default "error" raises a
    ValueError naming both columns before anything is sent.
    """
    if missing_label not in _MISSING_LABEL:
        raise ValueError(f"missing_label must be one of {', '.join(_MISSING_LABEL)}, not {missing_label!r}")
    url = base_url or os.environ.get("RBR_SERVICE_URL", DEFAULT_URL)

    async def rbr_reward(prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        n = len(prompts)
        if len(completions) != n:
            raise ValueError(f"completions: {len(completions)} entries for {n} prompts")
        rts, cats = _column(kwargs, "response_type", n), _column(kwargs, "category", n)
        unlabelled = [i for i in range(n) if (rts is None or rts[i] is None) and (cats is None or cats[i] is None)]
        if unlabelled and missing_label == "error":
            where = (
                "the dataset has no 'response_type' or 'category' column"
                if rts is None and cats is None
                else f"row {unlabelled[0]} has neither a 'response_type' nor a 'category' value"
            )
            raise ValueError(
                f"RBR reward: {where}. Label every row with a response type (column 'response_type') or a "
                "content-policy category (column 'category'), or build the reward function with "
                "missing_label='auto' (the service reads the category from the prompt), missing_label='none' "
                "(None for such rows: TRL skips them) or missing_label='service' (the service's "
                "RBR_DEFAULT_RESPONSE_TYPE)"
            )
        skip = set(unlabelled) if missing_label == "none" else set()
        rows = [i for i in range(n) if i not in skip]
        rewards: list[float | None] = [None] * n
        if not rows:
            return rewards
        rules = _column(kwargs, "rules", n)
        items = build_items(
            [normalize_messages(prompts[i], f"prompts[{i}]") for i in rows],
            [_completion_text(completions[i], f"completions[{i}]") for i in rows],
            [rts[i] for i in rows] if rts is not None else None,
            _categories(cats, rows, set(unlabelled) if missing_label == "auto" else set()),
            [rules[i] for i in rows] if rules is not None else None,
        )
        async with AsyncRewardClient(url, token=token, timeout=timeout, retries=retries) as client:
            out = await client.rewards(items, return_components=True)
        for i, r in zip(rows, out.rewards, strict=True):
            rewards[i] = r
        _trl_logs(kwargs, rows, n, out)
        return rewards

    return rbr_reward


def _categories(cats: list | None, rows: list[int], auto: set[int]) -> list | None:
    """The category column for the rows sent; 'auto' for the unlabelled rows of missing_label='auto'."""
    if cats is None and not auto:
        return None
    return ["auto" if i in auto else (cats[i] if cats is not None else None) for i in rows]


def _trl_logs(kwargs: Mapping[str, Any], rows: list[int], n: int, out: RewardsResponse) -> None:
    if not out.components:
        return
    log_metric = kwargs.get("log_metric")
    if callable(log_metric):
        k = len(out.components)
        log_metric("rbr/rm", sum(c.rm for c in out.components) / k)
        log_metric("rbr/rbr", sum(c.rbr for c in out.components) / k)
    log_extra = kwargs.get("log_extra")
    if callable(log_extra):
        classes: list[str | None] = [None] * n
        for i, c in zip(rows, out.components, strict=True):
            classes[i] = c.top_class
        log_extra("rbr_class", classes)


# -- verl ---------------------------------------------------------------------------------------------


class _VerlState(NamedTuple):
    """One client and the served response types (to tell a response type from a category).

    Not a dataclass: verl loads a reward file by path without registering it in sys.modules, and
    dataclasses look their module up there.
    """

    client: RewardClient
    response_types: frozenset[str]


class _VerlAsyncState(NamedTuple):
    client: AsyncRewardClient
    response_types: frozenset[str]


_VERL: _VerlState | None = None  # built once per process, under _VERL_LOCK
_VERL_LOCK = threading.Lock()
_VERL_ASYNC: dict[asyncio.AbstractEventLoop, asyncio.Task[_VerlAsyncState]] = {}  # one per event loop
_VERL_ASYNC_LOCK = threading.Lock()


def _service_url() -> str:
    return os.environ.get("RBR_SERVICE_URL", DEFAULT_URL)


def _verl_state() -> _VerlState:
    """The process's client, built by exactly one thread (verl calls `compute_score` from a thread pool)."""
    global _VERL
    state = _VERL
    if state is not None:
        return state
    with _VERL_LOCK:
        if _VERL is None:
            client = RewardClient(_service_url())
            try:
                rts = frozenset(client.policy().response_types)
            except BaseException:
                client.close()
                raise
            _VERL = _VerlState(client, rts)
        return _VERL


async def _build_async_state() -> _VerlAsyncState:
    client = AsyncRewardClient(_service_url())
    try:
        rts = frozenset((await client.policy()).response_types)
    except BaseException:
        await client.aclose()
        raise
    return _VerlAsyncState(client, rts)


async def _verl_async_state() -> _VerlAsyncState:
    """The running event loop's client (an httpx.AsyncClient belongs to one loop), built by one task."""
    loop = asyncio.get_running_loop()
    with _VERL_ASYNC_LOCK:
        for old in [lp for lp in _VERL_ASYNC if lp.is_closed()]:
            del _VERL_ASYNC[old]
        task = _VERL_ASYNC.get(loop)
        if task is None:
            task = _VERL_ASYNC[loop] = loop.create_task(_build_async_state())
    try:
        return await asyncio.shield(task)
    except Exception:
        with _VERL_ASYNC_LOCK:
            if _VERL_ASYNC.get(loop) is task and task.done():
                del _VERL_ASYNC[loop]  # the next call tries again
        raise


def _verl_item(solution_str: str, ground_truth: Any, extra_info: Mapping | None, rts: frozenset[str]) -> dict:
    """One request item from verl's arguments; the label comes from extra_info, else ground_truth."""
    extra = extra_info or {}
    prompt = extra.get("prompt")
    if prompt is None:
        prompt = extra.get("question")
    if prompt is None:
        raise ValueError(
            "extra_info['prompt'] is missing: verl does not pass the prompt to reward functions, so put it "
            "(text or chat messages) in each row's extra_info['prompt'] for the RBR service"
        )
    rt, category = extra.get("response_type"), extra.get("category")
    if rt is None and category is None:
        if isinstance(ground_truth, Mapping):
            rt, category = ground_truth.get("response_type"), ground_truth.get("category")
        elif isinstance(ground_truth, str) and ground_truth.strip():
            fields = label_fields(ground_truth, rts)
            rt, category = fields.get("response_type"), fields.get("category")
    prompt = normalize_messages(prompt, "extra_info['prompt']")
    return build_items([prompt], [str(solution_str)], [rt], [category], [extra.get("rules")])[0]


def _unlabelled_error(items: Sequence[dict], e: ServiceError) -> ValueError | None:
    """A 422 for an item sent without a label means the service has no default response type: say so."""
    unlabelled = [i for i, it in enumerate(items) if "response_type" not in it and "category" not in it]
    if e.status == 422 and unlabelled:
        return ValueError(
            f"no label for sample {unlabelled[0]}: set reward_model.ground_truth (or extra_info['response_type'] "
            f"/ extra_info['category']), or start the service with RBR_DEFAULT_RESPONSE_TYPE (e.g. auto: the "
            f"category read from the prompt) ({e})"
        )
    return None


def _score(out: RewardsResponse, i: int) -> dict[str, float]:
    c = out.components[i] if out.components else None
    return {"score": out.rewards[i], "rm": c.rm if c else float("nan"), "rbr": c.rbr if c else float("nan")}


def compute_score(
    data_source: str, solution_str: str, ground_truth: Any, extra_info: Mapping | None = None, **_: Any
) -> dict[str, float]:
    """verl's custom reward function: {"score": reward, "rm": ..., "rbr": ...} for one response.

    `ground_truth` (or extra_info["response_type"] / ["category"]) names the response type or category.
    Thread-safe: verl 0.9.1's NaiveRewardManager runs sync reward functions in a thread pool.
    """
    state = _verl_state()
    item = _verl_item(solution_str, ground_truth, extra_info, state.response_types)
    try:
        out = state.client.rewards([item], return_components=True)
    except ServiceError as e:
        if (err := _unlabelled_error([item], e)) is not None:
            raise err from e
        raise
    return _score(out, 0)


async def compute_score_async(
    data_source: str, solution_str: str, ground_truth: Any, extra_info: Mapping | None = None, **_: Any
) -> dict[str, float]:
    """`compute_score` as a coroutine function: verl 0.9.1 awaits it (inspect.iscoroutinefunction)."""
    state = await _verl_async_state()
    item = _verl_item(solution_str, ground_truth, extra_info, state.response_types)
    try:
        out = await state.client.rewards([item], return_components=True)
    except ServiceError as e:
        if (err := _unlabelled_error([item], e)) is not None:
            raise err from e
        raise
    return _score(out, 0)


def compute_score_batch(
    data_sources: Sequence[str],
    solution_strs: Sequence[str],
    ground_truths: Sequence[Any],
    extra_infos: Sequence[Mapping | None],
    chunk_size: int = 64,
    **_: Any,
) -> list[dict[str, float]]:
    """The batch signature (verl's BatchRewardManager): one request per `chunk_size` responses."""
    n = len(solution_strs)
    if len(ground_truths) != n or len(extra_infos) != n:
        raise ValueError(f"ground_truths ({len(ground_truths)}) and extra_infos ({len(extra_infos)}) need {n} entries")
    if chunk_size < 1:
        raise ValueError("chunk_size must be >= 1")
    state = _verl_state()
    items = [_verl_item(solution_strs[i], ground_truths[i], extra_infos[i], state.response_types) for i in range(n)]
    scores: list[dict[str, float]] = []
    for start in range(0, n, chunk_size):
        chunk = items[start : start + chunk_size]
        try:
            out = state.client.rewards(chunk, return_components=True)
        except ServiceError as e:
            if (err := _unlabelled_error(chunk, e)) is not None:
                raise err from e
            raise
        scores.extend(_score(out, i) for i in range(len(chunk)))
    return scores
