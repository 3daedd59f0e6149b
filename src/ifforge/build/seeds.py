"""Seed loaders (`seeds` group: jsonl, hf, sharegpt; one `SeedSource` each in SEED_SOURCES) and the selection
options every loader shares.

Each seed becomes {"seed_id", "instruction"}. Selection order: selection rules -> dedupe -> seeded sample ->
limit; every seed dropped on the way goes to rejects with the reason. A seed whose id another seed already has is
rejected ("duplicate seed id"), never merged: variants, groups and splits are keyed by it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from ifforge.build.sampling import rng
from ifforge.errors import UserError
from ifforge.jsonl import read_jsonl
from ifforge.registry import Registry

Row = Dict[str, Any]
Reject = Callable[[Row, str], None]


SEED_SOURCES = Registry("seeds loader")


def _file_records(path: Path) -> Iterable[Tuple[int, Row, str]]:
    if path.suffix != ".json":
        for i, rec in enumerate(read_jsonl(path, what="seeds file")):
            yield i, rec, f"{path} record {i + 1}"
        return
    if not path.is_file():
        raise UserError(f"seeds file not found: {path} (set seeds.path)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text; convert the file, e.g. iconv -f latin1 -t utf-8") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(data, list):
        raise UserError(f"{path}: expected a JSON list of records")
    for i, rec in enumerate(data):
        yield i, rec, f"{path} item {i}"


def _hub_records(cfg: Any) -> Iterable[Tuple[int, Row, str]]:
    if not cfg.hf_name:
        raise UserError(f"seeds={cfg.name} needs seeds.hf_name (a datasets name) or seeds.path (a local file)")
    import datasets

    try:
        ds = datasets.load_dataset(cfg.hf_name, cfg.hf_config, split=cfg.split)
    except Exception as e:  # the hub, a missing split, no network: all user-fixable
        raise UserError(f"could not load seeds {cfg.hf_name!r} (split {cfg.split!r}): {str(e).splitlines()[0]}") from None
    for i, rec in enumerate(ds):
        yield i, rec, f"{cfg.hf_name}[{i}]"


class SeedSource:
    """Where records come from (`records`) and where a record keeps its instruction (`text`)."""

    def records(self, cfg: Any) -> Iterable[Tuple[int, Row, str]]:
        return _file_records(Path(cfg.path)) if cfg.path else _hub_records(cfg)

    def check(self, cfg: Any) -> None:
        """The cheap part of loading, run before any work: is there a source at all?"""
        if cfg.path and not Path(cfg.path).is_file():
            raise UserError(f"seeds file not found: {cfg.path} (set seeds.path)")
        if not cfg.path and not cfg.hf_name:
            raise UserError(f"seeds={cfg.name} needs seeds.hf_name (a datasets name) or seeds.path (a local file)")

    def text(self, rec: Row, cfg: Any, where: str) -> Tuple[Optional[Any], str]:
        """(the instruction, "") or (None, why the record has none); raise UserError when no record could have."""
        if cfg.field not in rec:
            raise UserError(f"{where}: no field {cfg.field!r} (fields: {sorted(rec)}); set seeds.field")
        return rec[cfg.field], ""


@SEED_SOURCES.register("jsonl")
class JsonlSeeds(SeedSource):
    def check(self, cfg: Any) -> None:
        if not cfg.path:
            raise UserError("seeds=jsonl needs seeds.path=FILE.jsonl")
        super().check(cfg)


@SEED_SOURCES.register("hf")
class HubSeeds(SeedSource):
    def records(self, cfg: Any) -> Iterable[Tuple[int, Row, str]]:
        return _hub_records(cfg)  # seeds.path is a data file the hub dataset reads, not records


@SEED_SOURCES.register("sharegpt")
class ShareGptSeeds(SeedSource):
    def text(self, rec: Row, cfg: Any, where: str) -> Tuple[Optional[Any], str]:
        turns = rec.get(cfg.conversations_field)
        if isinstance(turns, list):
            for turn in turns:
                if not isinstance(turn, dict):
                    break
                if turn.get("from", turn.get("role")) in ("human", "user"):
                    text = turn.get("value", turn.get("content"))
                    if text is not None:
                        return text, ""
                    break
        return None, f"no human turn in {cfg.conversations_field!r} (expected a list of {{from, value}} turns)"


def source(cfg: Any) -> SeedSource:
    return SEED_SOURCES.get(str(cfg.name))()


def records(cfg: Any) -> Iterable[Tuple[int, Row, str]]:
    """(position, record, where) for the configured source; `where` names the line for error messages."""
    src = source(cfg)
    src.check(cfg)
    return src.records(cfg)


def check_seeds_source(cfg: Any) -> None:
    source(cfg).check(cfg)


def _english(text: str) -> bool:
    from langdetect import DetectorFactory, LangDetectException, detect

    DetectorFactory.seed = 0  # langdetect is random unless seeded
    try:
        return detect(text) == "en"
    except LangDetectException:
        return False


def selection_reason(text: str, cfg: Any, seen: Dict[str, str], item_id: str, subject: str = "",
                     key: str = "") -> Optional[str]:
    """Why `text` fails the selection rules (length, words, language, duplicate), or None when it passes (and is
    then remembered for dedupe). Shared by seed loading and Conifer's mix loading: `subject` names the text in
    the reason ("first turn "), `key` prefixes the option names ("seeds.")."""
    if cfg.max_chars is not None and len(text) > cfg.max_chars:
        return f"{subject}longer than {key}max_chars={cfg.max_chars}"
    if cfg.min_words is not None and len(text.split()) < cfg.min_words:
        return f"{subject}has fewer than {key}min_words={cfg.min_words} words"
    if cfg.english_only and not _english(text):
        return f"{subject}not English ({key}english_only)"
    if cfg.dedupe:
        key = " ".join(text.lower().split())
        if key in seen:
            return f"duplicate of {seen[key]}"
        seen[key] = item_id
    return None


def load_seeds(cfg: Any, reject: Reject) -> List[Row]:
    seeds: List[Row] = []
    seen: Dict[str, str] = {}
    ids: Dict[str, str] = {}  # seed id -> where it was first read
    src = source(cfg)
    for pos, rec, where in records(cfg):
        if not isinstance(rec, dict):
            reject({"record": where}, f"not a JSON object ({type(rec).__name__})")
            continue
        text, why = src.text(rec, cfg, where)
        if why:
            reject({"record": where}, why)
            continue
        seed_id = str(rec[cfg.id_field]) if cfg.id_field and cfg.id_field in rec else str(rec.get("id", pos))
        row = {"seed_id": seed_id, "instruction": text}
        if not isinstance(text, str) or not text.strip():
            reject(row, "empty instruction")
            continue
        text = text.strip()
        row["instruction"] = text
        if seed_id in ids:  # variants, groups and splits are keyed by seed id: a second one would merge silently
            reject(row, f"duplicate seed id {seed_id!r} (first used by {ids[seed_id]}); ids must be unique")
            continue
        why = selection_reason(text, cfg, seen, f"seed {seed_id}", key="seeds.")
        if why:
            reject(row, why)
            continue
        ids[seed_id] = where
        seeds.append(row)
    if cfg.sample is not None and cfg.sample < len(seeds):
        keep = set(rng(cfg.seed).sample(range(len(seeds)), cfg.sample))
        seeds = [s for i, s in enumerate(seeds) if i in keep]  # keep the file's order
    if cfg.limit is not None:
        seeds = seeds[: cfg.limit]
    if not seeds:
        raise UserError(f"no usable seeds from {cfg.path or cfg.hf_name} (check seeds.field and selection options)")
    return seeds
