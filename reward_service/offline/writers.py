"""The writer LLM behind the data engine (`rbr synth`, `rbr prompts`, `rbr induce`): chat messages in, one
sampled reply out, on whichever backend the grader runs (the embedded model with transformers, an
OpenAI-compatible server such as vLLM, or vLLM in process). A reply `prefix` is continued, not restarted:
small models follow a started reply far better than an instruction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from reward_service.errors import GraderError, GraderTimeout

__all__ = ["Writer", "load_chat_writer", "openai_writer", "transformers_writer", "vllm_writer"]

#: (messages, reply prefix, seed) -> the reply (prefix included), stripped
Writer = Callable[[Sequence[dict], str, int], str]


def transformers_writer(tokenizer, model, max_new_tokens: int = 160, temperature: float = 0.8) -> Writer:
    """A local transformers causal LM (the embedded grader's own model by default)."""
    import torch

    def write(messages: Sequence[dict], prefix: str, seed: int) -> str:
        text = tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False) + prefix
        ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)
        torch.manual_seed(seed)
        with torch.inference_mode():
            out = model.generate(
                **ids,
                max_new_tokens=max_new_tokens,
                do_sample=True,
                temperature=temperature,
                top_p=0.95,
                pad_token_id=tokenizer.pad_token_id,
            )
        return (prefix + tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)).strip()

    return write


def openai_writer(
    base_url: str,
    model: str,
    max_new_tokens: int = 160,
    temperature: float = 0.8,
    timeout: float = 120.0,
    transport=None,  # an httpx transport, for tests of the request/response handling
) -> Writer:
    """An OpenAI-compatible /v1/chat/completions server (vLLM: the reply prefix is continued)."""
    import httpx

    from reward_service._http import post_json

    http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport)

    def write(messages: Sequence[dict], prefix: str, seed: int) -> str:
        body: dict = {
            "model": model,
            "messages": list(messages),
            "max_tokens": max_new_tokens,
            "temperature": temperature,
            "top_p": 0.95,
            "seed": seed,
        }
        if prefix:  # vLLM's chat extension: continue the assistant message instead of starting a new one
            body["messages"] = [*messages, {"role": "assistant", "content": prefix}]
            body |= {"add_generation_prompt": False, "continue_final_message": True}
        answer = post_json(http, "/v1/chat/completions", body, "writer server", GraderError, GraderTimeout)
        try:
            text = answer["choices"][0]["message"]["content"] or ""
        except (KeyError, TypeError, IndexError) as e:
            raise GraderError(f"writer server: malformed /v1/chat/completions answer: {str(answer)[:300]}") from e
        return text.strip() if text.startswith(prefix) else (prefix + text).strip()

    return write


def vllm_writer(llm, max_new_tokens: int = 160, temperature: float = 0.8) -> Writer:
    """The in-process vLLM engine the grader loaded (`grader_backend: vllm`)."""
    from vllm import SamplingParams

    def write(messages: Sequence[dict], prefix: str, seed: int) -> str:
        messages = list(messages) + ([{"role": "assistant", "content": prefix}] if prefix else [])
        params = SamplingParams(max_tokens=max_new_tokens, temperature=temperature, top_p=0.95, seed=seed)
        out = llm.chat(
            messages, params, use_tqdm=False, add_generation_prompt=not prefix, continue_final_message=bool(prefix)
        )
        return (prefix + out[0].outputs[0].text).strip()

    return write


def load_chat_writer(settings, grader, max_new_tokens: int = 160, temperature: float = 0.8) -> Writer:
    """The grader's own LLM as the writer, on whichever backend the settings name."""
    if settings.grader_backend == "transformers":
        return transformers_writer(grader.engine.tok, grader.engine.model, max_new_tokens, temperature)
    if settings.grader_backend == "openai":
        name = settings.grader_served_name or settings.grader_model
        return openai_writer(settings.grader_url, name, max_new_tokens, temperature, settings.grader_timeout_s)
    return vllm_writer(grader.engine.llm, max_new_tokens, temperature)
