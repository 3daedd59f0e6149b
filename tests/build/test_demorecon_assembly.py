"""DeMoRecon steps and assembly in process, with a stand-in for the build context (no model, no server)."""

import random
from types import SimpleNamespace

from ifforge.build.context import check_wiring
from ifforge.build.demorecon.assembly import assemble, det_rows, dpo_pairs
from ifforge.build.demorecon.steps import SelectVariants, instruction_id
from ifforge.build.respond.reference import AnswerOriginals, ReviseOriginalResponses, strip_response_label


class FakeCtx:
    """ask() answers with `answer(prompt)` (None: the request failed); reject() records."""

    def __init__(self, answer=lambda p: "ok"):
        self.answer = answer
        self.rejected = []
        self.prompts = []
        self.tallies = {}

    def reject(self, step, item, reason, raw=None):
        self.rejected.append((step, item.get("instruction_id", item.get("seed_id")), reason))

    def structured(self, role="generator", node=None):
        return False

    def replied(self, step, structured, unreadable=False):
        pass

    def count(self, step, key, n=1):
        counts = self.tallies.setdefault(step, {})
        counts[key] = counts.get(key, 0) + n

    def ask(self, step, rows, requests, role="generator", node=None, allow_cut_off=False):
        out = []
        for row, req in zip(rows, requests):
            prompt = req.messages[-1]["content"]
            self.prompts.append(prompt)
            text = self.answer(prompt)
            if text is None:
                self.reject(step, row, "generation failed: boom")
            out.append(None if text is None else SimpleNamespace(text=text))
        return out


def group(seed_id, n_variants, n_subs=None, holdout=False, responses=True):
    n_subs = n_subs or n_variants
    rows = []
    for j in range(n_variants + 1):
        row = {"seed_id": seed_id, "group_id": seed_id, "instruction_id": instruction_id(seed_id, j),
               "is_original": j == 0, "variant_index": j, "instruction": f"{seed_id} prompt {j}",
               "original_instruction": f"{seed_id} prompt 0", "sub_instruction": None if j == 0 else f"sub {j}",
               "modified_sub_instruction": None if j == 0 else f"mod {j}", "facts": [],
               "sub_instructions": [f"sub {i}" for i in range(1, n_subs + 1)], "eval_holdout": holdout}
        if responses:
            row["response"] = f"{seed_id} answer {j}"
        rows.append(row)
    return rows


def test_dpo_pairs_are_ordered_capped_seeded_and_never_identical():
    members = group("a", 3)
    assert len(dpo_pairs(members, None, random.Random(0))) == 12  # 4 x 3 ordered pairs
    capped = dpo_pairs(members, 5, random.Random("0:dpo:a"))
    assert len(capped) == 5 and capped == dpo_pairs(members, 5, random.Random("0:dpo:a"))
    for p in capped:
        assert p["chosen"][0]["content"] == p["prompt"][0]["content"].replace("prompt", "answer")
        assert p["chosen_instruction_id"] != p["rejected_instruction_id"]
    members[2]["response"] = members[1]["response"]
    assert len(dpo_pairs(members, None, random.Random(0))) == 10  # the two pairs (1,2), (2,1) teach nothing


def test_det_pairs_each_instruction_with_every_sibling_response():
    rows = det_rows(group("e", 4)[1:])
    assert len(rows) == 16 and sum(r["label"] == "Yes" for r in rows) == 4
    assert {r["response"] for r in rows if r["instruction_id"] == "e:2" and r["label"] == "Yes"} == {"e answer 2"}


def test_assemble_keeps_eval_seeds_out_of_training_and_drops_incomplete_groups():
    ctx = FakeCtx()
    rows = (group("t1", 3) + group("t2", 2) + group("e1", 4, holdout=True) + group("e2", 4, holdout=True)[:-1]
            + group("t3", 2)[1:])  # e2 lost a variant's response; t3 lost its original's
    splits, _ = assemble(rows, ctx, seed=0, max_pairs_per_seed=5, eval_sub_instructions=4)
    assert {k: len(v) for k, v in splits.items()} == {"sft": 7, "dpo": 10, "eval": 4, "det": 16, "plain": 2}
    assert {r["seed_id"] for r in splits["sft"]} == {"t1", "t2"} == {r["seed_id"] for r in splits["dpo"]}
    assert {r["seed_id"] for r in splits["eval"]} == {"e1"} and not any(r["variant_index"] == 0 for r in splits["eval"])
    assert sorted(r[1] for r in ctx.rejected) == ["e2:0", "e2:1", "e2:2", "e2:3", "t3:1", "t3:2"]
    assert all(step == "assemble" for step, _, _ in ctx.rejected)


def test_select_variants_holds_out_eligible_seeds_and_samples_the_rest():
    rows = (group("a", 4) + group("b", 4) + group("c", 3, n_subs=4) + group("d", 5) + group("e", 4))
    for r in rows:
        r.pop("eval_holdout"), r.pop("response")
    step = SelectVariants(seed=7, variants_per_seed=2, eval_sub_instructions=4, eval_num_seeds=2)
    ctx = FakeCtx()
    out = step(rows, ctx)
    held = {r["group_id"] for r in out if r["eval_holdout"]}
    assert len(held) == 2 and held <= {"a", "b", "e"}  # c lacks a variant, d has 5 sub-instructions
    for g in {"a", "b", "c", "d", "e"}:
        n = sum(1 for r in out if r["group_id"] == g and not r["is_original"])
        assert n == (4 if g in held else 2)
    assert ctx.tallies["select_variants"] == {"eval_eligible_seeds": 3, "eval_seeds": 2,
                                                  "variants_not_selected": 2 + 1 + 3}
    assert out == SelectVariants(7, 2, 4, 2)([dict(r) for r in rows], FakeCtx())  # seeded: same choice again


def test_reference_mode_revises_the_original_response():
    rows = group("a", 2, responses=False) + group("b", 1, responses=False)
    ctx = FakeCtx(lambda p: None if p == "b prompt 0" else ("**New Response:** revised" if "New Prompt" in p
                                                             else f"answer to {p}"))
    steps = [AnswerOriginals(), ReviseOriginalResponses()]
    check_wiring(steps, rows[0].keys())
    for step in steps:
        rows = step(rows, ctx)
    assert [(r["instruction_id"], r["response"]) for r in rows] == [
        ("a:0", "answer to a prompt 0"), ("a:1", "revised"), ("a:2", "revised")]
    e4 = [p for p in ctx.prompts if "New Prompt" in p]
    assert len(e4) == 2 and "**Original Response:**\nanswer to a prompt 0\n\n**New Prompt:**\na prompt 1" in e4[0]
    assert ("respond_reference", "b:1", "the original instruction has no response to revise") in ctx.rejected


def test_strip_response_label():
    assert strip_response_label("**New Response:**\nHello") == "Hello"
    assert strip_response_label("New response: Hello") == "Hello"
    assert strip_response_label("Hello, new response: here") == "Hello, new response: here"


def test_steps_use_a_users_template_and_reject_answers_cut_at_max_tokens(tmp_path):
    from ifforge.build.augment.decompose_modify_reconstruct import variant_summary
    from ifforge.build.demorecon.steps import Decompose, ModifyReconstruct

    (tmp_path / "e2.j2").write_text("MY E.2 for: {{ prompt }}")
    (tmp_path / "e3.j2").write_text("MY E.3 for: {{ prompt }} | {{ facts | join(';') }} | {{ instructions | join(';') }}")

    def answer(prompt):
        text = {"MY E.2 for: short": "Extract Instructions:\n1. Do A.\n2. Do B.",
                "MY E.2 for: long": "Extract Instructions:\n1. Do A.\n2. Do",
                "MY E.3 for: short |  | Do A.;Do B.": "Modified Instruction 1: Do C.\nRevised Prompt 1: shorter\n"
                                                     "Modified Instruction 2: Do D.\nRevised Prompt 2: sh"}[prompt]
        cut = prompt.endswith("long") or prompt.startswith("MY E.3")
        return SimpleNamespace(text=text, samples=[SimpleNamespace(finish_reason="length" if cut else "stop")])

    ctx = FakeCtx()
    ctx.answer = lambda p: answer(p).text
    ctx.ask = lambda step, rows, requests, **kw: [answer(r.messages[-1]["content"]) for r in requests]
    rows = [{"seed_id": "a", "instruction": "short"}, {"seed_id": "b", "instruction": "long"}]
    templates = {"decompose": str(tmp_path / "e2.j2"), "modify_reconstruct": str(tmp_path / "e3.j2")}
    rows = Decompose({}, templates, None)(rows, ctx)
    assert [r["sub_instructions"] for r in rows] == [["Do A.", "Do B."]]
    assert ctx.rejected == [("decompose", "b", "unparseable decomposition: the answer was cut off at max_tokens "
                                               "inside the instructions list (raise generator.max_tokens or "
                                               "augmentation.params.max_tokens)")]
    out = ModifyReconstruct({}, templates)(rows, ctx)
    assert [(r["instruction_id"], r["instruction"]) for r in out] == [("a:0", "short"), ("a:1", "shorter")]
    assert variant_summary(ctx.tallies)["variants_dropped"] == {
        "the answer was cut off at max_tokens inside this block": 1}


def test_wiring_is_checked_before_any_request():
    import pytest
    from omegaconf import OmegaConf

    from ifforge.build.augment.decompose_modify_reconstruct import DecomposeModifyReconstruct, DeMoReconConfig
    from ifforge.build.respond.reference import Reference, ReferenceConfig
    from ifforge.errors import UserError

    aug = DecomposeModifyReconstruct(OmegaConf.structured(DeMoReconConfig))
    steps = list(aug.steps()) + list(Reference(OmegaConf.structured(ReferenceConfig)).steps())
    check_wiring(steps, {"seed_id", "instruction"}, aug.assembly_reads)
    with pytest.raises(UserError, match=r"'modify_reconstruct' reads \['facts', 'sub_instructions'\]"):
        check_wiring(steps[1:], {"seed_id", "instruction"}, aug.assembly_reads)
    with pytest.raises(UserError, match=r"'respond_reference' reads \['response'\]"):
        check_wiring(steps[:3] + steps[4:], {"seed_id", "instruction"}, aug.assembly_reads)


def test_train_seeds_caps_training_groups_and_keeps_the_eval_split():
    rows = group("t1", 2) + group("t2", 2) + group("t3", 2) + group("t4", 2) + group("e1", 4, holdout=True)
    ctx = FakeCtx()
    full, _ = assemble(rows, ctx, seed=0, max_pairs_per_seed=5, eval_sub_instructions=4)
    capped, steps = assemble(rows, ctx, seed=0, max_pairs_per_seed=5, eval_sub_instructions=4, train_seeds=2)
    again, _ = assemble(rows, ctx, seed=0, max_pairs_per_seed=5, eval_sub_instructions=4, train_seeds=2)
    kept = {r["seed_id"] for r in capped["sft"]}
    assert len(kept) == 2 and kept == {r["seed_id"] for r in capped["plain"]} == {r["seed_id"] for r in capped["dpo"]}
    assert capped == again  # seeded
    assert capped["eval"] == full["eval"] and capped["det"] == full["det"]
    assert steps["train_seeds"] == {"in": 4, "out": 2, "rejected": 0}
