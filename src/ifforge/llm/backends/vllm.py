"""`generator.name: vllm` — vLLM's offline engine in this process (GPU machines).

The engine is built lazily on the first run: `vllm.LLM(model=resolve_model(cfg.model), dtype=..., **cfg.extra)`,
so `generator.extra` carries engine arguments (tensor_parallel_size, gpu_memory_utilization, max_model_len, ...).
Each call gets its own `SamplingParams` (LLM.chat pairs a list of them one by one with the conversations), so
calls with different params still share the engine's continuous batching. Calls go in chunks: progress and
cache writes happen per chunk, and an engine error fails one chunk, not the run.

vLLM is not installable on CPU-only machines; `check` says so before any work starts. Against a vLLM *server*,
use `generator=openai` with `base_url` instead.
"""

from __future__ import annotations

import importlib.util
import json
import threading
import time
from typing import Any, Dict, List, Sequence

from ifforge.errors import UserError
from ifforge.llm import BACKENDS
from ifforge.llm.base import Backend, OnDone
from ifforge.llm.types import Call, Completion, covering, json_schema, logprobs_wanted
from ifforge.models import check_model, resolve_model

MISSING_VLLM = ("the vllm generator needs the vllm package (GPU machines): pip install vllm; "
                "or use generator=openai against a vLLM server")

# Calls per LLM.chat: big enough to keep the engine's batches full, small enough for steady progress.
CHUNK_SIZE = 512

_DTYPES = {"auto": "auto", "float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
           "float16": "float16", "fp16": "float16"}


@BACKENDS.register("vllm")
class VLLMBackend(Backend):
    name = "vllm"

    def __init__(self, cfg: Any):
        super().__init__(cfg)
        self._llm = None
        self._lock = threading.Lock()

    def check(self) -> None:
        if importlib.util.find_spec("vllm") is None:
            raise UserError(MISSING_VLLM)
        if str(self.cfg.dtype) not in _DTYPES:
            raise UserError(f"generator.dtype must be one of {', '.join(sorted(_DTYPES))}, not {self.cfg.dtype!r}")
        if str(self.cfg.device) == "cpu":
            raise UserError("the vllm generator runs on GPUs; use generator=hf_local for device=cpu")
        check_model(str(self.cfg.model))

    def _load(self) -> None:
        import vllm

        engine_args: Dict[str, Any] = {"dtype": _DTYPES[str(self.cfg.dtype)]}
        engine_args.update(dict(self.cfg.extra or {}))  # the user's engine arguments win
        self._llm = vllm.LLM(model=resolve_model(str(self.cfg.model)), **engine_args)

    def close(self) -> None:
        with self._lock:
            self._llm = None  # vLLM frees GPU memory when the engine is garbage-collected

    def run(self, calls: Sequence[Call], on_done: OnDone) -> None:
        if not calls:
            return
        with self._lock:
            if self._llm is None:
                self._load()
            for start in range(0, len(calls), CHUNK_SIZE):
                self._run_chunk(list(range(start, min(start + CHUNK_SIZE, len(calls)))), calls, on_done)

    def _run_chunk(self, indices: List[int], calls: Sequence[Call], on_done: OnDone) -> None:
        from vllm import SamplingParams

        started = time.perf_counter()
        params, kept = [], []
        for i in indices:
            try:
                params.append(SamplingParams(**self._sampling_kwargs(calls[i].params)))
                kept.append(i)
            except (TypeError, ValueError) as exc:  # a bad param fails its own call, not the chunk
                on_done(i, Completion(error=f"bad request params: {type(exc).__name__}: {exc}"))
        indices = kept
        if not indices:
            return
        try:
            outputs = self._llm.chat([calls[i].messages for i in indices], params, use_tqdm=False)
        except Exception as exc:  # noqa: BLE001 - one bad chunk must not end the run
            error = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"[:500]
            for i in indices:
                on_done(i, Completion(error=error, latency=time.perf_counter() - started))
            return
        latency = time.perf_counter() - started
        for i, out in zip(indices, outputs):
            sample = out.outputs[0]
            logprobs, error, top = None, None, logprobs_wanted(calls[i].params)
            if top is not None:
                try:
                    logprobs = sample_logprobs(sample.token_ids, sample.logprobs or [], top, sample.text)
                except (KeyError, AttributeError, TypeError) as exc:  # an engine version this was not written for
                    error = f"cannot read vLLM's log-probabilities: {type(exc).__name__}: {exc}"
            if sample.finish_reason == "abort":
                error = "request aborted by the vLLM engine"
            on_done(i, Completion(
                text=sample.text,
                # vLLM reports "stop" (EOS or a stop string) or "length"; an aborted request has no text worth keeping.
                finish_reason=sample.finish_reason,
                prompt_tokens=len(out.prompt_token_ids or []),
                completion_tokens=len(sample.token_ids),
                latency=latency,
                error=error,
                logprobs=logprobs,
            ))

    def _sampling_kwargs(self, params: Dict[str, Any]) -> Dict[str, Any]:
        stop = params.get("stop") or []
        if isinstance(stop, str):
            stop = [stop]
        kwargs: Dict[str, Any] = {
            "n": 1,  # the generator fans out n samples as separate, separately cached calls
            "temperature": float(params.get("temperature", self.cfg.temperature) or 0.0),  # 0 -> greedy
            "top_p": float(params.get("top_p", self.cfg.top_p) or 1.0),
            "max_tokens": int(params.get("max_tokens") or self.cfg.max_tokens),
            "stop": [str(s) for s in stop if s] or None,  # text is cut before the stop string, as in hf_local
        }
        if params.get("seed") is not None:
            kwargs["seed"] = int(params["seed"])  # per-request seed: reproducible whatever the batch
        top = logprobs_wanted(params)
        if top is not None:
            kwargs["logprobs"] = top  # vLLM returns the sampled token's log-probability plus the top `top`
        schema = json_schema(params)
        if schema:  # structured=json: the engine's own structured-output decoding
            kwargs.update(structured_output(json.loads(schema)))
        return kwargs


def sample_logprobs(token_ids: Sequence[int], logprobs: Sequence[Dict[int, Any]], k: int,
                    text: str) -> List[Dict[str, Any]]:
    """Completion.logprobs from a vLLM sample: `logprobs` holds per position {token_id: Logprob(logprob, rank,
    decoded_token)}, the sampled token and the k likeliest (k + 1 entries when the sampled one is not among them,
    and then the least likely). Positions past the reply's text (an end-of-sequence token, a stop string) are
    left out, as OpenAI leaves them out."""

    def entry(item: Any) -> Dict[str, Any]:
        token = item.decoded_token
        return {"token": token if isinstance(token, str) else "", "logprob": float(item.logprob)}

    entries = []
    for token_id, alternatives in zip(token_ids, logprobs):
        top = sorted(alternatives.values(), key=lambda item: -item.logprob)[:k]
        entries.append({**entry(alternatives[token_id]), "top_logprobs": [entry(item) for item in top]})
    return covering(entries, text)


def structured_output(schema: Dict[str, Any]) -> Dict[str, Any]:
    """SamplingParams arguments that hold a reply to a JSON schema: `structured_outputs` since vLLM 0.11,
    `guided_decoding` before."""
    try:
        from vllm.sampling_params import StructuredOutputsParams
    except ImportError:
        from vllm.sampling_params import GuidedDecodingParams

        return {"guided_decoding": GuidedDecodingParams(json=schema)}
    return {"structured_outputs": StructuredOutputsParams(json=schema)}
