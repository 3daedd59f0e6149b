"""eval=alpaca_eval: AlpacaEval 2.0 through the alpaca-eval package, with ifforge's judge on the local server.

The hub files the suite and alpaca-eval's LC model read (the reference answers and `df_gamed.csv`, the instruction
difficulties) are written by the test into a Hugging Face cache laid out as a download leaves it, and read offline;
their contents are made up, so the LC number checks the wiring, not AlpacaEval's weights."""

import json
import math
import re

import pytest

from tests.helpers.cli import candidate_args, openai_args, run_cli
from tests.helpers.data import SHARED_DATA, needs_shared_data
from tests.helpers.openai_server import Fault, Scored

ENV = {"OPENAI_API_KEY": "test-key"}
COMMIT = "0123456789abcdef0123456789abcdef01234567"
INSTRUCTIONS = [f"Instruction {i}: explain topic {i} {'well' if i % 3 else 'briefly'}." for i in range(6)]


def hub_cache(root):
    """A Hugging Face cache holding tatsu-lab/alpaca_eval's two files at COMMIT (what hf_hub_download leaves)."""
    repo = root / "datasets--tatsu-lab--alpaca_eval"
    snap = repo / "snapshots" / COMMIT
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    rows = [{"dataset": "test", "instruction": text, "output": f"REF answer to {i}.", "generator": "gpt4_turbo"}
            for i, text in enumerate(INSTRUCTIONS)]
    (snap / "alpaca_eval_gpt4_baseline.json").write_text(json.dumps(rows))
    # two "gamed" baselines per instruction, as the real file has: preference in [0, 1], first rows in index order;
    # the harder the instruction, the likelier the baseline loses, so the LC prediction differs item by item
    lines = ["model,index,preference,std_delta_len,instruction_difficulty,not_gamed_baseline"]
    for model, sign in (("verbose", 1), ("concise", -1)):
        for i in range(len(INSTRUCTIONS)):
            lines.append(f"{model},{i},{0.1 + 0.15 * i + 0.05 * sign:.2f},{sign * (1 + i % 2)},{0.6 * i - 1.5:.2f},False")
    (snap / "df_gamed.csv").write_text("\n".join(lines) + "\n")
    return root


def outputs_in(prompt):
    """{identifier: output} from the annotator's prompt (the m and M outputs)."""
    found = re.findall(r'"model_identifier": "(m|M)",\s*"output": """(.*?)"""', prompt, re.S)
    return dict(found)


def judge_reply(body):
    """Prefers the GOOD answer, else the reference: 0.8 for the preferred identifier, 0.2 for the other."""
    out = outputs_in(body["messages"][-1]["content"])
    best = next((k for k, v in out.items() if "GOOD" in v), None) or next(k for k, v in out.items() if "REF" in v)
    other = "M" if best == "m" else "m"
    return Scored(best, {best: math.log(0.8), other: math.log(0.2)})


def candidate_reply(body):
    text = body["messages"][-1]["content"]
    return "GOOD and thorough answer." if "well" in text else "BAD."


def run(tmp_path, srv, *extra, base=("stages=[eval]", "eval=[alpaca_eval]")):
    srv.on(lambda b: b.get("model") == "cand", candidate_reply)
    return run_cli([*base, *extra, *candidate_args(srv.url),
                    *openai_args(srv.url, model="judge-model", role="judge"),
                    "eval.alpaca_eval.judge_model=gpt-4-1106-preview"],
                   tmp_path, env={**ENV, "HF_HUB_CACHE": str(hub_cache(tmp_path / "hf"))})


def suite_dir(tmp_path):
    return next((tmp_path / "artifacts" / "eval" / "alpaca_eval").glob("*/manifest.json")).parent


@pytest.mark.slow
def test_alpaca_eval_judges_through_the_package_and_its_lc_model(tmp_path, openai_server):
    srv = openai_server
    srv.on(lambda b: b.get("model") == "gpt-4-1106-preview", judge_reply)
    proc = run(tmp_path, srv)
    assert proc.returncode == 0, proc.stderr[-3000:]
    judged = [b for b in srv.requests if b.get("model") == "gpt-4-1106-preview"]
    assert len(judged) == 6 and not [b for b in srv.requests if b.get("model") == "judge-model"]
    # the annotator's own request: its system prompt, one token at temperature 1, the top-5 log-probabilities
    from ifforge.evaluate.suites.alpaca_eval import annotator_config

    template = (annotator_config("alpaca_eval_clf_gpt4_turbo").parent / "alpaca_eval_clf.txt").read_text()
    system = template.split("<|im_start|>system\n", 1)[1].split("<|im_end|>", 1)[0].strip()
    assert all(b["messages"][0] == {"role": "system", "content": system} for b in judged)
    assert all((b["max_tokens"], b["temperature"], b["logprobs"], b["top_logprobs"]) == (1, 1, True, 5)
               for b in judged)
    # the package swaps the two outputs for some instructions; the preference is read back in the right order
    positions = [("GOOD" in outputs_in(b["messages"][-1]["content"]).get("m", "")) for b in judged]
    assert any(positions) and not all(positions)
    d = suite_dir(tmp_path)
    m = json.loads((d / "metrics.json").read_text())
    rows = [json.loads(line) for line in (d / "results.jsonl").read_text().splitlines()]
    good = [r for r in rows if r["response"].startswith("GOOD")]
    assert len(good) == 4 and all(r["preference"] == pytest.approx(1.8) for r in good)
    assert all(r["preference"] == pytest.approx(1.2) for r in rows if r not in good)
    assert m["win_rate"] == pytest.approx((4 * 80 + 2 * 20) / 6)
    assert 0 <= m["length_controlled_winrate"] <= 100 and m["scored_verdicts"] == 6
    assert m["avg_length"] == int(sum(len(r["response"]) for r in rows) / 6)
    assert m["reference"] == f"tatsu-lab/alpaca_eval@{COMMIT}/alpaca_eval_gpt4_baseline.json"
    assert m["lc_data"] == f"tatsu-lab/alpaca_eval@{COMMIT}/df_gamed.csv"
    assert m["annotator_sampling"] == {"max_tokens": 1, "temperature": 1, "logprobs": True, "top_logprobs": 5}
    assert m["judge"]["model"] == "gpt-4-1106-preview" and m["unparseable"] == 0 and m["items_left_out"] == []
    table = (d / "table.md").read_text()
    assert "LC Win Rate" in table and "Judge: gpt-4-1106-preview" in table


@pytest.mark.slow
def test_a_failed_judge_request_is_left_out_and_counted(tmp_path, openai_server):
    srv = openai_server
    srv.on(lambda b: b.get("model") == "gpt-4-1106-preview" and "topic 1 " in b["messages"][-1]["content"],
           fault=Fault.http_error(500))
    srv.on(lambda b: b.get("model") == "gpt-4-1106-preview", judge_reply)
    proc = run(tmp_path, srv, "judge.max_failed_fraction=0.5")
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads((suite_dir(tmp_path) / "metrics.json").read_text())
    assert m["items_left_out"] == ["1"] and m["scored_verdicts"] == 5 and m["unparseable"] == 0
    assert m["win_rate"] == pytest.approx((3 * 80 + 2 * 20) / 5)


def test_a_judge_template_is_refused_the_annotator_has_its_own(tmp_path, openai_server):
    template = tmp_path / "judge.j2"
    template.write_text("Which is better? {{ prompt }}")
    proc = run_cli(["stages=[eval]", "eval=[alpaca_eval]", f"eval.alpaca_eval.templates.judge={template}",
                    *candidate_args(openai_server.url), *openai_args(openai_server.url, model="j", role="judge")],
                   tmp_path, env=ENV)
    assert proc.returncode != 0 and not openai_server.requests
    assert "takes no template" in proc.stderr.strip().splitlines()[-1]


def test_offline_without_the_hub_files_is_one_line(tmp_path, openai_server):
    proc = run_cli(["stages=[eval]", "eval=[alpaca_eval]", *candidate_args(openai_server.url),
                    *openai_args(openai_server.url, model="judge-model", role="judge")],
                   tmp_path, env={**ENV, "HF_HUB_CACHE": str(tmp_path / "empty")})
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert "df_gamed.csv" in last and "tatsu-lab/alpaca_eval" in last and not openai_server.requests


@pytest.mark.slow
@needs_shared_data
def test_conifer_table3_is_laid_out_like_the_paper(tmp_path, openai_server):
    """experiment=conifer/table3 narrowed to one job: each suite asks its own judge model, and the summary has the
    paper's columns."""
    srv = openai_server
    srv.on(lambda b: b.get("model") == "gpt-4-1106-preview", judge_reply)
    srv.on(lambda b: b.get("model") == "gpt-4-0314", "Fine. [[7]]")
    sweep = tmp_path / "sweep"
    proc = run(tmp_path, srv, f"eval.mt_bench.path={SHARED_DATA / 'mtbench' / 'question.jsonl'}",
               "eval.mt_bench.limit=2", "eval.mt_bench.protocol=ifforge", f"hydra.sweep.dir={sweep}",
               base=("-m", "experiment=conifer/table3", "variant=conifer/conifer", "stages=[eval]"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    models = {b.get("model") for b in srv.requests}
    assert models == {"cand", "gpt-4-1106-preview", "gpt-4-0314"}, models
    # each judge model on its own line of the run report: its own requests, its own price
    assert "judge:gpt-4-1106-preview 6 requests" in proc.stdout and "judge:gpt-4-0314 4 requests" in proc.stdout
    lines = (sweep / "summary.md").read_text().splitlines()
    assert lines[0] == "# Conifer Table 3 (AlpacaEval 2.0 and MT-Bench; Mistral-7B, SFT)"
    assert lines[2] == ("| Model | Base Model | Stage | AlpacaEval 2.0 LC Win Rate | AlpacaEval 2.0 Avg Length "
                        "| MT-Bench Score |")
    row = lines[4].strip("| ").split(" | ")
    assert row[:3] == ["Mistral-7B-Conifer", "Mistral-7B", "SFT"] and row[5] == "7.00", lines
    assert re.fullmatch(r"\d+\.\d\d", row[3]) and row[4] == "18", lines


# AlpacaEval's own entry point, run as its authors run it (its OpenAI client, its annotator, its metrics), on the
# answers ifforge got and against the same scripted judge: ifforge's numbers must be its numbers.
OFFICIAL = """
import json, sys, warnings
warnings.simplefilter("ignore")
from alpaca_eval.main import evaluate
model = json.load(open(sys.argv[1]))
board, _ = evaluate(model_outputs=model, reference_outputs=sys.argv[2], annotators_config=sys.argv[3],
                    output_path=None, precomputed_leaderboard=None, is_return_instead_of_print=True,
                    is_cache_leaderboard=False, caching_path=None)
print("RESULT " + board.iloc[0].to_json())
"""


@pytest.mark.slow
def test_the_numbers_equal_alpaca_evals_own_evaluate(tmp_path, openai_server):
    import subprocess
    import sys

    srv = openai_server
    # one verdict the parser cannot read (neither m nor M among the alternatives): alpaca-eval's win rate leaves it
    # out, its LC model still predicts for it; ifforge must do the same
    srv.on(lambda b: b.get("model") == "gpt-4-1106-preview" and "topic 2 " in b["messages"][-1]["content"],
           Scored("Both", {"Both": -0.1, "Neither": -2.5}))
    srv.on(lambda b: b.get("model") == "gpt-4-1106-preview", judge_reply)
    proc = run(tmp_path, srv)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads((suite_dir(tmp_path) / "metrics.json").read_text())
    rows = [json.loads(line) for line in (suite_dir(tmp_path) / "results.jsonl").read_text().splitlines()]
    assert m["unparseable"] == 1 and m["scored_verdicts"] == 5 and m["items_left_out"] == []
    unread = next(r for r in rows if r["id"] == "2")
    assert unread["preference"] is None and "Both" in unread["judge_output"] and unread["glm_preference"] is not None
    model = tmp_path / "model_outputs.json"
    model.write_text(json.dumps([{"instruction": r["instruction"], "output": r["response"], "generator": "candidate"}
                                 for r in rows]))
    reference = next((tmp_path / "hf").rglob("alpaca_eval_gpt4_baseline.json"))
    env = {**__import__("os").environ, **ENV, "OPENAI_API_BASE": srv.url, "HF_HUB_OFFLINE": "1",
           "HF_HUB_CACHE": str(tmp_path / "hf")}
    official = subprocess.run([sys.executable, "-c", OFFICIAL, str(model), str(reference),
                               "weighted_alpaca_eval_gpt4_turbo"], env=env, capture_output=True, text=True,
                              timeout=300, cwd=tmp_path)
    assert official.returncode == 0, official.stderr[-3000:]
    board = json.loads(official.stdout.split("RESULT ", 1)[1])
    assert len([b for b in srv.requests if b.get("model") == "gpt-4-1106-preview"]) == 12  # 6 each: both judged
    assert m["win_rate"] == pytest.approx(board["win_rate"], abs=1e-9)
    assert m["length_controlled_winrate"] == pytest.approx(board["length_controlled_winrate"], abs=1e-9)
    assert m["lc_standard_error"] == pytest.approx(board["lc_standard_error"], abs=1e-9)
    assert m["lc_standard_error"] > 0  # the instruction difficulties move the LC prediction item by item
    assert m["avg_length"] == board["avg_length"] and m["n_total"] == board["n_total"]
