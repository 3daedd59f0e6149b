"""The `openai` backend: any OpenAI-compatible chat endpoint (OpenAI, vLLM/TGI servers, proxies) through the
official async SDK.

One asyncio loop per backend, in its own thread: `max_concurrency` workers share one HTTP connection pool,
optional request/token rate limits gate every HTTP attempt, and the SDK does the retrying (exponential backoff with jitter, honouring
Retry-After) on 429, 5xx, timeouts and connection errors. A 200 whose body is not a usable completion (not JSON,
no choices, no content) is retried here, from the same retry budget. Every call ends in exactly one `on_done`.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import random
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

from aiolimiter import AsyncLimiter
from omegaconf import DictConfig, ListConfig, OmegaConf

from ifforge.errors import UserError
from ifforge.llm import BACKENDS
from ifforge.llm.base import Backend, OnDone
from ifforge.llm.types import Call, Completion

if TYPE_CHECKING:  # annotations only: the modules themselves load with the first request (see _Session._start)
    import httpx2
    import openai

_RAW_SNIPPET = 2000  # chars of a bad body kept in Completion.raw (for rejects.jsonl), enough to see what went wrong
# Backoff for malformed 200s, the same schedule the SDK uses for 5xx: 0.5 s doubling up to 8 s, minus <=25% jitter.
_BACKOFF_BASE, _BACKOFF_MAX = 0.5, 8.0


class _Attempts:
    """Per-call state that the httpx request hook sees through a context variable (each worker task has its
    own context, and the hook runs inside the task that awaits the SDK call)."""

    __slots__ = ("sent", "tokens")

    def __init__(self, tokens: int):
        self.sent = 0  # HTTP requests really sent for this call, SDK retries included
        self.tokens = tokens


_CURRENT: contextvars.ContextVar[_Attempts] = contextvars.ContextVar("ifforge_openai_call")


@BACKENDS.register("openai")
class OpenAIBackend(Backend):
    """Runs calls on an event loop in a thread of its own that lives as long as the backend: the connection pool,
    the rate limiters and the concurrency bound then carry over from one generate() to the next (and are shared
    by threads calling generate() at once), and run() works the same from plain code and from inside a running
    loop (a notebook)."""

    name = "openai"

    def __init__(self, cfg: Any):
        super().__init__(cfg)
        self._lock = threading.Lock()
        self._loop: Optional[_LoopThread] = None

    def _api_key(self) -> Optional[str]:
        return os.environ.get(str(self.cfg.api_key_env or "OPENAI_API_KEY")) or None

    def check(self) -> None:
        if self._api_key() is None:
            name = str(self.cfg.api_key_env or "OPENAI_API_KEY")
            where = self.cfg.base_url or "OpenAI"
            raise UserError(f"environment variable {name} is not set: export it with your API key for {where} "
                            f"(or set generator.api_key_env)")

    def run(self, calls: Sequence[Call], on_done: OnDone) -> None:
        if not calls:
            return
        self.check()  # the key may have been unset since make_generator()
        with self._lock:
            if self._loop is None or not self._loop.usable():  # first run, or we are a forked child
                self._loop = _LoopThread(_Session(self.cfg, self._api_key() or ""))
            loop = self._loop
        future = asyncio.run_coroutine_threadsafe(loop.session.run(calls, on_done), loop.loop)
        try:
            future.result()
        except BaseException:
            future.cancel()  # Ctrl-C in the caller: stop sending, the calls not done yet are reported missing
            raise

    def close(self) -> None:
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is not None:
            loop.stop()


class _LoopThread:
    """An asyncio loop running forever in a daemon thread, plus the session that lives on it."""

    def __init__(self, session: "_Session"):
        self.session = session
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="ifforge-openai", daemon=True)
        self.thread.start()
        # A backend dropped without close() must not leave its thread and sockets behind.
        self._finalizer = weakref.finalize(self, _stop_loop, self.loop, self.thread, session)

    def usable(self) -> bool:
        return self.pid == os.getpid() and self.thread.is_alive()

    def stop(self) -> None:
        self._finalizer()


def _stop_loop(loop: asyncio.AbstractEventLoop, thread: threading.Thread, session: "_Session") -> None:
    if not thread.is_alive():
        return
    if threading.current_thread() is thread:  # dropped from a callback on the loop itself: cannot wait for it
        loop.call_soon(loop.stop)
        return
    try:
        asyncio.run_coroutine_threadsafe(session.aclose(), loop).result(timeout=10)
    except Exception:  # closing is best effort: the sockets die with the loop anyway
        pass
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)
    if not thread.is_alive():
        loop.close()


class _Session:
    """Everything that belongs to the backend's event loop: the SDK client and its connection pool, the rate
    limiters and the concurrency bound. Built lazily on that loop, since all of them bind to the loop that first
    uses them."""

    def __init__(self, cfg: Any, api_key: str):
        self.cfg = cfg
        self.api_key = api_key
        self.concurrency = max(1, int(cfg.max_concurrency))
        self.max_retries = max(0, int(cfg.max_retries))
        self.timeout = float(cfg.timeout)
        self.extra: Dict[str, Any] = dict(_plain(cfg.extra) or {})
        self.model = str(cfg.model)
        self.client: Optional[openai.AsyncOpenAI] = None
        self.slots: Optional[asyncio.Semaphore] = None
        self.rpm: Optional[AsyncLimiter] = None
        self.tpm: Optional[AsyncLimiter] = None

    def _start(self) -> None:
        # The SDK and its HTTP client are imported when the first request is sent (~1 s here): registering this
        # backend, checking its key and a build answered from the response cache never need them.
        import httpx2
        import openai

        cfg = self.cfg
        # rpm paces requests evenly (bucket of one) so no minute window ever sees more than `rpm`; tpm allows
        # a minute's worth of tokens as a burst, since one request may need thousands of tokens at once.
        if cfg.rpm:
            self.rpm = AsyncLimiter(1, 60.0 / float(cfg.rpm))
        if cfg.tpm:
            self.tpm = AsyncLimiter(float(cfg.tpm), 60.0)
        self.slots = asyncio.Semaphore(self.concurrency)
        # Room for every worker's connection in the pool, all kept alive: reconnecting costs CPU on both ends.
        limits = httpx2.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        http = httpx2.AsyncClient(limits=limits, timeout=httpx2.Timeout(self.timeout, connect=min(self.timeout, 10.0)),
                                  follow_redirects=True, event_hooks={"request": [self._before_send]})
        self.client = openai.AsyncOpenAI(api_key=self.api_key, base_url=self.cfg.base_url or None,
                                         max_retries=self.max_retries, timeout=self.timeout, http_client=http)

    async def aclose(self) -> None:
        if self.client is not None:
            await self.client.close()

    async def run(self, calls: Sequence[Call], on_done: OnDone) -> None:
        if self.client is None:
            self._start()
        assert self.slots is not None
        pending = iter(enumerate(calls))

        async def worker() -> None:
            # A fixed set of workers pulling from one iterator, rather than a task per call created up front;
            # the semaphore keeps the bound when several runs share the loop.
            for index, call in pending:
                async with self.slots:
                    try:
                        completion = await self._one(call)
                    except Exception as exc:  # a bug here must cost one call, not the run
                        completion = Completion(error=f"backend error: {type(exc).__name__}: {_short(str(exc))}")
                on_done(index, completion)

        await asyncio.gather(*(worker() for _ in range(min(self.concurrency, len(calls)))))

    async def _before_send(self, request: httpx2.Request) -> None:
        """httpx request hook: runs before every HTTP attempt, SDK retries included."""
        state = _CURRENT.get(None)
        if state is None:
            return
        state.sent += 1
        if self.rpm is not None:
            await self.rpm.acquire()
        if self.tpm is not None:
            await self.tpm.acquire(min(state.tokens, self.tpm.max_rate))

    def _request_body(self, call: Call) -> Tuple[Dict[str, Any], int]:
        """The JSON body of one chat request, and its token estimate for the tpm limiter."""
        # Config extras (engine args such as top_k) < the call's params (sampling, response_format, ...) < what
        # this backend owns: the model, the messages, and n=1 (the base class fans out n itself).
        body: Dict[str, Any] = dict(self.extra)
        for key, value in call.params.items():
            body[key] = _plain(value)
        body.update(model=self.model, messages=call.messages, n=1)
        chars = sum(len(m["content"]) for m in call.messages if isinstance(m.get("content"), str))
        return body, chars // 4 + int(call.params.get("max_tokens") or 0)

    async def _one(self, call: Call) -> Completion:
        import httpx2
        import openai

        started = time.perf_counter()
        try:
            body, tokens = self._request_body(call)
        except Exception as exc:  # a bad param on one call must not stop the others
            return Completion(error=f"bad request params: {type(exc).__name__}: {exc}")
        state = _Attempts(tokens)
        _CURRENT.set(state)
        while True:
            # One budget for the whole call: SDK retries and malformed-body retries together send at most
            # max_retries + 1 requests.
            retries_left = self.max_retries - state.sent
            try:
                # The SDK's generic POST: its retry loop, timeouts and auth, minus the typed-params transform of
                # chat.completions.create, which costs ~0.4 ms of CPU per request to turn plain dicts into the
                # same plain dicts. cast_to=Response hands back the raw body for _parse.
                response = await self.client.post("/chat/completions", body=body, cast_to=httpx2.Response,
                                                  options={"max_retries": retries_left})
                content = response.content
            except openai.APIStatusError as exc:  # 4xx the SDK does not retry, or retries exhausted
                error = f"HTTP {exc.status_code}: {_short(exc.message)}"
                if exc.status_code in (400, 422) and "response_format" in call.params:
                    error = (f"the endpoint refused the JSON schema (response_format json_schema) that "
                             f"structured=json sends; set structured=off for this model ({error})")
                return self._failed(error, _snippet(exc.response.content), state, started)
            except openai.APITimeoutError:
                return self._failed(f"timed out after {self.timeout:g} s", None, state, started)
            except openai.APIConnectionError as exc:
                return self._failed(f"connection error: {_short(str(exc.__cause__ or exc))}", None, state, started)
            except Exception as exc:
                return self._failed(f"{type(exc).__name__}: {_short(str(exc))}", None, state, started)
            completion, reason = _parse(content, logprobs=bool(call.params.get("logprobs")))
            if completion is not None:
                completion.latency = time.perf_counter() - started
                completion.retries = max(0, state.sent - 1)
                return completion
            raw = _snippet(content)
            if state.sent > self.max_retries:
                return self._failed(f"malformed response: {reason}", raw, state, started)
            backoff = min(_BACKOFF_BASE * 2 ** (state.sent - 1), _BACKOFF_MAX)
            await asyncio.sleep(backoff * (1 - 0.25 * random.random()))

    def _failed(self, error: str, raw: Optional[str], state: _Attempts, started: float) -> Completion:
        if self.api_key:  # an endpoint may echo what it was sent; the key never leaves this object
            error = error.replace(self.api_key, "***")
            raw = raw.replace(self.api_key, "***") if raw else raw
        return Completion(error=error, raw=raw, latency=time.perf_counter() - started,
                          retries=max(0, state.sent - 1))


def _parse(body: bytes, logprobs: bool = False) -> Tuple[Optional[Completion], str]:
    """A Completion from a 200 body, or (None, why it is unusable). Parsed by hand: cheaper than the SDK's models,
    and a bad body becomes a reason instead of an exception. `logprobs`: the call asked for them."""
    try:
        data = json.loads(body)
    except ValueError:
        return None, "body is not JSON"
    if not isinstance(data, dict):
        return None, "body is not a JSON object"
    choices = data.get("choices")
    if not choices or not isinstance(choices, list):
        err = data.get("error")
        if isinstance(err, dict) and err.get("message"):
            return None, f"error in body: {_short(str(err['message']))}"
        return None, "no choices"
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str):
        return None, "choice has no message.content"
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    finish = choice.get("finish_reason")
    return Completion(text=content, finish_reason=finish if isinstance(finish, str) else None,
                      prompt_tokens=_count(usage.get("prompt_tokens")),
                      completion_tokens=_count(usage.get("completion_tokens")),
                      logprobs=_token_logprobs(choice.get("logprobs")) if logprobs else None), ""


def _token_logprobs(value: Any) -> Optional[List[Dict[str, Any]]]:
    """`choice.logprobs.content` in the shape Completion.logprobs keeps (token, logprob, top_logprobs; the byte
    lists dropped), or None when it is missing or malformed: the generator then fails the call, which asked for them."""
    content = value.get("content") if isinstance(value, dict) else None
    if not isinstance(content, list):
        return None
    try:
        return [{**_token(entry), "top_logprobs": [_token(top) for top in entry.get("top_logprobs") or []]}
                for entry in content]
    except (TypeError, ValueError, KeyError, AttributeError):
        return None


def _token(entry: Any) -> Dict[str, Any]:
    token, logprob = entry["token"], entry["logprob"]
    if not isinstance(token, str) or isinstance(logprob, bool) or not isinstance(logprob, (int, float)):
        raise ValueError("not a token and its log-probability")
    return {"token": token, "logprob": float(logprob)}


def _count(value: Any) -> int:
    """A token count from `usage`; 0 when absent or not a number (a usage oddity is no reason to fail a call)."""
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def _plain(value: Any) -> Any:
    """OmegaConf lists/dicts (config defaults such as `stop` or `extra`) as plain JSON-able containers."""
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


def _snippet(body: Optional[bytes]) -> Optional[str]:
    if not body:
        return None
    return body[:_RAW_SNIPPET].decode("utf-8", errors="replace")


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
