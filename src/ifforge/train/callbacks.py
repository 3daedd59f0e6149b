"""Trainer callbacks the train stage always adds."""

from __future__ import annotations

from transformers import TrainerCallback


class NoCheckpointAtTheEnd(TrainerCallback):
    """Skip the Trainer's checkpoint after the last step: the stage saves the final model right after, and the
    checkpoint (optimizer state included, about three times the model) would only be written to be deleted. A crash
    in between resumes from the last periodic checkpoint instead."""

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= state.max_steps:
            control.should_save = False
        return control
