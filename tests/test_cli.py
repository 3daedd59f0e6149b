"""The entrypoint as a user meets it: composition, errors, secrets."""

import json

from tests.helpers.cli import openai_args, run_cli


def test_cfg_job_prints_config_without_secrets(tmp_path):
    proc = run_cli(["--cfg", "job", *openai_args("http://127.0.0.1:9/v1")], tmp_path,
                   env={"OPENAI_API_KEY": "sk-very-secret-123"})
    assert proc.returncode == 0, proc.stderr
    assert "generator:" in proc.stdout and "api_key_env: OPENAI_API_KEY" in proc.stdout
    assert "sk-very-secret-123" not in proc.stdout + proc.stderr


def test_unknown_option_and_typo_fail_at_composition(tmp_path):
    proc = run_cli(["--cfg", "job", "generator=nonexistent"], tmp_path)
    assert proc.returncode != 0 and "nonexistent" in proc.stderr
    proc = run_cli(["--cfg", "job", "generator.max_concurency=3"], tmp_path)
    assert proc.returncode != 0 and "max_concurency" in proc.stderr
    proc = run_cli(["--cfg", "job", "generator.max_concurrency=lots"], tmp_path)
    assert proc.returncode != 0 and "max_concurrency" in proc.stderr


def test_sampling_overrides_take_new_keys_without_plus(tmp_path):
    """`params`/`judge_params` pass request fields through (like objective.trainer); the rest stays closed."""
    proc = run_cli(["--cfg", "job", "augmentation=decompose_modify_reconstruct", "augmentation.params.max_tokens=300",
                    "response=process_feedback", "response.judge_params.temperature=0.5"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "params:\n    max_tokens: 300" in proc.stdout and "judge_params:\n    temperature: 0.5" in proc.stdout
    proc = run_cli(["--cfg", "job", "augmentation=decompose_modify_reconstruct", "augmentation.max_tokens=300"],
                   tmp_path)
    assert proc.returncode != 0 and "max_tokens" in proc.stderr


def _assert_one_line_error(proc, text):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [l for l in proc.stderr.strip().splitlines() if l.startswith("ifforge: error:")]
    assert len(lines) == 1 and text in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_api_key_reported_before_any_work(tmp_path, openai_server):
    proc = run_cli(["stages=[build]", *openai_args(openai_server.url), "generator.api_key_env=IFFORGE_TEST_NO_KEY"],
                   tmp_path)
    _assert_one_line_error(proc, "IFFORGE_TEST_NO_KEY is not set")
    assert openai_server.count() == 0
    assert not (tmp_path / "artifacts" / "build").exists()


def test_bad_seed_inputs(tmp_path, openai_server):
    base = ["stages=[build]", "seeds=jsonl", *openai_args(openai_server.url)]
    env = {"OPENAI_API_KEY": "test"}
    proc = run_cli([*base, f"seeds.path={tmp_path / 'missing.jsonl'}"], tmp_path, env=env)
    _assert_one_line_error(proc, "seeds file not found")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"instruction": "Say hi politely."}) + "\nnot json at all\n")
    proc = run_cli([*base, f"seeds.path={bad}"], tmp_path, env=env)
    _assert_one_line_error(proc, "bad.jsonl:2: not valid JSON")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    proc = run_cli([*base, f"seeds.path={empty}"], tmp_path, env=env)
    _assert_one_line_error(proc, "no usable seeds")
    proc = run_cli([*base, f"seeds.path={bad}", "stages=[build,nonsense]"], tmp_path, env=env)
    _assert_one_line_error(proc, "unknown stage")
    assert openai_server.count() == 0
    done = list((tmp_path / "artifacts").glob("build/*/manifest.json"))
    assert done == []
