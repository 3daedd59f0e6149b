"""The eval stage end to end: the tiny model under test, a scripted judge on the local OpenAI-compatible server,
a few prompts per suite; reruns reuse cached generations and judge calls, and one suite's limit redoes only it."""

import json
import shutil

import pytest
from hydra import compose, initialize_config_dir

import ifforge.__main__ as entry
from ifforge.pipeline import run
from tests.helpers.cli import run_cli
from tests.helpers.data import REPO, needs_shared_data
from tests.helpers.judges import demorecon_files, script_judge

DATA = REPO.parent / "shared" / "data"
pytestmark = pytest.mark.skipif(not (DATA / "ifeval").is_dir(), reason="shared benchmark copies not present")


def overrides(tmp_path, srv, tiny, ev, det):
    return [
        "stages=[eval]", f"paths.artifacts={tmp_path / 'art'}",
        "candidate.name=hf_local", f"candidate.model={tiny}", "candidate.max_tokens=8", "candidate.device=cpu",
        "judge=openai", f"judge.base_url={srv.url}", "judge.model=judge-model", "judge.max_retries=1",
        "eval=all",
        f"eval.ifeval.path={DATA / 'ifeval' / 'input_data.jsonl'}", "eval.ifeval.limit=3",
        f"eval.followbench.path={DATA / 'followbench'}", "eval.followbench.limit=1",
        f"eval.infobench.path={DATA / 'infobench' / 'infobench_500.jsonl'}", "eval.infobench.limit=2",
        f"eval.demorecon_eval.path={ev}", f"eval.demorecon_det.path={det}",
        f"eval.mt_bench.path={DATA / 'mtbench' / 'question.jsonl'}", "eval.mt_bench.limit=2",
        # ifforge's own judge prompts (scripted above); the reference protocols: test_reference_protocols.py
        "eval.mt_bench.protocol=ifforge", "eval.followbench.protocol=ifforge", "eval.infobench.protocol=ifforge",
    ]


def run_eval(args):
    with initialize_config_dir(entry.CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=args)
    return run(cfg)["eval"]


def test_all_suites_then_cached_rerun(tmp_path, openai_server, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    srv = openai_server
    script_judge(srv)
    args = overrides(tmp_path, srv, tiny_model_dir, *demorecon_files(tmp_path))
    out = run_eval(args)

    metrics = json.loads(open(f"{out}/metrics.json").read())
    assert sorted(metrics) == ["demorecon_det", "demorecon_eval", "followbench", "ifeval", "infobench", "mt_bench"]
    ife = metrics["ifeval"]
    assert {"prompt_level_strict_acc", "inst_level_strict_acc", "prompt_level_loose_acc",
            "inst_level_loose_acc"} <= set(ife) and ife["n_prompts"] == 3
    assert metrics["demorecon_eval"]["accuracy"] == 100.0
    ib = metrics["infobench"]
    assert ib["drfr_overall"] == 0.0 and ib["unparseable"] == 1 and ib["n_judged"] == ib["n_questions"] - 1
    assert ib["judge"]["backend"] == "openai" and ib["judge"]["model"] == "judge-model"  # judge drift shows
    fb = metrics["followbench"]
    assert fb["n_rule"] > 0 and fb["n_judge"] > 0 and fb["n_items"] == 30  # limit: 1 example x 5 levels x 6
    judged_l1 = fb["per_category"]["content"]["1"]
    assert judged_l1 == {"n": 1, "hsr": 0.0, "ssr": 0.0}  # one constraint, judged NO
    assert fb["per_category"]["content"]["2"] == {"n": 1, "hsr": 0.0, "ssr": 50.0}
    assert metrics["mt_bench"]["score"] == 6.0 and metrics["mt_bench"]["n_graded"] == 4
    det = metrics["demorecon_det"]
    assert det["n_items"] == 3 and det["n_scored"] + det["unparseable"] == 3  # the tiny model's answers are noise

    suites = json.loads(open(f"{out}/suites.json").read())
    rows = [json.loads(x) for x in open(f"{suites['infobench']}/results.jsonl")]
    assert rows[0]["response"] is not None and rows[0]["checks"][0]["judge_output"]
    assert rows[0]["judge_model"] == "openai:judge-model"
    fb_rows = [json.loads(x) for x in open(f"{suites['followbench']}/results.jsonl")]
    assert {r["method"] for r in fb_rows} == {"rule", "judge"}
    tables = open(f"{out}/tables.md").read()
    for title in ("IFEval", "FollowBench (HSR", "InFoBench DRFR", "DeMoRecon-Eval", "DeMoRecon-Det", "MT-Bench"):
        assert title in tables
    assert "Judge: judge-model (openai)" in tables

    # Rerun from scratch (artifacts gone, response cache kept): no generation and no judge call is sent again.
    sent = len(srv.requests)
    shutil.rmtree(tmp_path / "art" / "eval")
    out2 = run_eval(args)
    assert len(srv.requests) == sent
    stats = json.loads(open(f"{out2}/manifest.json").read())["stats"]
    assert stats["candidate"]["calls"] == 0 and stats["candidate"]["cache_hits"] > 0
    assert stats["judge"]["calls"] == 0
    assert json.loads(open(f"{out2}/metrics.json").read())["ifeval"] == ife

    # A new limit for one suite redoes that suite only; the others are reused as they are.
    out3 = run_eval(args + ["eval.ifeval.limit=2"])
    suites3 = json.loads(open(f"{out3}/suites.json").read())
    assert suites3["ifeval"] != suites["ifeval"]
    assert {k: v for k, v in suites3.items() if k != "ifeval"} == {k: v for k, v in suites.items() if k != "ifeval"}


def test_cli_scores_given_responses_without_a_model(tmp_path):
    answers = tmp_path / "answers.jsonl"
    rows = [json.loads(x) for x in (DATA / "ifeval" / "input_data.jsonl").read_text().splitlines()[:4]]
    answers.write_text("".join(json.dumps({"prompt": r["prompt"], "response": "no commas here"}) + "\n"
                               for r in rows))
    proc = run_cli(["stages=[eval]", "eval=[ifeval]", f"eval.ifeval.path={DATA / 'ifeval' / 'input_data.jsonl'}",
                    "eval.ifeval.limit=4", f"eval.ifeval.responses={answers}"], tmp_path, check=True)
    out = proc.stdout.strip().split("eval: ")[-1]
    metrics = json.loads(open(f"{out}/metrics.json").read())["ifeval"]
    assert metrics["n_prompts"] == 4 and metrics["responses_file"] == str(answers)
    stats = json.loads(open(f"{out}/manifest.json").read())["stats"]
    assert "candidate" not in stats and "judge" not in stats  # nothing generated, no model loaded
    assert "responses: answers.jsonl" in open(f"{out}/tables.md").read()


def test_cli_evaluates_the_checkpoint_trained_upstream(tmp_path, openai_server):
    openai_server.on("topic", lambda body: "One short line about " + body["messages"][-1]["content"][-8:])
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"id": f"s{i}", "instruction": f"Write one line about topic {i}."}) + "\n"
                             for i in range(4)))
    proc = run_cli(["stages=[build,train,eval]", "seeds=jsonl", f"seeds.path={seeds}", "seeds.id_field=id",
                    "generator=openai", f"generator.base_url={openai_server.url}", "generator.model=gen",
                    "model=tiny", "objective=sft", "eval=[ifeval]", "candidate.max_tokens=8",
                    f"eval.ifeval.path={DATA / 'ifeval' / 'input_data.jsonl'}", "eval.ifeval.limit=2"],
                   tmp_path, env={"OPENAI_API_KEY": "k"}, check=True)
    out = proc.stdout.strip().split("eval: ")[-1]
    train_dir = proc.stdout.split("train: ")[1].split()[0]
    evaluated = json.loads(open(f"{out}/metrics.json").read())["ifeval"]["candidate"]
    assert evaluated == {"backend": "hf_local", "model": f"{train_dir}/model"}
    manifest = json.loads(open(f"{out}/manifest.json").read())
    assert manifest["inputs"]["train"]["path"] == train_dir  # the checkpoint's fingerprint keys the scores
    assert "(trained: sft)" in open(f"{out}/tables.md").read()


def test_local_judge_scores_the_answers_given_before_it_loads(tmp_path, tiny_model_dir, monkeypatch):
    """A local model under test and a local judge: every suite is answered first (one request per item, nothing
    read back from a cache, which is off here), the model is freed, and those answers are what gets scored."""
    import ifforge.evaluate.suites.demorecon as demorecon
    from ifforge.stages.eval import _Generators

    monkeypatch.setattr(demorecon, "parse_verdict", lambda text: True)  # the tiny judge's words are noise
    events = []
    get, close = _Generators.get, _Generators.close

    def recording_get(self, role):
        if role not in self.live:
            events.append(("load", role))
        return get(self, role)

    def recording_close(self, role, check=True):
        if role in self.live:
            events.append(("free", role))
        close(self, role, check)

    monkeypatch.setattr(_Generators, "get", recording_get)
    monkeypatch.setattr(_Generators, "close", recording_close)
    ev, _ = demorecon_files(tmp_path)
    local = [f"candidate.model={tiny_model_dir}", "candidate.max_tokens=8", "candidate.device=cpu"]
    out = run_eval(["stages=[eval]", f"paths.artifacts={tmp_path / 'art'}", "candidate.name=hf_local", *local,
                    "candidate.cache=false", "judge=hf_local", f"judge.model={tiny_model_dir}", "judge.max_tokens=4",
                    "judge.device=cpu", "eval=[ifeval,demorecon_eval]", "eval.ifeval.limit=3",
                    f"eval.ifeval.path={DATA / 'ifeval' / 'input_data.jsonl'}", f"eval.demorecon_eval.path={ev}"])
    stats = json.loads(open(f"{out}/manifest.json").read())["stats"]
    assert events == [("load", "candidate"), ("free", "candidate"), ("load", "judge"), ("free", "judge")]
    assert stats["candidate"]["calls"] == 5 and stats["candidate"]["cache_hits"] == 0  # 3 + 2 items, once each
    metrics = json.loads(open(f"{out}/metrics.json").read())
    assert metrics["ifeval"]["n_prompts"] == 3 and metrics["demorecon_eval"]["accuracy"] == 100.0


def test_structured_judge_replies_in_json_under_ifforges_own_prompts(tmp_path, openai_server, tiny_model_dir,
                                                                      monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    srv = openai_server

    def judge(body):
        schema = body["response_format"]["json_schema"]
        if schema["name"] == "verdicts":
            return json.dumps({"verdicts": ["YES"] * schema["schema"]["properties"]["verdicts"]["minItems"]})
        return json.dumps({"rating": 7} if schema["name"] == "rating" else {"verdict": "Yes"})

    srv.on(lambda b: "response_format" in b, judge, model="judge-model")
    suites = "eval=[followbench,infobench,demorecon_eval,mt_bench]"
    args = [suites if a == "eval=all" else a for a in overrides(tmp_path, srv, tiny_model_dir, *demorecon_files(tmp_path))
            if not a.startswith(("eval.ifeval.", "eval.demorecon_det."))] + ["judge.structured=json"]
    metrics = json.loads(open(f"{run_eval(args)}/metrics.json").read())
    judged = [b for b in srv.requests if b["model"] == "judge-model"]
    assert judged and all("response_format" in b and "JSON object" in b["messages"][-1]["content"] for b in judged)
    assert metrics["demorecon_eval"]["accuracy"] == 100.0 and metrics["demorecon_eval"]["unparseable"] == 0
    assert metrics["infobench"]["drfr_overall"] == 100.0 and metrics["infobench"]["unparseable"] == 0
    assert metrics["mt_bench"]["score"] == 7.0 and metrics["mt_bench"]["n_graded"] == 4
    fb = metrics["followbench"]
    assert fb["n_judge"] > 0 and all(v["hsr"] == 100.0 for v in fb["per_category"]["content"].values()
                                     if v["n"] and fb["n_judge"])


@needs_shared_data
def test_each_suites_own_judge_model_is_checked_before_anything_runs(tmp_path, tiny_model_dir):
    answers = tmp_path / "answers.jsonl"
    rows = [json.loads(x) for x in (DATA / "infobench" / "infobench_500.jsonl").read_text().splitlines()[:2]]
    answers.write_text("".join(json.dumps({"id": r["id"], "response": "An answer."}) + "\n" for r in rows))
    missing = tmp_path / "no-such-judge"
    path = DATA / "infobench" / "infobench_500.jsonl"
    proc = run_cli(["stages=[eval]", "eval=[infobench]", f"eval.infobench.path={path}",
                    "eval.infobench.limit=2", f"eval.infobench.responses={answers}", "eval.infobench.protocol=ifforge",
                    "judge=hf_local",
                    f"judge.model={tiny_model_dir}", f"eval.infobench.judge_model={missing}"], tmp_path)
    assert proc.returncode != 0
    assert str(missing) in proc.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "artifacts" / "eval").exists()
