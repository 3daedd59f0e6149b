"""MT-Bench (Zheng et al., 2023): 80 two-turn questions; the judge grades each answer 1-10 (single-answer grading).

The second question is asked after the model's own first answer. Each turn is graded in its own call (ifforge's own
prompt, the conversation so far as context); the score is the mean over all graded turns, with per-turn and
per-category means. No reference answers are given to the judge (FastChat gives some for math/reasoning/coding).
Answers produced elsewhere: rows with `prompt` (the first question) and `response` (a list of two answers).
Data: FastChat's question.jsonl (`question_id, category, turns`) via `path`, or the hub copy
HuggingFaceH4/mt_bench_prompts (`prompt_id, category, prompt` with the turns).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from ifforge.evaluate import SUITES
from ifforge.evaluate.data import load_hub, read_rows
from ifforge.evaluate.judge import ask, parse_rating
from ifforge.evaluate.suite import Item, Suite, SuiteConfig
from ifforge.evaluate.tables import headline_tables, judge_note, markdown_table
from ifforge.errors import UserError
from ifforge.prompts import render


@dataclass
class MTBenchConfig(SuiteConfig):
    hf_name: str = "HuggingFaceH4/mt_bench_prompts"


def _mean(values: List[float]) -> Optional[float]:
    return round(sum(values) / len(values), 2) if values else None


def as_turns(response: Any, n: int) -> List[str]:
    turns = [response] if isinstance(response, str) else list(response or [])
    return [str(t) if t is not None else "" for t in turns] + [""] * (n - len(turns))


@SUITES.register("mt_bench", schema=MTBenchConfig)
class MTBench(Suite):
    name = "mt_bench"
    uses_judge = True

    def load(self) -> List[Item]:
        rows = read_rows(self.cfg.path) if self.cfg.path else load_hub(self.cfg.hf_name, self.cfg.split)
        items = []
        for r in rows:
            turns = list(r.get("turns") or r.get("prompt") or [])
            if not turns:
                raise UserError(f"an MT-Bench row has no `turns` (fields: {', '.join(sorted(r))})")
            items.append(Item(id=str(r.get("question_id", r.get("prompt_id"))), prompt=turns[0],
                              messages=[{"role": "user", "content": turns[0]}],
                              data={"turns": turns, "category": r.get("category", "")}))
        return self.limited(items)

    def answer(self, items: List[Item], generator: Any) -> List[Optional[List[str]]]:
        from ifforge.llm import ChatRequest

        params = {"max_tokens": int(self.cfg.max_tokens)} if self.cfg.max_tokens else {}
        answers: List[List[Optional[str]]] = [[] for _ in items]
        for turn in range(max(len(it.data["turns"]) for it in items)):
            # A later turn is asked only after a real answer to the earlier ones (never after a failed one).
            todo = [i for i, it in enumerate(items) if turn < len(it.data["turns"]) and None not in answers[i]]
            requests = []
            for i in todo:
                history: List[Dict[str, str]] = []
                for q, a in zip(items[i].data["turns"][:turn], answers[i]):
                    history += [{"role": "user", "content": q}, {"role": "assistant", "content": a or ""}]
                history.append({"role": "user", "content": items[i].data["turns"][turn]})
                requests.append(ChatRequest(messages=history, params=dict(params)))
            for i, r in zip(todo, generator.generate(requests, desc=f"answer mt_bench turn {turn + 1}")):
                answers[i].append(r.text if r.ok else None)
        return [None if any(a is None for a in ans) else [str(a) for a in ans] for ans in answers]

    def score(self, items: List[Item], responses: List[Any]) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
        jobs, prompts = [], []
        turns_of = [as_turns(r, len(it.data["turns"])) for it, r in zip(items, responses)]
        for i, it in enumerate(items):
            for t in range(len(it.data["turns"])):
                jobs.append((i, t))
                prompts.append(render("eval/mt_bench_single.j2", self.cfg.judge_template, turns=it.data["turns"],
                                      answers=turns_of[i], turn=t + 1))
        answers = ask(self.ctx.judge(), prompts, desc="judge mt_bench")
        grades: List[List[Dict[str, Any]]] = [[] for _ in items]
        for (i, t), ans in zip(jobs, answers):
            grades[i].append({"turn": t + 1, "score": parse_rating(ans["text"]), "judge_output": ans["text"],
                              "judge_error": ans["error"]})
        rows = [{"id": it.id, "category": it.data["category"], "prompt": it.prompt, "turns": it.data["turns"],
                 "response": turns_of[i], "grades": grades[i]} for i, it in enumerate(items)]
        per_turn: Dict[str, List[float]] = defaultdict(list)
        per_category: Dict[str, List[float]] = defaultdict(list)
        for it, gs in zip(items, grades):
            for g in gs:
                if g["score"] is not None:
                    per_turn[str(g["turn"])].append(g["score"])
                    per_category[it.data["category"]].append(g["score"])
        scored = [g["score"] for gs in grades for g in gs if g["score"] is not None]
        return rows, {"score": _mean(scored), "per_turn": {k: _mean(v) for k, v in sorted(per_turn.items())},
                      "per_category": {k: _mean(v) for k, v in sorted(per_category.items())},
                      "n_items": len(items), "n_graded": len(scored), "unparseable": len(jobs) - len(scored)}

    @classmethod
    def headline(cls, metrics: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
        turns = {f"Turn {t}": metrics["per_turn"][t] for t in sorted(metrics["per_turn"])}
        return {"MT-Bench": {"Score": metrics["score"], **turns}}

    def table(self, metrics: Dict[str, Any], label: str) -> str:
        main = headline_tables(self.headline(metrics), label, notes=judge_note(metrics),
                               details={"MT-Bench": f"1-10, {metrics['n_graded']} answers graded"})
        cats = markdown_table(["Category", "Score"], [[c, s] for c, s in metrics["per_category"].items()],
                              title="MT-Bench per category")
        return main + "\n" + cats
