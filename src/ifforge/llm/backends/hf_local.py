"""`generator.name: hf_local` — a transformers model in this process, batched, on GPU when there is one.

How calls become batches:
- Calls are grouped by what decides when a batch may stop (max_tokens, stop strings), sorted by prompt length
  (less padding) and cut into batches of `batch_size`; prompts are left-padded, as decoder-only generation needs.
- temperature, top_p and seed apply per row: a small logits processor samples each row with its own RNG, so a
  seeded call gives the same text whatever else shares its batch (and whatever the cache already held).
  temperature == 0 is greedy.
- The model's own generation defaults (repetition penalty, top_k, ...) are dropped: what a call returns depends
  on its params only, as with the other backends.
- A call with a JSON-schema `response_format` (`structured: json`) decodes under that schema's grammar: xgrammar
  masks the logits of every row before sampling, so the reply always parses (unless cut off at max_tokens).
  Calls with different schemas share a batch (one grammar per row); a schema is compiled once per loaded tokenizer.
"""

from __future__ import annotations

import importlib.util
import secrets
import threading
import time
from collections import defaultdict
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ifforge.errors import UserError
from ifforge.llm import BACKENDS
from ifforge.llm.base import Backend, OnDone
from ifforge.llm.types import Call, Completion, covering, json_schema, logprobs_wanted
from ifforge.models import check_model, quiet_progress, resolve_model

MISSING_XGRAMMAR = ("structured=json on hf_local needs xgrammar: pip install --no-deps xgrammar==0.2.8 apache-tvm-ffi "
                    "(make install does), or set structured=off")

_DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
           "float16": "float16", "fp16": "float16"}


def _error_text(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}"[:500]


@BACKENDS.register("hf_local")
class HFLocalBackend(Backend):
    name = "hf_local"

    def __init__(self, cfg: Any):
        super().__init__(cfg)
        self._model = None
        self._tokenizer = None
        self._eos_ids: List[int] = []
        self._grammars: Dict[str, Any] = {}  # JSON schema text -> compiled grammar, for the loaded tokenizer
        self._compiler = None
        self._lock = threading.Lock()  # one model, one batch at a time, whichever thread asks

    # ------------------------------------------------------------------------------------------- setup

    def check(self) -> None:
        device, dtype = str(self.cfg.device), str(self.cfg.dtype)
        if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
            raise UserError(f"generator.device must be auto, cpu or cuda, not {device!r}")
        if dtype != "auto" and dtype not in _DTYPES:
            raise UserError(f"generator.dtype must be auto or one of {', '.join(sorted(_DTYPES))}, not {dtype!r}")
        if int(self.cfg.batch_size) < 1:
            raise UserError("generator.batch_size must be at least 1")
        check_model(str(self.cfg.model))
        if str(self.cfg.get("structured") or "off") == "json" and importlib.util.find_spec("xgrammar") is None:
            raise UserError(MISSING_XGRAMMAR)
        if device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise UserError("generator.device is cuda but no CUDA GPU is visible; use device=auto or cpu")

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

        path = resolve_model(str(self.cfg.model))
        device = str(self.cfg.device)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = str(self.cfg.dtype)
        # bf16 halves memory and is fast on GPUs; on CPU it is slow and lossy, so float32 there.
        dtype = _DTYPES.get(dtype, "bfloat16" if device.startswith("cuda") else "float32")
        try:
            with quiet_progress():
                tokenizer = AutoTokenizer.from_pretrained(path)
                model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
        except OSError as exc:
            raise UserError(f"cannot load model {self.cfg.model!r}: {_error_text(exc)}") from exc
        if not tokenizer.chat_template:
            raise UserError(f"model {self.cfg.model!r} has no chat template; hf_local needs a chat (instruct) model")
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"

        eos = model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos]) | {tokenizer.eos_token_id}
        self._eos_ids = sorted(int(e) for e in eos_ids if e is not None)
        # A bare generation config: generate() fills unset fields from model.generation_config, and hub models
        # ship sampling defaults there that must not leak into greedy or explicitly parameterised calls.
        model.generation_config = GenerationConfig(
            eos_token_id=self._eos_ids, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id)
        self._model = model.to(device).eval()
        self._tokenizer = tokenizer

    def close(self) -> None:
        with self._lock:
            on_cuda = self._model is not None and self._model.device.type == "cuda"
            self._model = self._tokenizer = self._compiler = None
            self._grammars.clear()
        if on_cuda:
            import torch

            torch.cuda.empty_cache()

    # --------------------------------------------------------------------------------------------- run

    def run(self, calls: Sequence[Call], on_done: OnDone) -> None:
        if not calls:
            return
        with self._lock:
            if self._model is None:
                self._load()
            prompts: Dict[int, List[int]] = {}
            for i, call in enumerate(calls):
                try:
                    logprobs_wanted(call.params)  # checked here so that a bad value fails its call alone
                except ValueError as exc:
                    on_done(i, Completion(error=f"bad request params: {exc}"))
                    continue
                try:
                    prompts[i] = self._encode(call.messages)
                except Exception as exc:  # a malformed conversation fails alone
                    on_done(i, Completion(error=f"chat template: {_error_text(exc)}"))

            groups: Dict[Tuple[int, Tuple[str, ...], bool], List[int]] = defaultdict(list)
            schemas = {i: json_schema(calls[i].params) for i in prompts}
            for i in prompts:
                groups[_batch_key(calls[i].params, self.cfg) + (bool(schemas[i]),)].append(i)
            batch_size = int(self.cfg.batch_size)
            for (max_tokens, stop, _structured), members in groups.items():
                members.sort(key=lambda i: -len(prompts[i]))  # longest first: memory trouble shows up early
                for start in range(0, len(members), batch_size):
                    batch = members[start:start + batch_size]
                    self._run_batch(batch, [prompts[i] for i in batch], [calls[i].params for i in batch],
                                    max_tokens, list(stop), on_done, [schemas[i] for i in batch])

    def _encode(self, messages: List[Dict[str, str]]) -> List[int]:
        text = self._tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        # The template already wrote any BOS/special tokens it wants.
        return list(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def _run_batch(self, indices: List[int], prompts: List[List[int]], params: List[Dict[str, Any]],
                   max_tokens: int, stop: List[str], on_done: OnDone, schemas: List[str]) -> None:
        import torch

        started = time.perf_counter()
        out_of_memory = False
        try:
            outputs = self._generate(prompts, params, max_tokens, stop, schemas)
        except (torch.OutOfMemoryError, MemoryError) as exc:
            outputs, out_of_memory = _error_text(exc), True
        except Exception as exc:  # noqa: BLE001 - one bad batch must not end the run
            outputs = _error_text(exc)
        if out_of_memory and len(indices) > 1:
            # Retry in halves before giving up on these calls (outside the except block, whose traceback
            # would keep the failed batch's tensors alive).
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            half = len(indices) // 2
            self._run_batch(indices[:half], prompts[:half], params[:half], max_tokens, stop, on_done, schemas[:half])
            self._run_batch(indices[half:], prompts[half:], params[half:], max_tokens, stop, on_done, schemas[half:])
            return
        latency = time.perf_counter() - started
        for k, i in enumerate(indices):
            if isinstance(outputs, str):
                on_done(i, Completion(error=outputs, latency=latency))
            else:
                text, finish_reason, completion_tokens, logprobs = outputs[k]
                on_done(i, Completion(text=text, finish_reason=finish_reason, prompt_tokens=len(prompts[k]),
                                      completion_tokens=completion_tokens, latency=latency, logprobs=logprobs))

    def _grammar(self, schemas: List[str]) -> Any:
        """A fresh xgrammar logits processor (one per generate() call, as xgrammar requires) holding one grammar
        per row: steps narrow their schema per row (e.g. DeMoRecon's E.3), and batching by schema would run such
        a step one row at a time. Each schema is compiled once for this tokenizer."""
        try:
            import xgrammar as xgr
            import xgrammar.contrib.hf  # noqa: F401  (the transformers logits processor)
        except ImportError:
            raise UserError(MISSING_XGRAMMAR) from None
        if self._compiler is None:
            info = xgr.TokenizerInfo.from_huggingface(self._tokenizer, vocab_size=self._model.config.vocab_size)
            self._compiler = xgr.GrammarCompiler(info)
        for schema in schemas:
            if schema not in self._grammars:
                # One line, no free whitespace: a small model would otherwise spend tokens on indentation.
                self._grammars[schema] = self._compiler.compile_json_schema(schema, any_whitespace=False)
        return xgr.contrib.hf.LogitsProcessor([self._grammars[schema] for schema in schemas])

    def _generate(self, prompts: List[List[int]], params: List[Dict[str, Any]], max_tokens: int,
                  stop: List[str], schemas: List[str]) -> List[Tuple[str, str, int, Optional[List[Dict[str, Any]]]]]:
        import torch
        from transformers import LogitsProcessorList, StoppingCriteriaList

        tok, model = self._tokenizer, self._model
        batch = tok.pad({"input_ids": prompts}, padding=True, return_tensors="pt")
        input_ids = batch["input_ids"].to(model.device)
        attention_mask = batch["attention_mask"].to(model.device)
        prompt_len = input_ids.shape[1]

        processors = LogitsProcessorList()
        if any(schemas):  # first: the sampler below draws from the grammar's allowed tokens only
            processors.append(self._grammar(schemas))
        temperatures = [float(p.get("temperature") or 0.0) for p in params]
        if any(t > 0 for t in temperatures):
            processors.append(RowSampler(temperatures, [float(p.get("top_p", 1.0) or 1.0) for p in params],
                                         [p.get("seed") for p in params]))
        criteria = StoppingCriteriaList()
        stopper = StopStrings(tok, stop, prompt_len, len(prompts)) if stop else None
        if stopper is not None:
            criteria.append(stopper)

        wanted = [logprobs_wanted(p) for p in params]
        # Log-probabilities need the raw logits of every step (float32, steps x batch x vocab), kept only for
        # batches that hold a call asking for them. Raw: the sampler and grammar above rewrite the scores.
        extra = {"output_logits": True, "return_dict_in_generate": True} if any(w is not None for w in wanted) else {}
        with torch.inference_mode():
            out = model.generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=max_tokens,
                                 do_sample=False, logits_processor=processors, stopping_criteria=criteria, **extra)
        generated = (out.sequences if extra else out)[:, prompt_len:].tolist()

        results = []
        eos = set(self._eos_ids)
        for row, ids in enumerate(generated):
            eos_at = next((k for k, t in enumerate(ids) if t in eos), None)
            stop_at = stopper.finished_at[row] if stopper is not None else None
            if eos_at is not None and (stop_at is None or eos_at < stop_at):
                used, finish_reason = eos_at + 1, "stop"
                ids = ids[:eos_at]
            elif stop_at is not None:
                used, finish_reason = stop_at, "stop"
                ids = ids[:stop_at]
            else:
                used, finish_reason = len(ids), "length"
            text = tok.decode(ids, skip_special_tokens=True)
            cuts = [text.find(s) for s in stop if s and s in text]
            if cuts:
                text, finish_reason = text[:min(cuts)], "stop"
            logprobs = None
            if wanted[row] is not None:
                logprobs = token_logprobs(tok, [step[row] for step in out.logits[:len(ids)]], ids, wanted[row])
                logprobs = covering(logprobs, text) if cuts else logprobs
            results.append((text, finish_reason, used, logprobs))
        return results


def token_logprobs(tokenizer: Any, logits: List[Any], ids: List[int], k: int) -> List[Dict[str, Any]]:
    """Completion.logprobs for generated `ids` from the raw logits of the steps that produced them (one vocabulary
    row per step): each token's log-probability under the model's own distribution and the k likeliest tokens,
    every token decoded on its own."""
    import torch

    if not ids:
        return []
    logp = torch.log_softmax(torch.stack(logits).float(), dim=-1)
    chosen = logp.gather(1, torch.tensor(ids, device=logp.device)[:, None])[:, 0].tolist()
    top_values, top_ids = logp.topk(min(k, logp.shape[-1]), dim=-1)
    top_values, top_ids = top_values.tolist(), top_ids.tolist()

    def text(token_id: int) -> str:
        return tokenizer.decode([token_id])

    return [{"token": text(t), "logprob": lp,
             "top_logprobs": [{"token": text(i), "logprob": v} for i, v in zip(ids_k, values_k)]}
            for t, lp, ids_k, values_k in zip(ids, chosen, top_ids, top_values)]


def _batch_key(params: Dict[str, Any], cfg: Any) -> Tuple[int, Tuple[str, ...]]:
    stop = params.get("stop") or ()
    if isinstance(stop, str):
        stop = (stop,)
    return int(params.get("max_tokens") or cfg.max_tokens), tuple(str(s) for s in stop if s)


# RowSampler and StopStrings follow transformers' LogitsProcessor / StoppingCriteria call protocol without
# subclassing them, so that importing this module (backend discovery) does not import transformers.


class RowSampler:
    """A logits processor that draws each sampled row's next token itself, with that row's temperature, top_p
    and seeded RNG, and leaves only that token possible; greedy rows (temperature 0) are left alone. generate()
    then runs in greedy mode and simply takes the drawn token. Row k's draws depend on row k's seed alone."""

    def __init__(self, temperatures: List[float], top_ps: List[float], seeds: List[Optional[int]]):
        import torch

        self.rows = [k for k, t in enumerate(temperatures) if t > 0]
        self.temperatures = torch.tensor([temperatures[k] for k in self.rows])
        self.top_ps = torch.tensor([min(max(top_ps[k], 1e-6), 1.0) for k in self.rows])
        self.generators = []
        for k in self.rows:
            seed = seeds[k] if seeds[k] is not None else secrets.randbits(63)
            self.generators.append(torch.Generator().manual_seed(int(seed)))

    def __call__(self, input_ids, scores):
        import torch

        rows = torch.tensor(self.rows, device=scores.device)
        logits = scores[rows].float() / self.temperatures.to(scores.device)[:, None]
        probs = torch.softmax(logits, dim=-1)
        order = None
        top_ps = self.top_ps.to(scores.device)
        if bool((top_ps < 1.0).any()):
            probs, order = probs.sort(dim=-1, descending=True)
            # Nucleus: keep the tokens whose preceding mass is below top_p (the most likely one always stays).
            probs = probs * ((probs.cumsum(dim=-1) - probs) < top_ps[:, None])
        cdf = probs.cumsum(dim=-1)
        # One uniform draw per row from the row's own CPU generator: the same numbers on any device.
        u = torch.stack([torch.rand((), generator=g) for g in self.generators]).to(scores.device)
        picks = torch.searchsorted(cdf, (u * cdf[:, -1])[:, None], right=True).clamp_(max=cdf.shape[-1] - 1)
        tokens = picks if order is None else order.gather(1, picks)
        forced = torch.full_like(scores[rows], float("-inf"))
        forced.scatter_(1, tokens, 0.0)
        scores = scores.clone()
        scores[rows] = forced
        return scores


class StopStrings:
    """A stopping criterion: a row is done once its generated text contains one of the stop strings. Only the
    generated part is decoded (a stop string must not match the prompt), and only its last few tokens each step:
    a new occurrence ends in the newest token, and one character spans at most four (byte-level) tokens."""

    def __init__(self, tokenizer: Any, stop: List[str], prompt_len: int, batch_size: int):
        self.tokenizer = tokenizer
        self.stop = [s for s in stop if s]
        self.prompt_len = prompt_len
        self.window = 4 * max(len(s) for s in self.stop) + 4
        self.finished_at: List[Optional[int]] = [None] * batch_size  # generated tokens kept, per stopped row

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        generated = input_ids[:, self.prompt_len:]
        length = generated.shape[1]
        tails = generated[:, -self.window:].tolist()
        for row, tail in enumerate(tails):
            if self.finished_at[row] is None:
                text = self.tokenizer.decode(tail, skip_special_tokens=True)
                if any(s in text for s in self.stop):
                    self.finished_at[row] = length
        return torch.tensor([f is not None for f in self.finished_at], dtype=torch.bool, device=input_ids.device)
