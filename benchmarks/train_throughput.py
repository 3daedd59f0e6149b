"""Training throughput: a few SFT steps through ifforge's train stage against the same steps in a plain TRL script.

    .venv/bin/python benchmarks/train_throughput.py --model tiny --steps 20 --reps 3
    .venv/bin/python benchmarks/train_throughput.py --model smollm2-135m-instruct --steps 6 --reps 3
    .venv/bin/python benchmarks/train_throughput.py --gpu-model Qwen/Qwen2.5-0.5B-Instruct   # GPU, ZeRO-2

Both sides train the same model on the same rows with the same SFTConfig: the plain script takes the exact
trainer arguments the ifforge run used (its manifest records them), so the ratio measures ifforge's overhead
during training (its trainer subclass, callbacks, data handling), not a difference of settings. Tokens/s is
non-padding tokens seen (TrainerState.num_input_tokens_seen) over the wall time of `trainer.train()`; the same
tokens over the CPU time of `trainer.train()` (all threads) is reported too, because on a shared machine the wall
clock mostly measures the neighbours. On CPU, torch runs one thread (`--threads`) so that CPU time is the work.
Runs alternate (ifforge, plain, ifforge, ...) after one warm-up each so that drifting machine load hits both
sides alike; the medians are compared. Target: ifforge / plain >= 0.95.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]  # runnable from a checkout without installing
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")


def rows(n: int) -> List[Dict[str, Any]]:
    """Multi-turn chats of ~150 tokens, distinct so nothing is cached anywhere."""
    words = "the quick brown fox jumps over a lazy dog while seven wizards quietly hex".split()
    out = []
    for i in range(n):
        reply = " ".join(words[(i + k) % len(words)] for k in range(40))
        out.append({"messages": [
            {"role": "user", "content": f"Request {i}: write forty words, then repeat the last five."},
            {"role": "assistant", "content": reply},
            {"role": "user", "content": "Now in capitals."},
            {"role": "assistant", "content": reply.upper()},
        ], "seed_id": f"s{i}", "group_id": f"s{i}", "is_original": True})
    return out


def compose(artifacts: Path, overrides: List[str]):
    from hydra import compose as hydra_compose, initialize_config_dir

    import ifforge.__main__ as entry

    with initialize_config_dir(config_dir=entry.CONF_DIR, version_base="1.3"):
        return hydra_compose("config", overrides=[f"paths.artifacts={artifacts}", *overrides])


def ifforge_run(workdir: Path, overrides: List[str], data: List[Dict[str, Any]]) -> Dict[str, Any]:
    """One train stage run in a fresh artifact store, on a hand-made build artifact."""
    from ifforge.build.save import save_splits
    from ifforge.pipeline import Runner, run

    cfg = compose(workdir / "artifacts", ["stages=[train]", *overrides])
    build = Runner(cfg).artifact("build")
    build.path.mkdir(parents=True, exist_ok=True)
    save_splits({"sft": data}, build.path)
    build.manifest_path.write_text(json.dumps({"stage": "build", "fingerprint": build.fingerprint, "stats": {}}))
    run(cfg)
    return Runner(cfg).artifact("train").manifest()["stats"]


def plain_trl_run(workdir: Path, model_path: str, trainer_args: Dict[str, Any],
                  data: List[Dict[str, Any]]) -> Tuple[int, float, float]:
    """The same steps in the plain TRL way: load, SFTConfig(**same args), SFTTrainer, train."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(output_dir=str(workdir / "plain"), **trainer_args)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    dtype = torch.bfloat16 if args.bf16 else torch.float32
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype)
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(data), processing_class=tokenizer)
    started, cpu_started = time.time(), time.process_time()
    trainer.train()
    return int(trainer.state.num_input_tokens_seen), time.time() - started, time.process_time() - cpu_started


def compare(model: str, steps: int, reps: int, batch: int, extra: List[str]) -> Dict[str, Any]:
    data = rows(max(64, steps * batch))
    overrides = [f"model={model}", "objective=sft", f"+objective.trainer.max_steps={steps}",
                 f"+objective.trainer.per_device_train_batch_size={batch}", "+objective.trainer.logging_steps=5",
                 *extra]
    wall: Dict[str, List[float]] = {"ifforge": [], "plain": []}
    cpu: Dict[str, List[float]] = {"ifforge": [], "plain": []}
    for rep in range(reps + 1):  # rep 0 warms both sides up (imports, kernels, page cache) and is dropped
        with tempfile.TemporaryDirectory(prefix="ifforge-bench-") as tmp:
            stats = ifforge_run(Path(tmp) / "ifforge", overrides, data)
            tokens, seconds, cpu_seconds = plain_trl_run(Path(tmp), stats["base_model_path"],
                                                         stats["trainer_args"], data)
        if rep == 0:
            continue
        wall["ifforge"].append(stats["tokens_per_second"])
        wall["plain"].append(tokens / seconds)
        cpu["ifforge"].append(stats["tokens"] / stats["train_cpu_seconds"])
        cpu["plain"].append(tokens / cpu_seconds)
        print(f"  rep {rep}: wall tok/s ifforge {wall['ifforge'][-1]:8.1f} plain {wall['plain'][-1]:8.1f}   "
              f"tok per CPU-s ifforge {cpu['ifforge'][-1]:8.1f} plain {cpu['plain'][-1]:8.1f}", flush=True)
    med = {f"{kind}_{side}": round(statistics.median(values[side]), 1)
           for kind, values in (("wall", wall), ("cpu", cpu)) for side in ("ifforge", "plain")}
    return {"model": model, "steps": steps, "batch": batch, "reps": reps, **med,
            "ratio_wall": round(med["wall_ifforge"] / med["wall_plain"], 3),
            "ratio_cpu": round(med["cpu_ifforge"] / med["cpu_plain"], 3), "runs_wall": wall, "runs_cpu": cpu}


def gpu_zero2(model: str, steps: int, batch: int) -> Dict[str, Any]:
    """tokens/s of ifforge SFT with DeepSpeed ZeRO-2 on one GPU (bf16, activation checkpointing on)."""
    data = rows(max(64, steps * batch))
    # The smollm2 file serves as a template for any small model; the trainer overrides replace its row.
    overrides = ["model=smollm2-135m-instruct", f"model.name={model}", f"model.path={model}", "model.max_length=1024",
                 "objective=sft", "objective.deepspeed=zero2", f"+objective.trainer.max_steps={steps}",
                 f"+objective.trainer.per_device_train_batch_size={batch}", "+objective.trainer.learning_rate=1e-5"]
    with tempfile.TemporaryDirectory(prefix="ifforge-bench-") as tmp:
        stats = ifforge_run(Path(tmp), overrides, data)
    return {"model": model, "steps": steps, "batch": batch, "tokens_per_s": stats["tokens_per_second"],
            "peak_gpu_gib": round((stats["peak_memory"]["gpu_bytes"] or 0) / 2**30, 2),
            "precision": stats["precision"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tiny", help="a conf/model option (tiny, smollm2-135m-instruct, ...)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--gpu-model", default=None, help="also measure this 0.5B-1.5B model with ZeRO-2 on a GPU")
    ap.add_argument("--override", action="append", default=[], help="more ifforge overrides for both sides")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (CPU runs only)")
    opts = ap.parse_args()

    import torch

    if not torch.cuda.is_available():
        torch.set_num_threads(opts.threads)

    print(f"SFT throughput, {opts.model}, {opts.steps} steps x batch {opts.batch}, "
          f"{'cuda' if torch.cuda.is_available() else 'cpu'} ({os.cpu_count()} cores)", flush=True)
    result = compare(opts.model, opts.steps, opts.reps, opts.batch, opts.override)
    for kind, unit in (("wall", "tok/s"), ("cpu", "tok per CPU-s")):
        verdict = "ok" if result[f"ratio_{kind}"] >= 0.95 else "BELOW TARGET"
        print(f"median {kind}: ifforge {result[f'{kind}_ifforge']} {unit}, plain TRL {result[f'{kind}_plain']} "
              f"{unit}, ratio {result[f'ratio_{kind}']} (target >= 0.95: {verdict})")
    if opts.gpu_model:
        if torch.cuda.is_available():
            result["gpu_zero2"] = gpu_zero2(opts.gpu_model, opts.steps, opts.batch)
            print(f"GPU ZeRO-2: {result['gpu_zero2']}")
        else:
            print("GPU ZeRO-2: skipped, no CUDA device on this machine")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
