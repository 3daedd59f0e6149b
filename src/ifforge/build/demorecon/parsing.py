"""Tolerant parsing of the E.2 (decomposition) and E.3 (modification + reconstruction) answers.

Models rarely copy a layout exactly: headings come with or without bold markers, colons, numbers or a leading
"1.", answers start with "Sure! Here is..." and end with notes, lists are numbered "1." "1)" "(1)" or bulleted.
The parsers here accept all of that, then validate strictly: whatever cannot be used comes back as a reason,
which the steps write to rejects.jsonl. Nothing here talks to a model, so all of it is unit-tested directly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Pattern, Sequence, Tuple


from ifforge.parsing import CUT_OFF, Invalid  # Invalid: the whole answer is unusable (the reject reason)


# ----------------------------------------------------------------------------------------------------- sections

_MARK = r"[*_]{0,3}"


@dataclass(frozen=True)
class Label:
    kind: str
    pattern: str
    needs_number: bool = False  # e.g. "Instruction 2:" is a heading, a bare "Instructions:" in a prompt is not


@dataclass
class Section:
    kind: Optional[str]  # None: text before the first heading (preambles such as "Sure! Here you go:")
    number: Optional[int]
    lead: Optional[int]  # the "3." in "3. **Revised Prompt:**"
    lines: List[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(self.lines).strip()


def _heading(label: str) -> Pattern[str]:
    return re.compile(
        rf"^[ \t>]*(?P<hash>#{{1,6}}[ \t]*)?(?:(?P<lead>\d+)[.)][ \t]+)?(?P<open>{_MARK})[ \t]*(?:{label})\b"
        rf"(?:[ \t]*(?:#|no\.?|number)?[ \t]*\(?(?P<num>\d+)\)?)?"
        rf"[ \t]*(?P<close>{_MARK})[ \t]*(?P<colon>[:：])?[ \t]*{_MARK}[ \t]*(?P<rest>.*?)[ \t]*$",
        re.IGNORECASE)


_RULE = re.compile(r"^[ \t]*(?:-{3,}|\*{3,}|_{3,}|={3,})[ \t]*$")  # a horizontal rule ends a section


def split_sections(text: str, labels: Sequence[Label]) -> List[Section]:
    """Cut `text` at lines that are headings of one of `labels`. A line counts as a heading only when it looks
    like one (a colon after the label, bold around it, a markdown #, or nothing else on the line), so that an
    ordinary sentence starting with "Instructions ..." stays text."""
    compiled = [(lab, _heading(lab.pattern)) for lab in labels]
    sections = [Section(kind=None, number=None, lead=None)]
    for line in (text or "").replace("\r\n", "\n").split("\n"):
        if _RULE.match(line):
            sections.append(Section(kind=None, number=None, lead=None))
            continue
        hit = None
        for lab, rx in compiled:
            m = rx.match(line)
            if m is None:
                continue
            looks_like_heading = bool(m["colon"] or m["hash"] or (m["open"] and m["close"]) or not m["rest"])
            if looks_like_heading and (m["num"] or not lab.needs_number):
                hit = (lab, m)
                break
        if hit is None:
            sections[-1].lines.append(line)
            continue
        lab, m = hit
        sec = Section(kind=lab.kind, number=int(m["num"]) if m["num"] else None,
                      lead=int(m["lead"]) if m["lead"] else None)
        rest = m["rest"].strip()
        if rest:
            sec.lines.append(rest)
        sections.append(sec)
    return sections


# -------------------------------------------------------------------------------------------------------- lists

_ITEM = re.compile(r"^(?P<indent>[ \t]*)(?:\d+[.):]|\(\d+\)|[-*•+]|[a-zA-Z][.)])[ \t]+(?P<text>\S.*)$")
_NONE_ITEM = re.compile(r"^(?:none|n/?a|nil|-|no (?:\w+ )?facts?\b.*|there are no\b.*|not applicable)\W*$", re.I)


def clean_inline(text: str) -> str:
    """One list item as plain text: markdown emphasis and outer quotes off, whitespace collapsed."""
    text = re.sub(r"(\*\*|__)", "", text)
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) >= 2 and text[0] in "\"'“‘" and text[-1] in "\"'”’":
        text = text[1:-1].strip()
    return text


def list_items(text: str) -> List[str]:
    """Items of a numbered or bulleted list; lines without a marker continue the item above (wrapped text,
    nested sub-points). Without any marker at all, every non-empty line is an item."""
    lines = [ln for ln in text.split("\n") if ln.strip()]
    marked = [_ITEM.match(ln) for ln in lines]
    if not any(marked):
        items = [clean_inline(ln) for ln in lines]
    else:
        base = min(len(m["indent"].expandtabs(4)) for m in marked if m)
        items: List[str] = []
        for ln, m in zip(lines, marked):
            nested = m is not None and len(m["indent"].expandtabs(4)) > base + 1
            if m is not None and not nested:
                items.append(m["text"])
            elif items:  # continuation or nested point: part of the item above
                items[-1] += " " + (m["text"] if m else ln.strip())
            # a line before the first item is prose ("Here are the facts:") and is dropped
        items = [clean_inline(i) for i in items]
    return [i for i in items if i and not _NONE_ITEM.match(i)]


# ----------------------------------------------------------------------------------------------- decomposition

@dataclass
class Decomposition:
    facts: List[str]
    sub_instructions: List[str]


_DECOMPOSITION_LABELS = (
    Label("facts", r"(?:extract(?:ed)?[ \t]+)?(?:the[ \t]+)?(?:background[ \t]+)?(?:facts?|factual[ \t]+elements?)"),
    Label("instructions", r"(?:extract(?:ed)?[ \t]+)?(?:the[ \t]+)?(?:sub[- ]?)?instructions?"),
    Label("given", r"(?:given|input|original|new)[ \t]+prompt|prompt"),
    Label("other", r"notes?|explanation"),
)

# The one-shot example inside E.2. A model that copies it back for another prompt has not decomposed that prompt.
EXAMPLE_PROMPT = "I have to pick up my son. Write a short SMS to my supervisor asking for leaving. In 20 words. Be polite."
EXAMPLE_SUB_INSTRUCTIONS = (
    "Write a short SMS.",
    "The SMS is addressed to the user’s supervisor.",
    "The request is for leaving (presumably leaving work or another obligation).",
    "The message must be polite.",
    "The message should contain no more than 20 words.",
)


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[’‘]", "'", text)).strip().lower()


@dataclass
class _Episode:
    """One "Given Prompt" and the blocks that answer it. Weak models often go on after their answer with a
    made-up next prompt and its decomposition; others first repeat the one-shot example."""

    given: Optional[str]
    sections: List[Section] = field(default_factory=list)

    def first(self, kind: str) -> Optional[Section]:
        return next((s for s in self.sections if s.kind == kind), None)


def _episodes(sections: List[Section]) -> List[_Episode]:
    episodes = [_Episode(given=None)]
    for sec in sections:
        if sec.kind == "given":
            episodes.append(_Episode(given=sec.text))
        else:
            episodes[-1].sections.append(sec)
    return episodes


def parse_decomposition(text: str, prompt: Optional[str] = None, cut_off: bool = False) -> Decomposition:
    """Facts and sub-instructions from an E.2 answer: the first facts/instructions pair that is not the one-shot
    example (unless `prompt` is the example itself). A missing facts block means no facts. Invalid: no
    instructions block, an empty one, only the example copied back, or (with `cut_off`, the answer stopped at
    max_tokens) an instructions list that runs to the end of the answer and so may have lost items."""
    sections = split_sections(text, _DECOMPOSITION_LABELS)
    is_example_seed = prompt is not None and _norm(prompt) == _norm(EXAMPLE_PROMPT)
    example = [_norm(s) for s in EXAMPLE_SUB_INSTRUCTIONS]
    found = copied = False
    for ep in _episodes(sections):
        block = ep.first("instructions")
        if block is None:
            continue
        found = True
        subs = list_items(block.text)
        if not subs:
            continue
        # Copying the example back, whole or with an item or two swapped in, is not a decomposition of `prompt`.
        from_example = sum(1 for x in subs if _norm(x) in example)
        if not is_example_seed and prompt is not None and (
                from_example >= max(2, (len(subs) + 1) // 2) or (ep.given and _norm(ep.given) == _norm(EXAMPLE_PROMPT))):
            copied = True
            continue
        if cut_off and block is sections[-1]:
            raise Invalid(f"{CUT_OFF} inside the instructions list (raise generator.max_tokens or "
                             f"augmentation.params.max_tokens)")
        facts = ep.first("facts")
        return Decomposition(facts=_dedupe(list_items(facts.text)) if facts else [], sub_instructions=_dedupe(subs))
    if copied:
        raise Invalid("the decomposition repeats the prompt's one-shot SMS example")
    if found:
        raise Invalid("the 'Extract Instructions' block lists no instructions")
    raise Invalid("no 'Extract Instructions' block in the decomposition")


def decomposition_from_json(value: Any, prompt: Optional[str] = None) -> Decomposition:
    """The structured (JSON) E.2 answer, with the same checks as the text one."""
    if not isinstance(value, dict) or not isinstance(value.get("instructions"), list):
        raise Invalid("no 'instructions' list in the JSON decomposition")
    subs = [clean_inline(x) for x in value["instructions"] if isinstance(x, str) and x.strip()]
    facts = [clean_inline(x) for x in value.get("facts") or [] if isinstance(x, str) and x.strip()]
    if not subs:
        raise Invalid("the 'instructions' list is empty")
    example = [_norm(s) for s in EXAMPLE_SUB_INSTRUCTIONS]
    is_example_seed = prompt is not None and _norm(prompt) == _norm(EXAMPLE_PROMPT)
    if not is_example_seed and sum(1 for x in subs if _norm(x) in example) >= max(2, (len(subs) + 1) // 2):
        raise Invalid("the decomposition repeats the prompt's one-shot SMS example")
    return Decomposition(facts=_dedupe(facts), sub_instructions=_dedupe(subs))


def _dedupe(items: List[str]) -> List[str]:
    seen, out = set(), []
    for item in items:
        if _norm(item) not in seen:
            seen.add(_norm(item))
            out.append(item)
    return out


# ------------------------------------------------------------------------------------------------------ variants

@dataclass
class Block:
    number: int
    modified: Optional[str] = None
    revised: Optional[str] = None


@dataclass
class Variant:
    index: int  # 1-based position of the modified sub-instruction
    sub_instruction: str
    modified_sub_instruction: Optional[str]
    instruction: str  # the revised prompt


@dataclass
class Dropped:
    index: Optional[int]
    reason: str
    block: Optional[Block] = None


_VARIANT_LABELS = (
    Label("modified", r"modified(?:[ \t]+(?:sub[- ]?)?instructions?)?|modification"),
    Label("revised", r"(?:revised|new|reconstructed|rewritten)[ \t]+prompts?|revision"),
    Label("echo", r"(?:original|extracted)[ \t]+(?:sub[- ]?)?instructions?|(?:given|original)[ \t]+prompt"),
    Label("echo", r"(?:sub[- ]?)?instructions?", needs_number=True),  # "Instruction 2:" before its variant
)

_COMMENTARY = re.compile(r"^[*_(\[ ]*(?:note|notes|explanation|rationale|reasoning|changes?|modification)\b", re.I)
_PLACEHOLDERS = {"[modified instructions]", "[new prompts]", "[modified instruction]", "[new prompt]"}


def _clean_block(text: str) -> str:
    """A revised prompt keeps its own layout (it may be a multi-paragraph prompt); only wrapping bold or
    quotes the model added around the whole of it are removed."""
    text = text.strip()
    for a, b in (("**", "**"), ('"', '"'), ("“", "”"), ("```", "```")):
        if len(text) > len(a) + len(b) and text.startswith(a) and text.endswith(b) and a not in text[len(a):-len(b)]:
            text = text[len(a):-len(b)].strip()
    return text


def _drop_commentary(text: str, original: str) -> str:
    """Trailing paragraphs such as "Note: only the tone changed." are the model talking, not the prompt, unless
    the original prompt itself has a paragraph that starts that way."""
    paras = re.split(r"\n[ \t]*\n", text)
    if any(_COMMENTARY.match(p.strip()) for p in re.split(r"\n[ \t]*\n", original)):
        return text
    while len(paras) > 1 and _COMMENTARY.match(paras[-1].strip()):
        paras.pop()
    return "\n\n".join(paras).strip()


def parse_variant_blocks(text: str) -> Tuple[List[Block], List[Dropped]]:
    """Numbered (modified sub-instruction, revised prompt) blocks of an E.3 answer, in block order. A heading
    without a number takes it from a leading "2.", from an "Instruction 2:" line above it, or, for a revised
    prompt, from the modified instruction it follows. A second block with a number already seen is dropped.
    Invalid when there is no block at all."""
    blocks: Dict[int, Block] = {}
    dropped: List[Dropped] = []
    pending: Optional[int] = None  # number announced by an echoed "Instruction N:" heading
    current: Optional[int] = None  # the block the last modified heading opened
    duplicate: Optional[Block] = None  # a repeated block being skipped, with its revised prompt to come
    last = 0
    for sec in split_sections(text, _VARIANT_LABELS):
        if sec.kind == "echo":
            pending = sec.number or sec.lead
            continue
        if sec.kind not in ("modified", "revised"):
            continue
        if sec.kind == "modified":
            n = sec.number or sec.lead or pending or last + 1
            current, duplicate = n, None
        else:
            n = sec.number or sec.lead or (duplicate.number if duplicate else None) or current or pending or last + 1
        pending = None
        last = max(last, n)
        block = blocks.setdefault(n, Block(number=n))
        body = sec.text
        if sec.kind == "modified":
            if block.modified is not None or block.revised is not None:
                duplicate = Block(n, modified=clean_inline(body))
                dropped.append(Dropped(n, f"a second block numbered {n}", duplicate))
                current = None
                continue
            block.modified = clean_inline(body)
        elif duplicate is not None and n == duplicate.number:
            duplicate.revised, duplicate = _clean_block(body), None
        elif block.revised is not None:
            dropped.append(Dropped(n, f"a second revised prompt numbered {n}", Block(n, revised=body)))
        else:
            block.revised = _clean_block(body)
            current = None
    if not blocks:
        raise Invalid("no 'Modified Instructions N' / 'Revised Prompt N' blocks in the answer")
    return [blocks[k] for k in sorted(blocks)], dropped


def variant_blocks_from_json(value: Any) -> Tuple[List[Block], List[Dropped]]:
    """The structured (JSON) E.3 answer as numbered blocks, a repeated number dropped as in the text form."""
    entries = value.get("variants") if isinstance(value, dict) else None
    if not isinstance(entries, list) or not entries:
        raise Invalid("no 'variants' list in the JSON answer")
    blocks: Dict[int, Block] = {}
    dropped: List[Dropped] = []
    for pos, entry in enumerate(entries, 1):
        if not isinstance(entry, dict):
            continue
        n = entry.get("number") if isinstance(entry.get("number"), int) else pos
        block = Block(n, modified=clean_inline(str(entry.get("modified_instruction") or "")) or None,
                      revised=_clean_block(str(entry.get("revised_prompt") or "")) or None)
        if n in blocks:
            dropped.append(Dropped(n, f"a second block numbered {n}", block))
        else:
            blocks[n] = block
    if not blocks:
        raise Invalid("no usable entry in the JSON 'variants' list")
    return [blocks[k] for k in sorted(blocks)], dropped


def is_invalid(text: Optional[str]) -> bool:
    """E.3 asks for 'INVALID' instead of a revised prompt that makes no sense: accept it in quotes, bold, with a
    full stop, or followed by an explanation ("INVALID - the request is unsafe")."""
    if not text:
        return False
    bare = re.sub(r"[*_`'\"“”‘’\[\]()]", "", text).strip()
    return bool(re.fullmatch(r"invalid\W*", bare, re.I) or re.match(r"INVALID\b", bare))


def validate_variants(blocks: Sequence[Block], original: str, sub_instructions: Sequence[str],
                      cut_off: bool = False) -> Tuple[List[Variant], List[Dropped]]:
    """Usable variants, one per sub-instruction at most, and the reason each other block or missing block
    was dropped. `cut_off`: the answer hit max_tokens, so its last block may be a fragment and is dropped."""
    kept: List[Variant] = []
    dropped: List[Dropped] = []
    seen = {_norm(original)}
    by_number = {b.number: b for b in blocks}
    cut = max(by_number) if cut_off and by_number else None  # blocks come in order: the last one was cut
    for b in blocks:
        if b.number > len(sub_instructions) or b.number < 1:
            dropped.append(Dropped(b.number, f"block {b.number} but only {len(sub_instructions)} "
                                             f"sub-instructions were given", b))
    for i, sub in enumerate(sub_instructions, start=1):
        b = by_number.get(i)
        reason = None
        if b is None:
            reason = f"no block for sub-instruction {i}" + (f" ({CUT_OFF})" if cut_off else "")
        elif i == cut:
            reason = f"{CUT_OFF} inside this block"
        elif is_invalid(b.revised) or is_invalid(b.modified):
            reason = "INVALID"
        elif not b.revised:
            reason = "modified instruction without a revised prompt"
        else:
            revised = _drop_commentary(b.revised, original)
            if _norm(revised) in _PLACEHOLDERS or _norm(b.modified or "") in _PLACEHOLDERS:
                reason = "the template's placeholder was copied instead of a revised prompt"
            elif _norm(revised) == _norm(original):
                reason = "revised prompt is identical to the original"
            elif _norm(revised) in seen:
                reason = "revised prompt duplicates another variant"
            else:
                seen.add(_norm(revised))
                kept.append(Variant(index=i, sub_instruction=sub, modified_sub_instruction=b.modified or None,
                                    instruction=revised))
                continue
        dropped.append(Dropped(i, reason, b))
    return kept, dropped
