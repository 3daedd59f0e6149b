"""IFEval scoring: known checks pass and fail, the four accuracies equal lm-eval's reference scoring on the same
responses, and loading the checkers neither downloads nor prints anything."""

import json
import os
import random
import subprocess
import sys

import pytest

from ifforge.evaluate.ifeval_checkers import lm_eval_module
from ifforge.evaluate.suites.ifeval import METRIC_KEYS, aggregate, check_response, row_seed
from tests.helpers.data import REPO

IFEVAL = REPO.parent / "shared" / "data" / "ifeval" / "input_data.jsonl"


def one(instruction_id, kwargs, response, prompt="Write something."):
    row = {"prompt": prompt, "instruction_id_list": [instruction_id], "kwargs": [kwargs]}
    v = check_response(lm_eval_module(), row, response)[0]
    return v["strict"], v["loose"]


@pytest.mark.parametrize("instruction_id,kwargs,response,expected", [
    ("punctuation:no_comma", {}, "Hello world. No pauses here.", (True, True)),
    ("punctuation:no_comma", {}, "Hello, world.", (False, False)),
    ("change_case:english_lowercase", {}, "all of this is lower case.", (True, True)),
    ("change_case:english_lowercase", {}, "Not lower case.", (False, False)),
    ("length_constraints:number_words", {"relation": "at least", "num_words": 5}, "one two three four five",
     (True, True)),
    ("length_constraints:number_words", {"relation": "at least", "num_words": 5}, "one two three", (False, False)),
    # Punkt knows "Dr." is an abbreviation: two sentences, not three.
    ("length_constraints:number_sentences", {"relation": "less than", "num_sentences": 3},
     "Dr. Smith went home. He was tired.", (True, True)),
    ("startend:end_checker", {"end_phrase": "Any other questions?"}, "Done. Any other questions?", (True, True)),
    # A chatty first line breaks strict JSON; the loose setting drops it.
    ("detectable_format:json_format", {}, 'Sure, here it is:\n{"a": 1}', (False, True)),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, "*one* and *two*", (True, True)),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, "*one* only", (False, False)),
    ("punctuation:no_comma", {}, "   ", (False, False)),  # an empty answer follows nothing
])
def test_known_checks(instruction_id, kwargs, response, expected):
    assert one(instruction_id, kwargs, response) == expected


def test_aggregate_percentages():
    verdicts = [[{"instruction_id": "a:x", "strict": True, "loose": True},
                 {"instruction_id": "b:y", "strict": False, "loose": True}],
                [{"instruction_id": "a:x", "strict": False, "loose": False}]]
    m = aggregate(verdicts)
    assert [m[k] for k in METRIC_KEYS] == [0.0, pytest.approx(33.33), 50.0, pytest.approx(66.67)]
    assert m["per_instruction"]["a:x"] == {"n": 2, "strict_acc": 50.0, "loose_acc": 50.0}


def varied_responses(rows):
    """Answers that pass and fail a spread of checks, deterministic per prompt."""
    pool = [
        lambda r: r["prompt"].lower().replace(",", ""),
        lambda r: r["prompt"].upper(),
        lambda r: 'Here you go:\n```json\n{"answer": "yes"}\n```',
        lambda r: "*Intro* text.\n\n* point one\n* point two\n\nSECTION 1\nMore [name] text.\n\nP.S. thanks",
        lambda r: '"' + " ".join(["word"] * 420) + '"',
        lambda r: "Title: <<My Poem>>\nDr. Smith came home. He slept, then woke! Is that all?\n***\nEnd.",
        lambda r: "",
        lambda r: r["prompt"] + "\nIs there anything else I can help with?",
    ]
    return [pool[i % len(pool)](r) for i, r in enumerate(rows)]


@pytest.mark.skipif(not IFEVAL.is_file(), reason="shared IFEval copy not present")
def test_equals_lm_eval_reference_on_541_prompts():
    rows = [json.loads(line) for line in IFEVAL.read_text().splitlines() if line.strip()]
    assert len(rows) == 541
    responses = varied_responses(rows)
    registry = lm_eval_module()
    ours = [check_response(registry, r, resp) for r, resp in zip(rows, responses)]
    mine = aggregate(ours)

    utils = lm_eval_module("utils")
    ref = []
    for r, resp in zip(rows, responses):
        random.seed(row_seed(r))  # a few checkers draw random values; ours seeds the same way
        ref.append(utils.process_results(r, [resp]))
    for r, o, f in zip(rows, ours, ref):  # per-instruction verdicts, not just the totals
        assert [v["strict"] for v in o] == f["inst_level_strict_acc"], r["key"]
        assert [v["loose"] for v in o] == f["inst_level_loose_acc"], r["key"]
    reference = {
        "prompt_level_strict_acc": sum(f["prompt_level_strict_acc"] for f in ref) / len(ref),
        "prompt_level_loose_acc": sum(f["prompt_level_loose_acc"] for f in ref) / len(ref),
        "inst_level_strict_acc": utils.agg_inst_level_acc([f["inst_level_strict_acc"] for f in ref]),
        "inst_level_loose_acc": utils.agg_inst_level_acc([f["inst_level_loose_acc"] for f in ref]),
    }
    for k in METRIC_KEYS:
        assert mine[k] == round(100 * reference[k], 2), k
    assert 0 < mine["prompt_level_strict_acc"] < mine["prompt_level_loose_acc"] < 100  # the set discriminates


def test_loading_checkers_is_offline_and_silent(tmp_path):
    code = ("import nltk\n"
            "def refuse(*a, **k): raise SystemExit('nltk.download was called')\n"
            "nltk.download = refuse\n"
            "from ifforge.evaluate.ifeval_checkers import lm_eval_module\n"
            "u = lm_eval_module('instructions_util')\n"
            "assert u.count_sentences('Dr. Smith went home. He was tired.') == 2\n"
            "assert 'HELLO' in nltk.word_tokenize('HELLO world.')\n")
    env = dict(os.environ, IFFORGE_HOME=str(tmp_path / "home"), HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and proc.stderr == ""
    assert (tmp_path / "home" / "nltk_data" / "tokenizers" / "punkt_tab" / "english" / "ortho_context.tab").is_file()
