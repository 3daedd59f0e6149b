"""What a training run leaves besides the weights: its metrics (for the manifest), and in the saved model directory
a loss curve PNG and the model card README.md (with the Hub's metadata header), so that `push_to_hub` or an upload
of that directory carries its card."""

from __future__ import annotations

import json
import resource
from pathlib import Path
from typing import Any, Dict, List, Optional

LOSS_CURVE = "loss_curve.png"
MODEL_CARD = "README.md"


def loss_curve(log_history: List[Dict[str, Any]]) -> Dict[str, List[List[float]]]:
    """{"loss": [[step, value], ...], "loss/sft": [...], ...} from the Trainer's log history (the restored history
    included, so a resumed run's curve starts at step 1)."""
    curves: Dict[str, List[List[float]]] = {}
    for entry in log_history:
        step = entry.get("step")
        if step is None or "train_loss" in entry:  # the end-of-training summary: a mean loss, not a point
            continue
        for key, value in entry.items():
            if (key == "loss" or key.startswith("loss/")) and isinstance(value, (int, float)):
                curves.setdefault(key, []).append([int(step), float(value)])
    return curves


def peak_memory() -> Dict[str, Optional[int]]:
    """Peak GPU memory allocated by torch on this rank (None on CPU) and this process's peak resident memory."""
    import torch

    gpu = int(torch.cuda.max_memory_allocated()) if torch.cuda.is_available() else None
    rss = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux reports KiB
    return {"gpu_bytes": gpu, "rss_bytes": rss}


def plot_loss(curves: Dict[str, List[List[float]]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display on training nodes
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name in sorted(curves, key=lambda n: (n != "loss", n)):
        points = curves[name]
        ax.plot([p[0] for p in points], [p[1] for p in points], label=name, marker="." if len(points) < 50 else None)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    if curves:
        ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def card_metadata(stats: Dict[str, Any]) -> Dict[str, Any]:
    """The Hub's model-card header: `base_model` only when the base came from the Hub (a local path is no repo)."""
    meta: Dict[str, Any] = {"library_name": "transformers", "pipeline_tag": "text-generation",
                            "tags": list(dict.fromkeys(["ifforge", "trl", stats["trainer"], stats["objective"]]))}
    base = str(stats.get("base_model_path") or "")
    if base and not Path(base).exists():
        meta["base_model"] = base
    return meta


def model_card(stats: Dict[str, Any], trainer_args: Dict[str, Any]) -> str:
    metrics = {k: stats.get(k) for k in ("steps", "epochs", "final_loss", "tokens", "tokens_per_second",
                                         "train_seconds", "resumed_from_step", "world_size")}
    lines = [
        "---",  # JSON values are YAML flow scalars and lists
        *[f"{k}: {json.dumps(v)}" for k, v in card_metadata(stats).items()],
        "---",
        "",
        f"# {stats['base_model']} fine-tuned with {stats['objective']}",
        "",
        f"Trained by ifforge's `train` stage from the `{stats['split']}` split ({stats['rows']} rows) of build "
        f"artifact `{stats['build_fingerprint']}`.",
        "",
        "## Training",
        "",
        f"- base model: `{stats['base_model']}` (`{stats['base_model_path']}`)",
        f"- objective: `{stats['objective']}` with TRL's `{stats['trainer']}` trainer",
    ]
    if stats.get("loss_weights"):
        lines.append(f"- loss terms and weights: {stats['loss_weights']}")
    if stats.get("beta") is not None:
        lines.append(f"- beta: {stats['beta']}")
    lines += [
        f"- chat template: {stats['chat_template']}",
        f"- PEFT: {stats['peft']}",
        f"- precision: {json.dumps(stats['precision'])}",
        f"- grouped batches: {stats['group_batches']}",
        *([f"- {stats['global_batch']['text']} (the paper's global batch, kept on this world size)"]
          if stats.get("global_batch") else []),
        "",
        "## Metrics",
        "",
        "| metric | value |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in metrics.items()],
        "",
        f"![loss curve]({LOSS_CURVE})",
        "",
        "## Trainer arguments from the model file and the objective",
        "",
        "```json",
        json.dumps(trainer_args, indent=2, sort_keys=True, default=str),
        "```",
        "",
        "## Use",
        "",
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        f"model = AutoModelForCausalLM.from_pretrained({stats['model_dir']!r})",
        f"tokenizer = AutoTokenizer.from_pretrained({stats['model_dir']!r})  # carries the training chat template",
        "```",
        "",
    ]
    return "\n".join(lines)


def write(model_dir: Path, stats: Dict[str, Any], trainer_args: Dict[str, Any]) -> None:
    """The card and its loss curve go beside the weights they describe."""
    plot_loss(stats["loss_curve"], model_dir / LOSS_CURVE, f"{stats['base_model']} / {stats['objective']}")
    (model_dir / MODEL_CARD).write_text(model_card(stats, trainer_args))
