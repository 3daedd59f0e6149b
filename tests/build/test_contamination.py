"""The contamination report (Conifer section 4.5): similarities, top-k, the drop, the judge's rephrase pass."""

import json
import os

import numpy as np
from omegaconf import OmegaConf

from ifforge.build.stats import contamination
from ifforge.config import ContaminationConfig
from tests.helpers.cli import openai_args, outputs, run_cli

ENV = {"OPENAI_API_KEY": "test-key"}


def fake_embed(texts):
    """Bag-of-words vectors over a tiny vocabulary, unit length: shared words mean similar texts."""
    vocab = ["haiku", "rain", "poem", "sea", "letter", "boss", "recipe", "soup", "list"]
    m = np.array([[t.lower().count(w) for w in vocab] for t in texts], dtype=np.float32) + 1e-3
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def cfg_with(**options):
    c = OmegaConf.structured(ContaminationConfig(enabled=True, **options))
    return OmegaConf.create({"contamination": c, "eval": {"ifeval": {"name": "ifeval"}}})


def test_planted_near_duplicate_is_top_match_and_dropped(tmp_path):
    splits = {"sft": [{"messages": [{"role": "user", "content": "Write a haiku about rain"},
                                    {"role": "assistant", "content": "..."}]},
                      {"messages": [{"role": "user", "content": "A recipe for soup"},
                                    {"role": "assistant", "content": "..."}]},
                      {"messages": [{"role": "user", "content": "A letter to my boss"},
                                    {"role": "assistant", "content": "..."}]}],
              "dpo": [{"prompt": [{"role": "user", "content": "Write a haiku about rain"}], "chosen": [],
                       "rejected": []}]}
    tests = {"ifeval": ["Please write a haiku about the rain", "A poem about the sea"]}
    kept, report = contamination.run(cfg_with(top_k=2, drop_above=0.9), splits, tmp_path, fake_embed, tests)
    e = report["test_sets"]["ifeval"]
    assert report["train_instructions"] == 3  # the DPO prompt repeats an SFT instruction: encoded once
    assert e["top"][0]["matches"][0]["train"] == "Write a haiku about rain"
    assert e["top"][0]["matches"][0]["similarity"] > 0.99 and len(e["top"][0]["matches"]) == 2
    assert e["top"][1]["matches"][0]["similarity"] < 0.5  # nothing like the sea poem was trained on
    assert e["items_at_or_above_threshold"] == 1 and sum(e["histogram"].values()) == 2
    assert report["dropped"] == {"threshold": 0.9, "instructions": 1, "rows": {"sft": 1, "dpo": 1}}
    assert [r["messages"][0]["content"] for r in kept["sft"]] == ["A recipe for soup", "A letter to my boss"]
    assert kept["dpo"] == []
    assert json.loads((tmp_path / "contamination.json").read_text())["dropped"]["instructions"] == 1
    assert (tmp_path / "figures" / "contamination_ifeval.png").stat().st_size > 0
    card = contamination.card_section(report)
    assert "| ifeval | 2 |" in card and "rows dropped: sft 1, dpo 1" in card


def test_test_set_embeddings_are_kept_on_disk_per_model_and_texts(tmp_path):
    class Counting:
        name, calls = "m", 0

        def encode(self, texts):
            self.calls += 1
            return fake_embed(texts)

    e = Counting()
    first = contamination.kept_on_disk(e, ["a haiku", "a poem"], tmp_path)
    again = contamination.kept_on_disk(e, ["a haiku", "a poem"], tmp_path)
    assert e.calls == 1 and np.array_equal(first, again)
    contamination.kept_on_disk(e, ["a haiku"], tmp_path)  # another test set: encoded
    e.name = "other-model"
    contamination.kept_on_disk(e, ["a haiku", "a poem"], tmp_path)  # another model: encoded
    assert e.calls == 3 and len(list(tmp_path.glob("*.npy"))) == 3


def test_bad_options_are_one_line_errors():
    import pytest

    from ifforge.errors import UserError

    with pytest.raises(UserError, match="top_k must be >= 1"):
        contamination.check(cfg_with(top_k=0))
    with pytest.raises(UserError, match="drop_above"):
        contamination.check(cfg_with(drop_above=1.5))
    with pytest.raises(UserError, match="does not evaluate"):
        contamination.check(cfg_with(suites=["infobench"]))


def test_build_reports_judges_and_drops(tmp_path, openai_server):
    """A real build with the bundled MiniLM: a seed copied from the test set is found, judged rephrased by the
    judge (the local server), dropped and recorded in the manifest and the card."""
    srv = openai_server
    # The judge says Yes only when both sides are about the cat's limerick.
    srv.on("rephrasing", lambda body: "Yes" if body["messages"][-1]["content"].count("limerick about a cat") == 2
           else "No")
    srv.on("limerick", "A cat sat on a mat.")
    srv.on(None, "Some answer.")
    test_prompt = "Write a limerick about a cat who loves the moon. Do not use any commas."
    bench = tmp_path / "ifeval.jsonl"
    bench.write_text("".join(json.dumps({"key": i, "prompt": p, "instruction_id_list": [], "kwargs": []}) + "\n"
                             for i, p in enumerate([test_prompt, "List three prime numbers in JSON."])))
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"id": f"s{i}", "instruction": t}) + "\n" for i, t in enumerate(
        ["Write a limerick about a cat who loves the moon, without commas.", "Explain how tides work.",
         "Give me a recipe for tomato soup."])))
    proc = run_cli(["stages=[build]", "seeds=jsonl", f"seeds.path={seeds}", "seeds.id_field=id",
                    *openai_args(srv.url), "judge=openai", *openai_args(srv.url, model="judge", role="judge")[1:],
                    "eval=[ifeval]", f"eval.ifeval.path={bench}", "contamination.enabled=true",
                    "contamination.llm=true", "contamination.top_k=2", "contamination.drop_above=0.8"],
                   tmp_path, env=ENV, check=True)
    art = outputs(tmp_path)["build"]
    report = json.load(open(os.path.join(art, "contamination.json")))
    ifeval = report["test_sets"]["ifeval"]
    assert ifeval["top"][0]["matches"][0]["train"].startswith("Write a limerick about a cat")
    assert ifeval["top"][0]["matches"][0]["similarity"] > 0.8 and ifeval["top"][0]["matches"][0]["rephrased"]
    assert ifeval["rephrased_items"] == 1 and ifeval["rephrased_pct"] == 50.0
    assert sum("rephrasing" in r["messages"][-1]["content"] for r in srv.requests) == 4  # 2 items x top 2
    m = json.load(open(os.path.join(art, "manifest.json")))
    assert m["stats"]["splits"] == {"sft": 2}
    assert m["stats"]["contamination"]["dropped"]["rows"] == {"sft": 1}
    assert "top" not in m["stats"]["contamination"]["test_sets"]["ifeval"]
    assert len(list((tmp_path / "artifacts" / "embeddings").glob("*.npy"))) == 1  # the test set, for later builds
    card = open(os.path.join(art, "README.md")).read()
    assert "## Contamination" in card and "50.0%" in card and "rows dropped: sft 1" in card, proc.stdout


def test_histogram_bins_are_lower_inclusive_and_one_closes_the_last():
    h = contamination._histogram([0.3, 0.2, -0.05, 1.0, 0.999, 0.0])
    assert {k: v for k, v in h.items() if v} == {"-0.1..0.0": 1, "0.0..0.1": 1, "0.2..0.3": 1, "0.3..0.4": 1,
                                                  "0.9..1.0": 2}


def test_rephrase_pass_with_a_structured_judge_holds_replies_to_the_verdict_schema():
    from types import SimpleNamespace

    class Judge:
        cfg = {"structured": "json"}
        requests = []

        def generate(self, requests, desc):
            self.requests += requests
            replies = ['{"verdict": "Yes"}', '{"verdict": "No"}', "not json"]
            return [SimpleNamespace(ok=True, text=t, error=None) for t in replies[: len(requests)]]

    judge = Judge()
    verdicts = contamination.rephrase_pass([("a", "b"), ("c", "d"), ("e", "f")], judge, None)
    assert verdicts == [True, False, None]  # an unreadable reply is reported, never a verdict
    assert all("response_format" in r.params for r in judge.requests)
    assert '{"verdict": "Yes"}' in judge.requests[0].messages[0]["content"]  # the template's JSON variant


def test_a_judge_that_reads_nothing_fails_the_report(tmp_path):
    """No rephrased rate is ever computed from verdicts that were never read (as a judged eval suite fails)."""
    from types import SimpleNamespace

    import pytest

    from ifforge.errors import StageFailed

    class Judge:
        cfg = {"structured": "off"}

        def generate(self, requests, desc):
            return [SimpleNamespace(ok=True, text="I cannot tell.", error=None) for _ in requests]

    splits = {"sft": [{"messages": [{"role": "user", "content": "Write a haiku about rain"},
                                    {"role": "assistant", "content": "..."}]}]}
    with pytest.raises(StageFailed, match="no readable verdict on 1 pairs"):
        contamination.run(cfg_with(top_k=1, llm=True), splits, tmp_path, fake_embed, {"ifeval": ["A haiku"]},
                          judge=Judge())
    assert not (tmp_path / "contamination.json").exists()
