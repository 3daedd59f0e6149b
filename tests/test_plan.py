"""`plan=true` against the local OpenAI-compatible server: nothing reaches it, nothing is written, and the printed
requests and costs are the ones the plan's rules give (exact where prompts are known, `<=` bounds past them),
before a build, after it (all cached), for another response mode (partly cached) and for the eval stage.

The DeMoRecon scenario is tests/build/test_demorecon_build.py's (20 seeds, max_sub_instructions=5,
variants_per_seed=3, 3 eval seeds of 4 sub-instructions); prices are set in the config: $10 / $20 per M tokens.
"""

import json
import math
import re

from hydra import compose, initialize_config_dir

import ifforge.__main__ as entry
from ifforge.pipeline import run
from ifforge.prompts import PROMPTS_DIR, render
from tests.build import test_conifer_build as conifer
from tests.build import test_demorecon_build as demorecon
from tests.helpers.cli import candidate_args, openai_args, outputs, run_cli
from tests.helpers.data import SHARED_DATA, needs_shared_data

PRICES = ["generator.price_prompt_per_mtok=10", "generator.price_completion_per_mtok=20"]
NO_KEY = {"OPENAI_API_KEY": ""}
MAX_TOKENS = 2048  # conf/generator/openai.yaml: every reply is assumed to run to it
ROW = re.compile(r"^  (?P<step>\S.*?)\s+(?P<role>generator|judge|student|candidate)\s+(?P<requests>(?:<=)?\d+)\s+"
                 r"(?P<cached>\d+)\s+(?P<cost>\S.*)$")


def table(text, stage):
    """{step: (requests, cached, cost)} of one stage in the printed plan."""
    block = text.split(f"\n[{stage}] ", 1)[1].split("\n[", 1)[0].split("\n\n", 1)[0]
    return {m["step"]: (m["requests"], int(m["cached"]), m["cost"]) for m in map(ROW.match, block.splitlines()) if m}


def usd(prompt_tokens, completion_tokens, per_prompt=10, per_completion=20):
    return f"<=${(prompt_tokens * per_prompt + completion_tokens * per_completion) / 1e6:.4f}"


def template_tokens(name):
    return math.ceil(len((PROMPTS_DIR / name).read_text(encoding="utf-8")) / 4)


def plan_in_process(args, tmp_path, capsys):
    """The plan of `args` (a CLI run's, where not set: artifacts under tmp_path), printed by the pipeline itself."""
    where = [f"paths.artifacts={tmp_path / 'artifacts'}", f"paths.data={tmp_path / 'data'}"]
    with initialize_config_dir(entry.CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=where + args + ["plan=true"])
    capsys.readouterr()
    assert run(cfg) == {}
    return capsys.readouterr().out


def test_demorecon_plan_before_and_after_the_build(tmp_path, openai_server, monkeypatch, capsys):
    srv = openai_server
    demorecon.script(srv)
    seeds = demorecon.seeds_file(tmp_path)
    cache = tmp_path / "cache.sqlite"
    args = demorecon.build_args(srv, seeds, "response=direct", demorecon.NO_STATS, f"paths.cache={cache}", *PRICES)

    # -- nothing built, nothing cached, no API key: the CLI prints the plan and sends and writes nothing
    proc = run_cli(args + ["plan=true"], tmp_path, env=NO_KEY, check=True)
    assert srv.count() == 0 and not (tmp_path / "artifacts").exists() and not cache.exists()
    text = proc.stdout
    rows = table(text, "build")
    prompts = [math.ceil(len(render("demorecon/decompose.j2", prompt=demorecon.seed_text(k))) / 4)
               for k in range(demorecon.N_SEEDS)]
    # decompose: every prompt is known, none is cached
    assert rows["decompose"] == ("20", 0, usd(sum(prompts), 20 * MAX_TOKENS))
    # modify_reconstruct: one per decomposed seed, prompts of the template plus a decomposition of MAX_TOKENS
    assert rows["modify_reconstruct"] == ("<=20", 0, usd(20 * (template_tokens("demorecon/modify_reconstruct.j2")
                                                                + MAX_TOKENS), 20 * MAX_TOKENS))
    # respond_direct: per seed, the original and at most 5 variants, which select_variants cuts to at most
    # 1 + max(variants_per_seed=3, eval sub_instructions=4) rows
    assert rows["respond_direct"] == ("<=100", 0, usd(100 * MAX_TOKENS, 100 * MAX_TOKENS))
    assert "[build] would build " in text and "OPENAI_API_KEY is not set" in text  # what a real run would stop on
    assert "\ntotal: <=140 requests, " in text and "generator openai:test-model: $10/$20 per M" in text

    # -- the real build (its job log has no line per HTTP request; each step has its own line)
    run_cli(args, tmp_path, env=demorecon.ENV, check=True)
    sent = srv.count()
    art = outputs(tmp_path)["build"]
    manifest = json.load(open(f"{art}/manifest.json"))
    log = (tmp_path / "run" / "__main__.log").read_text()
    assert "HTTP Request" not in log and "httpx" not in log
    assert "[generator] decompose: 20 requests: 20 sent, 0 cached, 0 retries, 0 failed;" in log
    g = manifest["stats"]["generator"]
    assert g["cost_usd"] == round((g["prompt_tokens"] * 10 + g["completion_tokens"] * 20) / 1e6, 6) > 0
    assert g["price"]["source"] == "config" and g["steps"]["decompose"]["calls"] == 20
    card = open(f"{art}/README.md").read()
    assert f"Cost: ${g['cost_usd']:.4f}" in card and "| decompose | generator | 20 | 0 |" in card

    # 16 seeds pass decompose, 14 keep variants: 14 originals and 42 selected variants are answered
    assert manifest["stats"]["steps"]["respond_direct"]["in"] == 56
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    again = plan_in_process(args, tmp_path, capsys)
    assert f"[build] would reuse {art}" in again and "\ntotal: 0 requests, <=$0.0000" in again

    # -- the same build elsewhere: every request is answered by the cache, to the last step
    elsewhere = plan_in_process(args + [f"paths.artifacts={tmp_path / 'other'}"], tmp_path, capsys)
    assert table(elsewhere, "build") == {"decompose": ("0", 20, "$0"), "modify_reconstruct": ("0", 16, "$0"),
                                         "respond_direct": ("0", 56, "$0")}

    # -- response=reference: the originals' answers are cached, so every revision's prompt is known
    ref_args = demorecon.build_args(srv, seeds, "response=reference", demorecon.NO_STATS, f"paths.cache={cache}", *PRICES)
    ref = table(plan_in_process(ref_args, tmp_path, capsys), "build")
    assert ref["respond_original"] == ("0", 14, "$0") and ref["respond_reference"][:2] == ("42", 0)

    # -- the eval stage on the build's eval split: the answers' prompts are known, the judge's bounded by items
    ev = args + ["stages=[build,eval]", "eval=[demorecon_eval]", *candidate_args(srv.url),
                 *openai_args(srv.url, model="judge-model", role="judge")]
    text = plan_in_process(ev, tmp_path, capsys)
    items = manifest["stats"]["splits"]["eval"]
    assert items == 12 and "suite demorecon_eval: would build " in text and f", {items} items" in text
    rows = table(text, "eval")
    assert rows["answer demorecon_eval"][:2] == ("12", 0) and rows["judge demorecon_eval"][:2] == ("<=12", 0)
    assert rows["answer demorecon_eval"][2] == rows["judge demorecon_eval"][2] == "price unknown"  # local URL
    assert "candidate openai:cand: price unknown (genai-prices" in text
    assert srv.count() == sent  # no plan sent anything


def test_conifer_plan_bounds_every_step(tmp_path, openai_server, capsys):
    srv = openai_server
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"id": k, "instruction": v}) + "\n" for k, v in conifer.SEEDS.items()))
    text = plan_in_process(conifer.build_args(srv, seeds, *PRICES, "judge.price_prompt_per_mtok=1",
                                              "judge.price_completion_per_mtok=2"), tmp_path, capsys)
    assert srv.count() == 0
    rows = table(text, "build")
    # 4 seeds; a reframing makes at most 10 queries (the structured reply's cap), each query at most 5 levels
    bounds = {"reframe": "4", "filter_context": "<=40", "constraints": "<=40", "recombine": "<=40",
              "format_numeric": "<=200", "filter_conflicts": "<=200", "respond_direct": "<=200",
              "internal_feedback": "<=200", "student_answers": "<=200", "external_feedback": "<=200"}
    assert {step: r[0] for step, r in rows.items()} == bounds
    assert "assumed: at most 10 reframed queries per seed" in text
    # the filters reply in at most 96 tokens; the judge has its own price; the student's local endpoint has none
    assert rows["filter_context"][2] == usd(40 * (template_tokens("conifer/filter_context.j2") + MAX_TOKENS), 40 * 96)
    # the judge quotes the student's reply (conf/response/process_feedback.yaml: max_tokens 512) and replies in at
    # most conf/judge/openai.yaml's 1024
    judge_prompt = template_tokens("conifer/external_feedback.j2") + 512
    assert rows["external_feedback"][2] == usd(200 * judge_prompt, 200 * 1024, 1, 2)
    assert rows["student_answers"][2] == "price unknown"
    assert "plus the requests of unknown price (student)" in text


@needs_shared_data
def test_the_contamination_judge_pass_is_planned(tmp_path, openai_server, capsys):
    """contamination.llm: the judge is asked about at most top_k training instructions per test item."""
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"id": k, "instruction": v}) + "\n" for k, v in conifer.SEEDS.items()))
    text = plan_in_process(conifer.build_args(openai_server, seeds, "contamination.enabled=true",
                                              "contamination.llm=true", "contamination.top_k=2", "eval=[ifeval]",
                                              f"eval.ifeval.path={SHARED_DATA / 'ifeval' / 'input_data.jsonl'}"),
                           tmp_path, capsys)
    assert table(text, "build")["contamination"][0] == f"<={541 * 2}"
