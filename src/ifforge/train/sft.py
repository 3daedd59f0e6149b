"""SFT: TRL's SFTTrainer, assistant-only loss on conversational rows, optionally with grouped batches."""

from __future__ import annotations

from typing import Any

from trl import SFTTrainer

from ifforge.train.data import group_ids
from ifforge.train.sampler import GroupedBatchSampler


class GroupedSFTTrainer(SFTTrainer):
    """SFTTrainer whose training batches can be whole groups (see sampler.py); otherwise unchanged."""

    def __init__(self, *args: Any, group_batches: bool = False, **kwargs: Any):
        self.group_batches = group_batches
        super().__init__(*args, **kwargs)

    def get_train_dataloader(self):
        if not self.group_batches:
            return super().get_train_dataloader()
        from torch.utils.data import DataLoader

        # Group ids come from the prepared dataset: TRL keeps extra columns through tokenization but may drop rows
        # (fully masked after truncation), so the original split's row numbers would no longer line up.
        sampler = GroupedBatchSampler(group_ids(self.train_dataset),
                                      groups_per_batch=self.args.per_device_train_batch_size,
                                      seed=self.args.data_seed if self.args.data_seed is not None else self.args.seed)
        dataset = self._remove_unused_columns(self.train_dataset, description="Training")
        loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=self.data_collator,
                            num_workers=self.args.dataloader_num_workers,
                            pin_memory=self.args.dataloader_pin_memory,
                            persistent_workers=self.args.dataloader_persistent_workers)
        return self.accelerator.prepare(loader)


def make_trainer(model, tokenizer, args, dataset, group_batches: bool, callbacks) -> GroupedSFTTrainer:
    return GroupedSFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                             callbacks=callbacks, group_batches=group_batches)
