"""Structured outputs with the embedded SmolLM2-135M (`hf_local`, CPU): what `generator.structured=json` buys.

Two parts, both printed as markdown for benchmarks/README.md:

1. Builds on the packaged demo seeds, `structured=off` then `json`, each with a fresh cache: DeMoRecon (E.2/E.3,
   direct answers) and Conifer (levels and seeds reduced so that it ends in minutes on 2 cores). Rows per split,
   replies each structured step could not read, wall time.
2. Decoding speed, free vs constrained, on one decomposition prompt: seconds per generated token, greedy, one
   row, first call (schema compiled) and best of the warm calls.

    .venv/bin/python benchmarks/structured_outputs.py [--seeds 24] [--conifer-seeds 6] [--only DeMoRecon|Conifer]
        [--modes off,json] [--skip-builds] [--skip-speed]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def build(tmp: Path, structured: str, args: list[str]) -> dict:
    out = tmp / f"{structured}-{abs(hash(tuple(args)))}"
    cmd = [sys.executable, "-m", "ifforge", "stages=[build]", "generator=hf_local", f"generator.structured={structured}",
           f"paths.artifacts={out / 'artifacts'}", f"paths.cache={out / 'cache.sqlite'}", f"hydra.run.dir={out / 'run'}",
           *args]
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        return {"wall": wall, "error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    art = json.loads((out / "run" / "outputs.json").read_text())["build"]
    stats = json.loads((Path(art) / "manifest.json").read_text())["stats"]
    return {"wall": wall, "splits": stats["splits"], "replies": stats.get("replies", {}),
            "tokens": stats["generator"]["completion_tokens"]}


RUNS = {
    "DeMoRecon": ["generator.max_tokens=320", "augmentation=decompose_modify_reconstruct",
                  "augmentation.eval_split.num_seeds=0", "augmentation.stats.enabled=false", "response=direct"],
    # A 135M model does not grow its levels by the paper's rule: check_growth=false keeps what it writes.
    "Conifer": ["generator.max_tokens=320", "augmentation=reframe_constrain_recombine", "augmentation.levels=2",
                "augmentation.reframe.max_forms=2", "augmentation.reframe.min_forms=1",
                "augmentation.format_numeric.sample=0.25", "augmentation.recombine.check_growth=false", "response=direct"],
}


def report_builds(n_seeds: int, conifer_seeds: int, modes=("off", "json"), only=None) -> None:
    runs = {name: [f"seeds.limit={n_seeds if name == 'DeMoRecon' else conifer_seeds}", "generator.batch_size=8",
                   *args] for name, args in RUNS.items() if only is None or name == only}
    print("| strategy | structured | rows per split | unreadable replies per step | completion tokens | wall |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="ifforge-structured-") as tmp:
        for name, args in runs.items():
            for structured in modes:
                r = build(Path(tmp), structured, args)
                if "error" in r:
                    print(f"| {name} | {structured} | failed: {r['error'][:160]} | | | {r['wall']:.0f} s |")
                    continue
                replies = ", ".join(f"{k} {v['unreadable']}/{v['replies']}" for k, v in r["replies"].items()) or "-"
                splits = ", ".join(f"{k} {v}" for k, v in r["splits"].items())
                print(f"| {name} | {structured} | {splits} | {replies} | {r['tokens']} | {r['wall']:.0f} s |",
                      flush=True)


def report_speed(repeats: int = 3) -> None:
    from omegaconf import OmegaConf

    from ifforge.build.demorecon.steps import Decompose
    from ifforge.config import GeneratorConfig
    from ifforge.llm import make_generator

    step = Decompose({}, None, None)
    row = {"seed_id": "a", "instruction": "Write a haiku about autumn leaves. Use the word 'amber'. No rhymes."}
    print("\n| decoding | first call | best warm call | tokens |")
    print("|---|---|---|---|")
    for structured in ("off", "json"):
        cfg = OmegaConf.structured(GeneratorConfig(name="hf_local", model="smollm2-135m-instruct", max_tokens=128,
                                                   batch_size=1, structured=structured, cache=False))
        gen = make_generator(cfg, None, role="generator")
        per_token = []
        for k in range(repeats + 1):
            # A distinct seed per call keeps the (disabled) cache honest and the prompt the same.
            request = step.request(row, [row], structured == "json")
            started = time.perf_counter()
            result = gen.generate([request])[0]
            tokens = result.samples[0].completion_tokens
            per_token.append((time.perf_counter() - started) / max(1, tokens))
        gen.close()
        print(f"| {structured} | {per_token[0]:.3f} s/token | {min(per_token[1:]):.3f} s/token | {tokens} |",
              flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=24)
    ap.add_argument("--conifer-seeds", type=int, default=6)
    ap.add_argument("--skip-builds", action="store_true")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--only", choices=sorted(RUNS), help="one strategy's builds")
    ap.add_argument("--modes", default="off,json", help="structured modes to build, comma-separated")
    a = ap.parse_args()
    if not a.skip_builds:
        report_builds(a.seeds, a.conifer_seeds, tuple(a.modes.split(",")), a.only)
    if not a.skip_speed:
        report_speed()


if __name__ == "__main__":
    main()
