"""InFoBench (Qin et al., 2024): 500 instructions, 2,250 decomposed yes/no requirements.

DRFR (Decomposed Requirements Following Ratio) = requirements met / requirements judged, for the easy set, the
hard set and overall.

`protocol: reference` (default) is InFoBench's own `evaluation.py`, run as written (infobench_official): one
conversation per item, its system message, its answer reading; an unreadable answer counts as NO and the item's
later questions are not asked, as there. `protocol: ifforge` asks each requirement in its own call (ifforge's own
prompt, showing the instruction), so calls are independent; unreadable answers are left out of the ratios.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from ifforge.evaluate import SUITES
from ifforge.evaluate.data import load_hub, read_rows
from ifforge.evaluate.judge import VERDICT, ask, parse_verdict, structured
from ifforge.evaluate.rates import pct
from ifforge.evaluate.suite import Item, Suite, SuiteConfig
from ifforge.evaluate.suites.infobench_official import OfficialInfoBench
from ifforge.evaluate.tables import headline_tables, judge_note
from ifforge.prompts import render

SUBSETS = {"Easy_set": "easy", "Hard_set": "hard"}


@dataclass
class InfoBenchConfig(SuiteConfig):
    hf_name: str = "kqsong/InFoBench"
    protocol: str = "reference"  # reference (InFoBench's evaluation.py) | ifforge
    # reference: evaluation.py sets no limit (the API's default); its answers are a word or a sentence
    judge_max_tokens: int = 1024


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
    summary_columns = {"InFoBench DRFR": "drfr_overall"}
    uses_judge = True
    official = OfficialInfoBench

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

    def _score_reference(self, items: List[Item], responses: List[str]) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
        from ifforge.llm import ChatRequest

        judge = self.ctx.judge()

        def batch(conversations: List[List[Dict[str, str]]], temperature: float) -> List[Optional[str]]:
            params = {"temperature": temperature, "max_tokens": int(self.cfg.judge_max_tokens)}
            results = judge.generate([ChatRequest(messages=c, params=dict(params)) for c in conversations],
                                     desc="judge infobench")
            return [r.text if r.ok else None for r in results]

        entries = [{"id": it.id, "input": it.data["input"], "output": resp,
                    "decomposed_questions": it.data["questions"]} for it, resp in zip(items, responses)]
        evals = OfficialInfoBench(self.ctx.reference_dir).judge_all(
            entries, batch, workers=int(self.ctx.judge_concurrency or 256))
        rows, verdicts, left_out = [], [], []
        for it, resp, ev in zip(items, responses, evals):
            if ev is None:  # a judge call failed (tolerated): the item is not scored at all
                left_out.append(it.id)
                continue
            checks = [{"question": q, "verdict": v} for q, v in zip(it.data["questions"], ev)]
            rows.append({"id": it.id, "subset": it.data["subset"], "prompt": it.prompt, "response": resp,
                         "checks": checks, "not_asked": len(it.data["questions"]) - len(ev)})
            # InFoBench's bool_ratio: an unreadable answer (None) counts as NO; unasked questions are not counted.
            verdicts += [(it.data["subset"], bool(v)) for v in ev]
        metrics = drfr(verdicts)
        metrics.update(n_items=len(items), unparseable=sum(c["verdict"] is None for r in rows for c in r["checks"]),
                       not_asked=sum(r["not_asked"] for r in rows), items_left_out=left_out, protocol="reference",
                       n_questions=sum(len(it.data["questions"]) for it in items),
                       scored_verdicts=len(verdicts) - sum(c["verdict"] is None for r in rows for c in r["checks"]),
                       unparseable_rule="each counts as NO and the item's later questions are not asked, as in "
                                        "InFoBench's evaluation.py")
        return rows, metrics

    def score(self, items: List[Item], responses: List[str]) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
        if self.reference:
            return self._score_reference(items, responses)
        owners, prompts = [], []
        judge = self.ctx.judge()
        for i, (it, resp) in enumerate(zip(items, responses)):
            for q in it.data["questions"]:
                owners.append(i)
                prompts.append(render("eval/infobench_question.j2", self.cfg.templates.judge, question=q,
                                      instruction=it.data["instruction"], input=it.data["input"], response=resp,
                                      structured=structured(judge)))
        answers = ask(judge, prompts, desc="judge infobench", shape=VERDICT)
        checks: List[List[Dict[str, Any]]] = [[] for _ in items]
        for i, ans in zip(owners, answers):
            q = items[i].data["questions"][len(checks[i])]
            checks[i].append({"question": q, "verdict": parse_verdict(ans["text"]), "judge_output": ans["text"],
                              "judge_error": ans["error"]})
        rows = [{"id": it.id, "subset": it.data["subset"], "prompt": it.prompt, "response": resp, "checks": cs}
                for it, resp, cs in zip(items, responses, checks)]
        metrics = drfr([(it.data["subset"], c["verdict"]) for it, cs in zip(items, checks) for c in cs])
        metrics.update(n_items=len(items), protocol="ifforge", scored_verdicts=metrics["n_judged"])
        return rows, metrics

    @classmethod
    def headline(cls, metrics: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
        return {"InFoBench DRFR": {"Easy": metrics["drfr_easy"], "Hard": metrics["drfr_hard"],
                                   "Overall": metrics["drfr_overall"]}}

    def table(self, metrics: Dict[str, Any], label: str) -> str:
        return headline_tables(self.headline(metrics), label, notes=judge_note(metrics), details={
            "InFoBench DRFR": f"{metrics['n_judged']} of {metrics['n_questions']} requirements judged, "
                              f"{metrics['n_items']} instructions"})
