"""Headless figures: matplotlib's object API (no pyplot, so no global backend or open-figure
state), written atomically as PNG."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from ..atomic import atomic_path


def figure(**kwargs) -> Figure:
    """A figure that no GUI backend ever sees (kwargs as for matplotlib's Figure, e.g. figsize)."""
    return Figure(**kwargs)


def save(fig: Figure, path: Path, dpi: int) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
