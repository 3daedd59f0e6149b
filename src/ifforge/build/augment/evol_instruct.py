"""`augmentation=evol_instruct`: WizardLM's Evol-Instruct (Xu et al.), the source of DeMoRecon's seeds and the
"Mistral-7B-Evol-Instruct" baseline of Conifer's Table 2 (`variant=conifer/evol_instruct`).

Every seed starts a line of evolutions. In each of `rounds` rounds (M, default 4), its latest instruction is
rewritten by one evolving prompt, drawn with `kinds` weights per (seed, round):

  in depth    add_constraints | deepen | concretize | increase_reasoning | complicate_input
  in breadth  breadth (a new instruction of the same domain, rarer and as long)

and the rewrite goes through the elimination filter; a survivor becomes the line's latest instruction, an
eliminated one leaves the line where it was for the next round. Elimination, one rule per reason in rejects.jsonl:

  copies the prompt   the rewrite repeats the evolving prompt's own words (`copied_phrases`)
  cannot answer       the generator's answer apologises ("sorry") in fewer than `sorry_max_words` words
  empty answer        the answer holds nothing but punctuation and stop words
  no information gain the generator judges the rewrite to ask for nothing the instruction did not (a Yes/No
                      verdict; an unreadable verdict eliminates too)

The split `sft` holds the seeds (with `keep_seeds`) and every surviving evolution, answered by the response mode
(with `response=direct` and no `response.params`, the answers the filter asked for are the very same requests,
so the cache answers them), plus the general conversations of `mix` (as Conifer's: the paper's baseline mixes
53k ShareGPT). Statistics: evolutions tried, kept and eliminated per round and kind, and why.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field, make_dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence

from ifforge.build.augment import AUGMENTATIONS, Assembly, Augmentation
from ifforge.build.conifer.mix import MixDatasetConfig
from ifforge.build.context import BuildContext, Row, Step, user_message
from ifforge.build.sampling import rng_for
from ifforge.build.step import ASK, SKIP, LLMStep, Reply, YesNoFilter
from ifforge.errors import UserError
from ifforge.llm.structured import obj

KINDS = ("add_constraints", "deepen", "concretize", "increase_reasoning", "complicate_input", "breadth")


@dataclass
class EliminationConfig:
    # The evolving prompts' own labels and words: a rewrite that repeats them copied the prompt.
    copied_phrases: List[str] = field(default_factory=lambda: [
        "#instruction#", "#rewrite#", "given instruction", "rewritten instruction", "given prompt",
        "rewritten prompt"])
    sorry_max_words: int = 80  # an answer with "sorry" shorter than this: the model cannot answer the rewrite


@dataclass
class EvolMixConfig:
    datasets: List[MixDatasetConfig] = field(default_factory=list)  # as augmentation=reframe_constrain_recombine
    seed: int = 0
    only: bool = False


# A user's own Jinja2 file per prompt (null: the packaged prompts/evol_instruct/<name>.j2): one per evolving prompt
# (variable: instruction), and information_gain (variables: before, after).
EvolTemplatesConfig = make_dataclass("EvolTemplatesConfig",
                                     [(name, Optional[str], None) for name in (*KINDS, "information_gain")])


@dataclass
class EvolInstructConfig:
    name: str = "evol_instruct"
    rounds: int = 4  # M
    seed: int = 0  # which evolving prompt each line gets in each round
    # Relative weights of the evolving prompts (0 leaves one out); in-breadth at one sixth, as in the paper.
    kinds: Dict[str, float] = field(default_factory=lambda: {k: 1.0 for k in KINDS})
    keep_seeds: bool = True  # the seeds themselves are training instructions too
    params: Dict[str, Any] = field(default_factory=dict)  # sampling overrides for the evolving calls
    elimination: EliminationConfig = field(default_factory=EliminationConfig)
    mix: EvolMixConfig = field(default_factory=EvolMixConfig)
    templates: EvolTemplatesConfig = field(default_factory=EvolTemplatesConfig)


# A small English stop-word list: an answer made of these and punctuation says nothing.
STOP_WORDS = frozenset("""a an the and or but if then so of to in on at by for with from as is are was were be been
being it its this that these those i you he she we they me him her us them my your our their not no yes do does did
done have has had can could will would shall should may might must just also very too here there what which who whom
how why when where all any some such only own same than up down out over under again once ok okay sure well oh
""".split())


def _words(text: str) -> List[str]:
    return re.findall(r"[^\W_]+(?:'[^\W_]+)?", text.lower())


def says_nothing(answer: str) -> bool:
    """Only punctuation, whitespace and stop words."""
    return all(w in STOP_WORDS for w in _words(answer.strip(string.punctuation + string.whitespace)))


def cannot_answer(answer: str, max_words: int) -> bool:
    return "sorry" in answer.lower() and len(_words(answer)) < max_words


class Evolve(LLMStep):
    """One round's rewrite of every line; writes `candidate_r<k>` and `kind_r<k>`."""

    reads = ("seed_id", "instruction")
    passes_through = True  # an eliminated rewrite leaves the line as it was
    schema = obj(instruction={"type": "string"})

    def __init__(self, cfg: Any, round_: int):
        super().__init__(cfg.params, cfg.templates)
        self.cfg, self.k = cfg, round_
        self.name = f"evolve_r{round_}"
        self.writes = (f"candidate_r{round_}", f"kind_r{round_}")
        weights = {str(k): float(w) for k, w in cfg.kinds.items() if float(w) > 0}
        self.kinds, self.weights = list(weights), list(weights.values())

    def dropped(self, row: Row, why: str, ctx: BuildContext) -> None:
        ctx.count(self.name, f"{self.kind(row)}: tried")
        ctx.count(self.name, f"{self.kind(row)}: eliminated: rewrite request: {why}")

    def kind(self, row: Row) -> str:
        return rng_for(int(self.cfg.seed), f"{row['seed_id']}:r{self.k}").choices(self.kinds, self.weights)[0]

    def template_for(self, row: Row) -> str:
        return f"evol_instruct/{self.kind(row)}.j2"

    def variables(self, row: Row, batch: Any) -> Dict[str, Any]:
        return {"instruction": current(row)}

    def parse(self, reply: Reply, row: Row) -> str:
        return reply.text.strip()

    def parse_json(self, value: Any, row: Row) -> str:
        return str(value.get("instruction") or "").strip() if isinstance(value, dict) else ""

    def emit(self, row: Row, text: str, ctx: BuildContext, raw: str) -> Iterable[Row]:
        kind = self.kind(row)
        ctx.count(self.name, f"{kind}: tried")
        lowered = text.lower()
        copied = next((p for p in self.cfg.elimination.copied_phrases if p.lower() in lowered), None)
        if not text or copied is not None or text == current(row):
            why = "empty rewrite" if not text else ("returned the instruction unchanged" if copied is None
                                                   else f"copies the evolving prompt's words ({copied!r})")
            eliminate(self, row, kind, why, ctx, raw)
            return [row]
        return [{**row, f"candidate_r{self.k}": text, f"kind_r{self.k}": kind}]

class AnswerEvolution(LLMStep):
    """The generator answers each rewrite, as `response=direct` would: an apology or an empty answer
    eliminates it."""

    passes_through = True
    allow_cut_off = True  # an answer long enough to hit max_tokens is no apology

    def dropped(self, row: Row, why: str, ctx: BuildContext) -> None:
        ctx.count(self.name, f"{row[f'kind_r{self.k}']}: eliminated: answer request: {why}")

    def __init__(self, cfg: Any, round_: int):
        super().__init__()
        self.cfg, self.k = cfg, round_
        self.name = f"answer_r{round_}"
        self.reads = (f"candidate_r{round_}", f"kind_r{round_}")
        self.writes = (f"answered_r{round_}",)

    def choose(self, rows: List[Row]) -> List[Any]:
        return [ASK if r.get(f"candidate_r{self.k}") else SKIP for r in rows]

    def messages(self, row: Row, batch: Any, structured: bool = False) -> List[Dict[str, str]]:
        return user_message(row[f"candidate_r{self.k}"])

    def parse(self, reply: Reply, row: Row) -> str:
        return reply.text

    def emit(self, row: Row, answer: str, ctx: BuildContext, raw: str) -> Iterable[Row]:
        if says_nothing(answer):
            why = "the answer holds only punctuation and stop words"
        elif cannot_answer(answer, int(self.cfg.elimination.sorry_max_words)):
            why = "the generator could not answer it (a short apology)"
        else:
            return [{**row, f"answered_r{self.k}": True}]
        eliminate(self, row, row[f"kind_r{self.k}"], why, ctx, raw)
        return [row]

class JudgeGain(YesNoFilter):
    """Yes (the rewrite asks for more) makes it the line's latest instruction; No eliminates it."""

    template = "evol_instruct/information_gain.j2"
    passes_through = True
    max_tokens = 16
    reads = ("instruction",)
    writes = ("evolutions",)

    def __init__(self, cfg: Any, round_: int):
        super().__init__(templates=cfg.templates)
        self.k = round_
        self.name = f"information_gain_r{round_}"
        self.reads = ("instruction", f"candidate_r{round_}", f"kind_r{round_}", f"answered_r{round_}")

    def choose(self, rows: List[Row]) -> List[Any]:
        return [ASK if r.get(f"answered_r{self.k}") else SKIP for r in rows]

    def variables(self, row: Row, batch: Any) -> Dict[str, Any]:
        return {"before": current(row), "after": row[f"candidate_r{self.k}"]}

    def dropped(self, row: Row, why: str, ctx: BuildContext) -> None:
        why = "unreadable verdict" if why == "unparseable answer" else why
        ctx.count(self.name, f"{row[f'kind_r{self.k}']}: eliminated: information gain: {why}")

    def emit(self, row: Row, verdict: bool, ctx: BuildContext, raw: str) -> Iterable[Row]:
        kind = row[f"kind_r{self.k}"]
        if not verdict:
            eliminate(self, row, kind, "no information gain over the instruction it evolved from", ctx, raw)
            return [row]
        ctx.count(self.name, f"{kind}: kept")
        step = {"round": self.k, "kind": kind, "instruction": row[f"candidate_r{self.k}"]}
        return [{**row, "evolutions": list(row.get("evolutions") or []) + [step]}]




def current(row: Row) -> str:
    """A line's latest instruction: its last kept evolution, else the seed."""
    evolutions = row.get("evolutions") or []
    return evolutions[-1]["instruction"] if evolutions else row["instruction"]


def eliminate(step: Step, row: Row, kind: str, why: str, ctx: BuildContext, raw: str) -> None:
    ctx.reject(step.name, row, f"evolution eliminated ({kind}): {why}", raw=raw)
    ctx.count(step.name, f"{kind}: eliminated: {why}")


class Unfold(Step):
    """Lines to instruction rows: the seed (`round` 0) and each kept evolution, grouped by seed."""

    name = "unfold_evolutions"
    reads = ("seed_id", "instruction")
    writes = ("group_id", "instruction_id", "is_original", "round", "evolution")

    def __init__(self, keep_seeds: bool):
        self.keep_seeds = keep_seeds

    def __call__(self, rows: List[Row], ctx: BuildContext) -> List[Row]:
        out = []
        for r in rows:
            base = {"seed_id": r["seed_id"], "group_id": r["seed_id"]}
            if self.keep_seeds:
                out.append({**base, "instruction_id": f"{r['seed_id']}:r0", "is_original": True, "round": 0,
                            "evolution": "seed", "instruction": r["instruction"]})
            for e in r.get("evolutions") or []:
                out.append({**base, "instruction_id": f"{r['seed_id']}:r{e['round']}", "is_original": False,
                            "round": e["round"], "evolution": e["kind"], "instruction": e["instruction"]})
        return out


def evolution_statistics(tallies: Dict[str, Dict[str, int]], rounds: int) -> Dict[str, Any]:
    """{round: {kind: {tried, kept, eliminated: {why: n}}}} from the steps' counters."""
    table: Dict[str, Dict[str, Any]] = {}
    for k in range(1, rounds + 1):
        per_kind: Dict[str, Any] = {}
        for step in (f"evolve_r{k}", f"answer_r{k}", f"information_gain_r{k}"):
            for key, n in tallies.get(step, {}).items():
                kind, what, *why = key.split(": ", 2)
                entry = per_kind.setdefault(kind, {"tried": 0, "kept": 0, "eliminated": {}})
                if what == "eliminated":
                    entry["eliminated"][why[0]] = entry["eliminated"].get(why[0], 0) + n
                else:
                    entry[what] += n
        table[str(k)] = dict(sorted(per_kind.items()))
    return table


def card_section(table: Dict[str, Dict[str, Any]], n_seeds: int, n_evolved: int, n_general: int) -> str:
    lines = ["## Evol-Instruct statistics", "",
             f"{n_seeds} seeds and {n_evolved} kept evolutions in `sft`, plus {n_general} mixed-in general "
             f"conversations.", "", "| round | evolution | tried | kept | eliminated (why) |", "|---|---|---|---|---|"]
    for k, kinds in table.items():
        for kind, e in kinds.items():
            why = "; ".join(f"{w}: {n}" for w, n in sorted(e["eliminated"].items())) or "-"
            lines.append(f"| {k} | {kind} | {e['tried']} | {e['kept']} | {why} |")
    return "\n".join(lines)


@AUGMENTATIONS.register("evol_instruct", schema=EvolInstructConfig)
class EvolInstruct(Augmentation):
    assembly_reads = Augmentation.assembly_reads + ("instruction_id", "round", "evolution")

    def preflight(self) -> None:
        from ifforge.build.conifer.mix import check_mix

        c = self.cfg
        if int(c.rounds) < 1:
            raise UserError(f"augmentation.rounds must be at least 1, got {c.rounds}")
        unknown = sorted(set(c.kinds) - set(KINDS))
        if unknown:
            raise UserError(f"augmentation.kinds: unknown evolving prompt(s) {unknown}; known: {', '.join(KINDS)}")
        if any(float(w) < 0 for w in c.kinds.values()) or not any(float(w) > 0 for w in c.kinds.values()):
            raise UserError("augmentation.kinds: weights must not be negative, and one must be above 0")
        check_mix(list(c.mix.datasets))
        if c.mix.only and not c.mix.datasets:
            raise UserError("augmentation.mix.only=true needs augmentation.mix.datasets")

    def steps(self) -> Sequence[Step]:
        steps: List[Step] = []
        for k in range(1, int(self.cfg.rounds) + 1):
            steps += [Evolve(self.cfg, k), AnswerEvolution(self.cfg, k), JudgeGain(self.cfg, k)]
        return steps + [Unfold(bool(self.cfg.keep_seeds))]

    def assemble(self, rows: List[Row], ctx: BuildContext) -> Assembly:
        from ifforge.build.chat import sft_row
        from ifforge.build.conifer.mix import mixed_conversations

        evolved = [{**sft_row(r), "round": r["round"], "evolution": r["evolution"]} for r in rows]
        general, sources = mixed_conversations(list(self.cfg.mix.datasets), len(evolved), int(self.cfg.mix.seed),
                                               lambda item, why: ctx.reject("mix", item, why))
        # One row layout for the split: a general conversation is its own group, of no round.
        general = [{"messages": g["messages"], "seed_id": g["seed_id"], "group_id": g["group_id"],
                    "instruction_id": g["group_id"], "is_original": True, "round": 0, "evolution": "general"}
                   for g in general]
        table = evolution_statistics(ctx.tallies, int(self.cfg.rounds))
        n_seeds = sum(1 for r in evolved if r["round"] == 0)
        stats = {"evol_instruct": {"rounds": table, "seeds": n_seeds, "evolutions_kept": len(evolved) - n_seeds,
                                   "general": len(general), "mix_sources": sources}}
        card = card_section(table, n_seeds, len(evolved) - n_seeds, len(general))
        if evolved:  # Conifer's Figure 4 over the evolved data (not the mixed-in conversations), as for Conifer
            from ifforge.build.stats import distributions as figure4

            stats["evol_instruct"]["distributions"] = dist = figure4.distributions(
                (figure4.user_and_assistant(r["messages"]) for r in evolved), ctx.out, "evol_instruct")
            card += "\n\n" + figure4.card_section(dist, f"the {len(evolved)} seeds and evolutions")
        return Assembly({"sft": general if self.cfg.mix.only else evolved + general}, stats, card)
