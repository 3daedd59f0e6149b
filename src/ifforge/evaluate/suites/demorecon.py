"""DeMoRecon-Eval and DeMoRecon-Det (the DeMoRecon paper, appendix E.5 / E.6 prompts).

- `demorecon_eval`: the model under test answers each instruction of a build's `eval` split (or a file); the judge
  says, with the E.5 prompt, whether the answer attempts every instruction in the prompt. Accuracy: share of Yes.
- `demorecon_det`: rows (instruction, response, label Yes/No) from a build's `det` split (or a file); the model
  under test itself answers the E.6 prompt; accuracy and balanced accuracy against the labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from ifforge.errors import UserError
from ifforge.evaluate import SUITES
from ifforge.evaluate.data import read_rows
from ifforge.evaluate.judge import VERDICT, ask, parse_verdict, structured
from ifforge.evaluate.rates import mean, pct
from ifforge.evaluate.suite import Item, Suite, SuiteConfig
from ifforge.evaluate.tables import headline_tables, judge_note
from ifforge.prompts import render


@dataclass
class DeMoReconEvalConfig(SuiteConfig):
    split: str = "eval"  # the build artifact's split read when `path` is not set
    field: Optional[str] = None  # the instruction field; default: instruction, then prompt, then messages


@dataclass
class DeMoReconDetConfig(DeMoReconEvalConfig):
    split: str = "det"
    response_field: str = "response"
    label_field: str = "label"


def instruction_of(row: Dict[str, Any], field: Optional[str]) -> str:
    if field:
        if field not in row:
            raise UserError(f"DeMoRecon rows have no field {field!r} (fields: {', '.join(sorted(row))})")
        return str(row[field])
    for key in ("instruction", "prompt"):
        if isinstance(row.get(key), str) and row[key].strip():
            return row[key]
    for msg in row.get("messages") or []:
        if msg.get("role") == "user":
            return str(msg["content"])
    raise UserError(f"a DeMoRecon row has no instruction, prompt or user message (fields: {', '.join(sorted(row))})")


def load_split_rows(suite: Suite) -> List[Dict[str, Any]]:
    cfg = suite.cfg
    if cfg.path:
        return read_rows(cfg.path, what=f"{suite.name} file")
    if suite.ctx.build_dir is None:
        raise UserError(f"eval.{suite.name} needs eval.{suite.name}.path or an upstream build (stages=[build,...])")
    from ifforge.build.save import load_splits

    splits = load_splits(suite.ctx.build_dir)
    if cfg.split not in splits:
        raise UserError(f"the build {suite.ctx.build_dir} has no {cfg.split!r} split (it has: {', '.join(splits)}); "
                        f"build with a DeMoRecon augmentation, or set eval.{suite.name}.path")
    return [dict(r) for r in splits[cfg.split]]


def label_of(value: Any) -> Optional[bool]:
    if isinstance(value, bool):
        return value
    return parse_verdict(str(value))


@SUITES.register("demorecon_eval", schema=DeMoReconEvalConfig)
class DeMoReconEval(Suite):
    name = "demorecon_eval"
    summary_columns = {"DeMoRecon-Eval": "accuracy"}
    uses_judge = True
    uses_build = True
    scoring_version = 2  # 2: accuracy over every item (1 left unreadable answers out of the denominator)

    def load(self) -> List[Item]:
        items = []
        for i, row in enumerate(load_split_rows(self)):
            text = instruction_of(row, self.cfg.field)
            items.append(Item(id=str(row.get("id", i)), prompt=text, messages=[{"role": "user", "content": text}]))
        return self.limited(items)

    def score(self, items: List[Item], responses: List[str]) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
        judge = self.ctx.judge()
        prompts = [render("eval/demorecon_eval.j2", self.cfg.templates.judge, prompt=it.prompt, response=resp,
                          structured=structured(judge)) for it, resp in zip(items, responses)]
        answers = ask(judge, prompts, desc="judge demorecon_eval", shape=VERDICT)
        rows, verdicts = [], []
        for it, resp, ans in zip(items, responses, answers):
            verdict = parse_verdict(ans["text"])
            verdicts.append(verdict)
            rows.append({"id": it.id, "prompt": it.prompt, "response": resp, "verdict": verdict,
                         "judge_output": ans["text"], "judge_error": ans["error"]})
        parsed = [v for v in verdicts if v is not None]
        # As in the paper: accuracy over every item; an unreadable verdict is simply not a correct one (counted).
        return rows, {"accuracy": pct(sum(parsed), len(verdicts)), "n_items": len(items), "n_scored": len(parsed),
                      "scored_verdicts": len(parsed),
                      "unparseable": len(verdicts) - len(parsed),
                      "unparseable_rule": "each counts as not correct (accuracy is over every item, as in the paper)"}

    @classmethod
    def headline(cls, metrics: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
        return {"DeMoRecon-Eval": {"accuracy": metrics["accuracy"]}}

    def table(self, metrics: Dict[str, Any], label: str) -> str:
        return headline_tables(self.headline(metrics), label, notes=judge_note(metrics), details={
            "DeMoRecon-Eval": f"{metrics['n_scored']} of {metrics['n_items']} judged"})


@SUITES.register("demorecon_det", schema=DeMoReconDetConfig)
class DeMoReconDet(Suite):
    name = "demorecon_det"
    summary_columns = {"DeMoRecon-Det": "accuracy"}
    uses_build = True
    scoring_version = 2  # 2: accuracy over every item (1 left unreadable answers out of the denominator)

    def load(self) -> List[Item]:
        items = []
        for i, row in enumerate(load_split_rows(self)):
            instruction = instruction_of(row, self.cfg.field)
            for key in (self.cfg.response_field, self.cfg.label_field):
                if key not in row:
                    raise UserError(f"a demorecon_det row has no {key!r} field (fields: {', '.join(sorted(row))})")
            label = label_of(row[self.cfg.label_field])
            if label is None:
                raise UserError(f"demorecon_det row {i}: label {row[self.cfg.label_field]!r} is not Yes/No")
            # The pair, rendered with E.6, is the prompt: an instruction appears with several responses.
            text = render("eval/demorecon_det.j2", self.cfg.templates.judge, prompt=instruction,
                          response=str(row[self.cfg.response_field]))
            items.append(Item(id=str(row.get("id", i)), prompt=text, messages=[{"role": "user", "content": text}],
                              data={"instruction": instruction, "response": row[self.cfg.response_field],
                                    "label": label}))
        return self.limited(items)

    def score(self, items: List[Item], responses: List[str]) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
        rows, pairs = [], []
        for it, out in zip(items, responses):
            predicted = parse_verdict(out)
            rows.append({"id": it.id, "instruction": it.data["instruction"], "response": it.data["response"],
                         "label": it.data["label"], "prediction": predicted, "model_output": out,
                         "correct": predicted == it.data["label"]})
            pairs.append((it.data["label"], predicted))
        return rows, detection_metrics(pairs, n_items=len(items))

    def table(self, metrics: Dict[str, Any], label: str) -> str:
        notes = []
        if metrics["unparseable"]:
            notes.append(f"{metrics['unparseable']} answer(s) of the model under test were neither Yes nor No; "
                         f"each counts as not correct (accuracy is over every item, as in the paper).")
        return headline_tables(self.headline(metrics), label, notes=notes, details={
            "DeMoRecon-Det": f"{metrics['n_scored']} of {metrics['n_items']} answered"})

    @classmethod
    def headline(cls, metrics: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
        return {"DeMoRecon-Det": {"accuracy": metrics["accuracy"], "balanced accuracy": metrics["balanced_accuracy"]}}


def detection_metrics(pairs: List[Tuple[bool, Optional[bool]]], n_items: int) -> Dict[str, Any]:
    """Accuracy and balanced accuracy (mean recall of the Yes and No classes) over (label, prediction) pairs, every
    item counted as in the paper: a prediction that is neither Yes nor No (None) is simply not a correct one."""
    tp = sum(1 for y, p in pairs if y and p is True)
    tn = sum(1 for y, p in pairs if not y and p is False)
    pos = sum(1 for y, _ in pairs if y)
    neg = len(pairs) - pos
    unreadable = sum(1 for _, p in pairs if p is None)
    return {"accuracy": pct(tp + tn, len(pairs)), "balanced_accuracy": mean([pct(tp, pos), pct(tn, neg)]),
            "n_items": n_items, "n_scored": len(pairs) - unreadable, "unparseable": unreadable,
            "confusion": {"yes_yes": tp, "yes_no": sum(1 for y, p in pairs if y and p is False),
                          "no_yes": sum(1 for y, p in pairs if not y and p is True), "no_no": tn,
                          "yes_unreadable": sum(1 for y, p in pairs if y and p is None),
                          "no_unreadable": sum(1 for y, p in pairs if not y and p is None)}}
