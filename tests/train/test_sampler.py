"""Grouped batches (DeMoRecon A): no group is split across batches; every row once per epoch; resumable order."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from ifforge.train.sampler import GroupedBatchSampler
from tests.train.conftest import sft_rows

# Uneven groups, interleaved in the split (a seed's variants need not be adjacent).
GROUP_IDS = ["a", "b", "a", "c", "c", "c", "d", "b", "e", "a", "f", "f"]


def group_of(batch):
    return {GROUP_IDS[i] for i in batch}


@pytest.mark.parametrize("groups_per_batch", [1, 2, 4])
def test_no_group_split_and_all_rows_once_per_epoch(groups_per_batch):
    sampler = GroupedBatchSampler(GROUP_IDS, groups_per_batch=groups_per_batch, seed=3)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler)
        seen = Counter(i for b in batches for i in b)
        assert seen == Counter(range(len(GROUP_IDS)))  # every row exactly once
        for b1, b2 in itertools.combinations(batches, 2):
            assert not (group_of(b1) & group_of(b2))  # a group lives in one batch only
        for b in batches:
            assert len(group_of(b)) <= groups_per_batch
            for g in group_of(b):  # and that batch holds all of it
                assert sorted(i for i in b if GROUP_IDS[i] == g) == [i for i, x in enumerate(GROUP_IDS) if x == g]


def test_order_depends_on_seed_and_epoch_only():
    a = GroupedBatchSampler(GROUP_IDS, seed=1)
    b = GroupedBatchSampler(GROUP_IDS, seed=1)
    list(a)
    list(a)  # drawing epochs does not move a's order for a given epoch
    a.set_epoch(1)
    b.set_epoch(1)
    assert list(a) == list(b)
    b.set_epoch(2)
    orders = {tuple(map(tuple, GroupedBatchSampler(GROUP_IDS, seed=s))) for s in range(5)}
    assert len(orders) > 1  # shuffled
    unshuffled = list(GroupedBatchSampler(GROUP_IDS, shuffle=False))
    assert [GROUP_IDS[b[0]] for b in unshuffled] == ["a", "b", "c", "d", "e", "f"]


def test_trainer_dataloader_yields_whole_groups(tiny_model_dir, tmp_path):
    """Through GroupedSFTTrainer: the prepared loader's batches are whole groups, every row once."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig

    from ifforge.train.sft import GroupedSFTTrainer

    rows = sft_rows(n_groups=5, variants=2)
    rows = rows[:4] + rows[5:]  # one group a row short: group sizes differ
    args = SFTConfig(output_dir=str(tmp_path), per_device_train_batch_size=1, assistant_only_loss=True,
                     bf16=False, use_cpu=True, activation_checkpointing=False, report_to="none", max_length=128)
    trainer = GroupedSFTTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_model_dir), args=args,
                                train_dataset=Dataset.from_list(rows),
                                processing_class=AutoTokenizer.from_pretrained(tiny_model_dir), group_batches=True)
    ids = trainer.train_dataset["group_id"]
    loader = trainer.get_train_dataloader()
    batches = list(loader.batch_sampler)
    assert sorted(i for b in batches for i in b) == list(range(len(rows)))
    assert all(len({ids[i] for i in b}) == 1 for b in batches)
    sizes = Counter(ids)
    assert [len(b) for b in batches] == [sizes[ids[b[0]]] for b in batches]
    assert [batch["input_ids"].shape[0] for batch in loader] == [len(b) for b in batches]
