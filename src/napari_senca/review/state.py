"""Review state of one section: region names, colours and manual edits.

:class:`ReviewState` is the core object the napari Review widget calls (one
line per control, as in napari-animation): it holds a section AnnData with a
SENCA result, the display name and colour of every cluster and an undo stack.
It imports neither Qt nor napari (layers are duck-typed, see
:mod:`napari_senca.review.layers`), so it is unit-tested without a viewer.

Where the state lives
---------------------
* ``adata.obs["senca_cluster"]``: categorical cluster ids ("0", "1", ...),
  changed in place by re-clustering, assignments and merges;
* ``adata.obs["senca_region"]``: the same spots by display name (for scverse
  users and for exports);
* ``adata.uns["senca_review"]``: ``clusters``, ``names``, ``colours`` (three
  parallel string arrays) and ``log`` (one line per edit), so that saving the
  section to ``.h5ad`` and reopening it restores names, colours and edits.

Every mutating method writes these three places before it returns.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from ..confidence import region_means
from ..errors import ConfigError, DataError
from ..section import CLUSTER_KEY, LABEL_KEY, UNS_KEY
from . import layers as _layers
from .classify import ClassifyMixin
from .colour_by import ColourByMixin
from .colours import PALETTE
from .describe import LayerMixin
from .edits import EditsMixin
from .history import History
from .keys import default_name as _default_name
from .markers import MarkersMixin
from .matching import RegionMemory
from .naming import NamingMixin
from .persist import clear_review, restore_manual, restore_review, write_review

__all__ = ["ReviewState"]


class ReviewState(EditsMixin, ClassifyMixin, NamingMixin, MarkersMixin, ColourByMixin, LayerMixin):
    """Names, colours and edits of the regions of one section.

    Parameters
    ----------
    adata
        The section. It is modified in place by the edit methods (the napari
        widgets pass the AnnData held by the points layer).
    key
        The categorical ``obs`` column holding cluster ids.
    max_undo
        Number of edits that can be undone.

    Notes
    -----
    Cluster ids are the categories of ``obs[key]`` (strings). Methods that
    take a cluster accept its id or its current display name.
    """

    def __init__(self, adata: AnnData, key: str = CLUSTER_KEY, max_undo: int = 100) -> None:
        if not isinstance(adata, AnnData):
            raise DataError(None, f"expected an AnnData section, got {type(adata).__name__}")
        if "spatial" not in adata.obsm:
            raise DataError(None, 'the section has no spot positions (obsm["spatial"])')
        self.adata = adata
        self.key = key
        self.max_undo = int(max_undo)
        self.names: dict[str, str] = {}
        self.colours: dict[str, str] = {}
        self.log: list[str] = []
        self.colour_by: str | None = None  # None = clusters, else a gene or numeric obs column
        self.hidden: set[str] = set()  # clusters not drawn (display only, not an edit)
        self.manual = restore_manual(self)
        self.history = History(max_undo)
        self.memory = RegionMemory(self.n_spots)  # regions a cut or merge made disappear
        self._version = 0
        self._markers: tuple[tuple[int, int], pd.DataFrame] | None = None
        self._libsize: np.ndarray | None = None
        self._values_cache: tuple[str, np.ndarray] | None = None
        self._listeners: list[Callable[[str], None]] = []
        self._last_change: np.ndarray | None = None
        self._suggestion: tuple[tuple[int, tuple[str, ...]], tuple[str, str]] | None = None
        restore_review(self)
        if self.has_result:
            self._complete_names_colours()
            self._write()

    @classmethod
    def fresh(cls, adata: AnnData, key: str = CLUSTER_KEY) -> ReviewState:
        """A state that ignores names, colours and edits stored by an earlier run.

        Used after a new training run: the new clusters have nothing to do
        with the names given to the previous ones.
        """
        clear_review(adata, key)
        return cls(adata, key)

    # ------------------------------------------------------------------ basics
    @property
    def has_result(self) -> bool:
        """True when the section has a clustering in ``obs[key]``."""
        return self.key in self.adata.obs

    @property
    def n_spots(self) -> int:
        """Number of spots in the section."""
        return int(self.adata.n_obs)

    @property
    def clusters(self) -> list[str]:
        """Cluster ids in legend order (empty before a run)."""
        if not self.has_result:
            return []
        return [str(c) for c in self._labels().categories]

    @property
    def n_clusters(self) -> int:
        """Number of clusters currently shown."""
        return len(self.clusters)

    @property
    def can_recluster(self) -> bool:
        """True when a stored SENCA embedding allows a new cluster count."""
        from ..section import EMBED_KEY

        return isinstance(self.adata.uns.get(UNS_KEY), dict) and EMBED_KEY in self.adata.obsm

    @property
    def clustering_k(self) -> int:
        """The cluster count of the last (re-)clustering; assignments to new regions do not change it."""
        info = self.adata.uns.get(UNS_KEY)
        k = info.get("n_clusters") if isinstance(info, dict) else None
        return int(k) if k is not None else self.n_clusters

    @property
    def n_manual(self) -> int:
        """Number of spots assigned by hand (kept by :meth:`set_n_clusters`)."""
        return int(self.manual.sum())

    def edits_summary(self) -> str:
        """The review's own work in words, "" when there is none (asked about before a new run replaces it).

        Counts the edits in the log (renames, recolours, assignments, merges,
        re-cuts), the renamed regions and the spots assigned by hand, e.g.
        ``"5 edits: 2 renamed regions, 4 spots assigned by hand"``.
        """
        if not self.has_result:
            return ""
        renamed = sum(1 for c in self.clusters if self.renamed(c))
        parts = [_count(renamed, "renamed region", "renamed regions"),
                 _count(self.n_manual, "spot assigned by hand", "spots assigned by hand")]  # fmt: skip
        detail = ", ".join(p for p in parts if p)
        head = _count(len(self.log), "edit", "edits")
        return f"{head}: {detail}" if head and detail else head or detail

    @property
    def can_undo(self) -> bool:
        """True when there is an edit to undo."""
        return bool(self.history.undo)

    @property
    def can_redo(self) -> bool:
        """True when an undone edit can be redone."""
        return bool(self.history.redo)

    @property
    def last_change(self) -> np.ndarray | None:
        """Spots whose cluster the last edit, undo or redo changed (None: possibly all)."""
        return self._last_change

    @property
    def version(self) -> int:
        """Counter increased by every change of the cluster assignment."""
        return self._version

    def connect(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(what)`` after every change (``what`` names the edit)."""
        if callback not in self._listeners:
            self._listeners.append(callback)

    def disconnect(self, callback: Callable[[str], None]) -> None:
        """Stop calling ``callback``."""
        if callback in self._listeners:
            self._listeners.remove(callback)

    def require_result(self) -> None:
        """Raise :class:`ConfigError` unless the section has been clustered."""
        if not self.has_result:
            raise ConfigError("no SENCA result on this section yet: run the model first")

    def resolve(self, cluster: Any) -> str:
        """The id of ``cluster`` given as id (str or int) or display name.

        Raises
        ------
        ConfigError
            When no cluster has that id or name.
        """
        self.require_result()
        c = str(cluster).strip()
        if c in self.clusters:
            return c
        for cid in self.clusters:
            if self.names.get(cid) == c:
                return cid
        low = c.lower()
        hits = [cid for cid in self.clusters if self.names.get(cid, "").lower() == low]
        if len(hits) == 1:
            return hits[0]
        raise ConfigError(f"no cluster named {cluster!r} (clusters: {', '.join(self.display_names())})")

    def name_of(self, cluster: Any) -> str:
        """Display name of a cluster."""
        cid = self.resolve(cluster)
        return self.names.get(cid, _default_name(cid))

    def renamed(self, cid: str) -> bool:
        """True when the user gave region ``cid`` a name of their own (not its default name)."""
        return self.names.get(cid, _default_name(cid)) != _default_name(cid)

    def colour_of(self, cluster: Any) -> str:
        """Colour (``#rrggbb``) of a cluster."""
        cid = self.resolve(cluster)
        return self.colours.get(cid, PALETTE[0])

    def display_names(self) -> list[str]:
        """Display names in legend order."""
        return [self.names.get(c, _default_name(c)) for c in self.clusters]

    def legend(self) -> pd.DataFrame:
        """One row per cluster: ``cluster`` (id), ``name``, ``colour``, ``n_spots``."""
        if not self.has_result:
            return pd.DataFrame({"cluster": [], "name": [], "colour": [], "n_spots": []})
        counts = self.counts()
        rows = [
            (c, self.names.get(c, _default_name(c)), self.colours.get(c, PALETTE[0]), int(counts[i]))
            for i, c in enumerate(self.clusters)
        ]
        df = pd.DataFrame(rows, columns=["cluster", "name", "colour", "n_spots"])
        df["n_spots"] = df["n_spots"].astype(np.int64)
        return df

    def codes(self) -> np.ndarray:
        """Cluster code of every spot (index into :attr:`clusters`; -1: none)."""
        return np.asarray(self._labels().codes)

    def counts(self) -> np.ndarray:
        """Spots per cluster, in :attr:`clusters` order (one ``np.bincount``)."""
        codes = self.codes()
        return np.bincount(codes[codes >= 0], minlength=self.n_clusters)

    def label_legend(self) -> pd.DataFrame:
        """One row per pathologist label (``obs["label"]``): ``label``, ``colour``, ``n_spots``."""
        if LABEL_KEY not in self.adata.obs:
            return pd.DataFrame({"label": [], "colour": [], "n_spots": []})
        counts = pd.Series(_layers.label_values(self.adata)).value_counts()
        cyc = _layers.label_cycle(self)
        rows = [(c, col, int(counts.get(c, 0))) for c, col in cyc.items()]
        return pd.DataFrame(rows, columns=["label", "colour", "n_spots"])

    def spots_of(self, cluster: Any) -> np.ndarray:
        """Indices of the spots of a cluster (id or name)."""
        cid = self.resolve(cluster)
        return np.flatnonzero(self.codes() == self.clusters.index(cid))

    def spots_with_label(self, label: str) -> np.ndarray:
        """Indices of the spots with a pathologist label (``"unlabelled"``: none)."""
        if LABEL_KEY not in self.adata.obs:
            return np.zeros(0, dtype=np.int64)
        return np.flatnonzero(np.asarray(_layers.label_values(self.adata), dtype=object) == str(label))

    # ---------------------------------------------------------------- display
    def set_visible(self, cluster: Any, visible: bool) -> None:
        """Show or hide the spots of a cluster (display only: not an edit, not undone)."""
        cid = self.resolve(cluster)
        if visible:
            self.hidden.discard(cid)
        else:
            self.hidden.add(cid)
        self._notify("visibility")

    def is_visible(self, cluster: Any) -> bool:
        """False when the cluster's spots are hidden."""
        return self.resolve(cluster) not in self.hidden

    def shown_mask(self) -> np.ndarray:
        """Boolean per spot: False for spots of hidden clusters (a points layer's ``shown``)."""
        if not self.has_result or not self.hidden:
            return np.ones(self.n_spots, dtype=bool)
        hidden = [i for i, c in enumerate(self.clusters) if c in self.hidden]
        return ~np.isin(self.codes(), hidden)

    def merge_suggestion(self) -> tuple[str, str] | None:
        """Default ``(merge, into)``: the smallest region and the region closest to it.

        Closest = nearest centroid in the SENCA embedding (spot positions when
        there is none). None with fewer than two regions.
        """
        if self.n_clusters < 2:
            return None
        if self._suggestion is not None and self._suggestion[0] == (self._version, tuple(self.clusters)):
            return self._suggestion[1]
        from ..section import EMBED_KEY

        codes = self.codes()
        n = np.bincount(codes[codes >= 0], minlength=self.n_clusters)  # spots per region, as the legend counts them
        small = self.clusters[int(np.argmin(n))]  # the first of the smallest, in legend order
        space = self.adata.obsm[EMBED_KEY] if EMBED_KEY in self.adata.obsm else self.adata.obsm["spatial"]
        means = region_means(np.asarray(space), codes, self.n_clusters)  # (k, dim) float64, summed per block
        cen = {c: means[i] for i, c in enumerate(self.clusters) if n[i] > 0}
        others = [c for c in self.clusters if c != small and c in cen]
        into = min(others, key=lambda c: float(np.linalg.norm(cen[c] - cen[small])))
        self._suggestion = ((self._version, tuple(self.clusters)), (small, into))
        return small, into

    # --------------------------------------------------------------- internals
    def _labels(self) -> pd.Categorical:
        col = self.adata.obs[self.key]
        if not isinstance(col.dtype, pd.CategoricalDtype):
            col = col.astype(str).astype("category")
            self.adata.obs[self.key] = col
        cat = col.array
        if not all(isinstance(c, str) for c in cat.categories):
            cat = pd.Categorical.from_codes(np.asarray(cat.codes), categories=[str(c) for c in cat.categories])
            self.adata.obs[self.key] = cat
        return cat

    def _set_labels(self, labels: pd.Categorical, before: np.ndarray | None = None) -> None:
        """Store the clusters, dropping empty ones (and their names and colours).

        The dropped regions are remembered (:attr:`memory`) with their spots
        in ``before`` (default: the clusters stored now), so that a later
        cut that brings them back gives them their names back.
        """
        labels = labels.remove_unused_categories()
        keep = {str(c) for c in labels.categories}
        gone = [c for c in self.names if c not in keep]
        if gone:
            prev = np.asarray(self._labels().astype(object), dtype=object) if before is None else before
            self.memory.remember(prev, gone, self.names, self.colours)
        self.adata.obs[self.key] = labels
        for d in (self.names, self.colours):
            for c in [c for c in d if c not in keep]:
                d.pop(c, None)

    def _complete_names_colours(self) -> None:
        used = {self.colours[c] for c in self.clusters if c in self.colours}
        free = [c for c in PALETTE if c not in used]
        for i, cid in enumerate(self.clusters):
            self.names.setdefault(cid, _default_name(cid))
            if cid not in self.colours:
                if re.fullmatch(r"\d+", cid) and PALETTE[int(cid) % len(PALETTE)] not in used:
                    colour = PALETTE[int(cid) % len(PALETTE)]
                else:
                    colour = free[0] if free else PALETTE[i % len(PALETTE)]
                self.colours[cid] = colour
                used.add(colour)
                free = [c for c in free if c != colour]

    def _changed(self, what: str, labels: bool = False, logged: bool = True, spots: np.ndarray | None = None) -> None:
        if labels:
            self._version += 1
        self._last_change = spots if labels else np.zeros(0, dtype=np.int64)
        if logged:
            self.log.append(what)
        self._write()
        self._notify(what)

    def _notify(self, what: str) -> None:
        for cb in list(self._listeners):
            cb(what)

    def _write(self) -> None:
        """Store names, colours and the edit log in ``uns`` and ``obs`` (see :mod:`.persist`)."""
        write_review(self)


def _count(n: int, one: str, many: str) -> str:
    """``"1 edit"``, ``"3 edits"``; "" for 0."""
    return f"{n} {one if n == 1 else many}" if n else ""
