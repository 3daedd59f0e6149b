"""Generator throughput against a local OpenAI-compatible server with a fixed latency.

    .venv/bin/python benchmarks/generator_throughput.py --n 2000 --latency 0.5 --concurrency 64

The server runs in its own process (tests/helpers/openai_server.py), so the CPU time reported here is the
client's alone: the `openai` backend, the SDK, the generator layer and its SQLite cache writes. Prints the wall
time against the ideal N * L / C, client CPU per request, and the time to answer the same N requests again from
the response cache.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]  # runnable from a checkout without installing

from omegaconf import OmegaConf  # noqa: E402

from ifforge.config import GeneratorConfig  # noqa: E402
from ifforge.llm import ChatRequest, make_generator  # noqa: E402
from tests.helpers.openai_server import spawn_server  # noqa: E402

KEY_ENV = "IFFORGE_BENCH_API_KEY"  # a dummy key of its own, so a real OPENAI_API_KEY is never sent anywhere


def requests(n: int) -> list[ChatRequest]:
    # Distinct prompts of a realistic size (~400 chars), so every one is its own cache entry.
    filler = "Rewrite the instruction so that it carries one more verifiable constraint. " * 5
    return [ChatRequest(messages=[{"role": "system", "content": "You are a careful data generator."},
                                  {"role": "user", "content": f"#{i}: {filler}"}]) for i in range(n)]


def timed(gen, reqs) -> tuple[float, float, list]:
    wall, cpu = time.perf_counter(), time.process_time()
    results = gen.generate(reqs, desc="bench")
    return time.perf_counter() - wall, time.process_time() - cpu, results


def start_profiling(gen):
    """cProfile both the calling thread and the backend's event-loop thread, where the requests run. The loop
    thread starts with the first request, so profiling sends one warm-up request first (not in the figures)."""
    import cProfile

    gen.generate([ChatRequest(messages=[{"role": "user", "content": "warm-up"}])], desc="warm-up")
    # thread_time: CPU seconds of each thread, so waiting and preemption by other processes do not count.
    main_prof, loop_prof = cProfile.Profile(time.thread_time), cProfile.Profile(time.thread_time)
    loop = gen.backend._loop.loop  # the openai backend's private loop: a benchmark may look inside
    loop.call_soon_threadsafe(loop_prof.enable)
    main_prof.enable()
    return main_prof, loop_prof


def stop_profiling(gen, profilers, path: str) -> None:
    import pstats
    import threading

    main_prof, loop_prof = profilers
    main_prof.disable()
    done = threading.Event()
    gen.backend._loop.loop.call_soon_threadsafe(lambda: (loop_prof.disable(), done.set()))
    done.wait(10)
    stats = pstats.Stats(main_prof)
    stats.add(loop_prof)
    stats.dump_stats(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--latency", type=float, default=0.5, help="server seconds per request")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--profile", metavar="FILE", help="write a cProfile of the timed run to FILE")
    args = ap.parse_args()
    os.environ[KEY_ENV] = "bench-not-a-key"

    with spawn_server(latency=args.latency) as server, tempfile.TemporaryDirectory() as tmp:
        cfg = OmegaConf.structured(GeneratorConfig(name="openai", model="bench-model", base_url=server.url,
                                                   api_key_env=KEY_ENV, max_concurrency=args.concurrency,
                                                   timeout=60.0))
        gen = make_generator(cfg, cache_path=str(Path(tmp) / "cache.sqlite"))  # fresh cache: every call is sent
        reqs = requests(args.n)
        profilers = start_profiling(gen) if args.profile else None
        server_cpu = server.cpu_seconds()
        wall, cpu, results = timed(gen, reqs)
        if server_cpu is not None:
            server_cpu = server.cpu_seconds() - server_cpu
        if profilers:
            stop_profiling(gen, profilers, args.profile)
        failed = sum(not r.ok for r in results)
        ideal = args.n * args.latency / args.concurrency
        cached_wall, _, again = timed(gen, reqs)  # identical requests: all answered by the cache
        hits = sum(all(s.cached for s in r.samples) for r in again)
        gen.close()

    print(f"N={args.n} L={args.latency:g}s C={args.concurrency}: ideal {ideal:.2f} s, achieved {wall:.2f} s, "
          f"ratio {wall / ideal:.3f}, client CPU {cpu / args.n * 1000:.2f} ms/req "
          f"({cpu:.2f} s), failed {failed}, retries {gen.stats.retries}")
    if server_cpu is not None:  # the server shares the 2 cores: at small L it can be the ceiling, not the client
        print(f"server CPU {server_cpu / args.n * 1000:.2f} ms/req ({server_cpu:.2f} s)")
    print(f"rerun from cache: {cached_wall:.3f} s for {args.n} requests ({hits} cache hits)")


if __name__ == "__main__":
    main()
