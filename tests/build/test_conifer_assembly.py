"""Conifer assembly in-process: every Table 4 switch changes the assembled data exactly as described, mixing with
general conversations, the statistics, and which steps each switch puts in the pipeline."""

import json

import pytest
from omegaconf import OmegaConf

from ifforge.build.augment.reframe_constrain_recombine import (CurriculumConfig, ReframeConstrainRecombine,
                                                               ReframeConstrainRecombineConfig)
from ifforge.build.conifer.curriculum import Curriculum, curriculum_conversations, feedback_conversations
from ifforge.build.conifer.mix import MixDatasetConfig, check_mix, mixed_conversations
from ifforge.build.respond.process_feedback import ProcessFeedback, ProcessFeedbackConfig
from ifforge.build.stats.conifer import card_section, conifer_statistics
from ifforge.build.stats.distributions import count_words
from ifforge.errors import UserError

LEVELS = {"a": [1, 2, 3, 4, 5], "b": [1, 2, 4, 5], "c": [2, 3]}


def rows():
    out = []
    for g, levels in LEVELS.items():
        for k in levels:
            out.append({"seed_id": f"seed-{g}", "group_id": g, "instruction_id": f"{g}.L{k}", "level": k,
                        "instruction": f"{g} level {k}", "response": f"answer {g} {k}"})
    out[4]["feedback_conversations"] = [  # a.L5: external feedback with a critique
        {"kind": "external", "messages": [{"role": "user", "content": "a level 5"}, {"role": "assistant", "content": "weak"},
                                          {"role": "user", "content": "fix it"}, {"role": "assistant", "content": "answer a 5"}]}]
    out[1]["feedback_conversations"] = [  # a.L2: internal feedback
        {"kind": "internal", "messages": [{"role": "user", "content": "a level 2"},
                                          {"role": "assistant", "content": "answer. How it meets the requirements."}]}]
    return out


def curriculum(**overrides):
    return Curriculum.from_config(OmegaConf.structured(CurriculumConfig(**overrides)))


def levels_of(convs):
    return {c["group_id"]: c["levels"] for c in convs}


def test_easy_to_hard_is_one_multi_turn_conversation_per_query():
    convs = curriculum_conversations(rows(), curriculum())
    assert levels_of(convs) == {"a": [1, 2, 3, 4, 5], "b": [1, 2, 4, 5], "c": [2, 3]}
    a = convs[0]
    assert [m["content"] for m in a["messages"][:4]] == ["a level 1", "answer a 1", "a level 2", "answer a 2"]
    assert [m["role"] for m in a["messages"]] == ["user", "assistant"] * 5
    assert a["part"] == "curriculum" and a["seed_id"] == "seed-a" and a["instruction_ids"][0] == "a.L1"


def test_hard_to_easy_reverses_and_random_shuffles_reproducibly():
    assert levels_of(curriculum_conversations(rows(), curriculum(order="hard_to_easy"))) == \
        {"a": [5, 4, 3, 2, 1], "b": [5, 4, 2, 1], "c": [3, 2]}
    shuffled = levels_of(curriculum_conversations(rows(), curriculum(order="random")))
    assert {g: sorted(v) for g, v in shuffled.items()} == LEVELS  # same turns, new order
    assert shuffled == levels_of(curriculum_conversations(list(reversed(rows())), curriculum(order="random")))
    orders = {tuple(levels_of(curriculum_conversations(rows(), curriculum(order="random", seed=s)))["a"])
              for s in range(6)}
    assert len(orders) > 1  # the seed decides the order


def test_easy_only_and_hard_only_keep_their_level_ranges():
    assert levels_of(curriculum_conversations(rows(), curriculum(levels="easy_only"))) == \
        {"a": [1, 2, 3], "b": [1, 2], "c": [2, 3]}
    assert levels_of(curriculum_conversations(rows(), curriculum(levels="hard_only"))) == {"a": [4, 5], "b": [4, 5]}
    assert levels_of(curriculum_conversations(rows(), curriculum(levels="easy_only", easy_levels=[1, 1]))) == \
        {"a": [1], "b": [1]}
    with pytest.raises(UserError, match="hard_levels must be an inclusive range"):
        curriculum(hard_levels=[5, 4])


def test_single_turn_makes_one_conversation_per_instruction():
    convs = curriculum_conversations(rows(), curriculum(single_turn=True))
    assert len(convs) == 11 and all(len(c["messages"]) == 2 and len(c["levels"]) == 1 for c in convs)
    assert [c["levels"][0] for c in convs if c["group_id"] == "a"] == [1, 2, 3, 4, 5]
    hard_single = curriculum_conversations(rows(), curriculum(single_turn=True, levels="hard_only",
                                                                order="hard_to_easy"))
    assert [c["instruction_ids"][0] for c in hard_single] == ["a.L5", "a.L4", "b.L5", "b.L4"]


def test_feedback_conversations_are_separate_samples_untouched_by_the_curriculum():
    fb = feedback_conversations(rows())
    assert [(c["part"], c["levels"], len(c["messages"])) for c in fb] == \
        [("internal_feedback", [2], 2), ("external_feedback", [5], 4)]


def sharegpt(tmp_path):
    convs = [
        {"id": "ok", "conversations": [{"from": "human", "value": "Hi, how do magnets work?"}, {"from": "gpt", "value": "Fields."},
                                       {"from": "human", "value": "More?"}, {"from": "gpt", "value": "Domains."}]},
        {"id": "sys", "conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "Name a color."},
                                        {"from": "gpt", "value": "Blue."}, {"from": "human", "value": "unanswered"}]},
        {"id": "gptfirst", "conversations": [{"from": "gpt", "value": "Hello"}, {"from": "human", "value": "x"}]},
        {"id": "twice", "conversations": [{"from": "human", "value": "a"}, {"from": "human", "value": "b"}]},
        {"id": "dup", "conversations": [{"from": "human", "value": "hi, HOW do magnets work?"}, {"from": "gpt", "value": "x"}]},
        {"id": "long", "conversations": [{"from": "human", "value": "word " * 80}, {"from": "gpt", "value": "ok"}]},
        {"id": "other", "conversations": [{"from": "user", "value": "Tell me a joke."}, {"from": "assistant", "value": "No."}]},
    ]
    p = tmp_path / "sharegpt.json"
    p.write_text(json.dumps(convs))
    return p


def mix_cfg(**kw):
    return OmegaConf.structured(MixDatasetConfig(**kw))


def test_mix_loads_general_conversations_with_seeds_rules_counts_and_weights(tmp_path):
    path = str(sharegpt(tmp_path))
    rejected = []
    reject = lambda item, why: rejected.append((item["seed_id"], why))  # noqa: E731
    rows_, summary = mixed_conversations([mix_cfg(path=path, max_chars=200)], 10, 0, reject)
    assert [r["seed_id"] for r in rows_] == ["ok", "sys", "other"]
    assert rows_[1]["messages"] == [{"role": "user", "content": "Name a color."}, {"role": "assistant", "content": "Blue."}]
    assert all(r["part"] == "general" and r["levels"] == [] for r in rows_)
    assert dict(rejected) == {"gptfirst": "does not start with a user turn",
                              "twice": "turns do not alternate between user and assistant",
                              "dup": "duplicate of ok", "long": "first turn longer than max_chars=200"}
    assert summary == [{"source": path, "available": 3, "requested": None, "used": 3}]

    by_count, s = mixed_conversations([mix_cfg(path=path, count=2)], 10, 0, reject)
    by_weight, s2 = mixed_conversations([mix_cfg(path=path, weight=0.5)], 4, 0, reject)  # 0.5 x 4 Conifer convs
    assert len(by_count) == 2 and s[0]["used"] == 2 and len(by_weight) == 2 and s2[0]["requested"] == 2
    assert by_count == mixed_conversations([mix_cfg(path=path, count=2)], 10, 0, reject)[0]  # seeded

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"instruction": "Say hi.", "output": "Hi!"}) + "\n")
    got, _ = mixed_conversations([mix_cfg(name="jsonl", path=str(pairs), response_field="output")], 1, 0, reject)
    assert got[0]["messages"] == [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "Hi!"}]
    with pytest.raises(UserError, match="count or weight, not both"):
        check_mix([mix_cfg(path=path, count=1, weight=1.0)])
    with pytest.raises(UserError, match="needs response_field"):
        check_mix([mix_cfg(name="jsonl", path=str(pairs))])
    with pytest.raises(UserError, match="not found"):
        check_mix([mix_cfg(path=str(tmp_path / "missing.json"))])


def test_statistics_follow_table1_and_figure4():
    convs = curriculum_conversations(rows(), curriculum()) + feedback_conversations(rows())
    convs.append({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
                  "seed_id": "g", "group_id": "mix0:g", "part": "general", "levels": [], "instruction_ids": []})
    s = conifer_statistics(convs, None, [{"source": "x.json", "available": 5, "requested": 1, "used": 1}])
    assert s["instructions_per_level"] == {"1": 2, "2": 3, "3": 2, "4": 2, "5": 2}
    assert s["conversations"] == 5 and s["conversations_by_part"]["general"] == 1
    assert s["turns_histogram"] == {"1": 1, "2": 2, "4": 1, "5": 1} and s["avg_turns"] == 2.8
    assert s["external_feedback"] == {"with_critique": 1, "without_critique": 0}
    # the critique and the student's answer are not counted as instruction or response
    assert s["instruction_words"]["n"] == 11 + 1 + 1 and s["response_words"]["n"] == 11 + 1 + 1
    assert count_words("Don't stop, please!") == 5  # NLTK-style: words and punctuation marks
    card = card_section(s)
    assert "| &nbsp;&nbsp;difficulty 2 | | 3 |" in card and "Mixed in from x.json: 1 of 5" in card
    assert "No Conifer conversations in this split" in card_section(conifer_statistics([], None))


def aug(**overrides):
    cfg = OmegaConf.structured(ReframeConstrainRecombineConfig)
    cfg.merge_with(overrides)
    return ReframeConstrainRecombine(cfg)


def feedback(**overrides):
    cfg = OmegaConf.structured(ProcessFeedbackConfig)
    cfg.merge_with(overrides)
    return ProcessFeedback(cfg)


def test_switches_choose_the_steps():
    assert [s.name for s in aug().steps()] == ["reframe", "filter_context", "constraints", "recombine",
                                              "format_numeric", "filter_conflicts"]
    assert "format_numeric" not in [s.name for s in aug(format_numeric={"enabled": False}).steps()]
    assert [s.name for s in aug(filters={"context": False, "conflicts": False}).steps()] == \
        ["reframe", "constraints", "recombine", "format_numeric"]
    names = {fb: [s.name for s in feedback(feedback=fb).steps()] for fb in ("both", "internal", "external", "none")}
    assert names == {"both": ["respond_direct", "internal_feedback", "student_answers", "external_feedback"],
                     "internal": ["respond_direct", "internal_feedback"],
                     "external": ["respond_direct", "student_answers", "external_feedback"],
                     "none": ["respond_direct"]}
    assert feedback(feedback="external").uses_judge() and not feedback(feedback="internal").uses_judge()
    with pytest.raises(UserError, match="needs response.external.student"):
        feedback(feedback="both").preflight()
    feedback(feedback="internal").preflight()  # no student needed
    with pytest.raises(UserError, match="recombine.new_items must be a range"):
        aug(recombine={"new_items": [3, 2]}).preflight()


class Ctx:
    def __init__(self, out):
        self.rejected = []
        self.out = out

    def reject(self, step, item, reason, raw=None):
        self.rejected.append((step, reason))


def test_assembly_mixes_general_conversations_and_mix_only_is_the_baseline(tmp_path):
    mix = {"datasets": [{"name": "sharegpt", "path": str(sharegpt(tmp_path)), "weight": 0.5}]}
    ctx = Ctx(tmp_path)
    full = aug(mix=mix).assemble(rows(), ctx).splits["sft"]
    assert [r["part"] for r in full] == ["curriculum"] * 3 + ["internal_feedback", "external_feedback"] + ["general"] * 2
    assert ("mix", "does not start with a user turn") in ctx.rejected  # 0.5 x 5 Conifer conversations -> 2
    # Table 4 "w/o Conifer": no Conifer step runs (one step stands in, passing no row on), and the general
    # conversations are counted, not weighted by Conifer conversations that do not exist.
    only = {"datasets": [{**mix["datasets"][0], "weight": None, "count": 2}], "only": True}
    assert [s.name for s in aug(mix=only).steps()] == ["mix_only"]
    baseline = aug(mix=only).assemble([], Ctx(tmp_path)).splits["sft"]
    assert baseline == full[-2:]  # the same general conversations, nothing else
    aug(mix=only).preflight()
    with pytest.raises(UserError, match=r"datasets\[0\].weight counts per generated conversation.*set its count"):
        aug(mix={**mix, "only": True}).preflight()
    with pytest.raises(UserError, match="mix.only=true needs augmentation.mix.datasets"):
        aug(mix={"only": True}).preflight()


def test_format_numeric_sample_is_a_seeded_share_of_the_instructions():
    from ifforge.build.step import ASK

    def asked(sample, ids, seed=0):
        step = next(s for s in aug(format_numeric={"sample": sample}, seed=seed).steps() if s.name == "format_numeric")
        rows = [{"instruction_id": i, "instruction": f"text of {i}"} for i in ids]
        return {r["instruction_id"] for r, p in zip(rows, step.choose(rows)) if p is ASK}

    ids = [f"q{q}.L{k}" for q in range(6) for k in range(1, 6)]  # 30 leveled instructions
    chosen = asked(0.2, ids)
    assert len(chosen) == 6 and chosen == asked(0.2, ids[::-1])  # a share, and order-independent
    assert asked(0.2, ids, seed=1) != chosen
    assert len(asked(0.028, ids[:3])) == 1  # a pilot: rounded up, so the step still runs, on one row, not on all
    assert len(asked(0.028, ids * 40)) == 1  # duplicated ids count once
    assert asked(0.0, ids) == set() and asked(1.0, ids) == set(ids)
    assert aug().cfg.format_numeric.sample == pytest.approx(1000 / 35631, abs=1e-3)  # the paper's 1,000 of Table 1
    with pytest.raises(UserError, match=r"format_numeric.sample must be a fraction between 0 and 1 .*got 1000") as e:
        aug(format_numeric={"sample": 1000}).preflight()  # the old absolute count
    assert "\n" not in str(e.value)
