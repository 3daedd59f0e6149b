"""Judge answers are read tolerantly, and what cannot be read is None (counted as unparseable, never scored)."""

import pytest

from ifforge.evaluate.judge import parse_rating, parse_verdict, parse_verdict_list


@pytest.mark.parametrize("text,expected", [
    ("Yes", True), ("yes.", True), ("**Yes**", True), ("YES - the response covers everything", True),
    ("No.", False), ("no, it ignores the word limit", False), ("Judgement: No", False),
    ("My answer is yes.", True), ("", None), (None, None), ("Maybe", None), ("Yes and no", None),
])
def test_yes_no(text, expected):
    assert parse_verdict(text) is expected


@pytest.mark.parametrize("text,n,expected", [
    ('Reasoning...\n["YES", "NO", "YES"]', 3, [True, False, True]),
    ("[yes, no]", 2, [True, False]),
    ("['NO','NO']", 2, [False, False]),
    ('first [YES, YES] then corrected:\n[YES, NO]', 2, [True, False]),  # the last list wins
    ('["YES", "NO"]', 3, None),  # wrong length
    ('["YES", "MAYBE"]', 2, None),
    ("The answer satisfies it.\nYES", 1, [True]),  # one constraint: a bare verdict is enough
    ("no list here", 2, None),
    (None, 1, None),
])
def test_verdict_list(text, n, expected):
    assert parse_verdict_list(text, n) == expected


@pytest.mark.parametrize("text,expected", [
    ("Good answer. [[8]]", 8.0), ("Rating: 6", 6.0), ("I'd give it 7/10.", 7.0), ("[[7.5]]", 7.5),
    ("[[11]]", None), ("great", None), (None, None), ("Rating: [[3]] ... on reflection [[4]]", 4.0),
])
def test_rating(text, expected):
    assert parse_rating(text) == expected
