"""`augmentation=reframe_constrain_recombine`: Conifer (section 3). The steps and the assembly live in
`ifforge.build.conifer`; this module holds the config schema and ties the pieces together.

Table 4 rows, one override each (from the full Conifer configuration):
  random shuffle          augmentation.curriculum.order=random
  hard-to-easy            augmentation.curriculum.order=hard_to_easy
  easy only / hard only   augmentation.curriculum.levels=easy_only | hard_only
  single turn             augmentation.curriculum.single_turn=true
  w/o process feedback    response.feedback=none
  w/ internal / external  response.feedback=internal | external
  w/o format&number       augmentation.format_numeric.enabled=false
  w/o Conifer             augmentation.mix.only=true (the mixed-in general conversations alone; no request)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Dict, List, Optional, Sequence

from ifforge.build.augment import AUGMENTATIONS, Assembly, Augmentation
from ifforge.build.conifer.mix import MixDatasetConfig
from ifforge.build.context import BuildContext, Row, Step


class Order(Enum):
    easy_to_hard = "easy_to_hard"
    hard_to_easy = "hard_to_easy"
    random = "random"


class LevelSet(Enum):
    all = "all"
    easy_only = "easy_only"
    hard_only = "hard_only"


@dataclass
class ReframeConfig:
    min_forms: int = 3  # a seed with fewer distinct reframed queries is rejected
    max_forms: Optional[int] = None  # keep at most this many per seed (cost control); null keeps all


@dataclass
class FiltersConfig:
    context: bool = True  # first filter: reframed queries that need missing context
    conflicts: bool = True  # second filter: instructions whose constraints conflict


@dataclass
class ConstraintsConfig:
    examples: Optional[str] = None  # JSON in-context examples; null: the packaged resources/conifer file


@dataclass
class RecombineConfig:
    new_categories: List[int] = field(default_factory=lambda: [1, 2])  # per level, inclusive range
    new_items: List[int] = field(default_factory=lambda: [2, 3])
    check_growth: bool = True  # reject levels whose constraint counts break the ranges above


@dataclass
class FormatNumericConfig:
    enabled: bool = True
    # The share of (query, level) instructions that get format/numeric requirements. The paper picks 1,000 of
    # its leveled instructions (Table 1 keeps 35,631 after the last filter): about 0.028. A share, not a count,
    # so that a pilot of a few seeds is not augmented throughout.
    sample: float = 0.028
    per_instruction: List[int] = field(default_factory=lambda: [1, 2])  # requirements added, inclusive range
    constraints: Optional[str] = None  # JSONL list; null: the packaged resources/conifer file (34 entries)


@dataclass
class CurriculumConfig:
    order: Order = Order.easy_to_hard
    levels: LevelSet = LevelSet.all
    easy_levels: List[int] = field(default_factory=lambda: [1, 3])  # inclusive; FollowBench's L1-L3
    hard_levels: List[int] = field(default_factory=lambda: [4, 5])  # and L4-L5
    single_turn: bool = False
    seed: int = 0  # order=random


@dataclass
class MixConfig:
    datasets: List[MixDatasetConfig] = field(default_factory=list)
    seed: int = 0
    # The split holds the general conversations alone (Table 4's "w/o Conifer" baseline): no Conifer step runs and
    # no request is sent, so the datasets take `count` (or everything), not `weight`.
    only: bool = False


@dataclass
class ConiferTemplatesConfig:
    """A user's own Jinja2 file per step (null: the packaged prompts/conifer/<step>.j2)."""

    reframe: Optional[str] = None
    filter_context: Optional[str] = None
    constraints: Optional[str] = None
    recombine: Optional[str] = None
    format_numeric: Optional[str] = None
    filter_conflicts: Optional[str] = None


@dataclass
class ReframeConstrainRecombineConfig:
    name: str = "reframe_constrain_recombine"
    levels: int = 5  # difficulty levels per reframed query
    seed: int = 0  # which instructions get format/numeric requirements, and which ones
    params: Dict[str, Any] = field(default_factory=dict)  # sampling overrides for every augmentation call
    reframe: ReframeConfig = field(default_factory=ReframeConfig)
    filters: FiltersConfig = field(default_factory=FiltersConfig)
    constraints: ConstraintsConfig = field(default_factory=ConstraintsConfig)
    recombine: RecombineConfig = field(default_factory=RecombineConfig)
    format_numeric: FormatNumericConfig = field(default_factory=FormatNumericConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    mix: MixConfig = field(default_factory=MixConfig)
    templates: ConiferTemplatesConfig = field(default_factory=ConiferTemplatesConfig)


@AUGMENTATIONS.register("reframe_constrain_recombine", schema=ReframeConstrainRecombineConfig)
class ReframeConstrainRecombine(Augmentation):
    assembly_reads = ("seed_id", "group_id", "instruction_id", "level", "instruction", "response")

    def options(self):
        from ifforge.build.conifer.parsing import Growth
        from ifforge.build.conifer.steps import Options
        from ifforge.errors import UserError

        c = self.cfg
        ranges = {"recombine.new_categories": c.recombine.new_categories, "recombine.new_items": c.recombine.new_items,
                  "format_numeric.per_instruction": c.format_numeric.per_instruction}
        for name, r in ranges.items():
            if len(r) != 2 or not 0 < r[0] <= r[1]:
                raise UserError(f"augmentation.{name} must be a range [low, high] with 0 < low <= high, got {list(r)}")
        if c.levels < 1 or c.reframe.min_forms < 1:
            raise UserError("augmentation.levels and augmentation.reframe.min_forms must be at least 1")
        if not 0.0 <= float(c.format_numeric.sample) <= 1.0:
            raise UserError(f"augmentation.format_numeric.sample must be a fraction between 0 and 1 (the share of "
                            f"leveled instructions that get format/numeric requirements; the paper's 1,000 is about "
                            f"0.028), got {c.format_numeric.sample}")
        return Options(levels=int(c.levels), seed=int(c.seed), params=dict(c.params or {}),
                       templates={k: v for k, v in c.templates.items()}, min_forms=int(c.reframe.min_forms),
                       max_forms=c.reframe.max_forms, examples=c.constraints.examples,
                       growth=Growth(tuple(c.recombine.new_categories), tuple(c.recombine.new_items),
                                     bool(c.recombine.check_growth)),
                       format_list=c.format_numeric.constraints, format_sample=float(c.format_numeric.sample),
                       format_per_instruction=tuple(c.format_numeric.per_instruction))

    def preflight(self) -> None:
        from ifforge.build.conifer.curriculum import Curriculum
        from ifforge.build.conifer.mix import check_mix, check_only
        from ifforge.build.conifer.resources import check_resources

        opts = self.options()
        Curriculum.from_config(self.cfg.curriculum)
        check_resources(opts.examples, opts.format_list, bool(self.cfg.format_numeric.enabled))
        check_mix(list(self.cfg.mix.datasets))
        if self.cfg.mix.only:
            check_only(list(self.cfg.mix.datasets))

    def steps(self) -> Sequence[Step]:
        from ifforge.build.conifer.mix import GeneralOnly
        from ifforge.build.conifer.steps import conifer_steps

        steps = conifer_steps(self.options(), context_filter=bool(self.cfg.filters.context),
                              conflict_filter=bool(self.cfg.filters.conflicts),
                              format_numeric=bool(self.cfg.format_numeric.enabled))
        return [GeneralOnly(steps)] if self.cfg.mix.only else steps

    def assemble(self, rows: List[Row], ctx: BuildContext) -> Assembly:
        from ifforge.build.conifer.curriculum import Curriculum, curriculum_conversations, feedback_conversations
        from ifforge.build.conifer.mix import mixed_conversations
        from ifforge.build.stats.conifer import card_section, conifer_statistics

        conifer = curriculum_conversations(rows, Curriculum.from_config(self.cfg.curriculum))
        conifer += feedback_conversations(rows)
        general, sources = mixed_conversations(list(self.cfg.mix.datasets), len(conifer), int(self.cfg.mix.seed),
                                               lambda item, why: ctx.reject("mix", item, why))
        splits = {"sft": general if self.cfg.mix.only else conifer + general}
        stats = conifer_statistics(splits["sft"], ctx.out, sources)
        return Assembly(splits, {"conifer": stats}, card_section(stats))
