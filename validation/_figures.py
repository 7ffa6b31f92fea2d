"""Matplotlib set-up shared by the validation cases (headless Agg backend)."""
from __future__ import annotations

from pathlib import Path


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, outdir: Path | None, name: str) -> list[str]:
    """Save ``fig`` as ``outdir/name.png`` (nothing when ``outdir`` is None); return the paths."""
    plt = pyplot()
    if outdir is None:
        plt.close(fig)
        return []
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    path = outdir / f"{name}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [str(path)]
