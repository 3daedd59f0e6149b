"""One way to write a build step that asks an LLM.

An `LLMStep` declares what it reads and writes, its prompt template, and how to read a reply (`parse`) and what
rows a usable reply makes (`emit`). The base owns everything else, once for every strategy and response mode:

- the template and its override: the packaged `prompts/<template>`, or the user's own file at
  `templates.<key>` of the step's config node (the key is the template's file name without `.j2`, which is the
  step's name wherever a step has one prompt);
- the request: the rendered prompt as one user message, the step's own `max_tokens` cap under the user's `params`;
- the loop: choose the rows to ask, ask them all at once through `ctx.ask` (a failed request is never a reject:
  the generator fails the stage, or drops the row within its `max_failed_fraction`), parse, and put every unusable
  reply into rejects.jsonl with its raw text, the reason, and the cut-off label when the reply stopped at
  max_tokens;
- per-step counts: `ctx.count(step, key)` adds to the step's own counters (the strategy's statistics);
- structured output: a step that reads structure declares its reply's JSON `schema`. When the role's generator has
  `structured: json`, the request carries it as `response_format` (each backend enforces it its own way), the
  template is rendered with `structured=true` (same instructions, JSON answer shape) and `parse_json` reads the
  decoded value. How many replies each step could not read lands in the manifest's `replies`.

A step whose rows are optional enrichments (`passes_through`: e.g. format requirements for a sample) keeps a row
unchanged when its reply is unusable or its request failed within the tolerance; every other step drops it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Union

from ifforge.build.context import BuildContext, Row, Step, user_message
from ifforge.llm import ChatRequest
from ifforge.llm.structured import obj, response_format
from ifforge.parsing import Invalid, parse_yes_no, reject_reason
from ifforge.prompts import render

ASK, SKIP = True, False  # what `choose` says of a row; a string instead is the reason to reject it unasked


@dataclass(frozen=True)
class Reply:
    text: str
    cut_off: bool  # stopped at max_tokens: its end is missing


def _cut_off(result: Any) -> bool:
    samples = getattr(result, "samples", None) or []
    return bool(samples) and samples[0].finish_reason == "length"


class LLMStep(Step):
    template: str = ""  # under ifforge/prompts, e.g. "conifer/reframe.j2"
    role: str = "generator"  # whose model answers: generator | judge | a nested generator config (`node`)
    max_tokens: Optional[int] = None  # the step's own cap; the user's `params` win over it
    allow_cut_off: bool = False  # the step reads only the reply's start (a verdict): a cut-off reply is usable
    passes_through: bool = False  # an unusable reply leaves the row as it was instead of dropping it
    invalid_prefix: str = ""  # put before a parse error in the reject reason, e.g. "unparseable decomposition: "
    schema: Optional[Dict[str, Any]] = None  # the reply's JSON schema under structured=json; None: always free text

    def __init__(self, params: Optional[Dict[str, Any]] = None, templates: Any = None, node: Any = None):
        self.params = dict(params or {})
        self.templates = templates  # the config node of users' own prompt files, keyed by template name
        self.node = node  # the generator config of a nested role (e.g. Conifer's student)

    # -- what a step declares ---------------------------------------------------------------------------------
    def choose(self, rows: List[Row]) -> List[Union[bool, str]]:
        """Per row: ASK, SKIP (passes through unasked), or the reason to reject it without asking."""
        return [ASK] * len(rows)

    def prepare(self, rows: List[Row]) -> Any:
        """What every row's prompt shares (e.g. the originals by group), computed once per call: `batch` below."""
        return rows

    def variables(self, row: Row, batch: Any) -> Dict[str, Any]:
        """The template's variables for one row."""
        raise NotImplementedError

    def parse(self, reply: Reply, row: Row) -> Any:
        """The reply's content, or raise Invalid(reason). By default: the text, unless it is empty."""
        if not reply.text.strip():
            raise Invalid("empty response")
        return reply.text

    def emit(self, row: Row, value: Any, ctx: BuildContext, raw: str) -> Iterable[Row]:
        """The rows one parsed reply makes (reject parts of it with ctx.reject(self.name, item, why, raw))."""
        raise NotImplementedError

    def schema_for(self, row: Row) -> Dict[str, Any]:
        """The schema one row's reply is held to (a step may narrow `schema` per row, e.g. to its levels)."""
        return self.schema

    def parse_json(self, value: Any, row: Row) -> Any:
        """The content of a reply decoded from JSON (structured=json). By default the JSON goes through `parse`,
        so one set of checks serves both modes."""
        return self.parse(Reply(json.dumps(value, ensure_ascii=False), False), row)

    def dropped(self, row: Row, why: str, ctx: BuildContext) -> None:
        """Called for an asked row that made no rows because its request failed within the tolerance or its reply
        was cut off (`why`: "failed or cut off"), or its reply did not parse ("unparseable answer"): for counts."""

    # -- what the base does -----------------------------------------------------------------------------------
    def template_for(self, row: Row) -> str:
        return self.template

    def render(self, name: str, **variables: Any) -> str:
        """Packaged template `name`, or the user's own file at templates.<its file name without .j2>."""
        key = name.rsplit("/", 1)[-1].removesuffix(".j2")
        override = self.templates.get(key) if self.templates is not None else None
        return render(name, override, **variables)

    def messages(self, row: Row, batch: Any, structured: bool = False) -> List[Dict[str, str]]:
        variables = {**self.variables(row, batch), "structured": structured}  # a template may branch on it
        return user_message(self.render(self.template_for(row), **variables))

    def request(self, row: Row, batch: Any, structured: bool = False) -> ChatRequest:
        params = ({"max_tokens": self.max_tokens} if self.max_tokens else {}) | self.params
        if structured:
            params["response_format"] = response_format(self.name, self.schema_for(row))
        return ChatRequest(self.messages(row, batch, structured), params=params)

    def __call__(self, rows: List[Row], ctx: BuildContext) -> List[Row]:
        plan = self.choose(rows)
        for row, p in zip(rows, plan):
            if isinstance(p, str):
                ctx.reject(self.name, row, p)
        asked = [i for i, p in enumerate(plan) if p is ASK]
        batch = self.prepare(rows)
        structured = self.schema is not None and bool(asked) and ctx.structured(self.role, self.node)
        results = ctx.ask(self.name, [rows[i] for i in asked],
                          [self.request(rows[i], batch, structured) for i in asked],
                          role=self.role, node=self.node, allow_cut_off=self.allow_cut_off)
        made: Dict[int, List[Row]] = {}
        for i, result in zip(asked, results):
            if result is None:  # failed within the tolerance, or cut off (already a reject)
                self.dropped(rows[i], "failed or cut off", ctx)
                continue
            reply = Reply(result.text or "", _cut_off(result))
            ctx.replied(self.name, structured)  # every reply read, free text too: the card's unreadable rate
            try:
                value = self.parse_json(decode(reply), rows[i]) if structured else self.parse(reply, rows[i])
            except Invalid as e:
                ctx.reject(self.name, rows[i], self.invalid_prefix + reject_reason(e, reply.cut_off), raw=reply.text)
                ctx.replied(self.name, structured, unreadable=True)
                self.dropped(rows[i], "unparseable answer", ctx)
                continue
            made[i] = list(self.emit(rows[i], value, ctx, reply.text))
        out: List[Row] = []
        for i, (row, p) in enumerate(zip(rows, plan)):
            if i in made:
                out += made[i]
            elif p is SKIP or (p is ASK and self.passes_through):
                out.append(row)
        return out


def decode(reply: Reply) -> Any:
    try:
        return json.loads(reply.text)
    except ValueError:
        if reply.cut_off:  # a grammar-bound reply stopped by max_tokens: the cut-off label says what to raise
            raise Invalid("the JSON is unfinished") from None
        # An endpoint that ignores response_format (transformers serve 5.23 does, with a warning) answers in free text.
        raise Invalid("the reply is not the JSON its schema asks for (does the endpoint honour response_format?)") from None


class YesNoFilter(LLMStep):
    """Keeps a row when the model's verdict is `keep_on`; the other verdict and unparseable ones are rejects."""

    field = "instruction"  # the row field the prompt shows ...
    variable = "instruction"  # ... under this template variable
    keep_on = True
    drop_reason = ""
    max_tokens = 96  # a verdict and one sentence of reason
    allow_cut_off = True  # the verdict comes first; a reason cut short does not change it
    schema = obj(verdict={"type": "string", "enum": ["Yes", "No"]})

    def variables(self, row: Row, batch: Any) -> Dict[str, Any]:
        return {self.variable: row[self.field]}

    def parse(self, reply: Reply, row: Row) -> bool:
        verdict = parse_yes_no(reply.text)
        if verdict is None:
            raise Invalid("unparseable filter verdict (expected Yes or No)")
        return verdict

    def parse_json(self, value: Any, row: Row) -> bool:
        if not isinstance(value, dict) or value.get("verdict") not in ("Yes", "No"):
            raise Invalid("no verdict of Yes or No in the JSON reply")
        return value["verdict"] == "Yes"

    def emit(self, row: Row, verdict: bool, ctx: BuildContext, raw: str) -> Iterable[Row]:
        if verdict == self.keep_on:
            return [row]
        ctx.reject(self.name, row, self.drop_reason, raw=raw)
        return []

