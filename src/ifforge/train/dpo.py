"""DPO and DPO+SFT: TRL's DPOTrainer, with each loss term logged on its own (`loss/sigmoid`, `loss/sft`).

TRL sums the terms of `loss_type` weighted by `loss_weights` and logs only the total. To show what each term
contributes (is the SFT part going down? is DPO learning a margin?) without re-implementing TRL's loss, each
weight is replaced by a `RecordingWeight`: the loss code multiplies every term by its weight, and the weight
notes the term's value as it scales it. The arithmetic is unchanged.
"""

from __future__ import annotations

from typing import Any, List

from trl import DPOTrainer


class RecordingWeight:
    """A loss weight that records the (unweighted) term it multiplies into the trainer's logged metrics."""

    def __init__(self, trainer: "LossPartsDPOTrainer", loss_type: str, value: float):
        self.trainer, self.loss_type, self.value = trainer, loss_type, float(value)

    def _scale(self, term):
        self.trainer.record_loss_part(self.loss_type, term)
        return term * self.value

    # A tensor does not know how to multiply by this object, so `term * weight` lands in __rmul__.
    __rmul__ = _scale
    __mul__ = _scale

    def __float__(self) -> float:
        return self.value

    def __repr__(self) -> str:
        return f"{self.loss_type}*{self.value}"


class LossPartsDPOTrainer(DPOTrainer):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.loss_weights = [RecordingWeight(self, t, w) for t, w in zip(self.loss_types, self.loss_weights)]

    def record_loss_part(self, loss_type: str, term) -> None:
        mode = "train" if self.model.training else "eval"
        value = self.accelerator.gather_for_metrics(term.detach().reshape(1)).mean().item()
        self._metrics[mode][f"loss/{loss_type}"].append(value)


def make_trainer(model, tokenizer, args, dataset, callbacks: List) -> LossPartsDPOTrainer:
    return LossPartsDPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                               callbacks=callbacks)
