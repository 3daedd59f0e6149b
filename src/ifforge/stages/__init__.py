"""One module per stage (build, train, eval); each registers itself in `ifforge.pipeline.STAGES`."""
