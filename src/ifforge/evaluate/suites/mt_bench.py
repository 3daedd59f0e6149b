"""MT-Bench (Zheng et al., 2023): 80 two-turn questions; the judge grades each answer 1-10 (single-answer grading).

The second question is asked after the model's own first answer. The score is the mean over all graded turns, with
per-turn and per-category means.

`protocol: reference` (default) is FastChat's `llm_judge`, read at run time from its repository at a pinned commit
(ifforge.evaluate.reference): answers sampled at FastChat's per-category temperature; turn 1 graded with the
`single-v1` judge prompt, turn 2 with `single-v1-multi-turn` (the whole conversation), math/reasoning/coding with
the `single-math-v1*` prompts and GPT-4's reference answers; the judge at temperature 0 with 2,048 tokens; the
*first* `[[N]]` (else `[N]`) is the grade, and an answer without one is not graded (counted). `protocol: ifforge`
is ifforge's own cheaper prompt (no reference answers, the last rating written wins).
Answers produced elsewhere: rows with `prompt` (the first question) and `response` (a list of two answers).
Data: FastChat's question.jsonl (`question_id, category, turns`) via `path`, or the hub copy
HuggingFaceH4/mt_bench_prompts (`prompt_id, category, prompt` with the turns).
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from ifforge.evaluate import SUITES
from ifforge.evaluate.data import load_hub, read_rows
from ifforge.evaluate.judge import RATING, as_text, parse_rating, shape_params, structured
from ifforge.evaluate.reference import module_constants, reference_file
from ifforge.evaluate.suite import Item, Suite, SuiteConfig
from ifforge.evaluate.tables import headline_tables, judge_note, markdown_table
from ifforge.errors import UserError
from ifforge.prompts import render


@dataclass
class MTBenchConfig(SuiteConfig):
    hf_name: str = "HuggingFaceH4/mt_bench_prompts"
    protocol: str = "reference"  # reference (FastChat llm_judge) | ifforge
    judge_max_tokens: int = 2048  # reference: FastChat lets the judge write 2,048 tokens


class FastChat:
    """What the reference protocol reads from FastChat's llm_judge: judge prompts, GPT-4 reference answers, the
    categories that need them, the rating patterns and the answer temperatures."""

    def __init__(self, local_dir: Optional[str]):
        common = reference_file("FastChat", "fastchat/llm_judge/common.py", local_dir)
        c = module_constants(common, ["NEED_REF_CATS", "one_score_pattern", "one_score_pattern_backup",
                                      "temperature_config"])
        self.need_ref = set(c["NEED_REF_CATS"])
        self.patterns = (c["one_score_pattern"], c["one_score_pattern_backup"])
        self.temperature = dict(c["temperature_config"])
        prompts = reference_file("FastChat", "fastchat/llm_judge/data/judge_prompts.jsonl", local_dir)
        self.judge_prompts = {r["name"]: r for r in read_rows(prompts)}
        answers = reference_file("FastChat", "fastchat/llm_judge/data/mt_bench/reference_answer/gpt-4.jsonl",
                                 local_dir)
        self.ref_answers = {str(r["question_id"]): r["choices"][0]["turns"] for r in read_rows(answers)}

    def judge_messages(self, item: Item, answers: List[str], turn: int) -> List[Dict[str, str]]:
        """FastChat's run_judge_single prompt for `turn` (1 or 2) of `item`: system + user message."""
        ref = item.data["category"] in self.need_ref
        name = ("single-math-v1" if ref else "single-v1") + ("-multi-turn" if turn == 2 else "")
        template = self.judge_prompts[name]
        q = item.data["turns"]
        kwargs: Dict[str, str] = {}
        if ref:
            if item.id not in self.ref_answers:
                raise UserError(f"MT-Bench question {item.id} ({item.data['category']}) has no GPT-4 reference answer")
            refs = self.ref_answers[item.id]
            kwargs["ref_answer_1"] = refs[0]
            if turn == 2:
                kwargs["ref_answer_2"] = refs[1]
        if turn == 2:
            user = template["prompt_template"].format(question_1=q[0], question_2=q[1], answer_1=answers[0],
                                                      answer_2=answers[1], **kwargs)
        else:
            user = template["prompt_template"].format(question=q[0], answer=answers[0], **kwargs)
        return [{"role": "system", "content": template["system_prompt"]}, {"role": "user", "content": user}]

    def rating(self, judgment: Optional[str]) -> Optional[float]:
        """The first [[N]] (else [N]) as FastChat reads it; None where it finds none (FastChat's -1: not graded)."""
        if not judgment:
            return None
        match = re.search(self.patterns[0], judgment) or re.search(self.patterns[1], judgment)
        return float(ast.literal_eval(match.groups()[0])) if match else None


def _mean(values: List[float]) -> Optional[float]:
    return round(sum(values) / len(values), 2) if values else None


def as_turns(response: Any, n: int) -> List[str]:
    turns = [response] if isinstance(response, str) else list(response or [])
    return [str(t) if t is not None else "" for t in turns] + [""] * (n - len(turns))


@SUITES.register("mt_bench", schema=MTBenchConfig)
class MTBench(Suite):
    name = "mt_bench"
    summary_columns = {"MT-Bench": "score"}
    uses_judge = True
    official = FastChat

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
        # reference: FastChat samples each category's answers at its own temperature (writing 0.7, stem 0.1, ...)
        temps = self.fastchat().temperature if self.reference else {}
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
                category = items[i].data["category"]
                extra = {"temperature": float(temps[category])} if category in temps else {}
                requests.append(ChatRequest(messages=history, params={**params, **extra}))
            for i, r in zip(todo, generator.generate(requests, desc=f"answer mt_bench turn {turn + 1}")):
                answers[i].append(r.text if r.ok else None)
        return [None if any(a is None for a in ans) else [str(a) for a in ans] for ans in answers]

    def fastchat(self) -> FastChat:
        if not hasattr(self, "_fastchat"):
            self._fastchat = FastChat(self.ctx.reference_dir)
        return self._fastchat

    def score(self, items: List[Item], responses: List[Any]) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
        from ifforge.llm import ChatRequest

        jobs, requests = [], []
        judge = self.ctx.judge()
        shaped = not self.reference and structured(judge)  # the official protocol keeps FastChat's free-text grades
        turns_of = [as_turns(r, len(it.data["turns"])) for it, r in zip(items, responses)]
        for i, it in enumerate(items):
            for t in range(len(it.data["turns"])):
                jobs.append((i, t))
                if self.reference:
                    messages = self.fastchat().judge_messages(it, turns_of[i], t + 1)
                    params = {"temperature": 0.0, "max_tokens": int(self.cfg.judge_max_tokens)}
                else:
                    messages = [{"role": "user", "content": render(
                        "eval/mt_bench_single.j2", self.cfg.templates.judge, turns=it.data["turns"],
                        answers=turns_of[i], turn=t + 1, structured=shaped)}]
                    params = shape_params(RATING, shaped)
                requests.append(ChatRequest(messages=messages, params=params))
        results = judge.generate(requests, desc="judge mt_bench")
        read = self.fastchat().rating if self.reference else parse_rating
        grades: List[List[Dict[str, Any]]] = [[] for _ in items]
        for (i, t), res in zip(jobs, results):
            text = (as_text(res.text, RATING) if shaped else res.text) if res.ok else None
            grades[i].append({"turn": t + 1, "score": read(text), "judge_output": text, "judge_error": res.error,
                              "judge_prompt": res.request.messages[-1]["content"]})
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
                      "n_items": len(items), "n_graded": len(scored), "unparseable": len(jobs) - len(scored),
                      "scored_verdicts": len(scored),
                      "protocol": str(self.cfg.protocol),
                      "unparseable_rule": "they are not graded (FastChat's -1), as in FastChat"
                      if self.reference else "they are left out of the rates"}

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
