"""Start-up cost of the `ifforge` command: `--help`, and a plain build whose answers are already known.

    .venv/bin/python benchmarks/startup.py --repeat 5 --seeds 1000

Every figure is the wall time of a whole `python -m ifforge ...` process (interpreter start, imports, Hydra
composition, the stage, saving), the way a user meets it; the median of --repeat runs is printed, with the load
average, since a busy 2-core machine stretches every figure, and the CPU time (user + system) the process used,
which a busy machine stretches much less. The plain build is `stages=[build]
augmentation=none response=direct generator=openai` over N synthetic seeds against the scripted test server
(tests/helpers/openai_server.py, its own process, no latency):

- cold: a fresh artifact store and response cache (every answer is requested; one run, not repeated);
- cache: a fresh artifact store, the response cache of the cold run (every answer comes from the cache);
- reuse: the same command again (the finished build artifact is found and reused).

`--modules` also prints which heavy frameworks each case imported (from `-X importtime`).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]  # tests.helpers, runnable from a checkout

from tests.helpers.openai_server import spawn_server  # noqa: E402

KEY_ENV = "IFFORGE_BENCH_API_KEY"  # a dummy key of its own, so a real OPENAI_API_KEY is never sent anywhere
HEAVY = ("torch", "transformers", "datasets", "openai", "trl", "pyarrow", "pandas", "wandb", "sklearn")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def ifforge(args: list[str], env: dict, modules: bool = False) -> tuple[float, float, list[str]]:
    """Run `python -m ifforge ARGS`; (wall seconds, CPU seconds, heavy top-level packages imported when
    `modules`)."""
    cmd = [sys.executable, *(["-X", "importtime"] if modules else []), "-m", "ifforge", *args]
    start, cpu = time.perf_counter(), _children_cpu()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - start, _children_cpu() - cpu
    if proc.returncode != 0:
        raise SystemExit(f"ifforge {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    imported = set()
    for line in proc.stderr.splitlines() if modules else ():
        if line.startswith("import time:") and "|" in line:
            imported.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return wall, cpu, sorted(h for h in HEAVY if h in imported)


def report(name: str, runs: list[tuple[float, float]], heavy: list[str] | None) -> None:
    walls = [w for w, _ in runs]
    spread = f" (min {min(walls):.2f}, max {max(walls):.2f}, n={len(walls)})" if len(walls) > 1 else ""
    cpu = statistics.median(c for _, c in runs)
    extra = "" if heavy is None else f"  heavy imports: {', '.join(heavy) or 'none'}"
    print(f"{name:<28} {statistics.median(walls):6.2f} s wall{spread}, {cpu:.2f} s CPU{extra}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seeds", type=int, default=1000)
    ap.add_argument("--modules", action="store_true", help="also list the heavy packages each case imports")
    args = ap.parse_args()
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", WANDB_MODE="offline")
    env[KEY_ENV] = "bench-not-a-key"
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)

    def measured(name: str, make_args, repeat: int) -> None:
        """`make_args()` gives each run its arguments (a case may need a fresh artifact store every time)."""
        runs = [ifforge(make_args(), env)[:2] for _ in range(repeat)]
        heavy = ifforge(make_args(), env, modules=True)[2] if args.modules else None
        report(name, runs, heavy)

    measured("ifforge --help", lambda: ["--help"], args.repeat)
    with tempfile.TemporaryDirectory(prefix="ifforge-startup-") as tmp, spawn_server() as srv:
        tmp_path = Path(tmp)
        seeds = tmp_path / "seeds.jsonl"
        seeds.write_text("".join(json.dumps({"id": f"s{i}", "instruction": f"Write a haiku about the number {i}."})
                                 + "\n" for i in range(args.seeds)), encoding="utf-8")
        cache = tmp_path / "llm_cache.sqlite"
        base = ["stages=[build]", "seeds=jsonl", f"seeds.path={seeds}", "augmentation=none", "response=direct",
                "generator=openai", f"generator.base_url={srv.url}", "generator.model=test-model",
                f"generator.api_key_env={KEY_ENV}", f"paths.cache={cache}", f"hydra.run.dir={tmp_path / 'run'}"]
        reused = [*base, f"paths.artifacts={tmp_path / 'artifacts'}"]
        report(f"plain build cold ({args.seeds})", [ifforge(reused, env)[:2]], None)
        fresh = iter(range(10**6))
        # An empty artifact store each time: the build is made again, every answer from the response cache.
        measured(f"plain build cache ({args.seeds})",
                 lambda: [*base, f"paths.artifacts={tmp_path / f'artifacts-{next(fresh)}'}"], args.repeat)
        measured(f"plain build reuse ({args.seeds})", lambda: reused, args.repeat)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)


if __name__ == "__main__":
    main()
