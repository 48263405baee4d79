"""Grader engines that read P(yes) from a serving engine's top next-token logprobs (no hidden states).

  OpenAIEngine  an OpenAI-compatible server (`vllm serve`): POST /v1/completions with the prompt as
                token ids, max_tokens=1, temperature=0, logprobs=k. One request per completion carries
                all its questions; vLLM's prefix cache computes the shared prefix once.
  VLLMEngine    vLLM in process: LLM(enable_prefix_caching=True).generate(TokensPrompt(...),
                SamplingParams(max_tokens=1, logprobs=k)). Never `prompt_logprobs`: it bypasses the
                prefix cache.

Both send the exact token ids the transformers engine uses (`PromptFormat`), so the three agree up to
numerics. The log-odds are log sum P(yes variants) - log sum P(no variants) over the top-k; a side
missing from the top-k is bounded by the smallest returned logprob, and an answer with neither side in
the top-k is an error (raise `grader_logprobs`), never a default of 0.5.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from reward_service._http import post_json
from reward_service._replicas import Replicas
from reward_service.errors import GraderError, GraderTimeout, GraderUnavailable, ModelLoadError
from reward_service.grader._engine import POOL_STATS, Readout
from reward_service.grader._prompt import EncodedItem

__all__ = ["OpenAIEngine", "VLLMEngine", "yes_logit_from_top"]


def yes_logit_from_top(
    top: Mapping[int, float], yes_ids: Sequence[int], no_ids: Sequence[int], floor: float | None = None
) -> float:
    """log P(yes variants) - log P(no variants) from top-k {token id: logprob}.

    `floor` is the smallest logprob of the whole top-k (default: the smallest in `top`)."""
    ys = [top[i] for i in yes_ids if i in top]
    ns = [top[i] for i in no_ids if i in top]
    if not ys and not ns:
        raise GraderError(
            f"neither yes nor no among the top {len(top)} next tokens; raise grader_logprobs (RBR_GRADER_LOGPROBS)"
        )
    floor = min(top.values()) if floor is None else floor  # tokens outside the top-k have at most this
    ly = np.logaddexp.reduce(ys) if ys else floor
    ln = np.logaddexp.reduce(ns) if ns else floor
    return float(ly - ln)


def _no_hidden_states(backend: str) -> GraderError:
    return GraderError(
        f"grader_backend {backend!r} returns no hidden states, which mode 'heads' reads; "
        "use grader_backend 'transformers', or mode 'prompted' / 'calibrated'"
    )


class OpenAIEngine:
    """P(yes) from OpenAI-compatible /v1/completions servers (vLLM): one, a router, or several replicas (each
    request to the least busy replica that is up; one that refuses or answers 5xx is taken out, probed back in
    with GET /health, and the request goes to the next: GraderError only when every replica failed)."""

    layers: tuple[int, ...] = ()  # no hidden states: modes 'prompted' and 'calibrated' only

    def __init__(
        self,
        base_url: str | Sequence[str],
        model: str,
        tokenizer,
        yes_ids: Sequence[int],
        no_ids: Sequence[int],
        logprobs: int = 20,
        timeout: float = 60.0,
        concurrency: int = 8,
        transport=None,  # an httpx transport, for tests of the request/response handling
    ) -> None:
        import httpx

        self.replicas = Replicas(base_url, what="grader_url")
        self.base_url, self.model, self.logprobs = ",".join(self.replicas.urls), model, logprobs
        self.yes_ids, self.no_ids = list(yes_ids), list(no_ids)
        # Servers that ignore return_tokens_as_token_ids answer with token strings: map those back.
        self._by_text = {tokenizer.decode([i]): i for i in [*self.yes_ids, *self.no_ids]}
        n = concurrency * len(self.replicas.urls)
        self._http = httpx.Client(
            timeout=timeout, transport=transport, limits=httpx.Limits(max_connections=n, max_keepalive_connections=n)
        )
        self._pool = ThreadPoolExecutor(n, thread_name_prefix="rbr-grader-http")

    def _post(self, body: dict) -> tuple[str, dict]:
        """(the replica that answered, its answer): the least busy replica first, the others after a failure."""
        tried: set[str] = set()
        failures: list[str] = []
        while (pick := self.replicas.choose(tried)) is not None:
            url, probe = pick
            tried.add(url)
            if probe and not self._healthy(url, failures):
                continue
            self.replicas.begin(url)
            try:
                answer = post_json(
                    self._http,
                    f"{url}/v1/completions",
                    body,
                    "grader server",
                    GraderError,
                    GraderTimeout,
                    GraderUnavailable,
                )
            except GraderUnavailable as e:
                self.replicas.down(url, str(e))
                failures.append(str(e))
                continue
            finally:
                self.replicas.end(url)
            self.replicas.up(url)
            return url, answer
        raise GraderError(
            f"no grader server answered ({len(tried)} of {len(self.replicas.urls)}): " + "; ".join(failures)
        )

    def _healthy(self, url: str, failures: list[str]) -> bool:
        import httpx

        try:
            ok = self._http.get(f"{url}/health", timeout=5.0).status_code == 200
            why = "not healthy"
        except httpx.HTTPError as e:
            ok, why = False, f"{type(e).__name__}: {e}"
        if ok:
            self.replicas.up(url)
        else:
            self.replicas.down(url, why)
            failures.append(f"grader server: {url}/health: {why}")
        return ok

    def _token_id(self, key: str) -> int | None:
        if key.startswith("token_id:"):
            return int(key.split(":", 1)[1])
        return self._by_text.get(key)

    def _complete(self, enc: EncodedItem) -> Readout:
        prompts = [enc.prefix_ids + s for s in enc.suffix_ids]
        body = {
            "model": self.model,
            "prompt": prompts,
            "max_tokens": 1,
            "temperature": 0.0,
            "logprobs": self.logprobs,
            "return_tokens_as_token_ids": True,  # vLLM: top_logprobs keyed "token_id:<id>"
        }
        url, answer = self._post(body)
        url += "/v1/completions"
        try:
            choices = sorted(answer["choices"], key=lambda c: c["index"])
            tops = [choice["logprobs"]["top_logprobs"][0] for choice in choices]
        except (KeyError, TypeError, IndexError) as e:
            raise GraderError(f"malformed /v1/completions answer from {url}: {str(answer)[:300]}") from e
        if len(tops) != len(prompts):
            raise GraderError(f"{url} returned {len(tops)} choices for {len(prompts)} prompts")
        z = []
        for top in tops:
            ids = {tid: float(lp) for key, lp in top.items() if (tid := self._token_id(key)) is not None}
            floor = min((float(lp) for lp in top.values()), default=0.0)
            z.append(yes_logit_from_top(ids, self.yes_ids, self.no_ids, floor))
        return Readout(
            np.array(z, dtype=np.float32),
            np.zeros((len(POOL_STATS), 0, 0), np.float32),
            None,
            sum(len(p) for p in prompts),
        )

    def readout(self, enc: EncodedItem, strategy: str = "prefix", answer_states: bool = False) -> Readout:
        return self._complete(enc)

    def readout_many(self, encs: Sequence[EncodedItem], answer_states: bool = False) -> list[Readout]:
        """All items' questions, `concurrency` requests in flight; one failure fails the batch."""
        return list(self._pool.map(self._complete, encs))

    def pooled(self, encs: Sequence[EncodedItem]) -> list[Readout]:
        raise _no_hidden_states("openai")


class VLLMEngine:
    """P(yes) from vLLM in process (prefix caching on); for GPU boxes with `pip install 'rbr[vllm]'`."""

    layers: tuple[int, ...] = ()

    def __init__(
        self,
        model: str,
        yes_ids: Sequence[int],
        no_ids: Sequence[int],
        logprobs: int = 20,
        dtype: str = "bfloat16",
        **llm_kwargs,
    ) -> None:
        try:
            from vllm import LLM, SamplingParams
        except ImportError as e:
            raise ModelLoadError("grader_backend 'vllm' needs vLLM: pip install 'rbr[vllm]'") from e
        try:
            self.llm = LLM(
                model=model, dtype=dtype, enable_prefix_caching=True, max_logprobs=max(logprobs, 20), **llm_kwargs
            )
        except Exception as e:
            raise ModelLoadError(f"vLLM could not load {model!r}: {e}") from e
        self.params = SamplingParams(max_tokens=1, temperature=0.0, logprobs=logprobs)
        self.yes_ids, self.no_ids = list(yes_ids), list(no_ids)

    def readout(self, enc: EncodedItem, strategy: str = "prefix", answer_states: bool = False) -> Readout:
        return self.readout_many([enc])[0]

    def pooled(self, encs: Sequence[EncodedItem]) -> list[Readout]:
        raise _no_hidden_states("vllm")

    def readout_many(self, encs: Sequence[EncodedItem], answer_states: bool = False) -> list[Readout]:
        from vllm.inputs import TokensPrompt

        prompts = [TokensPrompt(prompt_token_ids=e.prefix_ids + s) for e in encs for s in e.suffix_ids]
        outs = self.llm.generate(prompts, self.params, use_tqdm=False)
        readouts, k = [], 0
        for e in encs:
            z = []
            for out in outs[k : k + len(e.suffix_ids)]:
                top = {tid: lp.logprob for tid, lp in out.outputs[0].logprobs[0].items()}
                z.append(yes_logit_from_top(top, self.yes_ids, self.no_ids))
            k += len(e.suffix_ids)
            n_tokens = sum(len(e.prefix_ids) + len(s) for s in e.suffix_ids)
            readouts.append(
                Readout(np.array(z, dtype=np.float32), np.zeros((len(POOL_STATS), 0, 0), np.float32), None, n_tokens)
            )
        return readouts
