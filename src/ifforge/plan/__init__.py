"""`ifforge ... plan=true`: what a run would do, printed without doing it.

For each stage in `stages`: whether its artifact would be built or reused (the same fingerprints and checks as a
run), how many LLM requests it would send and what they would cost. Nothing is sent (no API key is needed),
trained, built or marked done; the response cache is only read. Request counts are exact where the prompts are
known and their answers are not cached (a build's first step, the model under test's answers), and upper bounds
(`<=`) where prompts depend on replies not received yet. Costs are upper bounds too: every reply is assumed to run
to its max_tokens, and prompts are estimated at 4 characters per token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List

from ifforge.errors import UserError
from ifforge.plan.requests import CHARS_PER_TOKEN, Line, Lines

HEADER = (f"ifforge plan (plan=true): nothing is sent, trained, built or written.\n"
          f"  requests: N are not in the response cache and would be sent; <=N is at most N (their prompts depend "
          f"on replies not received yet)\n"
          f"  cost: at most, assuming every reply runs to its max_tokens and prompts of {CHARS_PER_TOKEN} characters "
          f"per token; cached answers cost nothing")


@dataclass
class StagePlan:
    name: str
    action: str  # build | reuse | rebuild (why)
    path: Path
    notes: List[str] = field(default_factory=list)
    detail: Any = None  # BuildPlan | EvalPlan


def show(cfg: Any, stages: List[str]) -> None:
    plans, lines = make(cfg, stages)
    print(render(plans, lines))


def make(cfg: Any, stages: List[str]) -> tuple[List[StagePlan], Lines]:
    from ifforge.pipeline import Runner, get_stage

    runner, lines = Runner(cfg), Lines()
    hashes = str(cfg.verify) == "hash"

    def reusable(art: Any, refresh: bool = False) -> bool:
        return art.done and not refresh and art.problem(hashes) is None

    plans = []
    for name in stages:
        stage = get_stage(name)
        art = runner.artifact(name)
        plan = StagePlan(name, _action(art, stage.refreshes(cfg), hashes), art.path)
        plans.append(plan)
        try:
            stage.preflight(cfg)
        except UserError as e:
            plan.notes.append(f"a real run stops here before any work: {e}")
        ups = {up: runner.artifact(up) for up in stage.upstream(cfg)}
        for up, a in ups.items():
            if up not in stages and not reusable(a):
                plan.notes.append(f"needs the {up!r} artifact {a.path}, which is not built: a real run stops "
                                  f"(stages=[{up},{name}] builds it)")
        if plan.action == "reuse":
            continue
        try:
            plan.detail = _detail(cfg, name, ups, lines, reusable)
        except UserError as e:
            plan.notes.append(f"cannot plan its requests: {e}")
    return plans, lines


def _action(art: Any, refresh: bool, hashes: bool) -> str:
    if not art.done:
        return "build"
    if refresh:
        return "rebuild (a generator it uses has cache=refresh)"
    problem = art.problem(hashes)
    return "reuse" if problem is None else f"rebuild (damaged: {problem})"


def _detail(cfg: Any, name: str, ups: Dict[str, Any], lines: Lines, reusable: Any) -> Any:
    if name == "build":
        from ifforge.plan.build import plan_build

        return plan_build(cfg, lines)
    if name == "eval":
        from ifforge.plan.eval import plan_eval

        return plan_eval(cfg, ups, lines, reusable)
    return None  # train sends no LLM request


# -- printing ---------------------------------------------------------------------------------------------------

def _requests(n: int, exact: bool) -> str:
    return str(n) if exact else f"<={n}"


def _cost(line: Line) -> str:
    if line.price.prompt is None and line.price.completion is None:
        return "price unknown" if line.requests else "$0"
    return f"<=${line.cost:.4f}" if line.requests else "$0"


def _table(lines: List[Line]) -> List[str]:
    rows = [("step", "role", "requests", "cached", "cost")]
    rows += [(x.step, x.role, _requests(x.requests, x.exact), str(x.cached), _cost(x)) for x in lines]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def _sum(lines: List[Line]) -> str:
    n = sum(x.requests for x in lines)
    exact = all(x.exact for x in lines)
    usd = sum(x.cost for x in lines)
    unknown = sorted({x.role for x in lines if x.requests and not x.price.known})
    if unknown and not any(x.requests and x.price.known for x in lines):
        return f"{_requests(n, exact)} requests, price unknown ({', '.join(unknown)})"
    text = f"{_requests(n, exact)} requests, <=${usd:.4f}"
    return text + (f" plus the requests of unknown price ({', '.join(unknown)})" if unknown else "")


def render(plans: List[StagePlan], lines: Lines) -> str:
    out = [HEADER, ""]
    for p in plans:
        out.append(f"[{p.name}] would {p.action} {p.path}")
        detail = p.detail
        seeds = getattr(detail, "seeds", None)
        if seeds is not None:
            out.append(f"  {seeds} seeds")
        for s in getattr(detail, "suites", []):
            what = "would reuse" if s.reuse else "would build"
            items = f", {s.items} items" if s.items is not None else ""
            out.append(f"  suite {s.name}: {what} {s.path}{items}" + (f"; {s.note}" if s.note else ""))
        mine = lines.of(p.name)
        if mine:
            out += _table(mine)
        for note in getattr(detail, "notes", []):
            out.append(f"  assumed: {note}")
        out += [f"  note: {n}" for n in p.notes]
        if p.name == "train" and p.action != "reuse":
            out.append("  trains the model: no LLM request")
        if mine:
            out.append(f"  stage: {_sum(mine)}")
    everything = list(lines.items.values())
    out += ["", f"total: {_sum(everything)}"]
    prices: Dict[str, str] = {}
    for x in everything:
        prices.setdefault(f"{x.role} {x.model}", x.price.describe())
    if prices:
        out += ["prices:"] + [f"  {who}: {what}" for who, what in prices.items()]
    return "\n".join(out)

