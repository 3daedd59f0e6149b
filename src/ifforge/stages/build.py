"""The build stage: seeds -> optional seed filter -> augmentation -> responses -> splits, in one artifact.

Fingerprint: seeds, generator (minus runtime-only knobs such as concurrency), augmentation, response, and the
judge when the strategy or response mode uses one.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, Sequence

from omegaconf import DictConfig

from ifforge.artifacts import Artifact, file_digests
from ifforge.config import GENERATOR_RUNTIME_FIELDS
from ifforge.errors import StageFailed
from ifforge.pipeline import STAGES, Stage, plain
from ifforge.registry import discover

log = logging.getLogger("ifforge")


def generator_slice(node: Any) -> Dict[str, Any]:
    return {k: v for k, v in plain(node).items() if k not in GENERATOR_RUNTIME_FIELDS}


def without(node: Any, dotted: Sequence[str]) -> Dict[str, Any]:
    """`node` as plain data minus the dotted keys (settings that cannot change the output)."""
    out = plain(node)
    for key in dotted:
        *parents, last = key.split(".")
        d = out
        for p in parents:
            d = d.get(p) if isinstance(d, dict) else None
        if isinstance(d, dict):
            d.pop(last, None)
    return out


def _parts(cfg: DictConfig):
    from ifforge.build.augment import AUGMENTATIONS
    from ifforge.build.respond import RESPONSES

    discover("ifforge.build.augment")
    discover("ifforge.build.respond")
    return AUGMENTATIONS.get(cfg.augmentation.name)(cfg.augmentation), RESPONSES.get(cfg.response.name)(cfg.response)


@STAGES.register("build")
class BuildStage(Stage):
    name = "build"

    def config(self, cfg: DictConfig) -> Dict[str, Any]:
        aug, resp = _parts(cfg)
        slice_ = {"seeds": plain(cfg.seeds), "generator": generator_slice(cfg.generator),
                  "augmentation": without(cfg.augmentation, aug.runtime_fields),
                  "response": without(cfg.response, resp.runtime_fields)}
        if cfg.contamination.enabled:  # the report, and the rows it may drop, belong to the build
            from ifforge.build.stats import contamination

            slice_["contamination"] = contamination.fingerprint(cfg)
        if aug.uses_judge() or resp.uses_judge() or "contamination" in slice_ and cfg.contamination.llm:
            slice_["judge"] = generator_slice(cfg.judge)
        slice_["files"] = file_digests(slice_)  # seeds, templates, data files: their content, not just their path
        return slice_

    def refreshes(self, cfg: DictConfig) -> bool:
        from omegaconf import OmegaConf

        aug, resp = _parts(cfg)
        judged = aug.uses_judge() or resp.uses_judge() or cfg.contamination.enabled and cfg.contamination.llm
        nodes = [cfg.generator] + ([cfg.judge] if judged else [])
        nodes.append(OmegaConf.select(cfg, "response.external.student"))
        return any(n is not None and n.get("cache") == "refresh" for n in nodes)

    def steps(self, cfg: DictConfig):
        """(strategy, every step in order, the names of the steps after the responses: statistics' own)."""
        from ifforge.build.seed_filter import FilterSeeds

        aug, resp = _parts(cfg)
        steps = [FilterSeeds(templates=cfg.seeds.templates)] if cfg.seeds.filter else []
        final = list(aug.final_steps(cfg.response))
        return aug, steps + list(aug.steps()) + list(resp.steps()) + final, {s.name for s in final}

    def preflight(self, cfg: DictConfig) -> None:
        from ifforge.build.context import check_wiring
        from ifforge.build.seeds import check_seeds_source
        from ifforge.llm import BACKENDS

        aug, steps, _ = self.steps(cfg)
        check_wiring(steps, {"seed_id", "instruction"}, aug.assembly_reads)
        for part in (aug, _parts(cfg)[1]):  # option-specific checks: data files, a nested student model's backend
            part.preflight()
        check_seeds_source(cfg.seeds)
        if cfg.contamination.enabled:
            from ifforge.build.stats.contamination import check

            check(cfg)
        discover("ifforge.llm.backends")
        roles = ["generator"] + (["judge"] if "judge" in self.config(cfg) else [])
        for role in roles:  # e.g. a missing API key is reported now, before any work
            BACKENDS.get(cfg[role].name)(cfg[role]).check()

    def build(self, cfg: DictConfig, out: Path, inputs: Dict[str, Artifact]) -> Dict[str, Any]:
        from ifforge.build.context import BuildContext, Rejects
        from ifforge.build.save import save_splits
        from ifforge.build.seeds import load_seeds
        from ifforge.llm import GeneratorStats, make_generator
        from ifforge.llm.prices import total_cost

        aug, steps, final = self.steps(cfg)
        rejects = Rejects(out / "rejects.jsonl")
        failures = out / "failures.jsonl"
        failures.unlink(missing_ok=True)  # a fresh log per attempt, like rejects.jsonl
        ctx = BuildContext(cfg=cfg, out=out, rejects=rejects,
                           make_generator=lambda role, node: make_generator(cfg[role] if node is None else node,
                                                                            cfg.paths.cache, role=role,
                                                                            failures_path=failures))
        try:
            seeds = load_seeds(cfg.seeds, lambda row, reason: ctx.reject("seeds", row, reason))
            log.info("[build] %d seeds", len(seeds))
            rows = ctx.run_steps(steps, seeds)
            assembly = aug.assemble(rows, ctx)
            if cfg.contamination.enabled:  # after assembly: it sees (and may drop) the rows that will be saved
                from ifforge.build.stats import contamination

                contamination.apply(cfg, assembly, out, ctx.generator("judge") if cfg.contamination.llm else None)
            for g in ctx.generators.values():  # a tolerated failed fraction, judged over the whole build
                g.check_tolerance()
            splits = assembly.splits
            if not any(splits.values()):
                raise StageFailed(
                    f"every split is empty: {len(seeds)} seeds, nothing kept ({rejects.top() or 'no rejects'}); "
                    f"every reject and its raw output: {rejects.path}; if the endpoint served wrong answers, "
                    f"generator.cache=refresh asks again")
            counts = save_splits(splits, out)
        finally:
            rejects.close()
            for g in ctx.generators.values():
                g.close()
        for name, n in counts.items():
            log.info("[build] split %-10s %d rows", name, n)
        log.info("[build] rejects: %s", rejects.counts or "none")
        stats: Dict[str, Any] = {"seeds": len(seeds), "splits": counts, "steps": {**ctx.step_counts, **assembly.steps},
                                 "rejects": rejects.counts, **assembly.stats,
                                 "step_order": [*ctx.step_counts, *assembly.steps]}  # manifests sort their keys
        # statistics' own requests (the final steps) cost no rows
        lost = {k: v for k, v in ctx.failed.items() if k not in final}
        if lost:  # tolerated failures (max_failed_fraction > 0): the rows they cost are missing
            stats["lost_to_failures"] = lost
        if len(lost) < len(ctx.failed):
            stats["statistics_failures"] = {k: v for k, v in ctx.failed.items() if k in final}
        if ctx.replies:  # steps that read structure: how many replies they could not read, free or held to a schema
            stats["replies"] = ctx.replies
        for role, g in ctx.generators.items():
            stats[role] = g.report()  # cost_usd, the price behind it, and the counts per step
        stats.setdefault("generator", {"model": str(cfg.generator.model), "backend": str(cfg.generator.name),
                                       **GeneratorStats().as_dict(), "price": None, "steps": {}})
        log.info("[build] cost: %s", total_cost(_roles(stats)))
        write_dataset_card(out, cfg, stats, assembly.card)
        return stats


def _roles(stats: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    """The manifest's generator reports (generator, judge, a response mode's student), by role."""
    return {k: v for k, v in stats.items() if isinstance(v, dict) and "cost_usd" in v and "steps" in v}


def cost_section(stats: Dict[str, Any]) -> str:
    """The card's cost: each role's totals and price, then the requests of every step."""
    from ifforge.llm.prices import Price, role_cost, total_cost

    roles = _roles(stats)
    lines = [f"Cost: {total_cost(roles)} (requests sent; answers from the response cache cost nothing)."]
    for role, r in roles.items():
        lines.append(f"- {role} `{r['backend']}:{r['model']}`: {r['calls']} sent, {r['cache_hits']} cached, "
                     f"{r['retries']} retries, {r['failures']} failures, {r['prompt_tokens']} prompt + "
                     f"{r['completion_tokens']} completion tokens, {role_cost(r)}")
    rows = [(step, role, s) for role, r in roles.items() for step, s in r["steps"].items()]
    if rows:
        lines += ["", "| step | role | sent | cached | retries | failed | tokens | cost |",
                  "|---|---|---|---|---|---|---|---|"]
        for step, role, s in rows:
            price = Price.from_report(roles[role].get("price"))
            cost = price.show(s["cost_usd"]) if price is not None and s["calls"] else "$0"
            lines.append(f"| {step} | {role} | {s['calls']} | {s['cache_hits']} | {s['retries']} | {s['failures']} "
                         f"| {s['prompt_tokens'] + s['completion_tokens']} | {cost} |")
    return "\n".join(lines)


def write_dataset_card(out: Path, cfg: DictConfig, stats: Dict[str, Any], section: str) -> None:
    splits = "\n".join(f"| `{k}` | {v} |" for k, v in stats["splits"].items())
    steps = "\n".join(f"| {k} | {v['in']} | {v['out']} | {v['rejected']} |" for k, v in stats["steps"].items())
    g = stats["generator"]
    lost = ""
    if stats.get("lost_to_failures"):
        per_step = ", ".join(f"{k} {v}" for k, v in stats["lost_to_failures"].items())
        lost = (f"\n**Incomplete:** requests that failed after their retries cost rows ({per_step}), accepted under "
                f"`max_failed_fraction`; they are listed in `failures.jsonl`.\n")
    replies = ""
    if stats.get("replies"):
        rows = "\n".join(f"| {k} | {'json' if v['structured'] else 'off'} | {v['replies']} | {v['unreadable']} "
                         f"({v['unreadable'] / max(1, v['replies']):.0%}) |" for k, v in stats["replies"].items())
        replies = ("\nReplies each step could not read (format rejects), with the generator's `structured` mode:\n\n"
                   f"| step | structured | replies | unreadable |\n|---|---|---|---|\n{rows}\n")
    text = f"""# ifforge build

Augmentation `{cfg.augmentation.name}`, responses `{cfg.response.name}`, generator `{g['backend']}:{g['model']}`.
Load with `datasets.load_from_disk("data")`; every dropped item is in `rejects.jsonl` with its reason.

| split | rows |
|---|---|
{splits}

| step | in | out | rejected |
|---|---|---|---|
{steps}

{cost_section(stats)}
{lost}
{replies}
{section}
"""
    (out / "README.md").write_text(text.strip() + "\n", encoding="utf-8")
