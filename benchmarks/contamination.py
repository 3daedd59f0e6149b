"""Time and peak memory of the contamination report (contamination.enabled): N synthetic training rows against
the local copies of IFEval, FollowBench and InFoBench, with the bundled all-MiniLM-L6-v2 on this CPU.

    .venv/bin/python benchmarks/contamination.py --rows 10000 --data ../shared/data

It runs what a build runs after assembly (ifforge.build.stats.contamination.apply: load the test sets with the
suites' loaders, encode every distinct text once, one matrix product per test set, top-k kept, the histograms and
contamination.json), without the LLM pass; then the same again as the next build of a sweep would (a fresh
model, the test sets' embeddings read from the artifact store's `embeddings/`). The training rows are made-up single-turn chats of varied length, a few
of them copied from IFEval so that the report has something to find. Printed: wall time per phase, the process's
CPU time, and its peak resident memory (ru_maxrss).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORDS = ("write explain list describe summarize compare translate rewrite the a of about with without in for to "
         "poem story email essay letter recipe plan table report review code function answer question bullet "
         "points words sentences paragraph formal casual short long french english json markdown title").split()


def synthetic_rows(n: int, copies: list, seed: int = 0) -> list:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        text = copies[i] if i < len(copies) else " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 60)))
        rows.append({"messages": [{"role": "user", "content": text},
                                  {"role": "assistant", "content": "An answer."}]})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=10000)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--top-k", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=None, help="contamination.batch_size (default: the config's)")
    args = ap.parse_args()

    from hydra import compose, initialize_config_dir

    from ifforge.build.augment import Assembly
    from ifforge.build.stats import contamination
    from ifforge.config import register_configs

    register_configs()
    d = Path(args.data).resolve()
    store = tempfile.TemporaryDirectory()
    with initialize_config_dir(config_dir=str(ROOT / "src" / "ifforge" / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[f"paths.artifacts={store.name}",
            "eval=[ifeval,followbench,infobench]", f"eval.ifeval.path={d}/ifeval/input_data.jsonl",
            f"eval.followbench.path={d}/followbench", f"eval.infobench.path={d}/infobench/infobench_500.jsonl",
            "contamination.enabled=true", f"contamination.top_k={args.top_k}"]
            + ([f"contamination.batch_size={args.batch_size}"] if args.batch_size else []))
    t0 = time.perf_counter()
    tests = contamination.load_test_sets(cfg)
    t_load = time.perf_counter() - t0
    copies = tests["ifeval"][:5]
    timings = []
    for _ in ("cold", "warm"):
        assembly = Assembly({"sft": synthetic_rows(args.rows, copies)})
        with tempfile.TemporaryDirectory() as out:
            t1 = time.perf_counter()
            contamination.apply(cfg, assembly, Path(out), None)
            timings.append(time.perf_counter() - t1)
    store.cleanup()
    t_report = timings[0]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    report = assembly.stats["contamination"]
    result = {"rows": args.rows, "batch_size": int(cfg.contamination.batch_size),
              "test_items": {n: e["items"] for n, e in report["test_sets"].items()},
              "load_test_sets_s": round(t_load, 2), "report_s": round(t_report, 2),
              "total_s": round(t_load + t_report, 2), "next_build_of_a_sweep_s": round(timings[1], 2),
              "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
              "peak_rss_mib": round(usage.ru_maxrss / 1024), "top_k": args.top_k,
              "mean_max_similarity": {n: e["mean_max_similarity"] for n, e in report["test_sets"].items()},
              "ifeval_items_at_0.9_or_more": report["test_sets"]["ifeval"]["histogram"]["0.9..1.0"]}
    print(json.dumps(result, indent=1))
    if result["total_s"] > 120:
        sys.exit("over the 2-minute budget")


if __name__ == "__main__":
    main()
