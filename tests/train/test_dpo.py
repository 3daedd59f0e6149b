"""DPO and DPO+SFT through the train stage on the tiny model: the logged loss is made of the expected terms."""

from __future__ import annotations

import pytest

from tests.train.conftest import run_train, train_cfg


def points(stats, key):
    return dict((step, value) for step, value in stats["loss_curve"][key])


def test_dpo_logs_the_sigmoid_term_only(tmp_path, tiny_model_dir):
    stats = run_train(train_cfg(tmp_path, tiny_model_dir, "dpo", ["objective.beta=0.2"]))["stats"]
    assert set(stats["loss_curve"]) == {"loss", "loss/sigmoid"}
    assert stats["loss_weights"] == {"sigmoid": 1.0} and stats["beta"] == 0.2
    # At step 1 the policy is the reference: the sigmoid loss is -log(sigmoid(0)) = log 2.
    assert points(stats, "loss/sigmoid")[1] == pytest.approx(0.6931, abs=1e-3)
    for step, total in points(stats, "loss").items():
        assert total == pytest.approx(points(stats, "loss/sigmoid")[step], rel=1e-4)
    assert stats["steps"] == 4 and stats["trainer"] == "dpo"


def test_dpo_sft_loss_is_the_weighted_sum_of_its_terms(tmp_path, tiny_model_dir):
    stats = run_train(train_cfg(tmp_path, tiny_model_dir, "dpo_sft", ["objective.sft_weight=0.5"]))["stats"]
    assert set(stats["loss_curve"]) == {"loss", "loss/sigmoid", "loss/sft"}
    assert stats["loss_weights"] == {"sigmoid": 1.0, "sft": 0.5}  # recorded in the manifest
    sigmoid, sft = points(stats, "loss/sigmoid"), points(stats, "loss/sft")
    for step, total in points(stats, "loss").items():
        assert total == pytest.approx(sigmoid[step] + 0.5 * sft[step], rel=1e-4)
    assert sft[1] > 5  # the NLL of the chosen reply under a random model: large
    assert stats["beta"] == 0.1  # TRL's default: neither the tiny model file nor the objective sets one
