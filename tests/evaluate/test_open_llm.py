"""eval=open_llm: lm-evaluation-harness on the model under test, offline, on tiny tasks made from local data."""

import json

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf, open_dict

import ifforge.__main__ as entry
from ifforge.errors import UserError
from ifforge.evaluate.suites.open_llm import OpenLLM, TaskSpec, _value, harness_model
from ifforge.pipeline import run

PAPER_TASKS = {"mmlu": ("mmlu", 5, "acc,none"), "arc": ("arc_challenge", 25, "acc_norm,none"),
               "hellaswag": ("hellaswag", 10, "acc_norm,none"), "truthfulqa": ("truthfulqa_mc2", 0, "acc,none"),
               "winogrande": ("winogrande", 5, "acc,none"), "gsm8k": ("gsm8k", 5, "exact_match,strict-match")}


def compose_eval(args):
    with initialize_config_dir(entry.CONF_DIR, version_base="1.3"):
        return compose("config", overrides=args)


def local_tasks(tmp_path):
    """Three harness tasks on one local JSONL (30 items: enough for 25 shots): a choice the model cannot miss (one option), one it cannot hit (two
    identical options, the second one gold: ties go to the first), and a completion it cannot match."""
    data = tmp_path / "docs.jsonl"
    data.write_text("".join(json.dumps({"q": f"What is {i} plus {i}?", "one": [" yes"], "two": [" a", " a"],
                                        "gold": "zq-impossible-answer"}) + "\n" for i in range(30)))
    common = (f"dataset_path: json\ndataset_kwargs:\n  data_files: {data}\ntest_split: train\nfewshot_split: train\n"
              "doc_to_text: \"Q: {{q}}\\nA:\"\n")
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "sure.yaml").write_text("task: tiny_sure\n" + common + "output_type: multiple_choice\n"
                                      "doc_to_choice: \"{{one}}\"\ndoc_to_target: 0\n"
                                      "metric_list:\n  - metric: acc\n  - metric: acc_norm\n")
    (folder / "never.yaml").write_text("task: tiny_never\n" + common + "output_type: multiple_choice\n"
                                       "doc_to_choice: \"{{two}}\"\ndoc_to_target: 1\n"
                                       "metric_list:\n  - metric: acc\n  - metric: acc_norm\n")
    (folder / "gen.yaml").write_text("task: tiny_gen\n" + common + "output_type: generate_until\n"
                                     "doc_to_target: gold\ngeneration_kwargs:\n  until: [\"\\n\"]\n"
                                     "  max_gen_toks: 4\n  do_sample: false\nmetric_list:\n  - metric: exact_match\n")
    return folder


def test_the_paper_tasks_and_shots_are_the_default():
    cfg = compose_eval(["eval=[open_llm]"])
    items = OpenLLM(cfg.eval.open_llm, None).load()
    assert {it.id: (it.data["task"], it.data["shots"], it.data["metric"]) for it in items} == PAPER_TASKS
    assert [it.data["label"] for it in items] == ["MMLU", "ARC", "HellaSwag", "TruthfulQA", "WinoGrande", "GSM8k"]
    assert "open_llm" not in compose_eval(["eval=all"]).eval  # a multi-hour harness is asked for by name


def test_bad_settings_are_one_line_errors():
    cfg = compose_eval(["eval=[open_llm]", "eval.open_llm.responses=x.jsonl"]).eval.open_llm
    with pytest.raises(UserError, match="cannot score a responses file"):
        OpenLLM.preflight(cfg, None)
    for override, message in (("eval.open_llm.tasks.arc.shots=-1", "tasks.arc.shots must be a whole number"),
                              ("+eval.open_llm.tasks.arc.fewshot=3", r"tasks.arc: unknown field\(s\) fewshot"),
                              ("eval.open_llm.tasks.arc.task=''", "tasks.arc.task is empty")):
        with pytest.raises(UserError, match=message):
            OpenLLM.preflight(compose_eval(["eval=[open_llm]", override]).eval.open_llm, None)
    with pytest.raises(UserError, match="reported no 'acc_norm,none' for task 'winogrande'.*acc,none.*tasks.wg.metric"):
        _value({"winogrande": {"acc,none": 0.5, "acc_stderr,none": 0.1}}, "wg",
               TaskSpec(task="winogrande", metric="acc_norm"))
    with pytest.raises(UserError, match="candidate=openai cannot give"):
        harness_model(type("B", (), {"cfg": OmegaConf.create({"name": "openai", "model": "m"})})(), 1)


def test_vllm_candidate_gets_the_harness_vllm_model_with_its_engine_arguments(monkeypatch):
    """vLLM is not installable here: a stand-in module records what the harness's VLLM class is given."""
    import sys
    import types

    made = {}
    fake = types.ModuleType("lm_eval.models.vllm_causallms")
    fake.VLLM = lambda **kwargs: made.update(kwargs) or "vllm-model"
    monkeypatch.setitem(sys.modules, "lm_eval.models.vllm_causallms", fake)
    cfg = OmegaConf.create({"name": "vllm", "model": "org/model", "dtype": "bf16",
                            "extra": {"tensor_parallel_size": 2, "max_model_len": 4096}})
    assert harness_model(type("B", (), {"cfg": cfg})(), 8) == "vllm-model"
    assert made == {"pretrained": "org/model", "dtype": "bfloat16", "batch_size": "auto", "tensor_parallel_size": 2,
                    "max_model_len": 4096}


def test_unknown_task_fails_before_the_model_loads(tmp_path, monkeypatch):
    import lm_eval.tasks

    made = []

    class Recording(lm_eval.tasks.TaskManager):  # the user's folder alone: indexing the harness's takes ~15 s
        def __init__(self, include_path=None, include_defaults=True):
            made.append(include_defaults)
            super().__init__(include_path=include_path, include_defaults=False)

    monkeypatch.setattr(lm_eval.tasks, "TaskManager", Recording)
    cfg = compose_eval(["eval=[open_llm]", f"eval.open_llm.path={local_tasks(tmp_path)}"]).eval.open_llm
    assert "tiny_gen" in OpenLLM(cfg, None).task_manager(["tiny_sure", "tiny_gen"]).all_tasks
    with pytest.raises(UserError, match=r"lm-eval has no task nope_task \(nor has .*tasks\)"):
        OpenLLM(cfg, None).task_manager(["tiny_sure", "nope_task"])
    assert made == [False, False, True]  # the folder alone when it has every task, else the harness's too


def test_local_tasks_on_the_tiny_model(tmp_path, tiny_model_dir):
    tasks = local_tasks(tmp_path)
    drop = [f"~eval.open_llm.tasks.{k}" for k in PAPER_TASKS]
    add = ["+eval.open_llm.tasks.sure={label: Sure, task: tiny_sure, shots: 2, metric: acc_norm}",
           "+eval.open_llm.tasks.never={label: Never, task: tiny_never, shots: 0, metric: acc}",
           "+eval.open_llm.tasks.gen={label: Gen, task: tiny_gen, shots: 1, metric: exact_match}"]
    cfg = compose_eval(["stages=[eval]", f"paths.artifacts={tmp_path / 'art'}", "candidate.name=hf_local",
                        f"candidate.model={tiny_model_dir}", "candidate.device=cpu", "eval=[open_llm]",
                        f"eval.open_llm.path={tasks}", "eval.open_llm.limit=3", *drop, *add])
    out = run(cfg)["eval"]
    metrics = json.loads(open(f"{out}/metrics.json").read())["open_llm"]
    assert (metrics["sure"], metrics["never"], metrics["gen"]) == (100.0, 0.0, 0.0)
    assert metrics["average"] == round(100 / 3, 2)
    assert {k: (t["shots"], t["n"]) for k, t in metrics["per_task"].items()} == {
        "sure": (2, 3), "never": (0, 3), "gen": (1, 3)}
    suite_dir = json.loads(open(f"{out}/suites.json").read())["open_llm"]
    rows = {r["id"]: r for r in map(json.loads, open(f"{suite_dir}/results.jsonl"))}
    assert rows["sure"]["task_configs"]["tiny_sure"]["num_fewshot"] == 2  # the shots reached the harness
    table = open(f"{out}/tables.md").read()
    assert "| Model | Sure (2-shot) | Never (0-shot) | Gen (1-shot) | Avg. |" in table
    assert "the first 3 items of each task" in table


def test_conifer_table7_summary_from_real_runs(tmp_path, tiny_model_dir):
    """experiment=conifer/table7's two jobs (the tiny model evaluated as is, the paper's six columns mapped onto
    the local tasks): the summary has the paper's header and rows, each cell the job's own number."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from ifforge.sweep.summary import write_summary
    from tests.sweep.test_summary import fake_job

    tasks = local_tasks(tmp_path)
    local = {"mmlu": "tiny_sure", "arc": "tiny_sure", "hellaswag": "tiny_never", "truthfulqa": "tiny_never",
             "winogrande": "tiny_sure", "gsm8k": "tiny_gen"}
    sweep = tmp_path / "sweep"
    for num, variant in enumerate(("conifer/sharegpt", "conifer/conifer")):
        GlobalHydra.instance().clear()
        with initialize_config_dir(entry.CONF_DIR, version_base="1.3"):
            cfg = compose("config", return_hydra_config=True, overrides=[
                "experiment=conifer/table7", f"variant={variant}", "stages=[eval]", "model=tiny",
                f"candidate.model={tiny_model_dir}", "candidate.device=cpu", f"paths.artifacts={tmp_path / 'art'}",
                f"eval.open_llm.path={tasks}", "eval.open_llm.limit=2",
                *[f"eval.open_llm.tasks.{k}.task={t}" for k, t in local.items()],
                "eval.open_llm.tasks.gsm8k.metric=exact_match"])
        HydraConfig.instance().set_config(cfg)  # as a Hydra run has it: ${hydra:...} paths resolve
        choices = OmegaConf.to_container(cfg.hydra.runtime.choices)
        with open_dict(cfg):
            del cfg["hydra"]
        eval_dir = run(cfg)["eval"]  # the second job reuses the first one's suite artifact
        fake_job(sweep, num, [f"variant={variant}"], yaml.safe_load(OmegaConf.to_yaml(cfg, resolve=True)),
                 choices=choices)  # config.yaml as Hydra writes it
        (sweep / str(num) / "outputs.json").write_text(json.dumps({"eval": str(eval_dir)}))
    write_summary(sweep)
    lines = (sweep / "summary.md").read_text().splitlines()
    assert lines[:4] == ["# Conifer Table 7 (Open LLM Leaderboard; tiny, SFT)", "",
                         "| Model | Average | MMLU | ARC | HellaSwag | TruthfulQA | WinoGrande | GSM8k |",
                         "|---|---|---|---|---|---|---|---|"], lines
    assert lines[4:6] == ["| ShareGPT | 50.00 | 100.00 | 100.00 | 0.00 | 0.00 | 100.00 | 0.00 |",
                          "| Conifer | 50.00 | 100.00 | 100.00 | 0.00 | 0.00 | 100.00 | 0.00 |"], lines


def test_ifeval_checkers_leave_the_real_harness_importable():
    """IFEval loads lm-eval's checkers without the harness; the harness must still import after it (one process,
    eval=[ifeval,open_llm])."""
    from ifforge.evaluate.ifeval_checkers import lm_eval_module

    assert hasattr(lm_eval_module(), "INSTRUCTION_DICT")
    from lm_eval.tasks import TaskManager  # the real package, not the checkers' stand-in

    assert TaskManager.__module__.startswith("lm_eval.tasks")
