"""protocol=reference: the judged suites scored as their authors score them, checked against the official code.

The official files are the pinned local copies in ../shared/data/reference (paths.reference); the official
functions run here as written (compiled from their own source with stand-ins for the API client), on the same
judge answers that ifforge's suite got from the scripted judge on the local test server."""

import ast
import json
import re
import zlib
from pathlib import Path
from types import SimpleNamespace


from ifforge.evaluate.reference import load_functions, module_constants, reference_file
from tests.helpers.cli import candidate_args, openai_args, run_cli
from tests.helpers.data import SHARED_DATA, needs_shared_data

REF = SHARED_DATA / "reference"
ENV = {"OPENAI_API_KEY": "test-key"}
pytestmark = needs_shared_data


def suite_dir(tmp_path, name):
    return next((tmp_path / "artifacts" / "eval" / name).glob("*/manifest.json")).parent


# -- MT-Bench: FastChat llm_judge ------------------------------------------------------------------------------

JUDGMENTS = [
    "The answer is fine. [[8]]. A 10/10 answer would cite sources.",  # FastChat: the first [[N]] -> 8
    "My rating: [7]",  # no [[N]]: the backup pattern -> 7
    "Rating: 9/10, but no brackets.",  # FastChat finds nothing -> not graded
    "[[6.5]] then [[3]]",  # the first one -> 6.5
]


def judge_reply(body):
    return JUDGMENTS[zlib.crc32(body["messages"][-1]["content"].encode()) % len(JUDGMENTS)]


def fastchat_run_judge_single(judgment):
    """FastChat's run_judge_single, from the pinned common.py, with its API call replaced by `judgment`."""
    common = reference_file("FastChat", "fastchat/llm_judge/common.py", str(REF))
    consts = module_constants(common, ["one_score_pattern", "one_score_pattern_backup"])
    seen = {}

    class Conv:
        roles = ("USER", "ASSISTANT")

        def set_system_message(self, text):
            seen["system"] = text

        def append_message(self, role, text):
            seen.setdefault("messages", []).append((role, text))

    namespace = {"re": re, "ast": ast, "get_conversation_template": lambda model: Conv(),
                 "OPENAI_MODEL_LIST": ["judge-model"], "ANTHROPIC_MODEL_LIST": [],
                 "chat_completion_openai": lambda model, conv, temperature, max_tokens: judgment, **consts}
    return load_functions(common, ["run_judge_single"], namespace)["run_judge_single"], seen


def test_mt_bench_reference_matches_fastchat(tmp_path, openai_server):
    srv = openai_server
    rows = {r["question_id"]: r for r in map(json.loads, open(SHARED_DATA / "mtbench" / "question.jsonl"))}
    picked = [rows[81], rows[101], rows[111], rows[131]]  # writing, reasoning, math, extraction
    stem = next(r for r in rows.values() if r["category"] == "stem")
    picked.append(stem)
    data = tmp_path / "question.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in picked))
    srv.on(None, lambda b: f"Answer {zlib.crc32(json.dumps(b['messages']).encode()) % 1000}.", model="cand")
    srv.on(None, judge_reply, model="judge-model")
    run_cli(["stages=[eval]", "eval=[mt_bench]", f"eval.mt_bench.path={data}", f"paths.reference={REF}",
             *candidate_args(srv.url), *openai_args(srv.url, "judge-model", "judge")],
            tmp_path, env=ENV, check=True)

    # FastChat's answer temperatures, per category
    temps = {b["messages"][0]["content"]: b["temperature"] for b in srv.requests if b["model"] == "cand"
             and len(b["messages"]) == 1}
    by_cat = {r["category"]: temps[r["turns"][0]] for r in picked}
    assert by_cat == {"writing": 0.7, "reasoning": 0.0, "math": 0.0, "extraction": 0.0, "stem": 0.1}
    judge_bodies = [b for b in srv.requests if b["model"] == "judge-model"]
    assert all(b["temperature"] == 0.0 and b["max_tokens"] == 2048 for b in judge_bodies)

    out = suite_dir(tmp_path, "mt_bench")
    results = [json.loads(line) for line in open(out / "results.jsonl")]
    ref_answers = {r["question_id"]: r for r in map(json.loads, open(
        REF / "FastChat" / "fastchat" / "llm_judge" / "data" / "mt_bench" / "reference_answer" / "gpt-4.jsonl"))}
    prompts = {r["name"]: r for r in map(json.loads, open(REF / "FastChat" / "fastchat" / "llm_judge" / "data" /
                                                        "judge_prompts.jsonl"))}
    scores, ungraded = [], 0
    for row in results:
        qid = int(row["id"])
        need_ref = row["category"] in ("math", "reasoning", "coding")
        for g in row["grades"]:
            multi = g["turn"] == 2
            name = ("single-math-v1" if need_ref else "single-v1") + ("-multi-turn" if multi else "")
            run_judge_single, seen = fastchat_run_judge_single(g["judge_output"])
            judge = SimpleNamespace(model_name="judge-model", prompt_template=prompts[name])
            rating, user_prompt, _ = run_judge_single(
                {"turns": row["turns"]}, {"choices": [{"turns": row["response"]}]}, judge,
                ref_answers[qid] if need_ref else None, multi_turn=multi)
            assert user_prompt == g["judge_prompt"]  # the same prompt, byte for byte
            body = next(b for b in judge_bodies if b["messages"][-1]["content"] == user_prompt)
            assert body["messages"][0] == {"role": "system", "content": seen["system"]}
            assert (None if rating == -1 else float(rating)) == g["score"]
            if rating == -1:
                ungraded += 1
            else:
                scores.append(float(rating))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["protocol"] == "reference" and metrics["unparseable"] == ungraded > 0
    assert metrics["score"] == round(sum(scores) / len(scores), 2)
    assert 8.0 in scores or 6.5 in scores  # the first [[N]] was taken, not the last


def test_reference_files_missing_is_one_line(tmp_path, openai_server):
    data = tmp_path / "q.jsonl"
    data.write_text(json.dumps({"question_id": 81, "category": "writing", "turns": ["Hi.", "More."]}) + "\n")
    proc = run_cli(["stages=[eval]", "eval=[mt_bench]", f"eval.mt_bench.path={data}",
                    f"paths.reference={tmp_path / 'nowhere'}",
                    *candidate_args(openai_server.url),
                    *openai_args(openai_server.url, "judge-model", "judge")], tmp_path, env=ENV)
    assert proc.returncode != 0
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("ifforge: error:")]
    assert len(errors) == 1 and "reference file not found" in errors[0] and "paths.reference" in errors[0]


# -- FollowBench: its own code ----------------------------------------------------------------------------------

FB_PICK = {"content": [1, 14], "situation": [1, 9], "style": [1], "format": [1, 22, 30], "example": [1, 2],
           "mixed": [1, 12, 14]}


def fb_rows():
    out = {}
    for cat, ids in FB_PICK.items():
        rows = json.loads((SHARED_DATA / "followbench" / f"{cat}_constraints.json").read_text())
        out[cat] = [r for r in rows if r["example_id"] in ids]
    return out


def fb_answer(row):
    """Answers that probe exact comparison: the target, the target with a trailing newline, or other text."""
    k = zlib.crc32(row["instruction"].encode()) % 4
    target = row.get("target") if isinstance(row.get("target"), str) else ""
    if k == 0 and target:
        return target
    if k == 1 and target:
        return target + "\n"
    return ["We show that mid-layer activations store facts.", "Three short paragraphs.\n\nSecond one.\n\nThird.",
            "(A)", "I cannot help with that."][k]


def fb_judge(prompt):
    level = int(re.search(r"with (\d+) additional constraint", prompt).group(1))
    k = zlib.crc32(prompt.encode()) % 5
    if k == 0:
        return "Checked.\n" + str(["YES"] * level)
    if k == 1:
        return "```\n" + str(["YES"] * (level - 1) + ["NO"]) + "\n```"
    if k == 2:
        return "yes, every constraint holds"  # lower case: FollowBench reads nothing
    if k == 3:
        return str(["YES"] * (level + 1))  # the wrong length: unreadable
    return "Some analysis.\n" + str(["NO"] * level)


def official_followbench(ns, tmp, rows, answers, judge):
    """FollowBench's own scoring of `rows` and `answers`, as its eval.py runs it, in `tmp`."""
    import os

    d = {k: os.path.join(tmp, k) for k in ("data", "api", "jin", "jin_data", "jout")}
    os.makedirs(d["data"])
    os.makedirs(os.path.join(d["api"], "m"))
    os.makedirs(os.path.join(d["jout"], "m"))
    out, sent = {}, set()
    for cat, rs in rows.items():
        Path(d["data"], f"{cat}_constraints.json").write_text(json.dumps(rs))
        Path(d["api"], "m", f"{cat}_constraint.jsonl").write_text("".join(json.dumps(
            {"prompt": r["instruction"], "choices": [{"message": {"content": answers[r["instruction"]]}}]}) + "\n"
            for r in rs if r["level"] > 0))
        if cat == "example":
            hsr = [float(v) for v in ns["evaluate_example_constraint"](d["data"], d["api"], "m")]
            c, n = ns["csl_example_constraint"](d["data"], d["api"], "m")
            out[cat] = (hsr, hsr, round(c / n, 1))
            continue
        ns["acquire_discriminative_eval_input"](d["data"], d["api"], cat, "m", d["jin_data"], d["jin"])
        prompts = [json.loads(x)["prompt_new"] for x in Path(d["jin"], "m", f"{cat}_constraint.jsonl").open()]
        sent |= set(prompts)
        Path(d["jout"], "m", f"{cat}_constraint.jsonl").write_text("".join(json.dumps(
            {"prompt_new": p, "choices": [{"message": {"content": judge(p)}}]}) + "\n" for p in prompts))
        disc, dn = ns["discriminative_evaluation"](d["jin_data"], d["jout"], cat, "m")
        rule, rn = ns["rule_evaluation"](d["data"], d["api"], cat, "m")
        hsr = [float("{:.2f}".format((a + b) / (dn + rn) * 100)) for a, b in zip(disc[0], rule)]
        ssr = [float("{:.2f}".format((a + b) / (dn + rn) * 100)) for a, b in zip(disc[1], rule)]
        c1, n1 = ns["csl_evaluation"](d["jin_data"], d["jout"], cat, "m")
        c2, n2 = ns["csl_five_constraint"](d["data"], d["api"], cat, "m")
        out[cat] = (hsr, ssr, round((c1 + c2) / (n1 + n2), 1))
    return out, sent


def test_followbench_reference_matches_the_official_code(tmp_path, openai_server):
    import os
    import random
    import string

    from ifforge.evaluate.reference import function_names

    srv = openai_server
    rows = fb_rows()
    data = tmp_path / "fb"
    data.mkdir()
    for cat, rs in rows.items():
        (data / f"{cat}_constraints.json").write_text(json.dumps(rs))
    by_text = {r["instruction"]: r for rs in rows.values() for r in rs}
    srv.on(None, lambda b: fb_answer(by_text[b["messages"][-1]["content"]]), model="cand")
    srv.on(None, lambda b: fb_judge(b["messages"][-1]["content"]), model="judge-model")
    run_cli(["stages=[eval]", "eval=[followbench]", f"eval.followbench.path={data}", f"paths.reference={REF}",
             *candidate_args(srv.url), *openai_args(srv.url, "judge-model", "judge")],
            tmp_path, env=ENV, check=True)
    out = suite_dir(tmp_path, "followbench")
    metrics = json.loads((out / "metrics.json").read_text())

    # The official code, run here on the same answers and the same judge replies.
    ns = {"json": json, "os": os, "re": re, "ast": ast, "string": string, "random": random,
          "logger": SimpleNamespace(error=lambda *a, **k: None)}
    for rel in ("code/utils.py", "code/rule_based_evaluation.py", "code/gpt4_based_evaluation.py"):
        path = reference_file("FollowBench", rel, str(REF))
        load_functions(path, [n for n in function_names(path) if not n.startswith("save_")
                              and n not in ("add_model_args", "convert_to_api_input")], ns)
    raw_parse = ns["paring_discriminative_generation"]
    ns["paring_discriminative_generation"] = lambda g, lvl: (0, 0) if raw_parse(g, lvl)[0] == -1 else raw_parse(g, lvl)
    answers = {r["instruction"]: fb_answer(r) for r in by_text.values()}
    (tmp_path / "official").mkdir()
    expected, official_prompts = official_followbench(ns, str(tmp_path / "official"), rows, answers, fb_judge)

    judged = {b["messages"][-1]["content"] for b in srv.requests if b["model"] == "judge-model"}
    assert judged == official_prompts  # the judge saw FollowBench's own prompts, nothing else
    assert {(b["temperature"], b["max_tokens"]) for b in srv.requests if b["model"] == "judge-model"} == {(0.0, 1024)}
    for cat, (hsr, ssr, csl) in expected.items():
        got = metrics["per_category"][cat]
        assert [got[str(lvl)]["hsr"] for lvl in range(1, 6)] == hsr, cat
        assert [got[str(lvl)]["ssr"] for lvl in range(1, 6)] == ssr, cat
        assert got["csl"] == csl, cat
    unreadable = sum(raw_parse(fb_judge(p), int(re.search(r"with (\d+) additional", p).group(1)))[0] == -1
                     for p in official_prompts)
    assert metrics["unparseable"] == unreadable > 0 and metrics["protocol"] == "reference"
    results = [json.loads(line) for line in open(out / "results.jsonl")]
    assert {r["method"] for r in results if r["category"] == "format" and r["example_id"] in (22, 30)} == {"rule"}
    # A trailing newline fails an exact target, as in FollowBench's own rules (ifforge's protocol strips it).
    e2e = [r for r in results if r["source"] == "E2E" and r["response"].endswith("\n")]
    assert e2e and all(r["hard"] is False for r in e2e)
    mixed_rule = [r for r in results if r["category"] == "mixed" and r["method"] == "rule"]
    assert mixed_rule and all(r["hard"] == r["soft"] for r in mixed_rule)  # one verdict: both HSR and SSR
    assert "CSL" in (out / "table.md").read_text()


# -- InFoBench: its own evaluation.py ---------------------------------------------------------------------------

def ib_judge(messages):
    k = zlib.crc32(messages[-1]["content"].encode()) % 6
    return ["Yes, it does.", "NO", "I would say YES", "Unclear to me.", "no.", "YES and NO"][k]


def test_infobench_reference_matches_the_official_code(tmp_path, openai_server):
    import os
    import time

    srv = openai_server
    rows = [json.loads(line) for line in open(SHARED_DATA / "infobench" / "infobench_500.jsonl")]
    picked = rows[:3] + [r for r in rows if not r["input"]][:2] + [r for r in rows if r["subset"] == "Hard_set"][:3]
    data = tmp_path / "ib.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in picked))
    srv.on(None, lambda b: f"Answer to {b['messages'][-1]['content'][:30]}", model="cand")
    srv.on(None, lambda b: ib_judge(b["messages"]), model="judge-model")
    run_cli(["stages=[eval]", "eval=[infobench]", f"eval.infobench.path={data}", f"paths.reference={REF}",
             *candidate_args(srv.url), *openai_args(srv.url, "judge-model", "judge")],
            tmp_path, env=ENV, check=True)
    out = suite_dir(tmp_path, "infobench")
    metrics = json.loads((out / "metrics.json").read_text())
    results = {r["id"]: r for r in map(json.loads, open(out / "results.jsonl"))}

    # The official run_evaluation on the same answers, with a client that replays the same judge.
    path = reference_file("InfoBench", "evaluation.py", str(REF))
    ns = {"json": json, "os": os, "time": time, "join": os.path.join, "exists": os.path.exists,
          "tqdm": lambda it, **k: it, **module_constants(path, ["SYS_MSG"])}
    run_evaluation = load_functions(path, ["load_jsonl", "bool_ratio", "run_evaluation"], ns)["run_evaluation"]
    asked = []

    def create(model, messages, temperature):
        asked.append(json.dumps(messages, sort_keys=True))
        return SimpleNamespace(choices=[SimpleNamespace(message=SimpleNamespace(content=ib_judge(messages)))])

    client = SimpleNamespace(chat=SimpleNamespace(completions=SimpleNamespace(create=create)))
    entries = [{"id": r["id"], "input": r["input"], "output": results[r["id"]]["response"],
                "decomposed_questions": r["decomposed_questions"]} for r in picked]
    src = tmp_path / "official" / "model_output.jsonl"
    src.parent.mkdir()
    src.write_text("".join(json.dumps(e) + "\n" for e in entries))
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        written = run_evaluation(client, str(src), str(tmp_path / "official"), "judge", 0)
    official = {e["id"]: e["eval"] for e in map(json.loads, open(written))}
    true = total = 0
    for rid, ev in official.items():
        assert [c["verdict"] for c in results[rid]["checks"]] == ev, rid
        true += sum(bool(v) for v in ev)
        total += len(ev)
    assert any(None in ev for ev in official.values())  # the early stop was exercised
    assert metrics["drfr_overall"] == round(100 * true / total, 2) and metrics["protocol"] == "reference"
    judge_bodies = [b for b in srv.requests if b["model"] == "judge-model"]
    assert len(judge_bodies) == total  # questions after an unreadable answer are never asked
    assert {(b["temperature"], b["max_tokens"]) for b in judge_bodies} == {(0.0, 1024)}  # eval.infobench.judge_max_tokens
    # Every conversation, turn by turn, exactly as the official code sends it (history and earlier answers).
    assert sorted(json.dumps(b["messages"], sort_keys=True) for b in judge_bodies) == sorted(asked)
    first = next(b for b in judge_bodies if len(b["messages"]) == 1)
    assert first["messages"][0]["content"].startswith(ns["SYS_MSG"]) and "Generated Text:" in first["messages"][0]["content"]


def test_offline_without_a_local_copy_is_one_line_and_the_download_cache_is_checked(tmp_path, openai_server):
    from ifforge.evaluate.reference import SOURCES

    data = tmp_path / "ib.jsonl"
    data.write_text(open(SHARED_DATA / "infobench" / "infobench_500.jsonl").readline())
    args = ["stages=[eval]", "eval=[infobench]", f"eval.infobench.path={data}", *candidate_args(openai_server.url),
            *openai_args(openai_server.url, "judge-model", "judge")]
    home = tmp_path / "home"
    proc = run_cli(args, tmp_path, env={**ENV, "IFFORGE_HOME": str(home), "IFFORGE_REFERENCE_DIR": ""})
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("ifforge: error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "cannot fetch" in errors[0]
    assert "paths.reference" in errors[0] and openai_server.count() == 0  # before any answer was paid for
    # A file in the download cache that is not the pinned one is never used; the pinned one is.
    cached = home / "reference" / "InfoBench" / SOURCES["InfoBench"].commit / "evaluation.py"
    cached.parent.mkdir(parents=True)
    cached.write_text("SYS_MSG = 'not the official one'\n")
    proc = run_cli(args, tmp_path, env={**ENV, "IFFORGE_HOME": str(home), "IFFORGE_REFERENCE_DIR": ""})
    assert proc.returncode == 2 and "cannot fetch" in proc.stderr
    # IFFORGE_REFERENCE_DIR points at a local copy, like paths.reference
    openai_server.on(None, "An answer.", model="cand")
    openai_server.on(None, "YES", model="judge-model")
    run_cli(args, tmp_path, env={**ENV, "IFFORGE_HOME": str(home), "IFFORGE_REFERENCE_DIR": str(REF)}, check=True)
    cached.write_bytes((REF / "InfoBench" / "evaluation.py").read_bytes())
    run_cli([*args, "eval.infobench.limit=1"], tmp_path, env={**ENV, "IFFORGE_HOME": str(home),
                                                              "IFFORGE_REFERENCE_DIR": ""}, check=True)


def test_infobench_reference_stops_sending_once_the_judge_fails(tmp_path, openai_server):
    from tests.helpers.openai_server import Fault

    srv = openai_server
    rows = [json.loads(line) for line in open(SHARED_DATA / "infobench" / "infobench_500.jsonl")][:12]
    data = tmp_path / "ib.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    srv.on(None, "An answer.", model="cand")
    srv.on(None, fault=Fault.http_error(500), model="judge-model")
    proc = run_cli(["stages=[eval]", "eval=[infobench]", f"eval.infobench.path={data}", f"paths.reference={REF}",
                    *candidate_args(srv.url), *openai_args(srv.url, "judge-model", "judge"), "judge.max_retries=0",
                    "judge.max_concurrency=4"], tmp_path, env=ENV)
    assert proc.returncode == 1 and "requests to the judge" in proc.stderr
    assert srv.count(lambda b: b["model"] == "judge-model") <= 4  # the first batch; nothing after the failure


def test_followbench_limit_counts_examples(tmp_path):
    from omegaconf import OmegaConf

    from ifforge.evaluate.suite import SuiteContext
    from ifforge.evaluate.suites.followbench import FollowBench, FollowBenchConfig

    cfg = OmegaConf.structured(FollowBenchConfig(name="followbench", path=str(SHARED_DATA / "followbench"), limit=2,
                                                 categories=["content", "mixed"]))
    suite = FollowBench(cfg, SuiteContext(candidate=lambda: None, judge=lambda: None))
    items = suite.load()
    levels = sorted((it.data["category"], it.id.split("/")[1], it.data["level"]) for it in items)
    assert len(items) == 20 and {lvl for _, _, lvl in levels} == {1, 2, 3, 4, 5}  # level 5 is reached
    assert all(sum(1 for r in suite.rows[c] if r["level"] == 0) == 2 for c in ("content", "mixed"))
