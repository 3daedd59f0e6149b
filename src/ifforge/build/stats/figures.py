"""One small PNG per distribution, for dataset cards (matplotlib loads with the first figure, files only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional


def save_figure(folder: Path, filename: str, draw: Callable[[Any], None], title: str, ylabel: str = "count",
                xlabel: Optional[str] = None) -> str:
    """Draw on a fresh axis with `draw(ax)`, save it as folder/filename; returns the path relative to the artifact
    directory (figures/<filename>)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    draw(ax)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    if xlabel:
        ax.set_xlabel(xlabel)
    fig.tight_layout()
    fig.savefig(folder / filename, dpi=100)
    plt.close(fig)
    return f"{folder.name}/{filename}"
