"""Option modules stay cheap to import: composing a config, `--help` or a sweep summary loads no ML framework.

Each module is imported in a fresh interpreter, one after the other; after each, a framework that appeared in
`sys.modules` is blamed on that module. After a culprit, a new interpreter carries on from the next module, so
one slow import never hides another.
"""

from __future__ import annotations

import json
import subprocess
import sys

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
