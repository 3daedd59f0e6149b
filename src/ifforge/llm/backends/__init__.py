"""One module per backend; each registers itself in `ifforge.llm.BACKENDS`."""
