"""Where the real data sets shared with this project live (../shared/data beside the checkout)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(__import__("os").environ.get("IFFORGE_SHARED_DATA", REPO.parent / "shared" / "data"))
