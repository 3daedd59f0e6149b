"""Packaging: a wheel, not only the editable install, carries conf/, launchers/, prompts and resources; pyproject
declares ranges (an environment's own torch stays) and the lock, constraints.txt, holds one exact version of each."""

import os
import subprocess
import sys

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.helpers.data import REPO


def test_wheel_install_composes_from_packaged_conf(tmp_path):
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(wheels), str(REPO)], check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                    *map(str, wheels.glob("ifforge-*.whl"))], check=True, capture_output=True)
    env = dict(os.environ, PYTHONPATH=str(target))
    code = ("import ifforge, ifforge.__main__ as m, sys; from pathlib import Path; "
            "from ifforge.train.distributed import launchers_dir; "
            "assert str(Path(ifforge.__file__)).startswith(sys.argv[1]), ifforge.__file__; "
            "assert (Path(m.CONF_DIR) / 'experiment/demorecon/table3.yaml').is_file(); "
            "assert (launchers_dir() / 'deepspeed/zero2.json').is_file(); "
            "sys.argv = ['ifforge', '--cfg', 'job', 'experiment=demo']; m.main()")
    proc = subprocess.run([sys.executable, "-c", code, str(target)], cwd=tmp_path, env=env, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "experiment: demo" in proc.stdout and "demo_seeds.jsonl" in proc.stdout


def _declared():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = [r for reqs in project.get("optional-dependencies", {}).values() for r in reqs]
    return [Requirement(r) for r in project["dependencies"] + extras]


def _locked():
    """{canonical name: exact version} from constraints.txt; every line must be an exact pin."""
    locked = {}
    for line in (REPO / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        ops = [(s.operator, s.version) for s in req.specifier]
        assert len(ops) == 1 and ops[0][0] == "==", f"constraints.txt: {line!r} is not an exact pin"
        name = canonicalize_name(req.name)
        assert name not in locked, f"constraints.txt locks {name} twice"
        locked[name] = ops[0][1]
    return locked


# Installer tooling stays out of the lock, as tools/lock.py says: a pin there would also reach every isolated build
# environment pip makes. setuptools is a runtime dependency only for alpaca-eval's pkg_resources import.
TOOLING = {"setuptools"}


def test_pyproject_declares_ranges_and_the_lock_pins_each_within_them():
    declared, locked = _declared(), _locked()
    assert len(declared) > 20 and "torch" in locked  # the files were read, not an empty section
    problems = []
    for req in declared:
        name = canonicalize_name(req.name)
        if any(s.operator in ("==", "===") for s in req.specifier):
            problems.append(f"pyproject.toml pins {req}: declare a compatible range; the exact version goes in "
                            f"constraints.txt")
        if name in TOOLING:  # not locked (tools/lock.py): the installed one must still be in the range
            from importlib.metadata import version

            if not req.specifier.contains(version(name), prereleases=True):
                problems.append(f"installed {name}=={version(name)} is outside pyproject's {req.specifier}")
        elif name not in locked:
            problems.append(f"{name} is not in constraints.txt (rerun tools/lock.py)")
        elif not req.specifier.contains(locked[name], prereleases=True):
            problems.append(f"constraints.txt locks {name}=={locked[name]}, outside pyproject's {req.specifier}")
    assert not problems, "\n".join(problems)
