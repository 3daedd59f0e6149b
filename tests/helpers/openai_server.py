"""A local OpenAI-compatible chat server for tests and benchmarks: real HTTP, scripted answers, injected faults.

It serves ``POST /v1/chat/completions`` and ``GET /v1/models`` on 127.0.0.1 (random port) from a background
thread, answers from scripted rules, and records every request it receives.

Scripting answers (first matching rule wins, in the order they were added)::

    def test_pipeline(openai_server, monkeypatch):
        srv = openai_server                                  # the pytest fixture; srv.url -> http://127.0.0.1:N/v1
        srv.on("Rewrite the instruction", "1. Write a haiku about rain.")    # substring of the last user message
        srv.on(re.compile(r"^Score"), lambda body: "Score: 7")                # regex, reply computed from the body
        srv.on(lambda body: body["messages"][0]["role"] == "system", "ok")    # any predicate on the parsed body
        srv.on("flaky", "fine", fault=Fault.rate_limit(retry_after=0.05, times=2))  # 429 twice, then "fine"
        srv.on("broken", fault=Fault.not_json())                               # always malformed
        srv.latency = 0.05                                                     # seconds added to every request
        ...run the code under test with base_url=srv.url...
        assert srv.count("Rewrite the instruction") == 3                     # same matchers as `on`
        assert srv.max_in_flight <= 8

Unmatched requests get a deterministic echo: ``"ECHO: " + first 50 chars of the last user message``. Replies are
cut to ``max_tokens`` words (finish_reason "length"); ``usage`` counts words. ``on(..., model="judge-model")``
restricts a rule to requests naming that model (handy when a generator and a judge share one server).

Log-probabilities: a request with ``"logprobs": true`` gets ``choices[i].logprobs.content``, one entry per word of
the reply (the first word bare, the others with their leading space), each with log-probability 0.0 and, as
``top_logprobs`` (up to the request's ``top_logprobs``, 0 when unset), itself alone. A reply (value or callable
result) may be ``Scored(text, top)`` to script the first token's alternatives, as a judge reading the top
log-probabilities of its one-token verdict sees them::

        srv.on("Which output is better", Scored("M", {"M": -0.22, "m": -1.61}))   # likeliest first, cut to k
        # the first token "M" then has logprob -0.22 (0.0 when the text's first word is not among `top`)

Without ``"logprobs": true`` a Scored reply is its text and ``logprobs`` stays null, as before.

Faults (``Fault.rate_limit``, ``http_error``, ``hang``, ``delay``, ``not_json``, ``empty_choices``,
``missing_content``, ``null_content``, ``no_logprobs``) apply to the first ``times`` matches of their rule, or always when
``times`` is None. A reply callable may also return a Fault.

Run it as its own process (benchmarks measure the client's CPU alone this way)::

    python -m tests.helpers.openai_server --port 0 --latency 0.5     # prints "URL http://127.0.0.1:N/v1"

or ``with spawn_server(latency=0.5) as srv: ...srv.url...`` from Python.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, Iterator, List, Optional, Pattern, Union

Body = Dict[str, Any]
Matcher = Union[None, str, Pattern[str], Callable[[Body], bool]]
Reply = Union[None, str, "Fault", "Scored", Callable[[Body], Union[str, "Fault", "Scored"]]]


@dataclass(frozen=True)
class Fault:
    """What goes wrong with a response. `times`: only the first k matches of the rule fail (None: all)."""

    kind: str
    status: int = 200
    retry_after: Optional[float] = None
    seconds: float = 0.0
    times: Optional[int] = None
    message: str = "injected fault"  # the error message of a status fault

    @classmethod
    def rate_limit(cls, retry_after: Optional[float] = 0.05, times: Optional[int] = None) -> "Fault":
        return cls("status", status=429, retry_after=retry_after, times=times)

    @classmethod
    def http_error(cls, status: int = 500, retry_after: Optional[float] = None, times: Optional[int] = None,
                   message: str = "injected fault") -> "Fault":
        return cls("status", status=status, retry_after=retry_after, times=times, message=message)

    @classmethod
    def hang(cls, seconds: float = 30.0, times: Optional[int] = None) -> "Fault":
        """Sit on the request (past the client's timeout), then answer normally to whoever is still there."""
        return cls("hang", seconds=seconds, times=times)

    @classmethod
    def delay(cls, seconds: float, times: Optional[int] = None) -> "Fault":
        """Extra latency for this rule only, then a normal answer."""
        return cls("delay", seconds=seconds, times=times)

    @classmethod
    def not_json(cls, times: Optional[int] = None) -> "Fault":
        return cls("not_json", times=times)

    @classmethod
    def empty_choices(cls, times: Optional[int] = None) -> "Fault":
        return cls("empty_choices", times=times)

    @classmethod
    def missing_content(cls, times: Optional[int] = None) -> "Fault":
        return cls("missing_content", times=times)

    @classmethod
    def null_content(cls, times: Optional[int] = None) -> "Fault":
        return cls("null_content", times=times)

    @classmethod
    def no_logprobs(cls, times: Optional[int] = None) -> "Fault":
        """A good reply that ignores `logprobs: true` (as some OpenAI-compatible servers do)."""
        return cls("no_logprobs", times=times)


@dataclass(frozen=True)
class Scored:
    """A reply whose first token has scripted top log-probabilities: {token: logprob}."""

    text: str
    top: Dict[str, float]


@dataclass
class Rule:
    match: Matcher
    reply: Reply = None
    fault: Optional[Fault] = None
    model: Optional[str] = None
    finish_reason: str = "stop"
    hits: int = 0  # how many requests this rule has answered (faulty or not)

    def matches(self, body: Body) -> bool:
        if self.model is not None and body.get("model") != self.model:
            return False
        return _matches(self.match, body)


@dataclass
class Received:
    body: Body
    headers: Dict[str, str]  # names in lower case
    at: float = field(default_factory=time.monotonic)


def last_user(body: Body) -> str:
    """The text of the last user message (content parts are joined), "" if none."""
    for msg in reversed(body.get("messages") or []):
        if isinstance(msg, dict) and msg.get("role") == "user":
            return _text(msg.get("content"))
    return ""


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _matches(match: Matcher, body: Body) -> bool:
    if match is None:
        return True
    if isinstance(match, str):
        return match in last_user(body)
    if isinstance(match, re.Pattern):
        return match.search(last_user(body)) is not None
    return bool(match(body))


def _words(text: str) -> int:
    return len(text.split())


class OpenAIServer:
    """The scripted server; see the module docstring. Use as a context manager or call start()/stop()."""

    def __init__(self, latency: float = 0.0, host: str = "127.0.0.1", port: int = 0):
        self.latency = latency
        self._lock = threading.Lock()
        self._rules: List[Rule] = []
        self._log: List[Received] = []
        self._in_flight = 0
        self.max_in_flight = 0
        self._ids = 0
        self._stopping = threading.Event()
        self._httpd = _HTTPServer((host, port), _Handler)
        self._httpd.owner = self
        self._thread: Optional[threading.Thread] = None

    # -- lifecycle ---------------------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """The base_url to give an OpenAI client."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "OpenAIServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="openai-test-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes hanging handlers so they do not outlive the test
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "OpenAIServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- scripting ---------------------------------------------------------------------------------------------
    def on(self, match: Matcher = None, reply: Reply = None, *, fault: Optional[Fault] = None,
           model: Optional[str] = None, finish_reason: str = "stop") -> Rule:
        """Add a rule. match: substring or compiled regex of the last user message, a predicate on the parsed
        body, or None for every request. reply: a string, a Scored, callable(body) -> str | Scored | Fault, a Fault,
        or None (echo)."""
        if isinstance(reply, Fault):
            reply, fault = None, reply
        rule = Rule(match=match, reply=reply, fault=fault, model=model, finish_reason=finish_reason)
        with self._lock:
            self._rules.append(rule)
        return rule

    def reset(self) -> None:
        """Forget rules, recorded requests and the in-flight maximum."""
        with self._lock:
            self._rules.clear()
            self._log.clear()
            self.max_in_flight = self._in_flight

    # -- inspection --------------------------------------------------------------------------------------------
    @property
    def requests(self) -> List[Body]:
        """Parsed bodies of every chat request received so far (a snapshot, oldest first)."""
        with self._lock:
            return [r.body for r in self._log]

    @property
    def received(self) -> List[Received]:
        """Like `requests`, with headers and arrival times."""
        with self._lock:
            return list(self._log)

    def count(self, match: Matcher = None) -> int:
        """How many chat requests matched (same matchers as `on`)."""
        return sum(1 for body in self.requests if _matches(match, body))

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    # -- answering ---------------------------------------------------------------------------------------------
    def _answer(self, body: Body, headers: Dict[str, str]) -> tuple[int, Dict[str, str], bytes]:
        with self._lock:
            self._log.append(Received(body=body, headers=headers))
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            self._ids += 1
            rid = self._ids
            rule = next((r for r in self._rules if r.matches(body)), None)
            fault = None
            if rule is not None:
                rule.hits += 1
                if rule.fault is not None and (rule.fault.times is None or rule.hits <= rule.fault.times):
                    fault = rule.fault
        try:
            if self.latency:
                self._stopping.wait(self.latency)
            reply = rule.reply if rule is not None else None
            text = reply(body) if callable(reply) else reply
            if isinstance(text, Fault):
                fault, text = text, None
            scored = text if isinstance(text, Scored) else None
            if scored is not None:
                text = scored.text
            if text is None:
                text = "ECHO: " + last_user(body)[:50]
            return self._respond(body, rid, text, rule.finish_reason if rule else "stop", fault, scored)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _respond(self, body: Body, rid: int, text: str, finish_reason: str, fault: Optional[Fault],
                 scored: Optional[Scored] = None) -> tuple[int, Dict[str, str], bytes]:
        kind = fault.kind if fault else None
        if kind in ("hang", "delay"):
            self._stopping.wait(fault.seconds)
        if kind == "status":
            headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
            err = {"error": {"message": f"{fault.message} ({fault.status})", "type": "test_fault", "code": None}}
            return fault.status, headers, json.dumps(err).encode()
        if kind == "not_json":
            return 200, {"Content-Type": "text/html"}, b"<html>502 Bad Gateway (injected)</html>"

        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        words = text.split()
        if max_tokens and len(words) > int(max_tokens):
            text, finish_reason = " ".join(words[: int(max_tokens)]), "length"
        n = max(1, int(body.get("n") or 1))
        message: Dict[str, Any] = {"role": "assistant", "content": text}
        if kind == "missing_content":
            message.pop("content")
        elif kind == "null_content":
            message["content"] = None
        logprobs = None
        if body.get("logprobs") and kind != "no_logprobs":
            logprobs = {"content": _token_logprobs(text, int(body.get("top_logprobs") or 0), scored)}
        choices = [{"index": i, "message": dict(message), "finish_reason": finish_reason, "logprobs": logprobs}
                   for i in range(n)]
        if kind == "empty_choices":
            choices = []
        prompt_tokens = sum(_words(_text(m.get("content"))) for m in body.get("messages") or [] if isinstance(m, dict))
        completion_tokens = _words(text) * n
        data = {"id": f"chatcmpl-test-{rid}", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model", "test-model"), "choices": choices,
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens}}
        return 200, {}, json.dumps(data).encode()


def _token_logprobs(text: str, k: int, scored: Optional[Scored]) -> List[Dict[str, Any]]:
    """`logprobs.content` for a reply, one token per word (see the module docstring), with OpenAI's `bytes`."""

    def token(text: str, logprob: float) -> Dict[str, Any]:
        return {"token": text, "logprob": logprob, "bytes": list(text.encode())}

    content = []
    for n, word in enumerate(text.split()):
        word = word if n == 0 else " " + word
        top = dict(scored.top) if scored is not None and n == 0 else {word: 0.0}
        likeliest = sorted(top.items(), key=lambda item: -item[1])[:k]
        content.append({**token(word, top.get(word, 0.0)), "top_logprobs": [token(t, lp) for t, lp in likeliest]})
    return content


class _HTTPServer(ThreadingHTTPServer):
    # The default backlog (5) drops connections when many clients connect at once; the client then retries
    # after ~1 s, which would show up as fake latency in tests and benchmarks.
    request_queue_size = 1024
    daemon_threads = True
    allow_reuse_address = True
    owner: OpenAIServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that gave up (timeouts, hangs) leave broken pipes behind: expected here, not worth a traceback.
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError, TimeoutError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real endpoint; every response carries Content-Length
    # Without TCP_NODELAY a small response waits for the client's delayed ACK (~40 ms) before it leaves.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests and benchmarks read stdout
        pass

    def _send(self, status: int, payload: bytes, headers: Optional[Dict[str, str]] = None) -> None:
        headers = headers or {}
        self.send_response(status)
        self.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
        self.send_header("Content-Length", str(len(payload)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/v1/models":
            data = {"object": "list", "data": [{"id": "test-model", "object": "model", "owned_by": "test"}]}
            self._send(200, json.dumps(data).encode())
        else:
            self._send(404, b'{"error": {"message": "not found"}}')

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send(404, b'{"error": {"message": "not found"}}')
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self._send(400, b'{"error": {"message": "request body is not JSON"}}')
            return
        if not isinstance(body, dict) or body.get("stream"):
            self._send(400, b'{"error": {"message": "the test server answers non-streaming JSON requests only"}}')
            return
        headers_in = {k.lower(): v for k, v in self.headers.items()}
        status, headers, payload = self.server.owner._answer(body, headers_in)
        try:
            self._send(status, payload, headers)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client left (timed out); nothing to answer


# -- separate process -------------------------------------------------------------------------------------------
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass
class Spawned:
    url: str
    process: subprocess.Popen

    def cpu_seconds(self) -> Optional[float]:
        """CPU time the server process has used so far (Linux /proc), None where unavailable."""
        try:
            with open(f"/proc/{self.process.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
        except (OSError, ValueError, IndexError):
            return None


@contextlib.contextmanager
def spawn_server(latency: float = 0.0, timeout: float = 30.0) -> Iterator[Spawned]:
    """Run the server in a child process (echo replies, fixed latency); yields its url and process."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [_REPO_ROOT, os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen([sys.executable, "-m", "tests.helpers.openai_server", "--port", "0",
                             "--latency", str(latency)], cwd=_REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "URL http://127.0.0.1:N/v1", printed once the socket listens
        if not line.startswith("URL "):
            raise RuntimeError(f"test server did not start (exit code {proc.poll()}): {line!r}")
        yield Spawned(url=line.split()[1], process=proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()


def main(argv: Optional[List[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    args = ap.parse_args(argv)
    server = OpenAIServer(latency=args.latency, host=args.host, port=args.port)
    print(f"URL http://{args.host}:{server.port}/v1", flush=True)
    try:
        server._httpd.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


# -- pytest fixture ---------------------------------------------------------------------------------------------
try:
    import pytest
except ImportError:  # the server process of a benchmark does not need pytest
    pytest = None  # type: ignore[assignment]

if pytest is not None:
    @pytest.fixture
    def openai_server() -> Iterator[OpenAIServer]:
        """A started OpenAIServer (no rules, no latency), stopped after the test."""
        with OpenAIServer() as server:
            yield server


if __name__ == "__main__":
    main()
