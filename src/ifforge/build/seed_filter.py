"""DeMoRecon E.1 "Filter Invalid Seeds": drop instructions that lack context to be answered on their own."""

from __future__ import annotations

from ifforge.build.step import YesNoFilter


class FilterSeeds(YesNoFilter):
    name = "filter_seeds"
    template = "demorecon/filter_seeds.j2"
    reads = ("instruction",)
    variable = "prompt"
    keep_on = False  # E.1 asks whether the prompt misses details: "No" keeps it
    drop_reason = "filtered: missing details or context (E.1 answered Yes)"
    max_tokens = 16  # the verdict is the first word; the rest may be cut short
