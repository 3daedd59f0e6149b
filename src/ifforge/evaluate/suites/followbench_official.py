"""FollowBench scored by its own code (protocol: reference).

The functions of YJiangcm/FollowBench's `code/utils.py`, `code/rule_based_evaluation.py` and
`code/gpt4_based_evaluation.py` at a pinned commit (ifforge.evaluate.reference) run as written on files laid out
the way they expect: the benchmark rows of the selected examples, the model's answers, the judge prompts the
official code writes (`acquire_discriminative_eval_input`) and the judge's answers to them. HSR and SSR per level
come from `discriminative_evaluation` + `rule_evaluation` (rule-checkable sources and format examples 22/30 by
rule, the rest by the judge), CSL from `csl_evaluation` + `csl_five_constraint`, and the example category from
`evaluate_example_constraint` / `csl_example_constraint`.

One deliberate difference: for a judge answer it cannot read, the official parser returns -1 and asks for a
manual fix, and a -1 left in place would subtract from the sums; here it counts as NO (0), and how many there
were is reported next to the scores.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import random
import re
import string
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Dict, List, Optional

from ifforge.evaluate.reference import function_names, load_functions, reference_file

FILES = ("code/utils.py", "code/rule_based_evaluation.py", "code/gpt4_based_evaluation.py")
SKIP = ("add_model_args", "convert_to_api_input")  # argparse glue and data conversion, not scoring
MODEL = "candidate"  # the model-name folder the official code reads answers from
_QUIET = SimpleNamespace(error=lambda *a, **k: None, info=lambda *a, **k: None, warning=lambda *a, **k: None)
Judge = Callable[[List[str]], List[Optional[str]]]  # judge prompts -> answers (None: the call failed)


class OfficialFollowBench:
    def __init__(self, local_dir: Optional[str]):
        ns: Dict[str, Any] = {"json": json, "os": os, "re": re, "ast": ast, "string": string, "random": random,
                              "logger": _QUIET}
        for rel in FILES:
            path = reference_file("FollowBench", rel, local_dir)
            load_functions(path, [n for n in function_names(path) if not n.startswith("save_") and n not in SKIP],
                           ns)
        official = ns["paring_discriminative_generation"]

        def unreadable_is_no(generation: Any, level: int) -> Any:
            hard, soft = official(generation, level)
            return (0, 0) if hard == -1 else (hard, soft)

        self.parse = official
        ns["paring_discriminative_generation"] = unreadable_is_no
        self.ns = ns

    def _call(self, name: str, *args: Any) -> Any:
        with contextlib.redirect_stdout(io.StringIO()):  # the official code prints row numbers and progress
            return self.ns[name](*args)

    def score_category(self, category: str, rows: List[Dict[str, Any]], answers: Dict[str, str],
                       judge: Judge) -> Dict[str, Any]:
        """Official HSR/SSR per level and CSL for one category's selected examples (every row of each example,
        level 0 included) and the model's answers ({instruction: answer}); per-item verdicts for results.jsonl.
        Examples with a failed judge call are left out whole (a tolerated failure is never scored)."""
        left_out: List[Any] = []
        replies: Dict[str, Optional[str]] = {}

        def ask_once(prompts: List[str]) -> List[Optional[str]]:  # a re-score after a failure asks nothing again
            todo = [p for p in dict.fromkeys(prompts) if p not in replies]
            replies.update(zip(todo, judge(todo) if todo else []))
            return [replies[p] for p in prompts]

        while True:
            result = self._score(category, rows, answers, ask_once)
            failed = result.pop("failed_examples")
            if not failed:
                result["examples_left_out"] = left_out
                return result
            left_out += sorted(failed, key=str)
            rows = [r for r in rows if r["example_id"] not in failed]  # re-scored from the cached judge answers

    def _score(self, category: str, rows: List[Dict[str, Any]], answers: Dict[str, str],
               judge: Judge) -> Dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="followbench-") as tmp:
            d = {k: os.path.join(tmp, k) for k in ("data", "api", "judge_in", "judge_in_data", "judge_out")}
            for k in ("data", "judge_out"):
                os.makedirs(d[k] if k == "data" else os.path.join(d[k], MODEL))
            Path(d["data"], f"{category}_constraints.json").write_text(json.dumps(rows), encoding="utf-8")
            api = Path(d["api"], MODEL)
            api.mkdir(parents=True)
            (api / f"{category}_constraint.jsonl").write_text("".join(
                json.dumps({"prompt": r["instruction"], "choices": [{"message": {"content": answers[r["instruction"]]}}]})
                + "\n" for r in rows if r["level"] > 0), encoding="utf-8")
            items: List[Dict[str, Any]] = []
            if category == "example":
                hsr = [float(v) for v in self._call("evaluate_example_constraint", d["data"], d["api"], MODEL)]
                ssr = list(hsr)
                consistency, groups = self._call("csl_example_constraint", d["data"], d["api"], MODEL)
                for r in rows:
                    ok = self.ns["check_match"](r["target"].replace("{instruction}\n", ""), answers[r["instruction"]])
                    items.append(_item(r, "rule", ok, ok))
                failed: set = set()
                unreadable = 0
            else:
                self._call("acquire_discriminative_eval_input", d["data"], d["api"], category, MODEL,
                           d["judge_in_data"], d["judge_in"])
                asked = [json.loads(line) for line in
                         Path(d["judge_in_data"], MODEL, f"{category}_constraint.jsonl").read_text().splitlines()]
                replies = judge([a["prompt_new"] for a in asked]) if asked else []
                failed = {a["example_id"] for a, reply in zip(asked, replies) if reply is None}
                Path(d["judge_out"], MODEL, f"{category}_constraint.jsonl").write_text("".join(
                    json.dumps({"prompt_new": a["prompt_new"], "choices": [{"message": {"content": reply or ""}}]})
                    + "\n" for a, reply in zip(asked, replies)), encoding="utf-8")
                disc, disc_groups = self._call("discriminative_evaluation", d["judge_in_data"], d["judge_out"],
                                               category, MODEL)
                rule, rule_groups = self._call("rule_evaluation", d["data"], d["api"], category, MODEL)
                groups = disc_groups + rule_groups
                hsr = [float("{:.2f}".format((a + b) / groups * 100)) if groups else None
                       for a, b in zip(disc[0], rule)]
                ssr = [float("{:.2f}".format((a + b) / groups * 100)) if groups else None
                       for a, b in zip(disc[1], rule)]
                c_disc, n_disc = self._call("csl_evaluation", d["judge_in_data"], d["judge_out"], category, MODEL)
                c_rule, n_rule = self._call("csl_five_constraint", d["data"], d["api"], category, MODEL)
                consistency, groups = c_disc + c_rule, n_disc + n_rule
                judged = {(a["example_id"], a["level"]): (a, reply) for a, reply in zip(asked, replies)}
                unreadable = 0
                for r in rows:
                    if r["level"] == 0:
                        continue
                    if (r["example_id"], r["level"]) in judged:
                        a, reply = judged[(r["example_id"], r["level"])]
                        with contextlib.redirect_stdout(io.StringIO()):
                            hard, soft = self.parse(reply, r["level"]) if reply is not None else (None, None)
                        unreadable += hard == -1
                        item = _item(r, "judge", 0 if hard == -1 else hard, 0 if soft == -1 else soft,
                                     prompt=a["prompt_new"], output=reply)
                        item["unreadable"] = hard == -1  # counted as NO, as in the rates
                        items.append(item)
                    else:
                        ok = self._rule(category, r, answers[r["instruction"]])
                        items.append(_item(r, "rule", ok, ok))
            return {"hsr": hsr, "ssr": ssr, "csl": round(consistency / groups, 1) if groups else None,
                    "groups": groups, "unreadable": unreadable, "items": items, "failed_examples": failed}

    def _rule(self, category: str, row: Dict[str, Any], answer: str) -> bool:
        """The official rule verdict of one item (for results.jsonl; the rates come from rule_evaluation)."""
        fn = self.ns.get(f"rule_evaluation_{row['source']}")
        if fn is not None:
            return bool(fn(answer, row["target"], row["level"]))
        return bool(self.ns["rule_evaluation_format"](answer, row["example_id"], row["level"]))


def _item(row: Dict[str, Any], method: str, hard: Any, soft: Any, prompt: Optional[str] = None,
          output: Optional[str] = None) -> Dict[str, Any]:
    return {"example_id": row["example_id"], "level": row["level"], "source": row.get("source"), "method": method,
            "hard": hard, "soft": soft, "judge_prompt": prompt, "judge_output": output}

