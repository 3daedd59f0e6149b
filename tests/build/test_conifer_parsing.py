"""Conifer's reply parsing: tolerant about wrapping (fences, prose), strict about content; plus the data files."""

import json
import re

import pytest

from ifforge.build.conifer import resources
from ifforge.build.conifer.parsing import (Growth, parse_constraint_set, parse_format_numeric, parse_levels,
                                           parse_reframes)
from ifforge.build.respond.process_feedback import parse_violations
from ifforge.build.sampling import pick, rng_for
from ifforge.errors import UserError
from ifforge.parsing import Invalid, extract_json, reject_reason

CS = {"Audience": ["kids", "experts", "parents"], "Tone": ["formal", "playful"], "Length": ["short", "long"],
      "Scope": ["history", "science"], "Style": ["story", "list"]}


@pytest.mark.parametrize("text", [
    '["a", "b"]',
    'Sure, here they are:\n```json\n["a", "b"]\n```\nAnything else?',
    "```\n[\"a\", \"b\"]\n```",
    'The rewrites are ["a", "b"] as requested.',
])
def test_extract_json_finds_the_list_wherever_it_sits(text):
    assert extract_json(text, (list,)) == ["a", "b"]


def test_extract_json_skips_values_of_the_wrong_kind_and_reports_none():
    assert extract_json('Note [1] first. {"k": "v [x]"} end', (dict,)) == {"k": "v [x]"}
    for bad in ("", "   ", "no json here", '{"cut": ["off"'):
        with pytest.raises(Invalid, match="empty reply|no JSON"):
            extract_json(bad, (dict,))


def test_reframes_dedupe_drop_the_seed_and_enforce_min_forms():
    seed = "Write a poem about the sea."
    reply = json.dumps({"queries": ["Write a poem  about the sea.", "A sea poem for kids", "a sea poem for KIDS",
                                    "Sea poem as a sonnet", "Sea poem, haiku form"]})
    assert parse_reframes(reply, seed, 3) == ["A sea poem for kids", "Sea poem as a sonnet", "Sea poem, haiku form"]
    assert parse_reframes(reply, seed, 3, max_forms=2) == ["A sea poem for kids", "Sea poem as a sonnet"]
    with pytest.raises(Invalid, match="only 3 distinct reframed queries, fewer than reframe.min_forms=4"):
        parse_reframes(reply, seed, 4)
    with pytest.raises(Invalid, match="empty result"):
        parse_reframes("[]", seed, 3)
    with pytest.raises(Invalid, match="item 2 is dict"):
        parse_reframes('["x", {"q": "y"}, "z"]', seed, 1)
    with pytest.raises(Invalid, match="got an object"):
        parse_reframes('{"a": ["x"], "b": ["y"]}', seed, 1)


def test_constraint_set_unwraps_merges_and_rejects_empty_sets():
    reply = '```json\n{"constraints": {"Tone": ["formal", "Formal", "playful"], "Era": [], "Audience": ["kids"]}}\n```'
    assert parse_constraint_set(reply) == {"Tone": ["formal", "playful"], "Audience": ["kids"]}
    with pytest.raises(Invalid, match="empty constraint set"):
        parse_constraint_set('{"Tone": [], "Audience": ["  "]}')
    with pytest.raises(Invalid, match="category 'Tone': expected a list"):
        parse_constraint_set('{"Tone": "formal"}')
    with pytest.raises(Invalid, match="no JSON object"):
        parse_constraint_set('["Tone", "formal"]')


def level(k, cats, items_per=2, text=None):
    return {"level": k, "constraints": {c: CS[c][:items_per] for c in cats}, "instruction": text or f"level {k} text"}


def test_levels_valid_reply_and_supported_levels():
    g = Growth()
    reply = json.dumps([level(1, ["Audience"]), level(2, ["Audience", "Tone"]), level(3, ["Audience", "Tone", "Length"])])
    levels, problems = parse_levels(reply, CS, 3, g)
    assert [lv.level for lv in levels] == [1, 2, 3] and problems == []
    assert levels[2].constraints == {"Audience": ["kids", "experts"], "Tone": ["formal", "playful"],
                                     "Length": ["short", "long"]}
    assert g.supported_levels(CS, 5) == 5  # 5 categories, 11 items
    assert g.supported_levels({"Tone": ["a", "b"], "Era": ["c", "d"]}, 5) == 2
    assert g.supported_levels({"Tone": ["a"]}, 5) == 0


def test_levels_each_bad_entry_has_its_own_reason():
    g = Growth()
    entries = [
        level(1, ["Audience"]),
        {"level": 2, "constraints": {"Audience": ["kids", "experts"], "Mood": ["calm"]}, "instruction": "x2"},  # unknown
        level(3, ["Audience", "Tone", "Length"], items_per=2, text="x3"),  # vs level 1: 2 steps, +2 cats, +4 items: ok
        level(3, ["Audience", "Tone"], text="dup"),  # level given twice
        {"level": 7, "constraints": {"Tone": ["formal"]}, "instruction": "x7"},  # out of range
        {"level": 4, "constraints": {"Audience": CS["Audience"]}, "instruction": "x4"},  # shrinks: growth broken
        {"level": 5, "constraints": {}, "instruction": "x5"},
        "not an object",
    ]
    levels, problems = parse_levels(json.dumps(entries), CS, 5, g)
    assert [lv.level for lv in levels] == [1, 3]
    reasons = dict((str(k), r) for k, r in problems)
    assert "category 'Mood' is not in the generated constraint set" in reasons["2"]
    assert "level 3 given twice" in reasons["3"]
    assert "level 7 is not an integer from 1 to 5" in reasons["7"]
    assert "level 4 adds -2 categories to level 3; expected 1-2" in reasons["4"]
    assert "'constraints' must be a non-empty object" in reasons["5"]
    assert "entry 8 is str" in reasons["entry 8"]
    with pytest.raises(Invalid, match="no JSON"):
        parse_levels("I could not do it.", CS, 5, g)


def test_levels_growth_rule_is_configurable_and_can_be_switched_off():
    too_big = json.dumps([level(1, ["Audience", "Tone", "Length"])])  # 3 categories, 6 items at level 1
    levels, problems = parse_levels(too_big, CS, 5, Growth())
    assert not levels and re.search(r"adds 3 categories to level 0; expected 1-2", problems[0][1])
    assert parse_levels(too_big, CS, 5, Growth(check=False))[0][0].level == 1
    assert parse_levels(too_big, CS, 5, Growth(categories=(1, 3), items=(2, 6)))[0][0].level == 1


def test_format_numeric_and_violations():
    assert parse_format_numeric('{"instruction": "Do X in 3 steps.", "added": ["in 3 steps"]}', "Do X.") == \
        ("Do X in 3 steps.", ["in 3 steps"])
    with pytest.raises(Invalid, match="unchanged"):
        parse_format_numeric('{"instruction": "Do  X.", "added": ["x"]}', "Do X.")
    with pytest.raises(Invalid, match="'added' lists no"):
        parse_format_numeric('{"instruction": "Do X twice.", "added": []}', "Do X.")
    assert parse_violations('All good.\n```json\n{"violations": []}\n```') == []
    assert parse_violations('[{"constraint": "Tone: formal", "reason": "slang"}]') == \
        [{"constraint": "Tone: formal", "reason": "slang"}]
    with pytest.raises(Invalid, match="gives no reason"):
        parse_violations('{"violations": [{"constraint": "Tone: formal"}]}')
    with pytest.raises(Invalid, match="no 'violations' list"):
        parse_violations('{"ok": true}')


def test_seeded_picks_do_not_depend_on_order_or_on_other_rows():
    keys = [f"q{i}.L{k}" for i in range(50) for k in range(1, 6)]
    chosen = pick(keys, 20, seed=0)
    assert len(chosen) == 20 and pick(reversed(keys), 20, seed=0) == chosen
    assert pick(keys, 20, seed=1) != chosen and pick(keys, None, 0) == set(keys)
    survivors = [k for k in keys if k not in chosen][:100] + sorted(chosen)  # drop rows that were not chosen
    assert pick(survivors, 20, seed=0) == chosen
    assert rng_for(3, "x").random() == rng_for(3, "x").random() != rng_for(3, "y").random()


def test_packaged_data_files_and_user_replacements(tmp_path):
    pool = resources.format_numeric_constraints()
    assert len(pool) >= 30 and {r["kind"] for r in pool} == {"format", "numeric"}
    numeric = [r["text"] for r in pool if r["kind"] == "numeric"]
    assert all(re.search(r"\[\d+(, \d+)+\]", t) for t in numeric)  # numbers as choices: the teacher picks one
    assert len({r["text"] for r in pool}) == len(pool)
    examples = resources.constraint_examples()
    assert len(examples) >= 3 and all(len(e["constraints"]) >= 5 for e in examples)

    own = tmp_path / "fmt.jsonl"
    own.write_text('{"kind": "format", "text": "Answer in [2, 4] lines."}\n')
    assert resources.format_numeric_constraints(str(own)) == [{"kind": "format", "text": "Answer in [2, 4] lines."}]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"kind": "layout", "text": "x"}\n')
    with pytest.raises(UserError, match="entry 1 needs 'kind'"):
        resources.format_numeric_constraints(str(bad))
    ex = tmp_path / "ex.json"
    ex.write_text('[{"instruction": "x", "constraints": {"Tone": []}}]')
    with pytest.raises(UserError, match="example 1 needs"):
        resources.constraint_examples(str(ex))
    with pytest.raises(UserError, match="not found"):
        resources.check_resources(None, str(tmp_path / "missing.jsonl"), need_format_list=True)
    resources.check_resources(None, str(tmp_path / "missing.jsonl"), need_format_list=False)


def test_reject_reason_points_at_max_tokens_when_the_reply_was_cut_off():
    assert reject_reason(Invalid("no JSON list"), True).startswith("no JSON list (the answer was cut off at max_tokens")
    assert reject_reason(Invalid("no JSON list"), False) == "no JSON list"
