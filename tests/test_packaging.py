"""A wheel, not only the editable install, carries conf/, launchers/, prompts and resources."""

import os
import subprocess
import sys

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
