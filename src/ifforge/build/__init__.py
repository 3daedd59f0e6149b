"""The build stage's pieces: seeds -> filter -> augment (strategy) -> respond (mode) -> assemble -> stats."""
