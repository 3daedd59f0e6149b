"""The suites' arithmetic on fixed verdicts: FollowBench HSR/SSR, InFoBench DRFR, DeMoRecon-Det accuracies."""

import pytest

from ifforge.evaluate.suites.demorecon import detection_metrics
from ifforge.evaluate.suites.followbench import rates
from ifforge.evaluate.suites.followbench_rules import example_template_match, rule_verdicts
from ifforge.evaluate.suites.infobench import as_list, drfr


def row(cat, level, constraints):
    if constraints is None:
        return {"category": cat, "level": level, "hard": None, "soft": None}
    return {"category": cat, "level": level, "hard": all(constraints), "soft": sum(constraints) / len(constraints)}


def test_followbench_hsr_ssr():
    rows = [
        row("content", 1, [True]), row("content", 1, [False]),                 # L1: HSR 50, SSR 50
        row("content", 2, [True, False]), row("content", 2, [True, True]),     # L2: HSR 50, SSR 75
        row("content", 3, None),                                              # unparseable: left out
        row("style", 1, [True]),                                              # L1: HSR 100
        row("style", 2, [False, False]),                                      # L2: HSR 0, SSR 0
    ]
    m = rates(rows)
    assert m["per_category"]["content"]["1"] == {"n": 2, "hsr": 50.0, "ssr": 50.0}
    assert m["per_category"]["content"]["2"] == {"n": 2, "hsr": 50.0, "ssr": 75.0}
    assert m["per_category"]["content"]["3"] == {"n": 0, "hsr": None, "ssr": None}
    # Per level: the mean over categories, each category weighing the same.
    assert m["per_level"]["1"] == {"hsr": 75.0, "ssr": 75.0}
    assert m["per_level"]["2"] == {"hsr": 25.0, "ssr": 37.5}
    assert m["per_level"]["3"] == {"hsr": None, "ssr": None}
    assert m["hsr_avg"] == 50.0 and m["ssr_avg"] == 56.25  # mean over the levels that have items
    assert m["unparseable"] == 1 and m["n_scored"] == 6


def test_infobench_drfr():
    verdicts = [("Easy_set", True), ("Easy_set", True), ("Easy_set", False), ("Easy_set", None),
                ("Hard_set", True), ("Hard_set", False), ("Hard_set", False), ("Hard_set", False)]
    m = drfr(verdicts)
    assert m["drfr_easy"] == pytest.approx(66.67)
    assert m["drfr_hard"] == 25.0
    assert m["drfr_overall"] == pytest.approx(42.86)  # 3 of 7 judged, not the mean of the two sets
    assert (m["n_questions"], m["n_judged"], m["unparseable"]) == (8, 7, 1)
    assert as_list("['Is it a title?', 'Is it short?']") == ["Is it a title?", "Is it short?"]


def test_detection_accuracy_and_balanced_accuracy():
    pairs = [(True, True)] * 6 + [(True, False)] * 2 + [(False, False)] * 1 + [(False, True)] * 1 + [(True, None)]
    m = detection_metrics(pairs, n_items=11)
    # As in the paper, over every item: the unreadable answer is simply not a correct one.
    assert m["accuracy"] == 63.64  # 7 of 11
    assert m["balanced_accuracy"] == 58.34  # (6/9 + 1/2) / 2, each recall over every item of its class
    assert m["unparseable"] == 1 and m["n_scored"] == 10
    assert m["confusion"] == {"yes_yes": 6, "yes_no": 2, "no_yes": 1, "no_no": 1, "yes_unreadable": 1,
                              "no_unreadable": 0}


def test_followbench_rules():
    shape = "{instruction}\n{{'AI assistant': '{answer}'}}"
    assert example_template_match("{'AI assistant': 'Legal Anywhere.com'}\n", shape)
    assert not example_template_match("The subject is: Legal Anywhere.com", shape)
    assert rule_verdicts("situation", {"source": "BBH_logical", "target": "(A)"}, "Maybe (B)... no: (A)") == [True]
    assert rule_verdicts("situation", {"source": "gsm_8k", "target": "$28"}, "She earned $30.") == [False]
    assert rule_verdicts("content", {"source": "CONLL2003", "target": "['Britain', 'Bonn']"}, "Bonn") == [True]
    assert rule_verdicts("content", {"source": "E2E", "target": "name[X], food[Y]"}, " name[X], food[Y]\n") == [True]
    assert rule_verdicts("style", {"source": "oasst", "target": ""}, "anything") is None  # goes to the judge


def test_followbench_constraint_rules_give_one_verdict_per_level():
    row = {"source": "gigaword", "level": 5}
    assert rule_verdicts("mixed", row, "two killed in bomb attack on philippine vehicle") == [True] * 5
    # 7 words, a comma, a capital, "bus", no "in": every constraint fails, each on its own
    assert rule_verdicts("mixed", row, "Bomb kills two on bus, army says") == [False, False, False, False, False]
    assert rule_verdicts("mixed", {"source": "gigaword", "level": 3},
                         "two people killed by bomb on a bus") == [True, True, True]
    arxiv = "We locate factual associations in mid-layer activations and edit them directly."
    assert rule_verdicts("mixed", {"source": "arxiv", "level": 5}, arxiv) == [True] * 5
    three = "Potter turns 18. The actor stays modest. He has made many films."
    assert rule_verdicts("mixed", {"source": "cnn_dailymail", "level": 5}, three) == [True] * 5
