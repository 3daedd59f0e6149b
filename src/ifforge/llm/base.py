"""The generator layer's one interface: `Generator.generate(requests) -> results`.

Backends implement `Backend.run(calls, on_done)` and nothing else: the cache lookup, the fan-out of `n` samples,
the progress bar and the accounting live here, once, under every backend.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import replace
from pathlib import Path
import logging
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ifforge.errors import StageFailed
from ifforge.llm.cache import ResponseCache, cache_key
from ifforge.llm.prices import Price
from ifforge.llm.progress import Progress
from ifforge.llm.types import Call, ChatRequest, ChatResult, Completion, GeneratorStats

log = logging.getLogger("ifforge")
SAMPLING_KEYS = ("temperature", "top_p", "max_tokens", "seed", "stop")
OnDone = Callable[[int, Completion], None]
_FAILURES_LOCK = threading.Lock()
# Cache keys re-asked under `cache=refresh` in this process: asked once, then served from the cache like any other
# answer (a suite that answers first and scores later must not pay twice).
_REFRESHED: set = set()
_EVIDENCE = 50  # requests asked before a tolerated failed fraction is judged mid-stage


def _plain(value: Any) -> Any:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


class Backend:
    """Sends calls to a model. `run` must call `on_done(index, completion)` exactly once per call, from any
    thread, as soon as that call is finished (successfully or not); it must not raise for a single bad call."""

    name = "backend"

    def __init__(self, cfg: Any):
        self.cfg = cfg

    def run(self, calls: Sequence[Call], on_done: OnDone) -> None:
        raise NotImplementedError

    def check(self) -> None:
        """Fail fast, before any work, on what a user must fix (missing API key, missing package)."""

    def close(self) -> None:
        pass


class Generator:
    """Requests in, results out, through the cache. A request that still fails after the backend's retries is a
    *failure*: it is never cached, it is logged to `failures_path` (JSONL), and once more than
    `max_failed_fraction` of this generator's requests have failed, `generate` raises StageFailed: no result is
    ever computed from a failed generation, and a rerun sends only what is missing."""

    def __init__(self, backend: Backend, cfg: Any, cache: Optional[ResponseCache] = None, role: str = "generator",
                 failures_path: Optional[Path] = None):
        self.backend = backend
        self.cfg = cfg
        self.cache = cache
        self.role = role
        self.failures_path = failures_path
        self.stats = GeneratorStats()
        self.steps: Dict[str, GeneratorStats] = {}  # the same counts per `desc` (a build step, a suite's answers)
        self.requests = 0  # completions asked for, cache hits included: the denominator of the failed fraction
        self._refresh = cfg.get("cache") == "refresh"
        self._tolerance = float(cfg.get("max_failed_fraction") or 0.0)
        self._last_failed: Optional[tuple] = None  # (step, requests in it, its failed completions)
        self._lock = threading.Lock()
        # Read once: OmegaConf attribute access costs ~0.1 ms, paid per request otherwise.
        self._defaults = {k: _plain(cfg.get(k)) for k in SAMPLING_KEYS}
        self._price: Optional[Price] = None  # looked up when the first answer arrives (genai-prices is slow to import)
        self._model = str(cfg.model)

    @property
    def model(self) -> str:
        return self._model

    @property
    def price(self) -> Price:
        if self._price is None:
            from ifforge.llm.prices import price_for

            self._price = price_for(self.cfg)
        return self._price

    def report(self) -> Dict[str, Any]:
        """The manifest's `stats.<role>`: the totals (`cost_usd` among them), the price they were costed at, and the
        same counts per step."""
        if self._price is None and self.stats.calls == 0:
            price: Dict[str, Any] = {"known": None, "source": "not looked up: no request was sent"}
        else:
            price = self.price.as_dict()
        return {"model": self.model, "backend": self.backend.name, **self.stats.as_dict(), "price": price,
                "steps": {desc: s.as_dict() for desc, s in self.steps.items()}}

    def _resolve(self, request: ChatRequest, sample_index: int) -> Call:
        params: Dict[str, Any] = dict(self._defaults)
        params.update({k: v for k, v in request.params.items()})
        if params.get("seed") is not None and sample_index:
            params["seed"] = int(params["seed"]) + sample_index  # distinct, reproducible samples
        params = {k: v for k, v in params.items() if v is not None}
        return Call(messages=list(request.messages), params=params, sample_index=sample_index)

    def prepare(self, requests: Sequence[ChatRequest]) -> Tuple[List[Call], List[tuple], List[str], list]:
        """(calls: one per sample, owners: (request index, sample index) per call, cache keys, the cached answers
        or None per call). A cache answer is ignored under `cache=refresh` until this process has asked again."""
        calls: List[Call] = []
        owners: List[tuple] = []
        for ri, req in enumerate(requests):
            for si in range(max(1, int(req.n))):
                calls.append(self._resolve(req, si))
                owners.append((ri, si))
        keys = [cache_key(self.backend.name, self.model, c) for c in calls]
        done: List[Optional[Completion]] = [None] * len(calls)
        hits = self.cache.get_many(keys) if self.cache is not None else {}
        for i, k in enumerate(keys):
            if k in hits and not (self._refresh and k not in _REFRESHED):
                done[i] = hits[k]
        return calls, owners, keys, done

    @staticmethod
    def results(requests: Sequence[ChatRequest], owners: List[tuple], done: list) -> List[ChatResult]:
        out = [ChatResult(request=req, samples=[]) for req in requests]
        for (ri, _si), comp in zip(owners, done):
            out[ri].samples.append(comp)  # calls were created in sample order
        return out

    def generate(self, requests: Sequence[ChatRequest], desc: str = "generate") -> List[ChatResult]:
        calls, owners, keys, done = self.prepare(requests)
        todo = [i for i in range(len(calls)) if done[i] is None]
        step = self.steps.setdefault(desc, GeneratorStats())
        before = step.as_dict()
        with self._lock:
            self.stats.cache_hits += len(calls) - len(todo)
            step.cache_hits += len(calls) - len(todo)
        progress = Progress(len(calls), len(calls) - len(todo), f"{self.role}: {desc}")
        tokens = [0]

        def on_done(local_index: int, completion: Completion) -> None:
            i = todo[local_index]
            completion = _with_asked_logprobs(calls[i], completion)
            done[i] = completion
            if self.cache is not None:
                self.cache.put(keys[i], completion)
                if self._refresh and completion.ok:
                    _REFRESHED.add(keys[i])
            with self._lock:
                cost = self.price.cost(completion.prompt_tokens, completion.completion_tokens)
                for s in (self.stats, step):
                    s.calls += 1
                    s.retries += completion.retries
                    s.failures += 0 if completion.ok else 1
                    s.prompt_tokens += completion.prompt_tokens
                    s.completion_tokens += completion.completion_tokens
                    s.cost_usd += cost
                tokens[0] += completion.prompt_tokens + completion.completion_tokens
                progress.update(cached=len(calls) - len(todo), failed=self.stats.failures, tokens=tokens[0])

        try:
            if todo:
                self.backend.run([calls[i] for i in todo], on_done)
        finally:
            progress.close()
        missing = [i for i in todo if done[i] is None]
        for i in missing:  # a backend bug must not lose rows silently
            done[i] = Completion(error="backend returned no result for this call")
            with self._lock:
                self.stats.failures += 1
                step.failures += 1
        if calls:
            self._log_requests(desc, step, before)
        results = self.results(requests, owners, done)
        failed = [i for i in todo if not done[i].ok]  # type: ignore[union-attr]
        with self._lock:
            self.requests += len(calls)
        if failed:
            failures = [done[i] for i in failed]
            self._log_failures(desc, [calls[i] for i in failed], failures)  # type: ignore[arg-type]
            self._last_failed = (desc, len(calls), failures)
            # With no tolerance any failure stops the stage now; with some, a few early failures are no evidence
            # yet: the fraction is enforced once enough requests were asked, and by check_tolerance() at the end.
            if self._tolerance == 0 or self.requests >= _EVIDENCE:
                self.check_tolerance()
        return results

    def _log_requests(self, desc: str, step: GeneratorStats, before: Dict[str, Any]) -> None:
        """One line per call of `generate` (per-request lines are off: see conf/config.yaml's job_logging)."""
        d = {k: v - before[k] for k, v in step.as_dict().items()}
        log.info("[%s] %s: %d requests: %d sent, %d cached, %d retries, %d failed; %d+%d tokens, %s", self.role,
                 desc, d["calls"] + d["cache_hits"], d["calls"], d["cache_hits"], d["retries"], d["failures"],
                 d["prompt_tokens"], d["completion_tokens"], self.price.show(d["cost_usd"]) if d["calls"] else "$0")

    def check_tolerance(self) -> None:
        """Raise StageFailed when more than `max_failed_fraction` of this generator's requests failed."""
        if self._last_failed is not None and self.stats.failures > self._tolerance * self.requests:
            raise StageFailed(self._failure_message(*self._last_failed))  # type: ignore[arg-type]

    def _log_failures(self, desc: str, calls: List[Call], completions: List[Completion]) -> None:
        if self.failures_path is None:
            return
        from ifforge.secrets import redact_url

        with _FAILURES_LOCK, Path(self.failures_path).open("a", encoding="utf-8") as f:
            for call, comp in zip(calls, completions):
                last = next((m.get("content") for m in reversed(call.messages) if m.get("role") == "user"), None)
                rec = {"role": self.role, "step": desc, "model": self.model, "error": redact_url(comp.error or ""),
                       "raw": comp.raw, "prompt": str(last)[:2000] if last is not None else None,
                       "sample_index": call.sample_index}
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")

    def _failure_message(self, desc: str, asked: int, completions: List[Completion]) -> str:
        """One line: what failed, why (the commonest errors), what is kept and how to resume."""
        from ifforge.secrets import redact_url

        errors = Counter(c.error or "no result" for c in completions)
        top = "; ".join(f"{e} (x{n})" if n > 1 else e for e, n in errors.most_common(2))
        if len(errors) > 2:
            top += f"; {len(errors) - 2} other errors"
        url = self.cfg.get("base_url")
        where = f"{self.backend.name}:{self.model}" + (f" at {redact_url(str(url))}" if url else "")
        ok = asked - len(completions)
        key = {"student": "response.external.student"}.get(self.role, self.role)  # the config key of the role
        text = f"{len(completions)} of {asked} requests to the {self.role} ({where}) failed in {desc!r}: {top}; "
        if self.stats.failures > len(completions):
            text += (f"{self.stats.failures} of {self.requests} so far, over {key}.max_failed_fraction="
                     f"{self._tolerance:g}; ")
        if self.cache is not None and ok == 0 and self.stats.failures == self.requests:
            text += "no answer was received: fix the endpoint, then rerun"
        elif self.cache is not None:
            text += f"the {ok} answers received are cached: rerun to send only the requests that are missing"
            if self._refresh:
                text += f" (without {self.role}.cache=refresh, which would ask everything again)"
        else:
            text += f"nothing is cached ({key}.cache=false): a rerun sends every request again"
        if self.failures_path is not None:
            text += f" (failed requests: {self.failures_path})"
        return text

    def close(self) -> None:
        self.backend.close()


def _with_asked_logprobs(call: Call, completion: Completion) -> Completion:
    """A reply without the token log-probabilities its call asked for is a failed call, whatever the backend: the
    caller reads them (a judge's one-token verdict), so it is not cached. The backend does not retry it either (an
    endpoint that leaves them out does so every time, and each retry is paid for); its tokens still count toward
    the cost: the reply was paid for."""
    if not (completion.ok and completion.logprobs is None and call.params.get("logprobs")):
        return completion
    return replace(completion, text=None, raw=completion.text,
                   error="the reply has no token log-probabilities, which the call asked for (logprobs: true); "
                         "use an endpoint that returns them")
