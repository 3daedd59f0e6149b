"""The build stage's plan: its real steps run on the seeds with the plan's generator, so every request whose prompt
is known is rendered exactly and looked up in the response cache (a fully cached build plans to send nothing).

A row whose request is not cached cannot go further: what it would become is unknown. From there on the plan
counts *pending* rows instead, per seed (with every other row of the seed, which a later step may read together
with it), with each step's most rows per row (`fan_out`), a step's cap on a seed's rows (`seed_cap`) and one
request per pending row for a step that asks: an upper bound, which the printed plan marks with `<=`.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional, Tuple

from ifforge.build.context import BuildContext, Rejects, Step
from ifforge.errors import UserError
from ifforge.plan.requests import Lines, PlanGenerator, open_cache, tokens_of


@dataclass
class PlanContext(BuildContext):
    """Remembers the rows whose request the cache could not answer (what they become is unknown), by seed: a step
    may read a seed's rows together (a variant is answered by revising its original's answer)."""

    pending: set = field(default_factory=set)  # id() of the rows asked this step and not answered
    missed: Counter = field(default_factory=Counter)  # seed id -> rows asked this step and not answered
    pending_seeds: set = field(default_factory=set)  # every seed with a pending row so far

    def ask(self, step: str, rows: Any, requests: Any, role: str = "generator", node: Any = None,
            allow_cut_off: bool = False) -> Any:
        out = super().ask(step, rows, requests, role=role, node=node, allow_cut_off=allow_cut_off)
        for row, m in zip(rows, self.generator(role, node).last_missed):
            if m:
                self.pending.add(id(row))
                self.missed[row.get("seed_id")] += 1
                self.pending_seeds.add(row.get("seed_id"))
        return out


@dataclass
class BuildPlan:
    seeds: Optional[int]  # None: not readable here
    notes: List[str] = field(default_factory=list)  # the assumptions behind the upper bounds


def _schema_cap(schema: Any, prop: str) -> int:
    return int(schema["properties"][prop]["maxItems"])


def fan_out(step: Step, cfg: Any) -> Tuple[int, Optional[str]]:
    """At most how many rows a step makes of one row, and the assumption behind it when the config sets no bound.
    Filters, answers and selections make at most one."""
    from ifforge.build.augment.evol_instruct import Unfold
    from ifforge.build.conifer.steps import Recombine, ReframeQueries
    from ifforge.build.demorecon.steps import Decompose, ModifyReconstruct

    if isinstance(step, ModifyReconstruct):  # the seed and one variant per sub-instruction
        most = cfg.augmentation.get("max_sub_instructions")
        if most is not None:
            return 1 + int(most), None
        cap = _schema_cap(Decompose.schema, "instructions")
        return 1 + cap, (f"at most {cap} sub-instructions per seed, the cap of the structured reply "
                         f"(augmentation.max_sub_instructions=N bounds free text too)")
    if isinstance(step, ReframeQueries):
        if step.opts.max_forms:
            return int(step.opts.max_forms), None
        cap = _schema_cap(ReframeQueries.schema, "queries")
        return cap, (f"at most {cap} reframed queries per seed, the cap of the structured reply "
                     f"(augmentation.reframe.max_forms=N bounds free text too)")
    if isinstance(step, Recombine):  # one instruction per difficulty level
        return int(step.opts.levels), None
    if isinstance(step, Unfold):  # the seed and one evolution per round
        return int(step.keep_seeds) + int(cfg.augmentation.rounds), None
    return 1, None


def seed_cap(step: Step) -> Optional[int]:
    """At most how many rows of one seed a step keeps, when it caps them."""
    from ifforge.build.demorecon.steps import SelectVariants

    if isinstance(step, SelectVariants) and step.variants_per_seed is not None:
        # the original with variants_per_seed variants, or an eval seed with all of its eval_sub_instructions
        return 1 + max(int(step.variants_per_seed), int(step.eval_sub_instructions))
    return None


def _shape(step: Step, ctx: PlanContext) -> Optional[Tuple[PlanGenerator, int, int]]:
    """(generator, max_tokens, template tokens) of one request of a step that asks, else None."""
    from ifforge.build.demorecon.steps import CompareModes
    from ifforge.build.step import LLMStep
    from ifforge.prompts import PROMPTS_DIR

    if isinstance(step, CompareModes):  # answers in the other response mode, with the response params
        gen = ctx.generator("generator")
        params, own, template, override = dict(step.params or {}), None, "", None
    elif isinstance(step, LLMStep):
        gen = ctx.generator(step.role, step.node)
        params, own, template = step.params, step.max_tokens, step.template
        key = template.rsplit("/", 1)[-1].removesuffix(".j2")
        override = step.templates.get(key) if step.templates is not None and template else None
    else:
        return None
    max_tokens = int(params.get("max_tokens") or own or gen.cfg.max_tokens)
    path = Path(str(override)).expanduser() if override else PROMPTS_DIR / template if template else None
    return gen, max_tokens, tokens_of(len(path.read_text(encoding="utf-8"))) if path else 0


def plan_build(cfg: Any, lines: Lines) -> BuildPlan:
    from ifforge.build.seeds import load_seeds
    from ifforge.stages.build import BuildStage

    _, steps, _ = BuildStage().steps(cfg)
    cache = open_cache(cfg.paths.get("cache"))
    plan = BuildPlan(seeds=None)
    try:
        with tempfile.TemporaryDirectory(prefix="ifforge-plan-") as tmp:
            rejects = Rejects(Path(tmp) / "rejects.jsonl")
            ctx = PlanContext(cfg=cfg, out=Path(tmp), rejects=rejects,
                              make_generator=lambda role, node: PlanGenerator(cfg[role] if node is None else node,
                                                                              cache, role, "build", lines))
            try:
                rows, pending = _seeds(cfg, load_seeds, plan)
                reply = 0  # tokens of the latest reply a pending row's prompt may quote
                for step in steps:
                    ctx.pending, ctx.missed = set(), Counter()
                    shape = _shape(step, ctx)
                    if shape is not None and pending:
                        gen, max_tokens, template = shape
                        lines.get("build", gen, step.name).add_more(sum(pending), template + reply, max_tokens)
                    out = step(rows, ctx)
                    most, note = fan_out(step, cfg)
                    if note and (pending or ctx.missed) and note not in plan.notes:
                        plan.notes.append(note)
                    # Known from here on: the rows of seeds with no pending row. The others (an unanswered row
                    # passed through as it was among them) are counted, per seed, as pending rows.
                    rows, moved = [], Counter()
                    for r in out:
                        if id(r) in ctx.pending:
                            continue
                        if r.get("seed_id") in ctx.pending_seeds:
                            moved[r.get("seed_id")] += 1
                        else:
                            rows.append(r)
                    pending = [n * most for n in pending]
                    pending += [ctx.missed[seed] * most + moved[seed] for seed in ctx.missed.keys() | moved.keys()]
                    cap = seed_cap(step)
                    if cap is not None:
                        pending = [min(n, cap) for n in pending]
                    if shape is not None:
                        reply = shape[1]
                _contamination(cfg, ctx, lines, plan, reply)
            finally:
                rejects.close()
    finally:
        if cache is not None:
            cache.close()
    return plan


def _contamination(cfg: Any, ctx: PlanContext, lines: Lines, plan: BuildPlan, reply: int) -> None:
    """The contamination report's judge pass (contamination.llm): at most top_k pairs per test item, each prompt the
    template, the test item and a training instruction (at most the build's longest reply)."""
    from ifforge.build.stats import contamination

    if not contamination.uses_judge(cfg):
        return
    try:
        tests = contamination.load_test_sets(cfg)
    except UserError as e:
        plan.notes.append(f"the contamination judge pass is not counted: its test sets cannot be read here ({e})")
        return
    from ifforge.prompts import PROMPTS_DIR

    own = cfg.contamination.templates.get("rephrase")
    template = len((Path(str(own)).expanduser() if own else PROMPTS_DIR / "contamination" / "rephrase.j2")
                   .read_text(encoding="utf-8"))
    gen = ctx.make_generator("judge", None)
    line = lines.get("build", gen, "contamination")
    top_k = int(cfg.contamination.top_k)
    for texts in tests.values():
        for text in texts:
            line.add_more(top_k, tokens_of(template + len(text)) + reply, int(gen.cfg.max_tokens))


def _seeds(cfg: Any, load: Any, plan: BuildPlan) -> Tuple[List[Any], List[int]]:
    """(the seeds, no pending seed) or, when they cannot be read here (a hub dataset offline), (none, seeds.limit
    pending seeds of one row each)."""
    try:
        rows = load(cfg.seeds, lambda row, reason: None)
    except UserError as e:
        most = cfg.seeds.get("limit") or cfg.seeds.get("sample")
        if most is None:
            raise UserError(f"the seeds cannot be read here ({e}); seeds.limit=N plans with at most N") from None
        plan.notes.append(f"the seeds cannot be read here ({e}): at most seeds.limit/sample={most}")
        return [], [1] * int(most)
    plan.seeds = len(rows)
    return rows, []
