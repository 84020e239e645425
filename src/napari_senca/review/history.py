"""Undo and redo of review edits, stored as differences (O(changed spots) per edit).

An :class:`Edit` keeps what an edit changed, not a copy of the section: the
indices of the spots whose cluster changed with their previous cluster
codes, the category list of that time, and the small things (names,
colours, cluster count, log). Assigning 200 spots of a 500,000-bin section
stores 200 codes; only a re-clustering (which changes every spot) stores a
whole column. Undo captures the current values of the same spots as the
redo entry, so redo is exact too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["Edit", "History", "capture", "restore"]


@dataclass
class Edit:
    """The state of the spots an edit changes, as it was before (or after, for redo)."""

    description: str
    idx: np.ndarray | None  # changed spots; None: all of them
    codes: np.ndarray  # cluster codes of those spots (into ``categories``)
    manual: np.ndarray  # hand-assignment flags of those spots
    categories: list[str]
    names: dict[str, str]
    colours: dict[str, str]
    n_clusters: int | None
    log: list[str] = field(default_factory=list)

    @property
    def nbytes(self) -> int:
        """Memory held by the per-spot arrays."""
        idx = 0 if self.idx is None else self.idx.nbytes
        return int(idx + self.codes.nbytes + self.manual.nbytes)


def capture(
    description: str,
    labels: pd.Categorical,
    manual: np.ndarray,
    idx: np.ndarray | None,
    names: dict[str, str],
    colours: dict[str, str],
    n_clusters: int | None,
    log: list[str],
) -> Edit:
    """An :class:`Edit` holding the current values of the spots ``idx`` (None: all)."""
    codes = np.asarray(labels.codes)
    sel = slice(None) if idx is None else idx
    return Edit(
        description=description,
        idx=None if idx is None else np.asarray(idx, dtype=np.int64).copy(),
        codes=codes[sel].copy(),
        manual=np.asarray(manual)[sel].copy(),
        categories=[str(c) for c in labels.categories],
        names=dict(names),
        colours=dict(colours),
        n_clusters=n_clusters,
        log=list(log),
    )


def restore(edit: Edit, labels: pd.Categorical, manual: np.ndarray) -> tuple[pd.Categorical, np.ndarray]:
    """The labels and manual flags with the spots of ``edit`` put back.

    Spots outside ``edit.idx`` keep their cluster (re-coded into the edit's
    categories, which contain every cluster those spots can have).
    """
    cats = edit.categories
    if edit.idx is None:
        codes = edit.codes.copy()
        man = edit.manual.copy()
    else:
        pos = {c: i for i, c in enumerate(cats)}
        lut = np.asarray([pos.get(str(c), -1) for c in labels.categories] + [-1], dtype=np.int64)
        cur = np.asarray(labels.codes, dtype=np.int64)
        codes = lut[cur]  # code -1 (missing) maps to the last entry, -1
        codes[edit.idx] = edit.codes
        man = np.asarray(manual, dtype=bool).copy()
        man[edit.idx] = edit.manual
    return pd.Categorical.from_codes(codes, categories=cats), man


class History:
    """Undo and redo stacks of :class:`Edit` (at most ``max_undo`` undo steps)."""

    def __init__(self, max_undo: int = 100) -> None:
        self.max_undo = int(max_undo)
        self.undo: list[Edit] = []
        self.redo: list[Edit] = []

    def push(self, edit: Edit) -> None:
        """Record a new edit (forgets what could be redone)."""
        self.undo.append(edit)
        self.redo.clear()
        if len(self.undo) > self.max_undo:
            del self.undo[0]

    def ids(self) -> list[str]:
        """Cluster ids of the states that undo can bring back (not to be reused)."""
        return [c for e in self.undo for c in e.categories]

    @property
    def nbytes(self) -> int:
        """Memory held by both stacks' per-spot arrays."""
        return sum(e.nbytes for e in self.undo + self.redo)
