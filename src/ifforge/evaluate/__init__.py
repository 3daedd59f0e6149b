"""Evaluation: benchmark suites run by the `eval` stage.

Each suite is one module under `ifforge.evaluate.suites`, registered in `SUITES` with its structured-config schema
(group "eval"), so `eval.<suite>.<option>` typos fail at composition. `engine.run_suite` does the shared part:
load items, answer them with the model under test (or read answers produced elsewhere), score, write files.
"""

from ifforge.registry import Registry

SUITES = Registry("eval suite", group="eval")

__all__ = ["SUITES"]
