"""FollowBench's `limit` counts examples, not rows: N examples per category, each with all five levels, whatever
order the benchmark file lists its rows in (the local copy goes example by example; a level-major file would give
only level-1 rows to a "first N rows" cut)."""

import json

from omegaconf import OmegaConf

from ifforge.evaluate.suite import SuiteContext
from ifforge.evaluate.suites.followbench import FollowBench, FollowBenchConfig


def test_limit_takes_whole_examples_up_to_level_5(tmp_path):
    for category in ("content", "format"):
        rows = [{"example_id": ex, "level": level, "instruction": f"{category} {ex} L{level}", "target": "",
                 "source": "test"} for level in range(6) for ex in range(1, 5)]  # level-major: every L0, then L1...
        (tmp_path / f"{category}_constraints.json").write_text(json.dumps(rows))
    cfg = OmegaConf.structured(FollowBenchConfig(name="followbench", path=str(tmp_path), limit=2,
                                                 categories=["content", "format"], protocol="ifforge"))
    suite = FollowBench(cfg, SuiteContext(candidate=lambda: None, judge=lambda: None))
    items = suite.load()
    got = sorted((it.data["category"], it.id.split("/")[1], it.data["level"]) for it in items)
    assert got == [(c, str(ex), level) for c in ("content", "format") for ex in (1, 2) for level in range(1, 6)]
    # the judge's constraint path reaches back to the level-0 base of the same example
    top = next(it for it in items if it.id == "format/2/5")
    assert top.data["path"] == [f"format 2 L{level}" for level in range(6)]
    assert {r["example_id"] for r in suite.rows["content"]} == {1, 2}  # what the reference code scores, too
