"""The build fingerprint holds what changes the output and nothing else."""

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

import ifforge.__main__ as entry
from ifforge.artifacts import fingerprint
from ifforge.stages.build import BuildStage


def slice_of(*overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=entry.CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides))
    return BuildStage().config(cfg)


DMR = "augmentation=decompose_modify_reconstruct"
PF = ("augmentation=reframe_constrain_recombine", "response=process_feedback")


@pytest.mark.parametrize("base, same, different", [
    ((DMR,), "augmentation.stats.device=cuda", "augmentation.stats.tokenizer=gpt2"),
    ((DMR,), "augmentation.stats.batch_size=8", "augmentation.stats.figure=false"),
    (PF, "response.external.student.batch_size=2", "response.external.student.temperature=0.7"),
    (PF, "response.external.student.max_concurrency=3", "response.external.student.model=other"),
])
def test_runtime_settings_leave_the_fingerprint(base, same, different):
    reference = fingerprint(slice_of(*base))
    assert fingerprint(slice_of(*base, same)) == reference
    assert fingerprint(slice_of(*base, different)) != reference


def test_table3_can_reuse_table2s_builds_when_the_contamination_test_sets_are_named():
    """The command table3.yaml gives for scoring Table 2's checkpoints: the contamination report checks the suites it
    names, whether named or taken from the run's eval list, so the build (and so the checkpoint) is Table 2's."""
    table2 = ("experiment=conifer/table2", "model=mistral-7b", "variant=conifer/conifer")
    table3 = ("experiment=conifer/table3", "variant=conifer/conifer", "contamination.enabled=true",
              "eval=[ifeval,followbench,infobench,alpaca_eval,mt_bench]",
              "contamination.suites=[ifeval,followbench,infobench]")
    assert fingerprint(slice_of(*table3)) == fingerprint(slice_of(*table2))
    assert fingerprint(slice_of(*table3[:2])) != fingerprint(slice_of(*table2))  # table3 as it comes: its own builds
    assert fingerprint(slice_of(*table2, "contamination.suites=[ifeval,infobench]")) != fingerprint(slice_of(*table2))
