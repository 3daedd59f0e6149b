"""The eval stage's plan, suite by suite: a done suite is reused; another one's items are loaded and the model
under test's requests are rendered by the suite itself and looked up in the response cache (a later turn only
once the earlier answer is cached). The judge's prompts hold answers not received yet, so its requests are
bounded by the items: one per requirement (InFoBench), per turn (MT-Bench), else one per item.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from omegaconf import OmegaConf

from ifforge.errors import UserError
from ifforge.plan.requests import Lines, PlanGenerator, open_cache, prompt_tokens, tokens_of


@dataclass
class SuitePlan:
    name: str
    path: Path
    reuse: bool
    items: Optional[int] = None
    note: str = ""  # why it cannot be planned (e.g. its items come from a build not made yet)


@dataclass
class EvalPlan:
    suites: List[SuitePlan] = field(default_factory=list)


def judge_requests(item: Any) -> int:
    """The judge's requests for one answered item."""
    data = item.data or {}
    if "questions" in data:  # InFoBench: each decomposed requirement
        return len(data["questions"])
    if "turns" in data:  # MT-Bench: each turn is graded
        return len(data["turns"])
    return 1


def _judge_template(name: str, node: Any) -> int:
    from ifforge.prompts import PROMPTS_DIR

    own = node.templates.get("judge") if node.get("templates") is not None else None
    paths = [Path(str(own)).expanduser()] if own else sorted((PROMPTS_DIR / "eval").glob(f"{name}*.j2"))
    return max((tokens_of(len(p.read_text(encoding="utf-8"))) for p in paths if p.is_file()), default=0)


def plan_eval(cfg: Any, inputs: Dict[str, Any], lines: Lines, reusable: Any) -> EvalPlan:
    """`inputs`: {"train"/"build": Artifact} this stage reads (built or not); `reusable(art)`: whether a done
    artifact would be reused."""
    from ifforge.artifacts import artifact_for
    from ifforge.evaluate.candidate import candidate_node
    from ifforge.evaluate.suite import SuiteContext
    from ifforge.stages.eval import EvalStage, _generates, _reads_build, selected_suites

    stage = EvalStage()
    train_dir = inputs["train"].path if "train" in inputs else None
    cache = open_cache(cfg.paths.get("cache"))
    made: Dict[str, PlanGenerator] = {}

    def generator(role: str, model: Optional[str] = None) -> PlanGenerator:
        """`model`: a suite's own judge model (eval.<suite>.judge_model), priced as that model."""
        key = f"{role}:{model}" if model else role
        if key not in made:
            node = candidate_node(cfg, train_dir) if role == "candidate" else cfg.judge
            made[key] = PlanGenerator(OmegaConf.merge(node, {"model": model}) if model else node, cache, role,
                                      "eval", lines)
        return made[key]

    build = inputs.get("build")
    ctx = SuiteContext(candidate=lambda: generator("candidate"), judge=lambda: generator("judge"),
                       build_dir=build.path if build is not None else None, reference_dir=cfg.paths.get("reference"),
                       judge_concurrency=int(cfg.judge.max_concurrency))
    plan = EvalPlan()
    try:
        for name, cls in selected_suites(cfg).items():
            node = cfg.eval[name]
            ups = {k: a for k, a in inputs.items() if (k != "build" or _reads_build(cls, node))
                   and (k != "train" or _generates(node))}
            art = artifact_for(cfg.paths.artifacts, f"eval/{name}", stage.suite_config(cfg, name, cls), ups)
            suite = SuitePlan(name, art.path, reuse=reusable(art))
            plan.suites.append(suite)
            if suite.reuse:
                continue
            if "build" in ups and not ups["build"].done:
                suite.note = "its items are the build's, which is not made yet: its requests are not counted"
                continue
            runner = cls(node, ctx)
            try:
                items = runner.load()
            except UserError as e:
                suite.note = f"its items cannot be read here ({e}): its requests are not counted"
                continue
            suite.items = len(items)
            if _generates(node):
                _answer(runner, name, items, generator("candidate"), lines)
            if cls.uses_judge:
                judge = generator("judge", str(node.judge_model) if node.get("judge_model") else None)
                _judge(cls, name, node, items, judge, generator("candidate"), lines)
    finally:
        if cache is not None:
            cache.close()
    return plan


def _answer(suite: Any, name: str, items: List[Any], gen: PlanGenerator, lines: Lines) -> None:
    """The suite's own requests for the answers (so their cache keys are exact); a later turn whose earlier answer
    is not cached is counted as one more request of at most the whole conversation's length."""
    if items:
        suite.answer(items, gen)
    mine = [line for line in lines.of("eval") if line.role == gen.role and line.step.startswith(f"answer {name}")]
    asked = sum(line.missing + line.cached for line in mine)
    turns = sum(len((it.data or {}).get("turns") or [None]) for it in items)
    if turns > asked and mine:
        budget = int(suite.cfg.get("max_tokens") or gen.cfg.max_tokens)
        longest = max(prompt_tokens(it.messages) for it in items)
        mine[-1].add_more(turns - asked, longest + budget, budget)


def _judge(cls: Any, name: str, node: Any, items: List[Any], judge: PlanGenerator, candidate: PlanGenerator,
           lines: Lines) -> None:
    """Every item's judge requests, each prompt about the item, its answer at its max_tokens, the reference answer
    it is compared with (AlpacaEval), and the template."""
    answer = int(node.get("max_tokens") or candidate.cfg.max_tokens)
    reference = str(node.get("protocol")) == "reference" and node.get("judge_max_tokens") is not None
    reply = int(node.judge_max_tokens) if reference else int(judge.cfg.max_tokens)
    template = _judge_template(name, node)
    own = cls.judge_budget(node)  # a suite whose judge prompt and reply come from its benchmark's own package
    if own is not None:
        template, reply = own
    line = lines.get("eval", judge, f"judge {name}")
    for it in items:
        shown = tokens_of(len(str((it.data or {}).get("reference") or "")))
        line.add_more(judge_requests(it), prompt_tokens(it.messages) + answer + shown + template, reply)
