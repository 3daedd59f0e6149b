"""Option modules stay cheap to import: composing a config, `--help` or a sweep summary loads no ML framework.

Each module is imported in a fresh interpreter, one after the other; after each, a framework that appeared in
`sys.modules` is blamed on that module. After a culprit, a new interpreter carries on from the next module, so
one slow import never hides another.

The commands themselves are checked the same way (what is in `sys.modules` when the command ends, never a wall
time): `ifforge --help`, and a plain build (augmentation=none, response=direct, generator=openai) run again when
its artifact is done or when every answer is in the response cache.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.helpers.cli import openai_args
from tests.helpers.data import REPO

HEAVY = ("torch", "transformers", "datasets", "trl", "deepspeed", "vllm", "sentence_transformers", "wandb")
PACKAGES = ("ifforge.build.augment", "ifforge.build.respond", "ifforge.evaluate.suites", "ifforge.llm.backends",
            "ifforge.stages")
MODULES = ("ifforge.track", "ifforge.train.settings", "ifforge.__main__")

CHILD = r"""
import importlib, importlib.util, json, pkgutil, sys, traceback

heavy, packages, modules, start = json.loads(sys.argv[1])
names = []
for pkg in packages:
    names.append(pkg)
    locations = importlib.util.find_spec(pkg).submodule_search_locations  # imports the parents, not pkg
    names += [f"{pkg}.{m.name}" for m in sorted(pkgutil.iter_modules(locations), key=lambda m: m.name)]
names += modules
for i in range(start, len(names)):
    try:
        importlib.import_module(names[i])
    except BaseException:
        print(json.dumps({"index": i, "module": names[i], "error": traceback.format_exc(limit=3)}))
        sys.exit(0)
    pulled = [h for h in heavy if h in sys.modules]
    if pulled:
        print(json.dumps({"index": i, "module": names[i], "heavy": pulled}))
        sys.exit(0)
print(json.dumps({"done": len(names)}))
"""


def test_option_modules_import_no_ml_framework():
    problems, start, checked = [], 0, 0
    while True:
        proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps([HEAVY, PACKAGES, MODULES, start])],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        if "done" in report:
            checked = report["done"]
            break
        if "heavy" in report:
            problems.append(f"{report['module']} imports {', '.join(report['heavy'])}")
        else:
            problems.append(f"{report['module']} fails to import:\n{report['error']}")
        start = report["index"] + 1
    assert checked > len(PACKAGES) + len(MODULES)  # the packages' modules were listed, not only the packages
    assert not problems, "move these imports into the functions that need them:\n" + "\n".join(problems)


# What a plain build whose answers are known has no use for: the SDK that would send requests, ML frameworks, and
# the `datasets` stack (only writing a new build artifact needs it).
COMMAND_HEAVY = HEAVY + ("openai", "pandas", "pyarrow")

CLI_CHILD = r"""
import json, runpy, sys
heavy, argv = json.loads(sys.argv[1])
sys.argv = ["ifforge", *argv]
code = 0
try:
    runpy.run_module("ifforge", run_name="__main__")
except SystemExit as e:
    code = e.code or 0
print("IMPORTED " + json.dumps({"code": code, "heavy": [h for h in heavy if h in sys.modules]}))
"""


def imported_by(argv, heavy=COMMAND_HEAVY, env=None):
    """(the command's stdout, the `heavy` packages in sys.modules when `ifforge ARGV` ended)."""
    proc = subprocess.run([sys.executable, "-c", CLI_CHILD, json.dumps([heavy, argv])], cwd=REPO,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}, capture_output=True, text=True,
                          timeout=300)
    out, _, report = proc.stdout.rpartition("IMPORTED ")
    assert proc.returncode == 0 and report, proc.stderr[-3000:]
    result = json.loads(report)
    assert result["code"] == 0, proc.stderr[-3000:]
    return out, result["heavy"]


def test_help_imports_no_ml_framework_nor_the_sdk():
    out, heavy = imported_by(["--help", "generator=openai", "generator.model=help-check-model"])
    assert not heavy, f"`ifforge --help` imports {heavy}"
    # The real help: the groups (schema nodes are no option to choose) and the config the overrides compose.
    assert "augmentation: decompose_modify_reconstruct, evol_instruct, none" in out
    assert "schema_" not in out and "== Config ==" in out and "model: help-check-model" in out


def test_known_answers_build_without_the_sdk_or_an_ml_framework(tmp_path, openai_server):
    openai_server.on("topic", "A sentence.")
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"id": f"s{i}", "instruction": f"Write about topic {i}."}) + "\n"
                             for i in range(3)))
    env = {"OPENAI_API_KEY": "test-key"}
    args = ["stages=[build]", "seeds=jsonl", f"seeds.path={seeds}", "augmentation=none", "response=direct",
            *openai_args(openai_server.url), f"paths.cache={tmp_path / 'cache.sqlite'}",
            f"hydra.run.dir={tmp_path / 'run'}"]
    first, _ = imported_by([*args, f"paths.artifacts={tmp_path / 'a'}"], env=env)
    assert "build: " in first and openai_server.count() == 3
    _, heavy = imported_by([*args, f"paths.artifacts={tmp_path / 'a'}"], env=env)  # the artifact is reused
    assert not heavy, f"rerunning a finished plain build imports {heavy}"
    # A new artifact store: every answer from the response cache; writing the DatasetDict needs `datasets`.
    _, heavy = imported_by([*args, f"paths.artifacts={tmp_path / 'b'}"], env=env)
    assert openai_server.count() == 3
    assert set(heavy) <= {"datasets", "pandas", "pyarrow"}, f"a build answered from the cache imports {heavy}"
