"""Reading the teacher's JSON: tolerant about what surrounds it (`ifforge.parsing.extract_json`), strict about
what is inside. The `parse_*` functions check its shape and raise `Invalid(reason)` on anything unexpected, so
the step puts the item and the raw reply into rejects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from ifforge.parsing import Invalid, extract_json

ConstraintSet = Dict[str, List[str]]


def _norm(text: str) -> str:
    return " ".join(text.split())


def _key(text: str) -> str:
    return _norm(text).casefold()


def _unwrap_list(value: Any, what: str) -> list:
    """A list, or an object whose only value is a list ({"queries": [...]}) - a common, harmless wrapping."""
    if isinstance(value, dict):
        lists = [v for v in value.values() if isinstance(v, list)]
        if len(value) == 1 and len(lists) == 1:
            return lists[0]
        raise Invalid(f"expected a JSON list of {what}, got an object with keys {sorted(value)[:6]}")
    return value


def _strings(value: Any, where: str) -> List[str]:
    if not isinstance(value, list):
        raise Invalid(f"{where}: expected a list of strings, got {type(value).__name__}")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise Invalid(f"{where}: item {i + 1} is {type(item).__name__}, not a string")
        if item.strip():
            out.append(_norm(item))
    return out


# -- step 2: query reframing ------------------------------------------------------------------------------------

def parse_reframes(text: Optional[str], seed: str, min_forms: int, max_forms: Optional[int] = None) -> List[str]:
    forms = _strings(_unwrap_list(extract_json(text, (list, dict)), "reframed queries"), "reframed queries")
    seen = {_key(seed)}  # repeating the seed is not a reframing
    distinct = []
    for form in forms:
        if _key(form) not in seen:
            seen.add(_key(form))
            distinct.append(form)
    if not distinct:
        raise Invalid("empty result: no reframed query that differs from the seed")
    if len(distinct) < min_forms:
        raise Invalid(f"only {len(distinct)} distinct reframed queries, fewer than reframe.min_forms={min_forms}")
    return distinct[:max_forms] if max_forms else distinct


# -- step 4: constraint generation ------------------------------------------------------------------------------

def parse_constraint_set(text: Optional[str]) -> ConstraintSet:
    """{category: [items]}; categories without items are dropped, duplicates merged."""
    data = extract_json(text, (dict,))
    if len(data) == 1 and isinstance(next(iter(data.values())), dict):
        data = next(iter(data.values()))  # {"constraints": {...}}
    out: ConstraintSet = {}
    for category, items in data.items():
        name = _norm(str(category))
        if not name:
            raise Invalid("a constraint category has an empty name")
        kept = out.setdefault(name, [])
        for item in _strings(items, f"category {name!r}"):
            if _key(item) not in {_key(k) for k in kept}:
                kept.append(item)
    out = {k: v for k, v in out.items() if v}
    if not out:
        raise Invalid("empty constraint set: no category with at least one item")
    return out


# -- step 5: recombination --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Growth:
    """How much harder each level is than the one below: new categories and new items (inclusive ranges)."""

    categories: Tuple[int, int] = (1, 2)
    items: Tuple[int, int] = (2, 3)
    check: bool = True

    def supported_levels(self, constraint_set: ConstraintSet, levels: int) -> int:
        """How many levels a constraint set can feed at the minimum growth per level."""
        n_cat = len(constraint_set)
        n_items = sum(len(v) for v in constraint_set.values())
        k = 0
        while k < levels and n_cat >= (k + 1) * self.categories[0] and n_items >= (k + 1) * self.items[0]:
            k += 1
        return k


@dataclass
class Level:
    level: int
    instruction: str
    constraints: ConstraintSet

    @property
    def n_items(self) -> int:
        return sum(len(v) for v in self.constraints.values())


def parse_levels(text: Optional[str], constraint_set: ConstraintSet, n_levels: int,
                 growth: Growth) -> Tuple[List[Level], List[Tuple[Any, str]]]:
    """Valid levels, and (level or entry position, reason) for each entry that is not. Raises Invalid when the
    reply as a whole is unusable."""
    entries = _unwrap_list(extract_json(text, (list, dict)), "leveled instructions")
    known = {_key(c) for c in constraint_set}
    candidates: Dict[int, Level] = {}
    problems: List[Tuple[Any, str]] = []
    for pos, entry in enumerate(entries, 1):
        try:
            lv = _level_entry(entry, pos, n_levels, known)
        except Invalid as e:
            problems.append((entry.get("level", f"entry {pos}") if isinstance(entry, dict) else f"entry {pos}", str(e)))
            continue
        if lv.level in candidates:
            problems.append((lv.level, f"level {lv.level} given twice"))
            continue
        if any(_key(lv.instruction) == _key(o.instruction) for o in candidates.values()):
            problems.append((lv.level, f"level {lv.level} repeats another level's instruction"))
            continue
        candidates[lv.level] = lv
    kept: List[Level] = []
    for lv in sorted(candidates.values(), key=lambda x: x.level):
        reason = _growth_problem(lv, kept[-1] if kept else None, growth) if growth.check else None
        if reason:
            problems.append((lv.level, reason))
        else:
            kept.append(lv)
    if not kept and not problems:
        raise Invalid("empty result: no leveled instructions")
    return kept, problems


def _level_entry(entry: Any, pos: int, n_levels: int, known: set) -> Level:
    if not isinstance(entry, dict):
        raise Invalid(f"entry {pos} is {type(entry).__name__}, not an object")
    level = entry.get("level")
    if isinstance(level, str) and level.strip().isdigit():
        level = int(level)
    if not isinstance(level, int) or isinstance(level, bool) or not 1 <= level <= n_levels:
        raise Invalid(f"entry {pos}: level {level!r} is not an integer from 1 to {n_levels}")
    instruction = entry.get("instruction")
    if not isinstance(instruction, str) or not instruction.strip():
        raise Invalid(f"level {level}: no instruction text")
    raw = entry.get("constraints")
    if not isinstance(raw, dict) or not raw:
        raise Invalid(f"level {level}: 'constraints' must be a non-empty object of category -> items")
    constraints: ConstraintSet = {}
    for category, items in raw.items():
        if _key(str(category)) not in known:
            raise Invalid(f"level {level}: category {category!r} is not in the generated constraint set")
        values = _strings(items, f"level {level} category {category!r}")
        if not values:
            raise Invalid(f"level {level}: category {category!r} has no items")
        constraints[_norm(str(category))] = values
    return Level(level=level, instruction=instruction.strip(), constraints=constraints)


def _growth_problem(lv: Level, below: Optional[Level], growth: Growth) -> Optional[str]:
    """Each level adds categories[0..1] categories and items[0..1] items to the level below it (level 0 is empty);
    a gap in the levels (1, 3) scales the allowed range by the number of steps."""
    base_level, base_cat, base_items = (below.level, len(below.constraints), below.n_items) if below else (0, 0, 0)
    steps = lv.level - base_level
    d_cat, d_items = len(lv.constraints) - base_cat, lv.n_items - base_items
    lo_c, hi_c = growth.categories[0] * steps, growth.categories[1] * steps
    lo_i, hi_i = growth.items[0] * steps, growth.items[1] * steps
    if not lo_c <= d_cat <= hi_c:
        return (f"level {lv.level} adds {d_cat} categories to level {base_level}; expected {lo_c}-{hi_c}"
                " (recombine.new_categories)")
    if not lo_i <= d_items <= hi_i:
        return (f"level {lv.level} adds {d_items} constraint items to level {base_level}; expected {lo_i}-{hi_i}"
                " (recombine.new_items)")
    return None


# -- step 6: format / numeric augmentation ----------------------------------------------------------------------

def parse_format_numeric(text: Optional[str], original: str) -> Tuple[str, List[str]]:
    """(the rewritten instruction, the concrete constraints it added)."""
    data = extract_json(text, (dict,))
    instruction = data.get("instruction")
    if not isinstance(instruction, str) or not instruction.strip():
        raise Invalid("no 'instruction' text in the reply")
    if _key(instruction) == _key(original):
        raise Invalid("the rewritten instruction is unchanged")
    added = _strings(data.get("added"), "'added'")
    if not added:
        raise Invalid("'added' lists no format or numeric constraint")
    return instruction.strip(), added
