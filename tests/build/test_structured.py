"""`structured: json`: each step that reads structure sends its JSON schema as `response_format`, renders its
template's JSON variant and reads the JSON reply; an endpoint that refuses the schema fails the stage with one
line naming the option; on `hf_local` the embedded model's reply is held to the schema by xgrammar."""

import json
import os

import datasets
import pytest
from omegaconf import OmegaConf

from ifforge.build.augment.evol_instruct import EvolInstructConfig, Evolve, JudgeGain
from ifforge.build.conifer.parsing import Growth
from ifforge.build.conifer.steps import (AddFormatNumeric, FilterConflicts, GenerateConstraints, Options, Recombine,
                                         ReframeQueries)
from ifforge.build.demorecon.steps import Decompose, ModifyReconstruct
from ifforge.build.respond.process_feedback import JudgeStudent, ProcessFeedbackConfig
from ifforge.build.seed_filter import FilterSeeds
from ifforge.llm.structured import response_format
from ifforge.parsing import Invalid
from tests.helpers.cli import openai_args, outputs, run_cli
from tests.helpers.openai_server import Fault

ENV = {"OPENAI_API_KEY": "test-key"}
SEEDS = {f"s{k}": f"Seed {k}: write a note about topic {k}. Be brief. Use a title." for k in range(4)}


def schema_name(body):
    return (body.get("response_format") or {}).get("json_schema", {}).get("name")


def reply(body):
    text = body["messages"][-1]["content"]
    name = schema_name(body)
    seed = next((k for k, v in SEEDS.items() if v in text), None)
    if name == "filter_seeds":
        return json.dumps({"verdict": "No"})
    if name == "decompose":
        if seed == "s3":
            return '{"instructions": ["Write a note."'  # not JSON: a reply the step cannot read
        return json.dumps({"instructions": ["Write a note.", "Be brief.", "Use a title."], "facts": []})
    if name == "modify_reconstruct":
        return json.dumps({"variants": [
            {"number": 1, "modified_instruction": "Write a poem.", "revised_prompt": SEEDS[seed].replace("note", "poem")},
            {"number": 2, "modified_instruction": "Be detailed.", "revised_prompt": "INVALID"},
            {"number": 3, "modified_instruction": "No title.", "revised_prompt": SEEDS[seed].replace("Use a title", "No title")}]})
    assert name is None, name
    return "Answer to: " + text


def build_args(srv, tmp_path, *extra):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"id": k, "instruction": v}) + "\n" for k, v in SEEDS.items()))
    return ["stages=[build]", "seeds=jsonl", f"seeds.path={seeds}", "seeds.id_field=id", "seeds.filter=true",
            "augmentation=decompose_modify_reconstruct", "augmentation.eval_split.num_seeds=0",
            "augmentation.stats.enabled=false", "response=direct", *openai_args(srv.url), "generator.structured=json",
            *extra]


def test_demorecon_with_structured_json_over_http(tmp_path, openai_server):
    srv = openai_server
    srv.on(None, reply)
    run_cli(build_args(srv, tmp_path), tmp_path, env=ENV, check=True)
    steps = {"filter_seeds": FilterSeeds(), "decompose": Decompose({}, None, None),
             "modify_reconstruct": ModifyReconstruct()}
    for body in srv.requests:
        name = schema_name(body)
        if name is None:  # answers are free text
            assert "response_format" not in body
            continue
        schema = steps[name].schema
        seed = next((v for v in SEEDS.values() if v in body["messages"][-1]["content"]), None)
        if name == "decompose":  # narrowed per row: no part longer than the seed
            schema = steps[name].schema_for({"instruction": seed})
            assert schema["properties"]["instructions"]["items"]["maxLength"] == len(seed) + 20
        if name == "modify_reconstruct":  # narrowed per row: one entry per sub-instruction
            parts = ["Write a note.", "Be brief.", "Use a title."]
            schema = steps[name].schema_for({"instruction": seed, "sub_instructions": parts})
            assert schema["properties"]["variants"]["maxItems"] == 3
        assert body["response_format"] == response_format(name, schema)
        assert "JSON object" in body["messages"][-1]["content"]  # the template's JSON variant
    assert {schema_name(b) for b in srv.requests} == {None, *steps}
    art = outputs(tmp_path)["build"]
    dd = datasets.load_from_disk(os.path.join(art, "data"))
    manifest = json.load(open(os.path.join(art, "manifest.json")))
    # s0..s2: the original and the two usable variants; s3's decomposition was not JSON.
    assert len(dd["sft"]) == 3 * 3 and {r["seed_id"] for r in dd["sft"]} == {"s0", "s1", "s2"}
    assert manifest["stats"]["replies"]["decompose"] == {"replies": 4, "unreadable": 1, "structured": True}
    assert manifest["stats"]["replies"]["modify_reconstruct"] == {"replies": 3, "unreadable": 0, "structured": True}
    # free-text steps count their replies too, so a rate is never over nothing
    assert manifest["stats"]["replies"]["respond_direct"] == {"replies": 9, "unreadable": 0, "structured": False}
    rejects = [json.loads(line) for line in open(os.path.join(art, "rejects.jsonl"))]
    assert any(r["seed_id"] == "s3" and "not the JSON its schema asks for" in r["reason"] for r in rejects)
    assert sum(1 for r in rejects if r["step"] == "modify_reconstruct") == 3  # the INVALID ones
    card = open(os.path.join(art, "README.md")).read()
    assert "| decompose | json | 4 | 1 (25%) |" in card


def test_an_endpoint_that_refuses_the_schema_fails_with_one_line(tmp_path, openai_server):
    srv = openai_server
    srv.on(lambda b: "response_format" in b, Fault.http_error(400, message="response_format is not supported"))
    srv.on(None, reply)
    proc = run_cli(build_args(srv, tmp_path), tmp_path, env=ENV)
    assert proc.returncode == 1
    line = proc.stderr.strip().splitlines()[-1]
    assert "structured=off" in line and "filter_seeds" in line and "HTTP 400" in line


def test_without_structured_no_schema_is_sent(tmp_path, openai_server):
    srv = openai_server
    srv.on(None, lambda b: "No" if "Judgement" in b["messages"][-1]["content"] else "Answer.")
    args = [a for a in build_args(srv, tmp_path, "generator.structured=off") if not a.startswith("augmentation")]
    run_cli(args, tmp_path, env=ENV, check=True)
    assert srv.requests and not any("response_format" in b for b in srv.requests)


# -- every structured step reads its JSON reply ------------------------------------------------------------------

CS = {"Audience": ["kids", "experts"], "Tone": ["formal", "playful"], "Length": ["short", "long"]}
OPTS = Options(levels=2, growth=Growth((1, 2), (2, 3)), min_forms=2, format_sample=1.0)
CONIFER_ROW = {"seed_id": "a", "instruction": "Explain rain.", "query": "Explain rain to me.", "query_id": "a.q1",
               "constraint_set": CS, "instruction_id": "a.q1.L1", "level": 1}


@pytest.mark.parametrize("step, value, expected", [
    (FilterSeeds(), {"verdict": "No"}, False),
    (FilterConflicts(OPTS), {"verdict": "Yes"}, True),
    (ReframeQueries(OPTS), {"queries": ["Why does it rain?", "How does rain form?"]},
     ["Why does it rain?", "How does rain form?"]),
    (GenerateConstraints(OPTS), CS, CS),
    (AddFormatNumeric(OPTS), {"instruction": "Explain rain in 3 bullets.", "added": ["in 3 bullets"]},
     ("Explain rain in 3 bullets.", ["in 3 bullets"])),
    (JudgeStudent(OmegaConf.structured(ProcessFeedbackConfig)), {"violations": [{"constraint": "Tone: formal",
                                                                                 "reason": "slang"}]},
     [{"constraint": "Tone: formal", "reason": "slang"}]),
    (Evolve(OmegaConf.structured(EvolInstructConfig), 1), {"instruction": "Explain rain to a child."},
     "Explain rain to a child."),
    (JudgeGain(OmegaConf.structured(EvolInstructConfig), 1), {"verdict": "No"}, False),
])
def test_each_structured_step_reads_its_json(step, value, expected):
    assert step.schema is not None
    assert step.parse_json(value, CONIFER_ROW) == expected


def test_recombine_and_demorecon_json_replies():
    levels = {"levels": [{"level": 1, "constraints": {"Audience": ["kids", "experts"]}, "instruction": "L1"},
                         {"level": 2, "constraints": {"Audience": ["kids", "experts"], "Tone": ["formal", "playful"]},
                          "instruction": "L2"}]}
    kept, problems = Recombine(OPTS).parse_json(levels, CONIFER_ROW)
    assert [lv.instruction for lv in kept] == ["L1", "L2"] and not problems
    d = Decompose({}, None, None).parse_json({"instructions": ["Do A.", "Do A.", "Do B."], "facts": ["F"]},
                                             {"instruction": "Do A and B."})
    assert d.sub_instructions == ["Do A.", "Do B."] and d.facts == ["F"]
    with pytest.raises(Invalid, match="one-shot SMS example"):
        Decompose({}, None, None).parse_json({"instructions": ["Write a short SMS.", "The message must be polite."],
                                              "facts": []}, {"instruction": "Plan a party."})
    row = {"instruction": "Do A. Do B.", "sub_instructions": ["Do A.", "Do B."]}
    variants, dropped = ModifyReconstruct().parse_json({"variants": [
        {"number": 1, "modified_instruction": "Do C.", "revised_prompt": "Do C. Do B."},
        {"number": 1, "modified_instruction": "Do D.", "revised_prompt": "Do D. Do B."},
        {"number": 2, "modified_instruction": "Skip B.", "revised_prompt": "INVALID"}]}, row)
    assert [(v.index, v.instruction) for v in variants] == [(1, "Do C. Do B.")]
    assert sorted(d.index for d in dropped) == [1, 2]


def test_embedded_model_decodes_a_decomposition_and_a_recombination_as_json():
    """SmolLM2-135M on CPU, xgrammar on: what the free model answers off-task parses under the schema."""
    from ifforge.config import GeneratorConfig
    from ifforge.llm import make_generator

    cfg = OmegaConf.structured(GeneratorConfig(name="hf_local", model="smollm2-135m-instruct", max_tokens=320,
                                               batch_size=2, structured="json"))
    gen = make_generator(cfg, None, role="generator")
    decompose, recombine = Decompose({}, None, None), Recombine(Options(levels=1, growth=Growth((1, 2), (1, 3))))
    rows = [{"seed_id": "a", "instruction": "Name two rivers. Be brief."},
            {**CONIFER_ROW, "constraint_set": {"Length": ["short"]}}]
    try:
        results = gen.generate([decompose.request(rows[0], rows, True), recombine.request(rows[1], rows, True)])
    finally:
        gen.close()
    for step, row, res in zip((decompose, recombine), rows, results):
        assert res.ok and res.samples[0].finish_reason == "stop", res.text
        value = json.loads(res.text)
        assert isinstance(value, dict) and set(value) == set(step.schema["properties"])
    instructions = json.loads(results[0].text)["instructions"]
    assert instructions and all(isinstance(x, str) for x in instructions)


def test_decompose_and_modify_schemas_are_bounded_by_the_seed():
    """A weak model under a grammar writes until the schema stops it: the bounds come from the seed itself."""
    row = {"instruction": "Name two rivers. Be brief.", "sub_instructions": ["Name two rivers.", "Be brief."]}
    narrowed = Decompose({}, None, 3).schema_for(row)["properties"]
    assert narrowed["instructions"]["maxItems"] == 4  # one past the cap: a seed with too many is still seen
    assert narrowed["instructions"]["items"]["maxLength"] == len(row["instruction"]) + 20
    assert Decompose({}, None, None).schema_for(row)["properties"]["instructions"]["maxItems"] == 8
    entry = ModifyReconstruct().schema_for(row)["properties"]["variants"]["items"]["properties"]
    assert entry["modified_instruction"]["maxLength"] == 2 * len("Name two rivers.") + 40
    assert entry["revised_prompt"]["maxLength"] == len(row["instruction"]) + 2 * len("Name two rivers.") + 40


def test_conifer_schemas_are_bounded_by_the_levels_asked_for():
    opts = Options(levels=2, growth=Growth((1, 2), (2, 3)))
    assert GenerateConstraints(opts).schema_for({"query": "q"})["maxProperties"] == 4  # 2 levels x 2 categories
    assert GenerateConstraints(Options()).schema_for({"query": "q"})["maxProperties"] == 10  # the paper's 5 x 2
    cs = {f"C{i}": ["short", "a longer item"] for i in range(6)}
    level = Recombine(opts).schema_for({"query": "Write a poem.", "constraint_set": cs})["properties"]["levels"]
    entry = level["items"]["properties"]
    assert level["minItems"] == level["maxItems"] == 2
    assert entry["constraints"]["maxProperties"] == 4
    assert entry["constraints"]["properties"]["C0"]["items"]["maxLength"] == len("a longer item") + 20
    assert entry["instruction"]["maxLength"] == len("Write a poem.") + 600


def test_hf_local_without_xgrammar_says_how_to_install_it(monkeypatch):
    import importlib.util

    from ifforge.config import GeneratorConfig
    from ifforge.errors import UserError
    from ifforge.llm.backends.hf_local import HFLocalBackend

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "xgrammar" else real(name, *a))
    cfg = OmegaConf.structured(GeneratorConfig(name="hf_local", model="smollm2-135m-instruct", structured="json"))
    with pytest.raises(UserError, match="needs xgrammar: pip install --no-deps xgrammar"):
        HFLocalBackend(cfg).check()
    cfg.structured = "off"
    HFLocalBackend(cfg).check()
