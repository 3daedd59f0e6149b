"""`ifforge --help`: its own composition (see ifforge.cli_help); what it prints is checked with its imports in
test_import_cost.py."""

from tests.helpers.cli import run_cli


def test_help_with_a_wrong_override_fails_with_hydras_message_not_a_traceback(tmp_path):
    proc = run_cli(["--help", "seeds=no_such_source"], tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.startswith("ifforge: error: In 'config': Could not find 'seeds/no_such_source'")
    assert "Traceback" not in proc.stderr and "jsonl" in proc.stderr  # the options to choose from
