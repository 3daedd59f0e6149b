"""Where the real data sets shared with this project live (../shared/data beside the checkout)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(__import__("os").environ.get("IFFORGE_SHARED_DATA", REPO.parent / "shared" / "data"))

import pytest  # noqa: E402

# Tests that read the shared real data sets skip with a clear reason when ../shared/data is not beside the checkout.
needs_shared_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"shared data sets not present at {SHARED_DATA}")
