"""Conifer (section 3 of the paper): query reframing, constraint generation, recombination into difficulty levels,
format/numeric augmentation, two filters, and the easy-to-hard curriculum assembly.

`ifforge.build.augment.reframe_constrain_recombine` registers the strategy and its config schema; the pieces live
here so that each module stays small: `parsing` (tolerant JSON, strict validation), `resources` (the replaceable
data files), `sampling` (order-independent seeded picks), `steps` (the LLM steps), `curriculum` (assembly and the
Table 4 switches) and `mix` (general SFT conversations mixed in).
"""
