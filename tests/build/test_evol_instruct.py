"""Evol-Instruct (`augmentation=evol_instruct`): the evolving prompts, the four elimination rules, M rounds, rejects
with reasons, and resuming from the cache, through the real CLI and the local OpenAI-compatible test server.

Scripted teacher: an evolution appends " +<kind>" to the instruction it rewrites; seeds carry markers that trip
one elimination rule in every round: COPY (the rewrite repeats the prompt's label), SORRY (the answer to the
rewrite apologises), EMPTY (the answer holds only stop words), SAME (the judge sees no information gain).
"""

import json
import os

import datasets
import pytest
from omegaconf import OmegaConf

from ifforge.build.augment.evol_instruct import (KINDS, EvolInstruct, EvolInstructConfig, Evolve, Unfold,
                                                 cannot_answer, says_nothing)
from ifforge.errors import UserError
from tests.helpers.cli import openai_args, outputs, run_cli
from tests.helpers.openai_server import Fault

ENV = {"OPENAI_API_KEY": "test-key"}
SEEDS = {"s0": "Describe the water cycle.", "s1": "List three uses of copper.", "s2": "COPY Explain recursion.",
         "s3": "SORRY Plan a trip to Mars.", "s4": "EMPTY Name a prime number.", "s5": "SAME Define entropy."}
ROUNDS = 3
# A phrase of each evolving prompt (the packaged templates), to tell which one a request used.
PHRASES = {"add_constraints": "one more requirement or constraint", "deepen": "goes deeper into its subject",
           "concretize": "general ideas become specific ones", "increase_reasoning": "several explicit steps",
           "complicate_input": "comes with input the answer has to work with",
           "breadth": "brand-new instruction from the same domain"}
GAIN = "Below are two instructions for an AI assistant."


def user_text(body):
    return body["messages"][-1]["content"]


def evolve(body):
    text = user_text(body)
    kind = next(k for k, p in PHRASES.items() if p in text)
    instruction = text.split("#Instruction#\n", 1)[1].split("\n#Instruction#", 1)[0]
    if instruction.startswith("COPY"):
        return f"#Instruction# {instruction} +{kind}"
    return f"{instruction} +{kind}"


def answer(body):
    text = user_text(body)
    if "+" in text and text.startswith("SORRY"):
        return "I'm sorry, but I cannot help with that."
    if "+" in text and text.startswith("EMPTY"):
        return "Yes, it is."
    return f"Here is a full answer to: {text}"


def script(srv):
    srv.on(lambda b: any(p in user_text(b) for p in PHRASES.values()), evolve)
    srv.on(lambda b: user_text(b).startswith(GAIN), lambda b: "No." if "SAME" in user_text(b) else "Yes.")
    srv.on(None, answer)


def seeds_file(tmp_path):
    path = tmp_path / "seeds.jsonl"
    path.write_text("".join(json.dumps({"id": k, "instruction": v}) + "\n" for k, v in SEEDS.items()))
    return path


def build_args(srv, tmp_path, *extra):
    return ["stages=[build]", "seeds=jsonl", f"seeds.path={seeds_file(tmp_path)}", "seeds.id_field=id",
            "augmentation=evol_instruct", f"augmentation.rounds={ROUNDS}", "response=direct",
            f"paths.cache={tmp_path / 'cache.sqlite'}", *openai_args(srv.url), *extra]


def kind_of(seed_id, k):
    cfg = OmegaConf.structured(EvolInstructConfig)
    return Evolve(cfg, k).kind({"seed_id": seed_id})


def test_evolution_rounds_eliminations_rejects_and_cache_resume(tmp_path, openai_server):
    srv = openai_server
    # -- first attempt: the judge fails on s1's first verdict; the stage fails and names the step ------------------
    srv.on(lambda b: user_text(b).startswith(GAIN) and SEEDS["s1"] in user_text(b), Fault.http_error(500))
    script(srv)
    failed = run_cli(build_args(srv, tmp_path), tmp_path, env=ENV)
    assert failed.returncode == 1 and "information_gain_r1" in failed.stderr and "rerun" in failed.stderr
    answered_before = {user_text(b) for b in srv.requests
                       if not (user_text(b).startswith(GAIN) and SEEDS["s1"] in user_text(b))}

    # -- resume: only what is missing is asked --------------------------------------------------------------------
    srv.reset()
    script(srv)
    run_cli(build_args(srv, tmp_path), tmp_path, env=ENV, check=True)
    again = [user_text(b) for b in srv.requests]
    assert again and not set(again) & answered_before
    art = outputs(tmp_path)["build"]
    rows = list(datasets.load_from_disk(os.path.join(art, "data"))["sft"])
    rejects = [json.loads(line) for line in open(os.path.join(art, "rejects.jsonl"))]
    manifest = json.load(open(os.path.join(art, "manifest.json")))

    # -- M rounds: s0 and s1 evolve in every round, the marked seeds never do ----------------------------------------
    by_seed = {}
    for r in rows:
        by_seed.setdefault(r["seed_id"], []).append(r)
    assert sorted(by_seed) == sorted(SEEDS)
    for sid in ("s0", "s1"):
        evolved = sorted((r for r in by_seed[sid] if r["round"] > 0), key=lambda r: r["round"])
        assert [r["round"] for r in evolved] == list(range(1, ROUNDS + 1))
        expected = SEEDS[sid]
        for k, r in enumerate(evolved, 1):
            expected += f" +{kind_of(sid, k)}"
            assert r["messages"][0]["content"] == expected and r["evolution"] == kind_of(sid, k)
            assert r["messages"][1]["content"] == f"Here is a full answer to: {expected}"
    for sid in ("s2", "s3", "s4", "s5"):
        assert [r["round"] for r in by_seed[sid]] == [0]  # the seed itself, kept (keep_seeds)
    assert len(rows) == len(SEEDS) + 2 * ROUNDS

    # -- each elimination rule, with its reason and the raw reply, once per round -----------------------------------
    def reasons(sid):
        return [(r["step"], r["reason"]) for r in rejects if r["seed_id"] == sid]

    assert reasons("s2") == [(f"evolve_r{k}", f"evolution eliminated ({kind_of('s2', k)}): copies the evolving "
                                              f"prompt's words ('#instruction#')") for k in range(1, ROUNDS + 1)]
    assert reasons("s3") == [(f"answer_r{k}", f"evolution eliminated ({kind_of('s3', k)}): the generator could not "
                                              f"answer it (a short apology)") for k in range(1, ROUNDS + 1)]
    assert reasons("s4") == [(f"answer_r{k}", f"evolution eliminated ({kind_of('s4', k)}): the answer holds only "
                                              f"punctuation and stop words") for k in range(1, ROUNDS + 1)]
    assert reasons("s5") == [(f"information_gain_r{k}", f"evolution eliminated ({kind_of('s5', k)}): no information "
                                                        f"gain over the instruction it evolved from")
                             for k in range(1, ROUNDS + 1)]
    assert all(r["raw"] for r in rejects) and not reasons("s0") and not reasons("s1")

    # -- statistics: tried, kept and eliminated per round and kind ---------------------------------------------------
    stats = manifest["stats"]["evol_instruct"]
    assert stats["seeds"] == len(SEEDS) and stats["evolutions_kept"] == 2 * ROUNDS and stats["general"] == 0
    for k in range(1, ROUNDS + 1):
        per_kind = stats["rounds"][str(k)]
        assert sum(e["tried"] for e in per_kind.values()) == len(SEEDS)
        assert sum(e["kept"] for e in per_kind.values()) == 2
        assert sum(sum(e["eliminated"].values()) for e in per_kind.values()) == 4
    assert manifest["stats"]["steps"]["evolve_r1"] == {"in": len(SEEDS), "out": len(SEEDS), "rejected": 1}
    card = open(os.path.join(art, "README.md")).read()
    assert "## Evol-Instruct statistics" in card and "| round | evolution | tried | kept |" in card

    # -- never twice: the response mode's answers to evolutions came from the filter's own requests -----------------
    everything = [user_text(b) for b in srv.requests] + sorted(answered_before)
    assert len(everything) == len(set(everything))


def test_every_evolving_prompt_renders_its_own_rewrite_request():
    seen = {}
    for kind in KINDS:
        cfg = OmegaConf.structured(EvolInstructConfig)
        cfg.kinds = {kind: 1.0}
        step = Evolve(cfg, 1)
        request = step.request({"seed_id": "a", "instruction": "Describe the water cycle."}, None)
        text = request.messages[-1]["content"]
        assert "Describe the water cycle." in text and PHRASES[kind] in text
        seen[kind] = text
    assert len(set(seen.values())) == len(KINDS)


def test_kinds_are_drawn_by_weight_and_per_seed_and_round():
    draws = [kind_of(f"s{i}", k) for i in range(60) for k in (1, 2)]
    assert set(draws) == set(KINDS)
    assert kind_of("s7", 2) == kind_of("s7", 2)  # seeded


def test_answer_rules():
    assert says_nothing("Yes, it is.") and says_nothing("...") and says_nothing("")
    assert not says_nothing("Two is a prime number.")
    assert cannot_answer("Sorry, I can't do that.", 80)
    assert not cannot_answer("Sorry for the wait! " + "word " * 90, 80)
    assert not cannot_answer("Here is the plan.", 80)


@pytest.mark.parametrize("override, message", [
    ({"rounds": 0}, "rounds must be at least 1"),
    ({"kinds": {"shout": 1.0}}, "unknown evolving prompt"),
    ({"kinds": {"deepen": 0.0}}, "one must be above 0"),
])
def test_preflight_rejects_bad_options(override, message):
    cfg = OmegaConf.merge(OmegaConf.structured(EvolInstructConfig), override)
    if "kinds" in override:
        cfg.kinds = override["kinds"]
    with pytest.raises(UserError, match=message):
        EvolInstruct(cfg).preflight()


class Ctx:
    def __init__(self, out, tallies):
        self.out, self.tallies, self.rejected = out, tallies, []

    def reject(self, step, item, reason, raw=None):
        self.rejected.append((step, reason))


def test_keep_seeds_false_keeps_only_evolutions_and_mix_adds_general_conversations(tmp_path):
    lines = [{"seed_id": "a", "instruction": "Seed.",
              "evolutions": [{"round": 1, "kind": "deepen", "instruction": "Seed, deeper."}]},
             {"seed_id": "b", "instruction": "Other seed."}]
    rows = Unfold(keep_seeds=False)(lines, None)
    assert [(r["instruction_id"], r["instruction"], r["evolution"]) for r in rows] == [("a:r1", "Seed, deeper.", "deepen")]
    assert [r["round"] for r in Unfold(keep_seeds=True)(lines, None)] == [0, 1, 0]

    path = tmp_path / "sharegpt.json"
    path.write_text(json.dumps([{"id": f"g{i}", "conversations": [{"from": "human", "value": f"Question {i}?"},
                                                                   {"from": "gpt", "value": "Answer."}]}
                                for i in range(5)]))
    cfg = OmegaConf.merge(OmegaConf.structured(EvolInstructConfig),
                          {"mix": {"datasets": [{"name": "sharegpt", "path": str(path), "weight": 2.0}]}})
    answered = [{**r, "response": "Done."} for r in rows]
    assembly = EvolInstruct(cfg).assemble(answered, Ctx(tmp_path, {}))
    sft = assembly.splits["sft"]
    assert [r["evolution"] for r in sft] == ["deepen", "general", "general"]  # weight 2 x 1 evolved instruction
    assert assembly.stats["evol_instruct"]["general"] == 2 and assembly.stats["evol_instruct"]["seeds"] == 0
    only = OmegaConf.merge(cfg, {"mix": {"only": True}})
    assert [r["evolution"] for r in EvolInstruct(only).assemble(answered, Ctx(tmp_path, {})).splits["sft"]] == \
        ["general", "general"]
