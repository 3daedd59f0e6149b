"""A paper recipe on one GPU: a few ZeRO-2 SFT and DPO+SFT steps of a 7B-shaped model through ifforge's train stage.

    .venv/bin/python benchmarks/train_recipe_gpu.py                        # Mistral-7B shape, Conifer's recipe
    .venv/bin/python benchmarks/train_recipe_gpu.py --layers 8 --steps 3   # a smaller slice of the same shape

Nothing is downloaded (GPU machines here reach no hub): the model is Mistral-7B's architecture with random
weights (the FLOPs and memory of training do not depend on the values) and SmolLM2's tokenizer; the data are
synthetic chats of about `--seq-len` tokens. The run goes through `model=mistral-7b` (Conifer B.1: bf16, gradient
checkpointing, ZeRO-2, cosine, max length 2048) with `max_steps` and the per-device batch as given, so what is
measured is the recipe as ifforge applies it. Reported per objective: tokens/s (non-padding tokens seen over the
wall time of `trainer.train()`), peak GPU memory, and MFU = model FLOPs per second / the GPU's peak bf16 FLOPs,
with model FLOPs per token 6N for SFT and, for DPO, 6N for the policy's forward+backward plus 2N for the
reference model's forward (N = parameter count; attention FLOPs left out, as is usual for MFU).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]  # runnable from a checkout without installing
os.environ.setdefault("HF_HUB_OFFLINE", "1")

MISTRAL_7B = {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
              "num_key_value_heads": 8, "max_position_embeddings": 4096}
H200_BF16_TFLOPS = 989.0  # dense bf16 peak of an H100/H200 SXM (the spec sheet's number without sparsity)


def flops_per_token(n_params: int, objective: str) -> float:
    """Model FLOPs per trained token: 6N (forward + backward); DPO adds the frozen reference model's forward, 2N."""
    return 6.0 * n_params + (2.0 * n_params if objective.startswith("dpo") else 0.0)


def mfu(tokens_per_second: float, n_params: int, objective: str, peak_tflops: float = H200_BF16_TFLOPS) -> float:
    """Model FLOPs utilisation, 0-1."""
    return tokens_per_second * flops_per_token(n_params, objective) / (peak_tflops * 1e12)


def synthetic_rows(n: int, words: int) -> Dict[str, List[Dict[str, Any]]]:
    vocab = "the quick brown fox jumps over a lazy dog while seven wizards quietly hex bold pirates".split()
    sft, dpo = [], []
    for i in range(n):
        text = " ".join(vocab[(i * 7 + k) % len(vocab)] for k in range(words))
        prompt = {"role": "user", "content": f"Item {i}: rewrite this. {text}"}
        sft.append({"messages": [prompt, {"role": "assistant", "content": text}], "seed_id": f"s{i}",
                    "group_id": f"s{i}"})
        dpo.append({"prompt": [prompt], "chosen": [{"role": "assistant", "content": text}],
                    "rejected": [{"role": "assistant", "content": text[::-1]}], "seed_id": f"s{i}"})
    return {"sft": sft, "dpo": dpo}


def build_model(out: Path, layers: int) -> int:
    """Mistral-7B's shape with random weights and SmolLM2's tokenizer, saved to `out`; returns the parameter count."""
    import torch
    from transformers import AutoTokenizer, MistralConfig, MistralForCausalLM

    from ifforge.models import SMOLLM2_ALIAS, resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(SMOLLM2_ALIAS))
    config = MistralConfig(vocab_size=len(tokenizer), **{**MISTRAL_7B, "num_hidden_layers": layers},
                           bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                           pad_token_id=tokenizer.pad_token_id, torch_dtype="bfloat16")
    with torch.device("cuda"):
        model = MistralForCausalLM(config).to(torch.bfloat16)
    n_params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    del model
    torch.cuda.empty_cache()
    return n_params


def overrides(objective: str, model_dir: Path, work: Path, steps: int, per_device: int) -> List[str]:
    """Conifer's Mistral-7B recipe for `objective`, cut to a few steps of `per_device` rows on one GPU."""
    return ["stages=[train]", "model=mistral-7b", f"model.path={model_dir}", f"objective={objective}",
            f"paths.artifacts={work / objective}", f"+objective.trainer.max_steps={steps}",
            f"+objective.trainer.per_device_train_batch_size={per_device}", "objective.keep_global_batch=false",
            "+objective.trainer.gradient_accumulation_steps=1", "+objective.trainer.logging_steps=1"]


def run(objective: str, model_dir: Path, work: Path, steps: int, per_device: int, seq_len: int) -> Dict[str, Any]:
    from hydra import compose, initialize_config_dir

    import ifforge.__main__ as entry
    from ifforge.artifacts import inventory
    from ifforge.build.save import save_splits
    from ifforge.pipeline import Runner, run as run_stages

    with initialize_config_dir(config_dir=entry.CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=overrides(objective, model_dir, work, steps, per_device))
    build = Runner(cfg).artifact("build")
    build.path.mkdir(parents=True, exist_ok=True)
    save_splits(synthetic_rows(per_device * steps * 2, seq_len // 2), build.path)
    build.manifest_path.write_text(json.dumps({"stage": "build", "fingerprint": build.fingerprint, "stats": {},
                                               "files": inventory(build.path)}))
    run_stages(cfg)
    return Runner(cfg).artifact("train").manifest()["stats"]


def main(argv: List[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=32, help="decoder layers (32: the full 7B)")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--per-device", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=1024, help="about this many tokens per row")
    parser.add_argument("--objectives", default="sft,dpo_sft")
    parser.add_argument("--peak-tflops", type=float, default=H200_BF16_TFLOPS)
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        sys.exit("train_recipe_gpu.py needs a CUDA GPU (see benchmarks/README.md for the CPU benchmarks)")
    with tempfile.TemporaryDirectory(prefix="recipe-") as tmp:
        work = Path(tmp)
        n_params = build_model(work / "model", args.layers)
        results = []
        for objective in args.objectives.split(","):
            stats = run(objective, work / "model", work, args.steps, args.per_device, args.seq_len)
            tps = float(stats["tokens_per_second"] or 0.0)
            results.append({"objective": objective, "params_b": round(n_params / 1e9, 2), "layers": args.layers,
                            "steps": stats["steps"], "per_device": args.per_device, "tokens_per_s": round(tps, 1),
                            "peak_gpu_gib": round((stats["peak_memory"]["gpu_bytes"] or 0) / 2**30, 1),
                            "mfu": round(mfu(tps, n_params, objective, args.peak_tflops), 3),
                            "deepspeed": Path(stats["deepspeed"] or "none").name,
                            "activation_checkpointing": stats["precision"]["activation_checkpointing"]})
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
