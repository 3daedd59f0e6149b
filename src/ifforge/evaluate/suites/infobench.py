"""InFoBench (Qin et al., 2024): 500 instructions, 2,250 decomposed yes/no requirements.

The judge answers each requirement in its own call (ifforge's own prompt), so calls are independent, batched and
cached one by one. DRFR (Decomposed Requirements Following Ratio) = requirements met / requirements judged, for the
easy set, the hard set and overall. Unreadable judge answers are counted and left out of the ratios.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Dict, List, Tuple

from ifforge.evaluate import SUITES
from ifforge.evaluate.data import load_hub, read_rows
from ifforge.evaluate.judge import ask, parse_verdict
from ifforge.evaluate.rates import pct
from ifforge.evaluate.suite import Item, Suite, SuiteConfig
from ifforge.evaluate.tables import headline_tables, judge_note
from ifforge.prompts import render

SUBSETS = {"Easy_set": "easy", "Hard_set": "hard"}


@dataclass
class InfoBenchConfig(SuiteConfig):
    hf_name: str = "kqsong/InFoBench"


def as_list(value: Any) -> List[Any]:
    """The data set stores lists as Python-literal strings ("['Is ...?', ...]")."""
    return list(ast.literal_eval(value)) if isinstance(value, str) else list(value)


def drfr(verdicts: List[Tuple[str, Any]]) -> Dict[str, Any]:
    """DRFR per subset and overall from (subset, verdict) pairs; verdict None = unparseable, left out."""
    met: Dict[str, int] = defaultdict(int)
    judged: Dict[str, int] = defaultdict(int)
    for subset, verdict in verdicts:
        if verdict is None:
            continue
        for key in (SUBSETS.get(subset, subset), "overall"):
            judged[key] += 1
            met[key] += bool(verdict)
    out = {f"drfr_{k}": pct(met[k], judged[k]) for k in ("easy", "hard", "overall")}
    out.update({"n_questions": len(verdicts), "n_judged": judged["overall"],
                "unparseable": sum(v is None for _, v in verdicts)})
    return out


@SUITES.register("infobench", schema=InfoBenchConfig)
class InfoBench(Suite):
    name = "infobench"
    uses_judge = True

    def load(self) -> List[Item]:
        rows = read_rows(self.cfg.path) if self.cfg.path else load_hub(self.cfg.hf_name, self.cfg.split)
        items = []
        for r in rows:
            text = r["instruction"] + (f"\n\n{r['input']}" if r.get("input") else "")
            items.append(Item(id=str(r["id"]), prompt=text, messages=[{"role": "user", "content": text}],
                              data={"instruction": r["instruction"], "input": r.get("input") or "",
                                    "subset": r["subset"], "questions": as_list(r["decomposed_questions"]),
                                    "labels": as_list(r.get("question_label") or "[]")}))
        return self.limited(items)

    def score(self, items: List[Item], responses: List[str]) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
        owners, prompts = [], []
        for i, (it, resp) in enumerate(zip(items, responses)):
            for q in it.data["questions"]:
                owners.append(i)
                prompts.append(render("eval/infobench_question.j2", self.cfg.judge_template, question=q,
                                      instruction=it.data["instruction"], input=it.data["input"], response=resp))
        answers = ask(self.ctx.judge(), prompts, desc="judge infobench")
        checks: List[List[Dict[str, Any]]] = [[] for _ in items]
        for i, ans in zip(owners, answers):
            q = items[i].data["questions"][len(checks[i])]
            checks[i].append({"question": q, "verdict": parse_verdict(ans["text"]), "judge_output": ans["text"],
                              "judge_error": ans["error"]})
        rows = [{"id": it.id, "subset": it.data["subset"], "prompt": it.prompt, "response": resp, "checks": cs}
                for it, resp, cs in zip(items, responses, checks)]
        metrics = drfr([(it.data["subset"], c["verdict"]) for it, cs in zip(items, checks) for c in cs])
        metrics["n_items"] = len(items)
        return rows, metrics

    @classmethod
    def headline(cls, metrics: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
        return {"InFoBench DRFR": {"Easy": metrics["drfr_easy"], "Hard": metrics["drfr_hard"],
                                   "Overall": metrics["drfr_overall"]}}

    def table(self, metrics: Dict[str, Any], label: str) -> str:
        return headline_tables(self.headline(metrics), label, notes=judge_note(metrics), details={
            "InFoBench DRFR": f"{metrics['n_judged']} of {metrics['n_questions']} requirements judged, "
                              f"{metrics['n_items']} instructions"})
