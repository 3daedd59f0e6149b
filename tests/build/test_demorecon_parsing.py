"""Parsing of DeMoRecon's E.2 / E.3 answers: tolerant of layout, strict about what is usable."""

import pytest

from ifforge.build.demorecon.parsing import (EXAMPLE_PROMPT, Invalid, is_invalid, list_items,
                                             parse_decomposition, parse_variant_blocks, validate_variants)
from ifforge.prompts import render

# The paper's own E.2 example answer, as the template ships it.
PAPER_ANSWER = render("demorecon/decompose.j2", prompt="x").split(EXAMPLE_PROMPT)[1].rsplit("**Given Prompt:**")[0]


def test_the_papers_sms_example_parses_to_one_fact_and_five_sub_instructions():
    d = parse_decomposition(PAPER_ANSWER, prompt=EXAMPLE_PROMPT)
    assert d.facts == ["The user needs to pick up their son."]
    assert d.sub_instructions == [
        "Write a short SMS.", "The SMS is addressed to the user’s supervisor.",
        "The request is for leaving (presumably leaving work or another obligation).",
        "The message must be polite.", "The message should contain no more than 20 words."]


def test_the_example_copied_back_for_another_prompt_is_rejected():
    with pytest.raises(Invalid, match="one-shot"):
        parse_decomposition(PAPER_ANSWER, prompt="Write a haiku about rain.")
    # ... also with an item of the real prompt swapped in (a small model's favourite answer)
    swapped = PAPER_ANSWER.replace("The message must be polite.", "Mention the tomatoes.")
    with pytest.raises(Invalid, match="one-shot"):
        parse_decomposition(swapped, prompt="Thank my neighbour for watering the tomatoes.")


@pytest.mark.parametrize("answer", [
    # no bold, inline facts, "1)" numbering, a preamble
    "Sure! Here is my analysis.\n\nExtract Facts: The user has a cat.\n\nExtract Instructions:\n1) Write a poem.\n"
    "2) Mention the cat.\n3) Keep it short.",
    # markdown headings, bullets, a closing note
    "### Extracted Facts\n- The user has a cat.\n\n### Extracted Instructions\n* Write a poem.\n* Mention the cat.\n"
    "* Keep it short.\n\nNote: the facts are few.",
    # bold with the colon outside, "(1)" numbering, wrapped lines and a nested point
    "**Facts**:\n(1) The user has a cat.\n\n**Instructions**:\n(1) Write a poem.\n(2) Mention\n    the cat.\n"
    "    - by name if possible\n(3) Keep it short.",
    # the model first repeats the example, then answers the real prompt: the last block wins
    PAPER_ANSWER + "\n**Given Prompt:**\nWrite a poem...\n\n**Extract Facts:**\n1. The user has a cat.\n\n"
    "**Extract Instructions:**\n1. Write a poem.\n2. Mention the cat.\n3. Keep it short.",
])
def test_decomposition_layouts(answer):
    d = parse_decomposition(answer, prompt="I have a cat. Write a short poem that mentions it.")
    assert d.facts == ["The user has a cat."]
    assert [s.split()[0] for s in d.sub_instructions] == ["Write", "Mention", "Keep"]


def test_a_made_up_next_prompt_after_the_answer_is_ignored_even_when_cut_off():
    answer = ("**Extract Facts:**\n1. The user has a cat.\n\n**Extract Instructions:**\n1. Write a poem.\n\n"
              "**Given Prompt:**\nWrite an essay about dogs.\n\n**Extract Facts:**\nNone\n\n"
              "**Extract Instructions:**\n1. Write an essay.\n2. About")
    d = parse_decomposition(answer, prompt="I have a cat. Write a poem.", cut_off=True)
    assert d.facts == ["The user has a cat."] and d.sub_instructions == ["Write a poem."]
    with pytest.raises(Invalid, match="cut off at max_tokens inside the instructions list"):
        parse_decomposition(answer.split("\n\n**Given")[0], prompt="I have a cat. Write a poem.", cut_off=True)


def test_decomposition_without_facts_or_with_none():
    assert parse_decomposition("Extract Instructions:\n1. Write a poem.").facts == []
    d = parse_decomposition("**Extract Facts:**\nNone.\n\n**Extract Instructions:**\n1. Write a poem.\n1. Write a poem.")
    assert d.facts == [] and d.sub_instructions == ["Write a poem."]  # duplicates collapse


@pytest.mark.parametrize("answer,reason", [
    ("I am not able to do this.", "no 'Extract Instructions' block"),
    ("**Extract Facts:**\n1. A fact.", "no 'Extract Instructions' block"),
    ("**Extract Instructions:**\nNone", "lists no instructions"),
    ("Instructions for the poem are below.\n1. Write a poem.", "no 'Extract Instructions' block"),  # prose, no heading
])
def test_unusable_decompositions(answer, reason):
    with pytest.raises(Invalid, match=reason):
        parse_decomposition(answer)


def test_list_items_without_markers_is_one_item_per_line():
    assert list_items("Write a poem.\n\n**Mention the cat.**") == ["Write a poem.", "Mention the cat."]


ORIGINAL = "I have a cat. Write a poem. Mention the cat. Keep it short."
SUBS = ["Write a poem.", "Mention the cat.", "Keep it short."]


def _v(j, word):
    return ORIGINAL.replace(["poem", "cat. Keep", "short"][j - 1], word)


@pytest.mark.parametrize("answer", [
    "\n\n".join(f"**Modified Instructions {j}:**\nChange {j}.\n\n**Revised Prompt {j}:**\n{_v(j, w)}"
                for j, w in ((1, "song"), (2, "dog. Keep"), (3, "long"))),
    "Here you go:\n" + "\n".join(f"Modified Instruction {j}: Change {j}.\nRevised Prompt {j}: \"{_v(j, w)}\""
                                 for j, w in ((1, "song"), (2, "dog. Keep"), (3, "long"))),
    "\n\n".join(f"### Modified instruction #{j}\nChange {j}.\n### Revised prompt #{j}\n{_v(j, w)}"
                for j, w in ((1, "song"), (2, "dog. Keep"), (3, "long"))),
    "\n".join(f"{j}. **Modified Instruction:** Change {j}.\n   **Revised Prompt:** {_v(j, w)}"
              for j, w in ((1, "song"), (2, "dog. Keep"), (3, "long"))) + "\n\nNote: one change at a time.",
    "\n\n".join(f"**Instruction {j}:** {SUBS[j - 1]}\n**Modified Instruction:** Change {j}.\n**Revised Prompt:**\n"
                f"{_v(j, w)}\n---" for j, w in ((1, "song"), (2, "dog. Keep"), (3, "long"))),
])
def test_variant_layouts(answer):
    blocks, extra = parse_variant_blocks(answer)
    kept, dropped = validate_variants(blocks, ORIGINAL, SUBS)
    assert not extra and not dropped
    assert [(v.index, v.modified_sub_instruction, v.instruction) for v in kept] == [
        (1, "Change 1.", _v(1, "song")), (2, "Change 2.", _v(2, "dog. Keep")), (3, "Change 3.", _v(3, "long"))]
    assert [v.sub_instruction for v in kept] == SUBS


def test_every_unusable_block_is_dropped_with_its_reason():
    answer = "\n\n".join([
        "**Modified Instructions 1:**\nWrite malware.\n\n**Revised Prompt 1:**\n**INVALID**",
        "**Modified Instructions 2:**\nMention the dog.",  # no revised prompt
        "**Modified Instructions 4:**\nAdd a title.\n\n**Revised Prompt 4:**\n" + ORIGINAL + " Add a title.",
        "**Modified Instructions 4:**\nAgain.\n\n**Revised Prompt 4:**\nAgain.",  # a second block 4
    ])
    blocks, extra = parse_variant_blocks(answer)
    kept, dropped = validate_variants(blocks, ORIGINAL, SUBS)
    assert kept == []
    reasons = sorted((d.index, d.reason) for d in extra + dropped)
    assert reasons == [(1, "INVALID"), (2, "modified instruction without a revised prompt"),
                       (3, "no block for sub-instruction 3"), (4, "a second block numbered 4"),
                       (4, "block 4 but only 3 sub-instructions were given")]


def test_unchanged_duplicate_and_placeholder_prompts_are_dropped():
    answer = "\n\n".join([f"**Modified Instructions 1:**\nSame.\n**Revised Prompt 1:**\n{ORIGINAL.upper()}",
                          f"**Modified Instructions 2:**\nSong.\n**Revised Prompt 2:**\n{_v(1, 'song')}",
                          f"**Modified Instructions 3:**\nSong.\n**Revised Prompt 3:**\n{_v(1, 'song')}"])
    kept, dropped = validate_variants(parse_variant_blocks(answer)[0], ORIGINAL, SUBS)
    assert [v.index for v in kept] == [2]
    assert [d.reason for d in dropped] == ["revised prompt is identical to the original",
                                          "revised prompt duplicates another variant"]
    placeholder = "**Modified Instructions 1:**\n[Modified Instructions]\n\n**Revised Prompt 1:**\n[New Prompts]"
    _, dropped = validate_variants(parse_variant_blocks(placeholder)[0], ORIGINAL, SUBS[:1])
    assert "placeholder" in dropped[0].reason


def test_revised_prompts_keep_their_own_layout_but_lose_trailing_commentary():
    multi = "Write a poem.\n\nInstructions for the poem:\n1. Mention the cat.\n2. Keep it short."
    answer = f"**Modified Instructions 1:**\nA song.\n\n**Revised Prompt 1:**\n{multi.replace('poem.', 'song.')}\n\n" \
             "Note: only the form changed."
    kept, _ = validate_variants(parse_variant_blocks(answer)[0], multi, ["Write a poem."])
    assert kept[0].instruction == multi.replace("poem.", "song.")
    # ... unless the original itself ends with such a paragraph
    original = "Write a poem.\n\nNote: it is for my mother."
    answer = "**Modified Instructions 1:**\nA song.\n**Revised Prompt 1:**\nWrite a song.\n\nNote: it is for my mother."
    kept, _ = validate_variants(parse_variant_blocks(answer)[0], original, ["Write a poem."])
    assert kept[0].instruction == "Write a song.\n\nNote: it is for my mother."


def test_no_blocks_at_all_is_a_parse_error():
    with pytest.raises(Invalid):
        parse_variant_blocks("I changed every instruction; the prompts are reasonable.")


@pytest.mark.parametrize("text,expected", [
    ("INVALID", True), ("'INVALID'", True), ("**INVALID**", True), ("Invalid.", True), ("[INVALID]", True),
    ("INVALID - the request is unsafe", True), ("Invalidate the cache before the test.", False),
    ("Explain why this input is invalid.", False), (None, False),
])
def test_invalid_answers(text, expected):
    assert is_invalid(text) is expected


def test_an_answer_cut_at_max_tokens_loses_its_last_block():
    answer = ("**Modified Instructions 1:**\nA song.\n\n**Revised Prompt 1:**\n" + _v(1, "song") +
              "\n\n**Modified Instructions 2:**\nA dog.\n\n**Revised Prompt 2:**\nI have a cat. Write a")
    kept, dropped = validate_variants(parse_variant_blocks(answer)[0], ORIGINAL, SUBS, cut_off=True)
    assert [v.index for v in kept] == [1]
    assert [(d.index, d.reason) for d in dropped] == [
        (2, "the answer was cut off at max_tokens inside this block"),
        (3, "no block for sub-instruction 3 (the answer was cut off at max_tokens)")]
