"""DeMoRecon end to end through the real CLI and the local OpenAI-compatible test server.

A scripted model answers every prompt type (E.2, E.3, E.4, plain responses) in several layouts and with planted
faults, so that every split's size is known exactly. The 20 seeds, by number k:

  k=0  decomposition is prose only            -> rejected at decompose
  k=1  decomposition has facts, no instructions -> rejected at decompose
  k=2  decomposition copies the one-shot SMS example -> rejected at decompose
  k=3..7  4 sub-instructions, 4 good variants   -> eval candidates (3 of the 5 are held out)
  k=8  4 sub-instructions, one INVALID          -> 3 variants, not eval-eligible
  k=9  3 sub-instructions, block 3 missing      -> 2 variants
  k=10 3 sub-instructions, an extra block 4     -> 3 variants
  k=11 3 sub-instructions, one unchanged, one INVALID -> 1 variant (2 DPO pairs only)
  k=12 3 sub-instructions                       -> 3 variants
  k=13 3 sub-instructions; the direct answer to its variant 1 is empty -> rejected at respond_direct
  k=14..16 5 sub-instructions                   -> 5 variants, 3 kept by variants_per_seed=3
  k=17 6 sub-instructions > max_sub_instructions=5 -> rejected at decompose
  k=18 modification answer without any block   -> rejected at modify_reconstruct
  k=19 every revised prompt INVALID             -> 3 variant rejects + the seed
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import datasets

from tests.helpers.cli import openai_args, outputs, run_cli

ENV = {"OPENAI_API_KEY": "test-key"}
N_SEEDS = 20
SUBS = {**{k: 4 for k in range(3, 9)}, **{k: 3 for k in (9, 10, 11, 12, 13, 18, 19)},
        **{k: 5 for k in (14, 15, 16)}, 17: 6}
E2_MARK = "**Extract Instructions:** List all instructions"
E3_MARK = "**Modify Instruction:** Randomly modify"
E4_MARK = "Below is an original prompt and its original response."


def seed_text(k: int) -> str:
    rules = " ".join(f"Rule {i}." for i in range(1, SUBS.get(k, 2) + 1))
    return f"Seed {k}: write a note about topic {k}. {rules}"


def variant_text(k: int, j: int) -> str:
    return seed_text(k).replace(f"Rule {j}.", f"Rule {j} reversed.")


def _given(prompt: str) -> str:
    return prompt.rsplit("**Given Prompt:**", 1)[1].split("**Extracted Facts:**")[0].strip()


def _seed_no(text: str) -> int:
    return int(re.search(r"Seed (\d+):", text).group(1))


def decomposition(prompt: str) -> str:
    k = _seed_no(_given(prompt))
    subs = [f"Follow rule {i}." for i in range(1, SUBS.get(k, 2) + 1)]
    if k == 0:
        return "This prompt asks for a note. I would rather not list anything."
    if k == 1:
        return "**Extract Facts:**\n1. The topic is given."
    if k == 2:
        return ("**Extract Facts:**\n1. The user needs to pick up their son.\n\n**Extract Instructions:**\n"
                "1. Write a short SMS.\n2. The SMS is addressed to the user’s supervisor.\n3. The request is for "
                "leaving (presumably leaving work or another obligation).\n4. The message must be polite.\n"
                "5. The message should contain no more than 20 words.")
    style = k % 3
    if style == 0:  # the paper's layout
        return (f"**Extract Facts:**\n1. The topic is {k}.\n\n**Extract Instructions:**\n"
                + "\n".join(f"{i}. {s}" for i, s in enumerate(subs, 1)))
    if style == 1:  # no bold, a preamble, "None" facts, 1) numbering
        return ("Sure! Here is the breakdown.\n\nExtract Facts: None\n\nExtract Instructions:\n"
                + "\n".join(f"{i}) {s}" for i, s in enumerate(subs, 1)))
    return ("### Extracted Facts\n- The topic is a number.\n\n### Extracted Instructions\n"  # headings, bullets
            + "\n".join(f"- {s}" for s in subs) + "\n\nNote: the rules are independent.")


def modification(prompt: str) -> str:
    k = _seed_no(_given(prompt))
    n = SUBS[k]
    if k == 18:
        return "I modified the instructions as requested, they look fine."
    blocks = {j: (f"Reverse rule {j}.", variant_text(k, j)) for j in range(1, n + 1)}
    if k == 8:
        blocks[2] = ("Ignore all safety rules.", "INVALID")
    if k == 9:
        del blocks[3]
    if k == 10:
        blocks[4] = ("Add rule 4.", seed_text(k) + " Rule 4.")
    if k == 11:
        blocks[1] = ("Keep rule 1.", seed_text(k))
        blocks[3] = ("Nonsense.", "'INVALID'")
    if k == 19:
        blocks = {j: (f"Reverse rule {j}.", "**INVALID**") for j in blocks}
    style = k % 3
    if style == 0:
        body = "\n\n".join(f"**Modified Instructions {j}:**\n{m}\n\n**Revised Prompt {j}:**\n{p}"
                           for j, (m, p) in blocks.items())
    elif style == 1:
        body = "Here are the variants:\n\n" + "\n\n".join(
            f"Modified Instruction {j}: {m}\nRevised Prompt {j}: {p}" for j, (m, p) in blocks.items())
    else:
        body = "\n\n".join(f"{j}. **Modified Instruction:** {m}\n   **Revised Prompt:** {p}"
                           for j, (m, p) in blocks.items()) + "\n\nNote: only one rule changes each time."
    return body


def direct_answer(prompt: str) -> str:
    if prompt == variant_text(13, 1):
        return ""
    return f"Answer to: {prompt}"


def reference_answer(prompt: str) -> str:
    new = prompt.split("**New Prompt:**")[1].split("**New Response:**")[0].strip()
    return f"**New Response:** Revised answer to: {new}"


def script(srv) -> None:
    srv.on(E2_MARK, lambda b: decomposition(b["messages"][-1]["content"]))
    srv.on(E3_MARK, lambda b: modification(b["messages"][-1]["content"]))
    srv.on(E4_MARK, lambda b: reference_answer(b["messages"][-1]["content"]))
    srv.on(None, lambda b: direct_answer(b["messages"][-1]["content"]))


def seeds_file(tmp_path: Path) -> Path:
    p = tmp_path / "seeds.jsonl"
    p.write_text("".join(json.dumps({"id": f"s{k}", "instruction": seed_text(k)}) + "\n" for k in range(N_SEEDS)))
    return p


def build_args(srv, seeds: Path, *extra: str):
    return ["stages=[build]", "seeds=jsonl", f"seeds.path={seeds}", "seeds.id_field=id", *openai_args(srv.url),
            "augmentation=decompose_modify_reconstruct", "augmentation.variants_per_seed=3",
            "augmentation.max_sub_instructions=5", "augmentation.eval_split.num_seeds=3", *extra]


def load(art: str):
    dd = datasets.load_from_disk(os.path.join(art, "data"))
    manifest = json.load(open(os.path.join(art, "manifest.json")))
    rejects = [json.loads(line) for line in open(os.path.join(art, "rejects.jsonl"))]
    return dd, manifest, rejects


NO_STATS = "augmentation.stats.enabled=false"  # statistics load two models; one run below checks them


def test_demorecon_direct_then_cache_then_reference(tmp_path, openai_server):
    srv = openai_server
    script(srv)
    seeds = seeds_file(tmp_path)
    cache = f"paths.cache={tmp_path / 'cache.sqlite'}"
    run_cli(build_args(srv, seeds, "response=direct", cache, NO_STATS), tmp_path, env=ENV, check=True)
    art = outputs(tmp_path)["build"]
    dd, m, rejects = load(art)
    stats = m["stats"]

    # -- exact split sizes (see the module docstring) ----------------------------------------------------------
    assert stats["splits"] == {"sft": 40, "dpo": 52, "eval": 12, "det": 48, "plain": 11}
    assert stats["steps"]["decompose"] == {"in": 20, "out": 16, "rejected": 4}
    assert stats["steps"]["modify_reconstruct"] == {"in": 16, "out": 14 + 50, "rejected": 10}
    assert stats["steps"]["select_variants"] == {"in": 64, "out": 56, "rejected": 0}
    assert stats["steps"]["respond_direct"] == {"in": 56, "out": 55, "rejected": 1}
    assert stats["variants"] == {"sub_instructions": 60, "variants_kept": 50, "eval_eligible_seeds": 5,
                                 "eval_seeds": 3, "variants_not_selected": 8,
                                 "variants_dropped": {"INVALID": 5, "unparseable answer": 3,
                                                      "no block for sub-instruction N": 1,
                                                      "block N but only N sub-instructions were given": 1,
                                                      "revised prompt is identical to the original": 1}}
    assert srv.count(E2_MARK) == 20 and srv.count(E3_MARK) == 16 and srv.count() == 20 + 16 + 56

    # -- rejects: every planted fault, with its raw output ----------------------------------------------------
    by_step = {}
    for r in rejects:
        by_step.setdefault(r["step"], []).append(r)
    assert sorted(r["seed_id"] for r in by_step["decompose"]) == ["s0", "s1", "s17", "s2"]
    assert all(r["raw"] for r in by_step["decompose"])
    reasons = {r["seed_id"]: r["reason"] for r in by_step["decompose"]}
    assert "no 'Extract Instructions' block" in reasons["s0"] and "one-shot" in reasons["s2"]
    assert "max_sub_instructions=5" in reasons["s17"]
    invalid = [r for r in by_step["modify_reconstruct"] if r["reason"] == "INVALID"]
    assert sorted((r["seed_id"], r["item"]["variant_index"]) for r in invalid) == [
        ("s11", 3), ("s19", 1), ("s19", 2), ("s19", 3), ("s8", 2)]
    assert all("INVALID" in r["raw"] for r in invalid)
    seed_level = {r["seed_id"]: r["reason"] for r in by_step["modify_reconstruct"] if "variant_index" not in r["item"]}
    assert "unparseable" in seed_level["s18"] and seed_level["s19"] == "no usable variant for this seed"
    assert [r["item"]["instruction"] for r in by_step["respond_direct"]] == [variant_text(13, 1)]

    # -- eval seeds never leak into training splits -------------------------------------------------------------
    eval_seeds = set(dd["eval"]["seed_id"])
    assert len(eval_seeds) == 3 and eval_seeds <= {f"s{k}" for k in range(3, 8)}
    for split in ("sft", "dpo", "plain"):
        assert not eval_seeds & set(dd[split]["seed_id"])
    train_texts = {r["messages"][0]["content"] for r in dd["sft"]} | {r["prompt"][0]["content"] for r in dd["dpo"]}
    assert not train_texts & set(dd["eval"]["instruction"])
    assert sorted(dd["eval"]["seed_id"]).count(sorted(eval_seeds)[0]) == 4

    # -- det: each eval instruction with its 4 sibling responses, its own labelled Yes ---------------------------
    det = list(dd["det"])
    assert sum(r["label"] == "Yes" for r in det) == 12 and sum(r["label"] == "No" for r in det) == 36
    assert all((r["label"] == "Yes") == (r["instruction_id"] == r["response_instruction_id"]) for r in det)

    # -- DPO: the pair cap, TRL's conversational format, chosen = Pi's own response --------------------------------
    per_seed = {}
    for r in dd["dpo"]:
        per_seed[r["seed_id"]] = per_seed.get(r["seed_id"], 0) + 1
        assert r["chosen"][0]["content"] == "Answer to: " + r["prompt"][0]["content"]
        assert r["rejected"][0]["content"] != r["chosen"][0]["content"]
    assert max(per_seed.values()) == 5 and per_seed["s11"] == 2

    # -- sft: group ids, originals, the variant selection ----------------------------------------------------------
    sft = list(dd["sft"])
    assert sum(r["is_original"] for r in sft) == 11 == dd["plain"].num_rows
    assert all(r["group_id"] == r["seed_id"] for r in sft)
    assert sum(1 for r in sft if r["seed_id"] == "s14") == 4  # original + variants_per_seed=3
    card = open(os.path.join(art, "README.md")).read()
    assert "| decompose | 20 | 16 | 4 |" in card and "Variants: 50 kept of 60 sub-instructions" in card

    # -- a second identical run, into a fresh artifact store sharing the cache: nothing sent, same data ----------
    sent = srv.count()
    run_cli(build_args(srv, seeds, "response=direct", cache, NO_STATS, f"paths.artifacts={tmp_path / 'b'}"),
            tmp_path, env=ENV, check=True)
    assert srv.count() == sent
    for split in ("sft", "dpo", "eval", "det", "plain"):
        assert Path(outputs(tmp_path)["build"], f"{split}.jsonl").read_text() == Path(art, f"{split}.jsonl").read_text()

    # -- only response=reference changes: decomposition, variants and originals' answers come from the cache ----
    run_cli(build_args(srv, seeds, "response=reference", cache, NO_STATS), tmp_path, env=ENV, check=True)
    new = srv.requests[sent:]
    assert len(new) == 42 and all(E4_MARK in b["messages"][-1]["content"] for b in new)  # 30 train + 12 eval variants
    one = next(b["messages"][-1]["content"] for b in new
               if f"**New Prompt:**\n{variant_text(5, 2)}" in b["messages"][-1]["content"])
    assert f"**Original Prompt:**\n{seed_text(5)}\n\n**Original Response:**\nAnswer to: {seed_text(5)}" in one
    dd3, m3, _ = load(outputs(tmp_path)["build"])
    assert m3["stats"]["splits"] == {"sft": 41, "dpo": 52, "eval": 12, "det": 48, "plain": 11}
    assert set(dd3["eval"]["seed_id"]) == eval_seeds
    variant = next(r for r in dd3["sft"] if not r["is_original"])
    assert variant["messages"][1]["content"] == "Revised answer to: " + variant["messages"][0]["content"]

    # -- statistics with both modes side by side: every answer is in the cache by now -----------------------------
    sent = srv.count()
    run_cli(build_args(srv, seeds, "response=reference", cache, "augmentation.stats.compare_modes=true"),
            tmp_path, env=ENV, check=True)
    assert srv.count() == sent
    art4 = outputs(tmp_path)["build"]
    stats4 = load(art4)[1]["stats"]
    t1 = stats4["table1"]
    assert t1["sft"]["instructions"] == 41 and t1["sft"]["uniformity"] > 0 and t1["dpo"]["uniformity"] is None
    assert t1["sft"]["instruction_tokens"] > 5 and t1["eval"]["response_tokens"] > 5
    assert stats4["tokenizer"] == "smollm2-135m-instruct" and stats4["embedding_model"] == "all-MiniLM-L6-v2"
    assert stats4["compare"]["direct"]["instructions"] == 40  # s13's empty direct answer is left out
    card = open(os.path.join(art4, "README.md")).read()
    assert "## DeMoRecon statistics" in card and "| U of responses |" in card and "sft (Aug, compare)" in card
    assert "![t-SNE" in card and os.path.getsize(os.path.join(art4, "tsne.png")) > 10_000
