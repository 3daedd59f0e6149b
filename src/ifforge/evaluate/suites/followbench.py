"""FollowBench (Jiang et al., 2023): six constraint categories, levels 1-5 (level k adds k constraints to a base).

`protocol: reference` (default) scores with FollowBench's own code, fetched at run time at a pinned commit
(followbench_official): its judge prompt per category, its reading of the judge's last line, its rules, HSR, SSR
and CSL per category and level; the overall row per level is the mean over categories. `limit` keeps the first N
examples (all five levels) of each category.

`protocol: ifforge` is ifforge's own scoring: rule-based where the item's source has a checkable answer (`followbench_rules`), else the judge (own
prompt) sees the base instruction and every level up to the item's, and gives one YES/NO per added constraint.
HSR: all constraints met; SSR: share of constraints met (an answer rule's single verdict counts for all of the
item's constraints, as in the benchmark's own scoring).
Rates per category and level; the overall row per level is the mean over categories (each category weighs the
same, as in the benchmark's leaderboard), and "Avg." the mean over levels 1-5. Level-0 rows are only used to
build the judge's constraint path.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from ifforge.errors import UserError
from ifforge.evaluate import SUITES
from ifforge.evaluate.data import load_hub, read_rows
from ifforge.evaluate.judge import ask, parse_verdict_list, structured, verdict_list
from ifforge.evaluate.rates import mean, pct
from ifforge.evaluate.suite import Item, Suite, SuiteConfig
from ifforge.evaluate.suites.followbench_official import OfficialFollowBench
from ifforge.evaluate.suites.followbench_rules import rule_verdicts
from ifforge.evaluate.tables import headline_tables, judge_note, markdown_table
from ifforge.prompts import render

CATEGORIES = ("content", "situation", "style", "format", "example", "mixed")
LEVELS = (1, 2, 3, 4, 5)


@dataclass
class FollowBenchConfig(SuiteConfig):
    hf_name: str = "YuxinJiang/FollowBench"
    hf_data_files: str = "data/{category}_constraints.json"  # one file per category in the hub repository
    categories: List[str] = field(default_factory=lambda: list(CATEGORIES))
    protocol: str = "reference"  # reference (FollowBench's own code) | ifforge
    judge_max_tokens: int = 1024  # reference: FollowBench's llm_eval.py lets the judge write 1,024 tokens


def rates(items: List[Dict[str, Any]]) -> Dict[str, Any]:
    """HSR/SSR per category and level, the category-mean per level and the level-mean, from scored rows with
    `category`, `level`, `hard` and `soft` (None = unparseable, left out)."""
    cells: Dict[Tuple[str, int], List[Dict[str, Any]]] = defaultdict(list)
    for r in items:
        if r["hard"] is not None:
            cells[(r["category"], int(r["level"]))].append(r)
    per_category: Dict[str, Any] = {}
    for cat in sorted({c for c, _ in cells}, key=lambda c: CATEGORIES.index(c) if c in CATEGORIES else 99):
        per_level = {}
        for lvl in LEVELS:
            rs = cells.get((cat, lvl), [])
            per_level[str(lvl)] = {"n": len(rs), "hsr": pct(sum(r["hard"] for r in rs), len(rs)),
                                   "ssr": pct(sum(r["soft"] for r in rs), len(rs))}
        per_category[cat] = per_level
    out: Dict[str, Any] = {"per_category": per_category, "per_level": {}}
    for lvl in LEVELS:
        out["per_level"][str(lvl)] = {k: mean(per_category[c][str(lvl)][k] for c in per_category)
                                      for k in ("hsr", "ssr")}
    out["hsr_avg"] = mean(out["per_level"][str(lvl)]["hsr"] for lvl in LEVELS)
    out["ssr_avg"] = mean(out["per_level"][str(lvl)]["ssr"] for lvl in LEVELS)
    out["n_scored"] = sum(len(v) for v in cells.values())
    out["unparseable"] = sum(r["hard"] is None for r in items)
    return out


@SUITES.register("followbench", schema=FollowBenchConfig)
class FollowBench(Suite):
    name = "followbench"
    summary_columns = {"FollowBench HSR": "hsr_avg", "FollowBench SSR": "ssr_avg"}
    uses_judge = True
    official = OfficialFollowBench

    def _rows(self, category: str) -> List[Dict[str, Any]]:
        if self.cfg.path:
            return read_rows(f"{self.cfg.path}/{category}_constraints.json", what="FollowBench file")
        return load_hub(self.cfg.hf_name, self.cfg.split,
                        data_files=str(self.cfg.hf_data_files).format(category=category))

    def load(self) -> List[Item]:
        unknown = [c for c in self.cfg.categories if c not in CATEGORIES]
        if unknown:
            raise UserError(f"eval.followbench.categories: unknown {unknown}; choose from {list(CATEGORIES)}")
        items = []
        self.rows: Dict[str, List[Dict[str, Any]]] = {}  # every row of the selected examples, for the official code
        for category in self.cfg.categories:
            rows = self._rows(category)
            examples = list(dict.fromkeys(r["example_id"] for r in rows if int(r["level"]) >= 1))
            if self.cfg.limit is not None:
                examples = examples[: int(self.cfg.limit)]
            chosen = set(examples)
            rows = [r for r in rows if r["example_id"] in chosen]
            self.rows[category] = rows
            by_example: Dict[str, Dict[int, str]] = defaultdict(dict)
            for r in rows:
                by_example[str(r["example_id"])][int(r["level"])] = r["instruction"]
            for r in rows:
                level, ex = int(r["level"]), str(r["example_id"])
                if level < 1:
                    continue
                path = [by_example[ex].get(lvl) for lvl in range(level + 1)]
                items.append(Item(id=f"{category}/{ex}/{level}", prompt=r["instruction"],
                                  messages=[{"role": "user", "content": r["instruction"]}],
                                  data={"category": category, "level": level, "source": r.get("source"),
                                        "target": r.get("target", ""), "path": path}))
        return items

    def limited(self, items: List[Item]) -> List[Item]:
        return items  # applied per category in load()

    def score(self, items: List[Item], responses: List[str]) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
        if self.reference:
            return self._score_reference(items, responses)
        rows: List[Dict[str, Any]] = []
        to_judge: List[int] = []
        for it, resp in zip(items, responses):
            d = it.data
            verdicts = rule_verdicts(d["category"], d, resp)
            row = {"id": it.id, "category": d["category"], "level": d["level"], "source": d["source"],
                   "prompt": it.prompt, "response": resp, "method": "rule" if verdicts is not None else "judge",
                   "constraints": verdicts, "hard": None if verdicts is None else all(verdicts),
                   "soft": None if verdicts is None else sum(verdicts) / len(verdicts),
                   "judge_output": None, "judge_error": None}
            if verdicts is None:
                if any(step is None for step in d["path"]):
                    raise UserError(f"FollowBench item {it.id}: a level below it is missing, so the judge cannot "
                                    f"see which constraints were added")
                to_judge.append(len(rows))
            rows.append(row)
        judge = self.ctx.judge() if to_judge else None
        prompts = [render("eval/followbench_constraints.j2", self.cfg.templates.judge, category=rows[i]["category"]
                          if rows[i]["category"] != "mixed" else "", steps=items[i].data["path"],
                          response=rows[i]["response"], structured=structured(judge)) for i in to_judge]
        answers = ask(judge, prompts, desc="judge followbench",
                      shape=[verdict_list(rows[i]["level"]) for i in to_judge]) if prompts else []
        for i, ans in zip(to_judge, answers):
            verdicts = parse_verdict_list(ans["text"], rows[i]["level"])
            rows[i].update(judge_output=ans["text"], judge_error=ans["error"], constraints=verdicts,
                           hard=None if verdicts is None else all(verdicts),
                           soft=None if verdicts is None else sum(verdicts) / len(verdicts))
        metrics = rates(rows)
        metrics.update(n_items=len(items), n_rule=sum(r["method"] == "rule" for r in rows), n_judge=len(to_judge),
                       protocol="ifforge", scored_verdicts=metrics["n_scored"])
        return rows, metrics

    def _score_reference(self, items: List[Item], responses: List[str]) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
        from ifforge.llm import ChatRequest

        official = OfficialFollowBench(self.ctx.reference_dir)
        answers = {it.prompt: resp for it, resp in zip(items, responses)}
        params = {"temperature": 0.0, "max_tokens": int(self.cfg.judge_max_tokens)}

        def judge(prompts: List[str]) -> List[Optional[str]]:
            results = self.ctx.judge().generate([ChatRequest(messages=[{"role": "user", "content": p}],
                                                             params=dict(params)) for p in prompts],
                                                desc="judge followbench")
            return [r.text if r.ok else None for r in results]

        per_category: Dict[str, Any] = {}
        rows: List[Dict[str, Any]] = []
        unreadable, left_out = 0, {}
        for category in self.cfg.categories:
            by_example: Dict[Any, List[Dict[str, Any]]] = defaultdict(list)
            for r in self.rows.get(category, []):
                by_example[r["example_id"]].append(r)
            # an example with a failed generation is left out whole (the engine has dropped that item)
            complete = [r for ex, rs in by_example.items() if all(r["instruction"] in answers for r in rs
                                                                  if int(r["level"]) > 0) for r in rs]
            if not complete:
                continue
            res = official.score_category(category, complete, answers, judge)
            per_category[category] = {**{str(lvl): {"hsr": res["hsr"][lvl - 1], "ssr": res["ssr"][lvl - 1]}
                                         for lvl in LEVELS}, "csl": res["csl"], "examples": res["groups"]}
            unreadable += res["unreadable"]
            if res["examples_left_out"]:
                left_out[category] = res["examples_left_out"]
            for it in res["items"]:
                text = next(r["instruction"] for r in complete
                            if r["example_id"] == it["example_id"] and r["level"] == it["level"])
                rows.append({"id": f"{category}/{it['example_id']}/{it['level']}", "category": category,
                             "prompt": text, "response": answers[text], **it})
        metrics: Dict[str, Any] = {"per_category": per_category, "per_level": {}}
        for lvl in LEVELS:
            metrics["per_level"][str(lvl)] = {k: mean([per_category[c][str(lvl)][k] for c in per_category])
                                              for k in ("hsr", "ssr")}
        metrics["hsr_avg"] = mean([metrics["per_level"][str(lvl)]["hsr"] for lvl in LEVELS])
        metrics["ssr_avg"] = mean([metrics["per_level"][str(lvl)]["ssr"] for lvl in LEVELS])
        metrics["csl"] = mean([per_category[c]["csl"] for c in per_category])
        metrics.update(n_items=len(items), n_scored=len(rows), n_rule=sum(r["method"] == "rule" for r in rows),
                       n_judge=sum(r["method"] == "judge" for r in rows), unparseable=unreadable,
                       examples_left_out=left_out, protocol="reference", scored_verdicts=len(rows) - unreadable,
                       unparseable_rule="each counts as NO (FollowBench's own parser returns -1 and asks for a "
                                        "manual fix)")
        return rows, metrics

    @classmethod
    def headline(cls, metrics: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
        tables = {f"FollowBench ({kind.upper()})": {
            **{f"Level {lvl}": metrics["per_level"][str(lvl)][kind] for lvl in LEVELS}, "Avg.": metrics[f"{kind}_avg"]}
            for kind in ("hsr", "ssr")}
        if "csl" in metrics:  # the reference protocol's consistent satisfaction levels (0-5)
            tables["FollowBench (HSR)"]["CSL"] = metrics["csl"]
        return tables

    def table(self, metrics: Dict[str, Any], label: str) -> str:
        scored = (f"{metrics['n_scored']} of {metrics['n_items']} items scored: {metrics['n_rule']} by rule, "
                  f"{metrics['n_judge']} by the judge")
        out = [headline_tables(self.headline(metrics), label, notes=judge_note(metrics),
                               details={"FollowBench (HSR)": scored, "FollowBench (SSR)": scored})]
        cats = metrics["per_category"]
        out.append(markdown_table(
            ["Category"] + [f"L{lvl} HSR" for lvl in LEVELS] + [f"L{lvl} SSR" for lvl in LEVELS],
            [[c] + [cats[c][str(lvl)]["hsr"] for lvl in LEVELS] + [cats[c][str(lvl)]["ssr"] for lvl in LEVELS]
             for c in cats], title=f"FollowBench per category ({label})"))
        return "\n".join(out)
