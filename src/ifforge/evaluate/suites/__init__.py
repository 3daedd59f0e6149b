"""One module per benchmark suite; each registers itself (and its config schema) in `ifforge.evaluate.SUITES`.
Modules here import nothing heavy at top level: they are imported at config composition."""
