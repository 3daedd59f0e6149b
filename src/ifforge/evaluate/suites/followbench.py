"""FollowBench (Jiang et al., 2023): six constraint categories, levels 1-5 (level k adds k constraints to a base).

Scoring: rule-based where the item's source has a checkable answer (`followbench_rules`), else the judge (own
prompt) sees the base instruction and every level up to the item's, and gives one YES/NO per added constraint.
HSR: all constraints met; SSR: share of constraints met (an answer rule's single verdict counts for all of the
item's constraints, as in the benchmark's own scoring).
Rates per category and level; the overall row per level is the mean over categories (each category weighs the
same, as in the benchmark's leaderboard), and "Avg." the mean over levels 1-5. `limit` keeps the first N scored
items of each category. Level-0 rows are only used to build the judge's constraint path.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Dict, List, Tuple

from ifforge.errors import UserError
from ifforge.evaluate import SUITES
from ifforge.evaluate.data import load_hub, read_rows
from ifforge.evaluate.judge import ask, parse_verdict_list
from ifforge.evaluate.rates import mean, pct
from ifforge.evaluate.suite import Item, Suite, SuiteConfig
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
    uses_judge = True

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
        for category in self.cfg.categories:
            rows = self._rows(category)
            by_example: Dict[str, Dict[int, str]] = defaultdict(dict)
            for r in rows:
                by_example[str(r["example_id"])][int(r["level"])] = r["instruction"]
            scored = [r for r in rows if int(r["level"]) >= 1]
            if self.cfg.limit is not None:
                scored = scored[: int(self.cfg.limit)]
            for r in scored:
                level, ex = int(r["level"]), str(r["example_id"])
                path = [by_example[ex].get(lvl) for lvl in range(level + 1)]
                items.append(Item(id=f"{category}/{ex}/{level}", prompt=r["instruction"],
                                  messages=[{"role": "user", "content": r["instruction"]}],
                                  data={"category": category, "level": level, "source": r.get("source"),
                                        "target": r.get("target", ""), "path": path}))
        return items

    def limited(self, items: List[Item]) -> List[Item]:
        return items  # applied per category in load()

    def score(self, items: List[Item], responses: List[str]) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
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
        prompts = [render("eval/followbench_constraints.j2", self.cfg.judge_template, category=rows[i]["category"]
                          if rows[i]["category"] != "mixed" else "", steps=items[i].data["path"],
                          response=rows[i]["response"]) for i in to_judge]
        answers = ask(self.ctx.judge(), prompts, desc="judge followbench") if prompts else []
        for i, ans in zip(to_judge, answers):
            verdicts = parse_verdict_list(ans["text"], rows[i]["level"])
            rows[i].update(judge_output=ans["text"], judge_error=ans["error"], constraints=verdicts,
                           hard=None if verdicts is None else all(verdicts),
                           soft=None if verdicts is None else sum(verdicts) / len(verdicts))
        metrics = rates(rows)
        metrics.update(n_items=len(items), n_rule=sum(r["method"] == "rule" for r in rows), n_judge=len(to_judge))
        return rows, metrics

    @classmethod
    def headline(cls, metrics: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
        return {f"FollowBench ({kind.upper()})": {
            **{f"Level {lvl}": metrics["per_level"][str(lvl)][kind] for lvl in LEVELS}, "Avg.": metrics[f"{kind}_avg"]}
            for kind in ("hsr", "ssr")}

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
