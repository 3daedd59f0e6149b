"""The judged benchmarks' own files (judge prompts, reference answers, scoring code), fetched at run time.

`protocol: reference` scores a suite the way its authors do. What that takes is read from the benchmark's own
repository at a pinned commit, never copied into ifforge: downloaded once into `~/.cache/ifforge/reference/` (or
`$IFFORGE_HOME/reference/`) and checked against a SHA-256, or read from a local copy of the same files laid out
as `<dir>/<repo folder>/<path>` (`paths.reference`, or the environment variable IFFORGE_REFERENCE_DIR), which is
what offline machines and the tests use. Constants of the official Python files (a system message, the score
regexes, the temperature table) are read with `ast`, without running the file: it imports packages (openai,
fastchat, tiktoken) that scoring does not need.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
import tempfile
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

from ifforge.errors import UserError


@dataclass(frozen=True)
class Source:
    folder: str  # the folder name of a local copy
    repo: str  # owner/name on GitHub
    commit: str
    sha256: Dict[str, str]  # path in the repository -> SHA-256 of the pinned file


SOURCES = {
    "FastChat": Source("FastChat", "lm-sys/FastChat", "0e6d3e4beaab66f4d3f93db72541a4abab8af28d", {
        "fastchat/llm_judge/common.py": "71c3b317322845cb05eb6d9b555b03e5084fa59085d24989ce521fcfa8bdc9a7",
        "fastchat/llm_judge/data/judge_prompts.jsonl":
            "fd283293406d024f44c174b094ef48031d0687a4682fd3a56b29b138f80281b6",
        "fastchat/llm_judge/data/mt_bench/reference_answer/gpt-4.jsonl":
            "f957a5bc977badb66885ec970e6cd08527845780313f0995764260e5777b9b3f",
    }),
    "FollowBench": Source("FollowBench", "YJiangcm/FollowBench", "6278f4c1377b4eafab737267b8b21acd52ea0e52", {
        "code/gpt4_based_evaluation.py": "8124aaea6abaa608aa79382e787e7d9f39b277624911c3bcc3c9a048883834a2",
        "code/rule_based_evaluation.py": "8f14dedc58d06010481f7d204b5510f0818b6d7d4f22a500e463a727ea3f2183",
        "code/utils.py": "d87f1819f88159d236bb8b342b38149cf3ad265be6e4acb78b956aefd7aed6f2",
        "code/eval.py": "55d11ed4b8178c5ed27b7f22993d4798660b483656c79442654543fb39c40617",
    }),
    "InfoBench": Source("InfoBench", "qinyiwei/InfoBench", "557fba025e7d570464fe47d7ead8d81019d05992", {
        "evaluation.py": "e18f50e526da70a45ca7cf5d8681f0ccc975db694a7cb2afbde5007abed25475",
    }),
}
RAW_URL = "https://raw.githubusercontent.com/{repo}/{commit}/{path}"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _cache_dir() -> Path:
    return Path(os.environ.get("IFFORGE_HOME") or "~/.cache/ifforge").expanduser() / "reference"


def reference_file(source: str, path: str, local_dir: Optional[str] = None) -> Path:
    """The pinned file `path` of `source` on this machine: from the local copy when one is configured, else the
    download cache (fetched once). Its SHA-256 is checked either way."""
    src = SOURCES[source]
    want = src.sha256[path]
    local = local_dir or os.environ.get("IFFORGE_REFERENCE_DIR")
    if local:
        p = Path(local).expanduser() / src.folder / path
        if not p.is_file():
            raise UserError(f"reference file not found: {p} (paths.reference / IFFORGE_REFERENCE_DIR points at a "
                            f"copy of {src.repo} at {src.commit[:12]} laid out as <dir>/{src.folder}/{path})")
        if _sha256(p.read_bytes()) != want:
            raise UserError(f"{p} is not {src.repo}'s {path} at commit {src.commit[:12]} (SHA-256 differs)")
        return p
    cached = _cache_dir() / src.folder / src.commit / path
    if cached.is_file() and _sha256(cached.read_bytes()) == want:
        return cached
    url = RAW_URL.format(repo=src.repo, commit=src.commit, path=path)
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            data = response.read()
    except Exception as e:  # offline, proxy, rate limit: the option below always works
        raise UserError(f"cannot fetch {url} ({type(e).__name__}: {str(e)[:120]}); for protocol=reference "
                        f"without network, set paths.reference (or IFFORGE_REFERENCE_DIR) to a local copy of "
                        f"the benchmarks' files, or use the suite's protocol=ifforge") from None
    if _sha256(data) != want:
        raise UserError(f"{url}: the downloaded file does not match the pinned SHA-256; not used")
    cached.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cached.parent, prefix=f".{cached.name}.", suffix=".tmp")  # parallel jobs
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, cached)
    return cached


def _parse(path: Path) -> ast.Module:
    """The AST of an official file. Their regex literals use escapes such as "\\[" that Python warns about; the
    file is theirs, so the warning is no one's to act on here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (SyntaxWarning, DeprecationWarning))
        return ast.parse(path.read_text(encoding="utf-8"))


def module_constants(path: Path, names: Iterable[str]) -> Dict[str, Any]:
    """Module-level constants of a Python file, read without running it: literals, and `re.compile(<literal>)`
    (returned compiled)."""
    wanted = set(names)
    found: Dict[str, Any] = {}
    for node in _parse(path).body:
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            if isinstance(target, ast.Name) and target.id in wanted:
                found[target.id] = _constant(node.value, path)
    missing = wanted - set(found)
    if missing:
        raise UserError(f"{path}: no module-level {', '.join(sorted(missing))} (not the pinned file?)")
    return found


def _constant(value: ast.expr, path: Path) -> Any:
    if (isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and value.func.attr == "compile"
            and isinstance(value.func.value, ast.Name) and value.func.value.id == "re"):
        return re.compile(*[ast.literal_eval(a) for a in value.args])
    return ast.literal_eval(value)


def function_names(path: Path) -> List[str]:
    """The names of a file's top-level functions, in order."""
    return [n.name for n in _parse(path).body if isinstance(n, ast.FunctionDef)]


def load_functions(path: Path, names: Iterable[str], namespace: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Top-level functions of an official file, compiled from its own source without running its module-level
    code (its imports of openai, tiktoken, matplotlib...): official scoring code runs as written. They live in
    `namespace` (the modules they use, e.g. {"re": re}), which they share: load several files into one namespace
    and their functions call each other, `globals()` look-ups included."""
    glb = namespace if namespace is not None else {}
    glb.setdefault("__builtins__", __builtins__)
    names = list(names)
    nodes = {n.name: n for n in _parse(path).body if isinstance(n, ast.FunctionDef)}
    missing = [n for n in names if n not in nodes]
    if missing:
        raise UserError(f"{path}: no function {', '.join(missing)} (not the pinned file?)")
    module = ast.Module(body=[nodes[n] for n in names], type_ignores=[])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (SyntaxWarning, DeprecationWarning))
        code = compile(module, str(path), "exec")
    exec(code, glb)  # noqa: S102 - the pinned, hash-checked official file
    return {n: glb[n] for n in names}
