"""The cohort overview figure: one small panel per section, spots coloured by region."""

from __future__ import annotations

import math
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["write_cohort_png"]


#: Statuses whose panel stays empty: no result, or one the batch left alone (the user's work, not matched).
_EMPTY = ("failed", "kept")


def _panel_data(out: Path) -> pd.DataFrame | None:
    """A section's ``clusters.csv``, or None when it is missing or lacks the spot positions."""
    try:
        d = pd.read_csv(out / "clusters.csv", dtype={"cluster": str})
    except (OSError, ValueError):
        return None
    return d if {"pixel_x", "pixel_y"} <= set(d.columns) else None


def write_cohort_png(table: pd.DataFrame, path: str | PathLike, dpi: int = 110) -> Path:
    """Draw every section of ``table`` (``section, status, out, ari``) into one PNG.

    Spots are coloured by ``cohort_region`` when the regions were matched (one
    colour per vocabulary entry across all panels, one legend), else by the
    section's own region; failed and kept sections get an empty panel with that word.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from .export import PALETTE, atomic_path

    rows = table.to_dict("records")
    data = {r["section"]: (_panel_data(Path(r["out"])) if r["status"] not in _EMPTY and r.get("out") else None) for r in rows}
    col = "cohort_region" if any(d is not None and "cohort_region" in d for d in data.values()) else "cluster"
    values: list[str] = []
    for d in data.values():
        if d is not None and col in d:
            values += [str(v) for v in pd.unique(d[col].dropna().astype(str)) if str(v) not in values]
    if col == "cluster":  # the sections' own ids: 0, 1, 2, ... (cohort regions keep vocabulary order)
        values.sort(key=lambda v: (len(v), v))
    colour = {v: PALETTE[i % len(PALETTE)] for i, v in enumerate(values)}
    n = max(len(rows), 1)
    ncol = min(n, max(1, math.ceil(math.sqrt(n))))
    nrow = math.ceil(n / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.6 * ncol + (1.8 if colour else 0), 2.6 * nrow), squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, r in zip(axes.ravel(), rows, strict=False):
        d = data[r["section"]]
        title = str(r["section"])
        if isinstance(r.get("ari"), float) and np.isfinite(r["ari"]):
            title += f"  ARI {r['ari']:.2f}"
        if d is None or col not in d:
            word = r["status"] if r["status"] in _EMPTY else "no result"
            ax.text(0.5, 0.5, word, ha="center", va="center", color="0.4")
        else:
            c = [colour.get(str(v), "#cccccc") for v in d[col].astype(str)]
            ax.scatter(d["pixel_x"], d["pixel_y"], c=c, s=max(2.0, 1600.0 / max(len(d), 1)), linewidths=0)
            ax.set_aspect("equal")
            ax.invert_yaxis()
        ax.set_title(title, fontsize=8)
    if colour:
        from matplotlib.patches import Patch

        handles = [Patch(color=h, label=v) for v, h in colour.items()]
        fig.legend(handles=handles, loc="center right", fontsize=7, frameon=False, title=col.replace("_", " "))
        fig.subplots_adjust(right=1 - 1.8 / (2.6 * ncol + 1.8))
    with atomic_path(path, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
    return Path(path)
