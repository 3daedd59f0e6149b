"""The Open LLM Leaderboard (v1) as Conifer's Table 7 reports it: MMLU, ARC-Challenge, HellaSwag, TruthfulQA (mc2),
WinoGrande and GSM8k, each with its own shot count, run by lm-evaluation-harness as a library.

Why the harness and not ifforge's generator: these tasks score log-likelihoods of answer choices (and one
greedy completion for GSM8k) over the harness's own prompts, few-shot samplers and answer filters; re-creating
them would be a second, unvalidated copy. So this suite keeps the engine's load / answer / score shape, but its
`answer` hands the candidate's *model* (not its chat generator) to `lm_eval.simple_evaluate`, one call per task
(each task has its own shot count, which simple_evaluate takes for all of its tasks at once), and `score` reads
the harness's numbers. An "item" is one task; its "answer" is the harness's result for that task. The engine's
artifact (keyed by the tasks, shots, metrics, limit and the candidate) is what makes a rerun free: the harness's
requests do not go through ifforge's response cache.

`eval.open_llm.tasks` maps a column key to {label, task, shots, metric}: `metric` is the harness's result key
("acc_norm" is "acc_norm,none"; GSM8k's "exact_match,strict-match" names its answer filter too). `path`: a folder
of the user's own task YAMLs (the harness's `include_path`), e.g. local copies of the datasets.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from omegaconf import OmegaConf

from ifforge.errors import StageFailed, UserError
from ifforge.evaluate import SUITES
from ifforge.evaluate.suite import Item, Suite, SuiteConfig
from ifforge.evaluate.tables import headline_tables, markdown_table

log = logging.getLogger("ifforge")
TITLE = "Open LLM Leaderboard"


@dataclass
class TaskSpec:
    label: str = ""  # the column header (the paper's name)
    task: str = ""  # the harness's task or group name
    shots: int = 0
    metric: str = "acc"  # the harness's result key; without ",<filter>" it is the unfiltered one (",none")


@dataclass
class OpenLLMConfig(SuiteConfig):
    # {column key: TaskSpec fields}; untyped so that `+eval.open_llm.tasks.x={task: ..., shots: 3}` can add one
    # (OmegaConf refuses a plain mapping assigned into a typed one); preflight checks the fields.
    tasks: Dict[str, Any] = field(default_factory=dict)
    # The leaderboard scores the plain few-shot prompt; true wraps it in the candidate's chat template.
    apply_chat_template: bool = False


def task_spec(tasks: Any, key: Any) -> TaskSpec:
    """`eval.open_llm.tasks.<key>` checked; a one-line error naming the field that is wrong."""
    where = f"eval.open_llm.tasks.{key}"
    node = tasks[key]
    if not isinstance(node, Mapping) and not OmegaConf.is_dict(node):
        raise UserError(f"{where} must be a mapping {{label, task, shots, metric}} (got {node!r})")
    extra = sorted(set(node) - {f.name for f in fields(TaskSpec)})
    if extra:
        raise UserError(f"{where}: unknown field(s) {', '.join(map(str, extra))} (label, task, shots, metric)")
    if not node.get("task"):
        raise UserError(f"{where}.task is empty: name an lm-eval task")
    shots = node.get("shots", 0)
    if not isinstance(shots, int) or isinstance(shots, bool) or shots < 0:
        raise UserError(f"{where}.shots must be a whole number, 0 or more (got {shots!r})")
    return TaskSpec(label=str(node.get("label") or key), task=str(node.task), shots=shots,
                    metric=str(node.get("metric") or "acc"))


def result_key(metric: str) -> str:
    return metric if "," in metric else f"{metric},none"


def _value(results: Dict[str, Any], column: str, spec: TaskSpec) -> Tuple[float, Optional[float]]:
    """The task's metric as a percentage (the paper's scale) and its standard error, if the harness gave one."""
    scores, key = results.get(spec.task) or {}, result_key(spec.metric)
    if key not in scores:
        found = sorted(k for k in scores if "," in k and "_stderr" not in k)
        raise UserError(f"eval.open_llm: lm-eval reported no {key!r} for task {spec.task!r} (it reported: "
                        f"{', '.join(found) or 'nothing'}); set eval.open_llm.tasks.{column}.metric to one of those")
    metric, _, filter_ = key.partition(",")
    stderr = scores.get(f"{metric}_stderr,{filter_}")
    return round(100 * float(scores[key]), 2), (round(100 * float(stderr), 2)
                                                 if isinstance(stderr, (int, float)) else None)


def harness_model(backend: Any, batch_size: Any) -> Any:
    """The harness's model for the candidate's backend config: the same weights ifforge's generator would load."""
    from ifforge.llm.backends.hf_local import _DTYPES as HF_DTYPES
    from ifforge.llm.backends.vllm import _DTYPES as VLLM_DTYPES
    from ifforge.models import resolve_model

    cfg = backend.cfg
    name = str(cfg.name)
    if name == "hf_local":
        import torch
        from lm_eval.models.huggingface import HFLM

        device = str(cfg.device)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        # as hf_local does (and with its aliases: bf16, fp32...): bf16 on GPUs, float32 on CPU (bf16 is slow there)
        dtype = HF_DTYPES.get(str(cfg.dtype), "bfloat16" if device.startswith("cuda") else "float32")
        return HFLM(pretrained=resolve_model(str(cfg.model)), device=device, dtype=dtype, batch_size=batch_size)
    if name == "vllm":
        from lm_eval.models.vllm_causallms import VLLM

        return VLLM(pretrained=resolve_model(str(cfg.model)), dtype=VLLM_DTYPES[str(cfg.dtype)], batch_size="auto",
                    **dict(cfg.extra or {}))
    raise UserError(f"eval.open_llm scores answer log-likelihoods, which candidate={name} cannot give; "
                    f"use candidate=hf_local or candidate=vllm")


@SUITES.register("open_llm", schema=OpenLLMConfig)
class OpenLLM(Suite):
    name = "open_llm"
    scored_by = "lm-eval"
    summary_columns = {"Open LLM Avg.": "average"}

    @classmethod
    def preflight(cls, cfg: Any, reference_dir: Optional[str]) -> None:
        if cfg.responses:
            raise UserError("eval.open_llm cannot score a responses file: the harness needs the model itself "
                            "(answer log-likelihoods); unset eval.open_llm.responses")
        if not cfg.tasks:
            raise UserError("eval.open_llm.tasks is empty: name at least one lm-eval task")
        for key in cfg.tasks:
            task_spec(cfg.tasks, key)

    def load(self) -> List[Item]:
        self.preflight(self.cfg, None)
        specs = {str(key): task_spec(self.cfg.tasks, key) for key in self.cfg.tasks}
        return [Item(id=key, prompt=spec.task, messages=[], data={**asdict(spec), "metric": result_key(spec.metric)})
                for key, spec in specs.items()]

    def task_manager(self, tasks: List[str]) -> Any:
        """The harness's task index: the user's folder alone when it holds every task (indexing the harness's own
        ~15k task files takes ~10 s), else both; a one-line error for a task found in neither."""
        from lm_eval.tasks import TaskManager

        path = str(Path(str(self.cfg.path)).expanduser()) if self.cfg.path else None
        if path:
            manager = TaskManager(include_path=path, include_defaults=False)
            if set(tasks) <= set(manager.all_tasks):
                return manager
        manager = TaskManager(include_path=path)
        unknown = sorted(set(tasks) - set(manager.all_tasks))
        if unknown:
            raise UserError(f"eval.open_llm: lm-eval has no task {', '.join(unknown)}"
                            + (f" (nor has {self.cfg.path})" if path else ""))
        return manager

    def answer(self, items: List[Item], generator: Any) -> List[Optional[Dict[str, Any]]]:  # type: ignore[override]
        """Each task's harness output ({"results", "n-samples", "configs", ...}), one simple_evaluate per task."""
        import lm_eval

        manager = self.task_manager([it.data["task"] for it in items])  # before any model is loaded
        # The generator's own copy of the model (if another suite loaded it) is freed first: one copy in memory.
        generator.close()
        model = harness_model(generator.backend, int(generator.backend.cfg.get("batch_size") or 1))
        chat = bool(self.cfg.apply_chat_template)
        outputs: List[Optional[Dict[str, Any]]] = []
        try:
            for it in items:
                log.info("[eval/open_llm] %s: lm-eval task %s, %d-shot", it.id, it.data["task"], it.data["shots"])
                try:
                    out = lm_eval.simple_evaluate(
                        model=model, tasks=[it.data["task"]], num_fewshot=it.data["shots"], task_manager=manager,
                        limit=int(self.cfg.limit) if self.cfg.limit is not None else None, log_samples=False,
                        apply_chat_template=chat, fewshot_as_multiturn=chat)
                except Exception as e:  # which task failed, in one line; the traceback stays chained
                    raise StageFailed(f"eval.open_llm.tasks.{it.id} (lm-eval task {it.data['task']}, "
                                      f"{it.data['shots']}-shot) failed: {type(e).__name__}: {e}") from e
                outputs.append({k: out.get(k) for k in ("results", "n-samples", "n-shot", "configs",
                                                        "group_subtasks", "versions", "lm_eval_version")})
        finally:
            del model
            _free_gpu()
        return outputs

    def score(self, items: List[Item], responses: List[Any]) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
        rows, per_task = [], {}
        for it, out in zip(items, responses):
            spec = TaskSpec(**it.data)
            value, stderr = _value(out["results"], it.id, spec)
            n = (out.get("n-samples") or {}).get(spec.task, {}).get("effective")
            if n is None:  # a group (MMLU): the sum over its subtasks
                subtasks = (out.get("group_subtasks") or {}).get(spec.task) or []
                n = sum((out.get("n-samples") or {}).get(t, {}).get("effective", 0) for t in subtasks) or None
            per_task[it.id] = {"label": spec.label, "task": spec.task, "shots": spec.shots, "metric": spec.metric,
                               "value": value, "stderr": stderr, "n": n}
            rows.append({"id": it.id, **per_task[it.id], "lm_eval_version": out.get("lm_eval_version"),
                         "task_versions": out.get("versions"), "task_configs": out.get("configs")})
        metrics: Dict[str, Any] = {key: t["value"] for key, t in per_task.items()}
        metrics["average"] = round(sum(metrics.values()) / len(per_task), 2)
        metrics["per_task"] = per_task
        metrics["limit"] = self.cfg.limit
        metrics["apply_chat_template"] = bool(self.cfg.apply_chat_template)
        return rows, metrics

    @classmethod
    def headline(cls, metrics: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
        per_task = metrics["per_task"]
        return {TITLE: {**{f"{t['label']} ({t['shots']}-shot)": t["value"] for t in per_task.values()},
                        "Avg.": metrics["average"]}}

    def table(self, metrics: Dict[str, Any], label: str) -> str:
        limit = metrics.get("limit")
        main = headline_tables(self.headline(metrics), label, details={
            TITLE: f"lm-eval; the first {limit} items of each task" if limit is not None else "lm-eval"})
        per = markdown_table(["Column", "lm-eval task", "shots", "metric", "value", "stderr", "n"],
                             [[k, t["task"], t["shots"], t["metric"], t["value"], t["stderr"], t["n"]]
                              for k, t in metrics["per_task"].items()],
                             title=f"{TITLE}: what each column is")
        return main + "\n" + per


def _free_gpu() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
