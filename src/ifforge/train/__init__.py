"""The train stage's machinery: TRL's SFT and DPO trainers driven from the `model` and `objective` config groups.

settings.py   config -> trainer arguments, in documented layers (the papers' rows live in conf/model/*.yaml)
run.py        one run in an artifact directory: load, train or resume, save, report
sft.py/dpo.py the TRL trainers (grouped batches; DPO loss terms logged one by one)
See src/ifforge/train/README.md for the user-facing description.
"""
