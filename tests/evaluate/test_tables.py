"""Tables: one row per model like the papers', '-' for what was not measured, several runs side by side."""

import json

from ifforge.evaluate.compare import load_runs, main
from ifforge.evaluate.tables import comparison_tables, markdown_table


def test_markdown_table_marks_missing_values():
    md = markdown_table(["Model", "Easy", "Hard"], [["m|1", 81.234, None]], title="InFoBench DRFR")
    assert "| m\\|1 | 81.23 | - |" in md and md.startswith("**InFoBench DRFR**")


def test_comparison_of_two_runs(tmp_path, capsys):
    ife = {"prompt_level_strict_acc": 40.0, "prompt_level_loose_acc": 45.5, "inst_level_strict_acc": 50.0,
           "inst_level_loose_acc": 55.0}
    for name, shift in (("ori", 0.0), ("sft", 5.0)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps({
            "ifeval": {k: v + shift for k, v in ife.items()},
            "infobench": {"drfr_easy": 80.0 + shift, "drfr_hard": 70.0, "drfr_overall": 73.0}}))
    runs = load_runs([f"Ori.={tmp_path / 'ori'}", f"DPO+SFT={tmp_path / 'sft'}"])
    md = comparison_tables(runs)
    assert "| Ori. | 40.00 | 45.50 | 50.00 | 55.00 |" in md
    assert "| DPO+SFT | 45.00 | 50.50 | 55.00 | 60.00 |" in md
    assert "| DPO+SFT | 85.00 | 70.00 | 73.00 |" in md
    main([f"Ori.={tmp_path / 'ori'}"])
    assert "**IFEval**" in capsys.readouterr().out
