"""Benchmark contamination of a build (Conifer section 4.5, Table 5, Figure 3), and an optional decontamination.

Every distinct training instruction and every test instruction is encoded once with the sentence model
(all-MiniLM-L6-v2 by default, unit-length vectors), then one matrix product per test set gives all cosine
similarities; only each test item's top-k training instructions and each training instruction's highest score are
kept. The optional LLM pass asks the judge whether each of those top-k pairs is a rephrasing (Yang et al., 2023,
as the paper does with GPT-4): Table 5 reports the percentage of test items with a rephrased training item.
`drop_above` removes every training row holding an instruction at or above that similarity to any test item.

The test instructions come from the run's eval suites (their loaders and local copies), so the report checks the
build against exactly the benchmarks it will be scored on.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ifforge.errors import UserError

log = logging.getLogger("ifforge")
Row = Dict[str, Any]
STEP = "contamination"
# Keys of a suite's config that choose which test items it loads: the benchmark half of the fingerprint.
SUITE_DATA_KEYS = ("name", "path", "hf_name", "hf_data_files", "split", "categories")


def instructions(row: Row) -> List[str]:
    """The user turns of a training row, whatever its split's shape (messages, a DPO prompt, a bare instruction)."""
    for key in ("messages", "prompt"):
        value = row.get(key)
        if isinstance(value, list):
            return [m["content"] for m in value if isinstance(m, dict) and m.get("role") == "user"]
        if isinstance(value, str):
            return [value]
    return [row["instruction"]] if isinstance(row.get("instruction"), str) else []


def benchmark_nodes(cfg: Any) -> Dict[str, Any]:
    """{suite name: its eval config}, the suites the contamination report checks (all of the run's by default)."""
    evals = dict(cfg.get("eval") or {})
    wanted = cfg.contamination.suites
    names = list(evals) if wanted is None else list(wanted)
    missing = [n for n in names if n not in evals]
    if missing:
        raise UserError(f"contamination.suites names {missing}, which this run does not evaluate "
                        f"(eval: {sorted(evals)}); add them to eval=[...]")
    if not names:
        raise UserError("contamination.enabled needs test sets: the run has no eval suites (eval=[ifeval, ...])")
    return {n: evals[n] for n in names}


def fingerprint(cfg: Any) -> Dict[str, Any]:
    """What can change the report or the rows it drops (not the device or batch size)."""
    from ifforge.pipeline import plain

    c = plain(cfg.contamination)
    for key in ("device", "batch_size"):
        c.pop(key, None)
    # suites: the test sets resolved below say which ones; null (the run's suites) or named alike, the same build
    # (kept as null rather than dropped, so builds fingerprinted with suites: null before stay valid)
    c["suites"] = None
    c["benchmarks"] = {n: {k: plain(node).get(k) for k in SUITE_DATA_KEYS}
                       for n, node in benchmark_nodes(cfg).items()}
    return c


def load_test_sets(cfg: Any) -> Dict[str, List[str]]:
    """{suite: its test instructions}, read with the suites' own loaders over the whole test set (no eval limit)."""
    from omegaconf import OmegaConf

    from ifforge.evaluate.suite import SuiteContext
    from ifforge.evaluate import SUITES
    from ifforge.registry import discover

    discover("ifforge.evaluate.suites")
    out = {}
    for name, node in benchmark_nodes(cfg).items():
        node = OmegaConf.merge(node, {"limit": None})
        none = lambda: None  # noqa: E731 - loading a test set asks no model
        items = SUITES.get(str(node.name))(node, SuiteContext(candidate=none, judge=none)).load()
        out[name] = list(dict.fromkeys(it.prompt for it in items))
    return out


def similarities(train: Sequence[str], tests: Dict[str, List[str]], embed: Any, top_k: int,
                 embed_tests: Any = None) -> Tuple[Dict[str, Any], Any]:
    """Per test set: each test item's top-k (training index, cosine) pairs, best first; and each training
    instruction's highest cosine to any test item (a numpy vector). `embed(texts)` returns unit-length rows (the
    distinct `train` texts, encoded once); `embed_tests` the test sets' (default: `embed`)."""
    import numpy as np

    train_m = embed(list(train))
    highest = np.full(len(train), -1.0, dtype=np.float32)
    per_set: Dict[str, Any] = {}
    k = min(top_k, len(train))
    for name, texts in tests.items():
        sims = (embed_tests or embed)(texts) @ train_m.T  # (tests, train): the one product per test set
        if len(train):
            np.maximum(highest, sims.max(axis=0), out=highest)
            top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            order = np.take_along_axis(sims, top, axis=1).argsort(axis=1)[:, ::-1]
            top = np.take_along_axis(top, order, axis=1)
            per_set[name] = [[(int(j), float(sims[i, j])) for j in row] for i, row in enumerate(top)]
        else:
            per_set[name] = [[] for _ in texts]
    return per_set, highest


def rephrase_pass(pairs: Sequence[Tuple[str, str]], generator: Any, override: Optional[str]) -> List[Optional[bool]]:
    """The judge's verdict on each (test, train) pair: True when rephrased, None when unreadable or failed."""
    from ifforge.evaluate.judge import VERDICT, ask, parse_verdict, structured
    from ifforge.prompts import render

    on = structured(generator)
    prompts = [render("contamination/rephrase.j2", override, test=t, train=r, structured=on) for t, r in pairs]
    return [parse_verdict(a["text"]) for a in ask(generator, prompts, "contamination", shape=VERDICT)]


def run(cfg: Any, splits: Dict[str, List[Row]], out: Path, embed: Any, tests: Dict[str, List[str]],
        judge: Any = None, embed_tests: Any = None) -> Tuple[Dict[str, List[Row]], Dict[str, Any]]:
    """The report (contamination.json, figures) and the splits with contaminated rows dropped when asked."""
    import numpy as np

    from ifforge.artifacts import write_json_atomic

    c = cfg.contamination
    train = list(dict.fromkeys(t for rows in splits.values() for r in rows for t in instructions(r)))
    per_set, highest = similarities(train, tests, embed, int(c.top_k), embed_tests)
    verdicts: Dict[str, List[List[Optional[bool]]]] = {}
    if c.llm and judge is not None:
        pairs = [(name, i, pos, j) for name, tops in per_set.items() for i, top in enumerate(tops)
                 for pos, (j, _) in enumerate(top)]
        flat = rephrase_pass([(tests[n][i], train[j]) for n, i, _, j in pairs], judge, c.templates.get("rephrase"))
        verdicts = {name: [[None] * len(top) for top in tops] for name, tops in per_set.items()}
        for (name, i, pos, _), v in zip(pairs, flat):
            verdicts[name][i][pos] = v
        if flat and all(v is None for v in flat):  # as in eval: a judge that read nothing makes any rate an artefact
            from ifforge.errors import StageFailed

            raise StageFailed(f"contamination: the judge gave no readable verdict on {len(flat)} pairs; a stronger "
                              f"judge (judge=...), contamination.llm=false, or judge.cache=refresh if the endpoint "
                              f"served wrong answers")
    report: Dict[str, Any] = {"model": str(c.embedding_model), "top_k": int(c.top_k), "train_instructions": len(train),
                              "test_sets": {}}
    for name, tops in per_set.items():
        best = [top[0][1] for top in tops if top]
        entry: Dict[str, Any] = {
            "items": len(tops),
            "mean_max_similarity": round(float(np.mean(best)), 4) if best else None,
            "max_similarity": round(max(best), 4) if best else None,
            "histogram": _histogram(best),
            "top": [{"test": tests[name][i], "matches": [
                {"train": train[j], "similarity": round(s, 4),
                 **({"rephrased": verdicts[name][i][p]} if name in verdicts else {})} for p, (j, s) in enumerate(top)]}
                    for i, top in enumerate(tops)],
        }
        if c.drop_above is not None:
            entry["items_at_or_above_threshold"] = sum(b >= float(c.drop_above) for b in best)
        if name in verdicts:
            flagged = [any(v is True for v in vs) for vs in verdicts[name]]
            unread = sum(v is None for vs in verdicts[name] for v in vs)
            entry["rephrased_items"] = sum(flagged)
            entry["rephrased_pct"] = round(100.0 * sum(flagged) / len(flagged), 2) if flagged else None
            entry["unreadable_verdicts"] = unread
        report["test_sets"][name] = entry
    kept = splits
    if c.drop_above is not None:
        bad = {t for t, h in zip(train, highest) if h >= float(c.drop_above)}
        kept = {s: [r for r in rows if not bad.intersection(instructions(r))] for s, rows in splits.items()}
        report["dropped"] = {"threshold": float(c.drop_above), "instructions": len(bad),
                             "rows": {s: len(splits[s]) - len(kept[s]) for s in splits}}
    report["figures"] = write_histograms(out / "figures", {n: [t[0][1] for t in tops if t]
                                                           for n, tops in per_set.items()})
    write_json_atomic(out / "contamination.json", report)
    return kept, report


def _histogram(values: Sequence[float], bins: int = 10) -> Dict[str, int]:
    """Counts of each test item's highest similarity in bins of 0.1 over [-0.1, 1] (negative cosines are rare)."""
    edges = [round(-0.1 + 0.1 * i, 1) for i in range(bins + 2)]
    counts = {f"{lo:.1f}..{hi:.1f}": 0 for lo, hi in zip(edges, edges[1:])}
    for v in values:
        i = min(max(math.floor(round((v + 0.1) * 10, 6)), 0), len(counts) - 1)  # 0.3 is in 0.3..0.4, not below
        counts[list(counts)[i]] += 1
    return counts


def write_histograms(folder: Path, series: Dict[str, List[float]]) -> List[str]:
    """Figure 3: one PNG per test set, the distribution of each test item's highest similarity to the training
    instructions; paths relative to the artifact directory."""
    from ifforge.build.stats.figures import save_figure

    def draw(values: List[float]):
        def on(ax: Any) -> None:
            ax.hist(values, bins=[i / 20 for i in range(-2, 21)], color="#3b7dd8")
            ax.set_xlim(-0.1, 1.0)
        return on

    return [save_figure(folder, f"contamination_{name}.png", draw(values),
                        f"{name}: highest cosine similarity to training", "test items", "cosine similarity")
            for name, values in series.items() if values]


def card_section(report: Dict[str, Any]) -> str:
    """Table 5's shape: one row per test set, with the similarity figures next to it."""
    sets = report["test_sets"]
    llm = any("rephrased_pct" in e for e in sets.values())
    lines = ["## Contamination", "",
             f"Cosine similarity ({report['model']}) between the {report['train_instructions']} distinct training "
             f"instructions and each test set's instructions (Conifer section 4.5); details in `contamination.json`.",
             "", "| test set | items | mean highest similarity | highest | " + ("rephrased (LLM) |" if llm else ""),
             "|---|---|---|---|" + ("---|" if llm else "")]
    for name, e in sets.items():
        cells = [name, str(e["items"]), _fmt(e["mean_max_similarity"]), _fmt(e["max_similarity"])]
        if llm:
            cells.append(f"{e['rephrased_pct']}% ({e['unreadable_verdicts']} unreadable)"
                         if e.get("rephrased_pct") is not None else "-")
        lines.append("| " + " | ".join(cells) + " |")
    if "dropped" in report:
        d = report["dropped"]
        per = ", ".join(f"{s} {n}" for s, n in d["rows"].items())
        lines += ["", f"Decontaminated: {d['instructions']} training instructions at or above similarity "
                      f"{d['threshold']} to a test item; rows dropped: {per}."]
    if report.get("figures"):
        lines += [""] + [f"![{Path(f).stem}]({f})" for f in report["figures"]]
    return "\n".join(lines) + "\n"


def _fmt(x: Optional[float]) -> str:
    return "-" if x is None else f"{x:.3f}"


def uses_judge(cfg: Any) -> bool:
    return bool(cfg.contamination.enabled and cfg.contamination.llm)


def check(cfg: Any) -> None:
    """One-line errors for option values that mean nothing, and for test sets the run does not have."""
    c = cfg.contamination
    if int(c.top_k) < 1:
        raise UserError(f"contamination.top_k must be >= 1 (got {c.top_k})")
    if c.drop_above is not None and not -1.0 <= float(c.drop_above) <= 1.0:
        raise UserError(f"contamination.drop_above must be a cosine similarity in [-1, 1] or null (got {c.drop_above})")
    unknown = sorted(set(c.templates) - {"rephrase"})
    if unknown:
        raise UserError(f"contamination.templates: unknown {unknown}; the one template is `rephrase`")
    benchmark_nodes(cfg)


def kept_on_disk(embedder: Any, texts: List[str], folder: Path) -> Any:
    """A test set's embeddings, encoded once per model and kept under the artifact store: the builds of a sweep
    check against the same test sets (FollowBench alone costs ~35 s to encode on 2 CPU cores)."""
    import hashlib

    import numpy as np

    key = hashlib.sha256("\0".join([embedder.name, *texts]).encode("utf-8")).hexdigest()[:32]
    path = folder / f"{key}.npy"
    if path.is_file():
        vectors = np.load(path)
        if vectors.shape[0] == len(texts):
            return vectors
    vectors = embedder.encode(texts)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # jobs of a sweep may write the same file at once
    with tmp.open("wb") as f:
        np.save(f, vectors)
    os.replace(tmp, path)
    return vectors


def apply(cfg: Any, assembly: Any, out: Path, judge: Any) -> None:
    """The build stage's entry, after assembly: load the test sets, encode, report (contamination.json, figures,
    the manifest's summary, the card's section) and drop contaminated rows from the splits when asked."""
    from ifforge.build.stats.embeddings import Embedder

    c = cfg.contamination
    tests = load_test_sets(cfg)
    embedder = Embedder(str(c.embedding_model), device=str(c.device), batch_size=int(c.batch_size))
    folder = Path(str(cfg.paths.artifacts)) / "embeddings"
    assembly.splits, report = run(cfg, assembly.splits, out, embedder.encode, tests, judge,
                                  lambda texts: kept_on_disk(embedder, texts, folder))
    assembly.stats["contamination"] = {**report, "test_sets": {  # the pairs themselves stay in contamination.json
        n: {k: v for k, v in e.items() if k != "top"} for n, e in report["test_sets"].items()}}
    assembly.card += "\n" + card_section(report)
    log.info("[build] contamination: %s%s", ", ".join(f"{n} mean {e['mean_max_similarity']}"
                                                      for n, e in report["test_sets"].items()),
             f"; dropped {report['dropped']['rows']}" if "dropped" in report else "")
