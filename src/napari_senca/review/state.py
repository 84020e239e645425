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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from ..errors import ConfigError, DataError
from ..section import CLUSTER_KEY, LABEL_KEY, UNS_KEY
from . import genes as _genes
from . import layers as _layers
from .colours import PALETTE, to_hex
from .keys import MANUAL_KEY, REGION_KEY, REVIEW_KEY
from .keys import default_name as _default_name
from .markers import MarkersMixin
from .matching import match_clusters

__all__ = ["ReviewState"]


@dataclass
class _Snapshot:
    labels: pd.Categorical
    manual: np.ndarray
    clusters: list[str]
    names: dict[str, str]
    colours: dict[str, str]
    n_clusters: int | None
    log_len: int
    description: str


class ReviewState(MarkersMixin):
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
        self.manual = self._restore_manual()
        self._undo: list[_Snapshot] = []
        self._version = 0
        self._markers: tuple[tuple[int, int], pd.DataFrame] | None = None
        self._libsize: np.ndarray | None = None
        self._listeners: list[Callable[[str], None]] = []
        self._restore_from_uns()
        if self.has_result:
            self._complete_names_colours()
            self._write()

    @classmethod
    def fresh(cls, adata: AnnData, key: str = CLUSTER_KEY) -> ReviewState:
        """A state that ignores names, colours and edits stored by an earlier run.

        Used after a new training run: the new clusters have nothing to do
        with the names given to the previous ones.
        """
        adata.uns.pop(REVIEW_KEY, None)
        adata.uns.pop(f"{key}_colors", None)
        info = adata.uns.get(UNS_KEY)
        if isinstance(info, dict):
            info.pop("cluster_names", None)
        if REGION_KEY in adata.obs:
            del adata.obs[REGION_KEY]
        if MANUAL_KEY in adata.obs:
            del adata.obs[MANUAL_KEY]
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

    @property
    def can_undo(self) -> bool:
        """True when there is an edit to undo."""
        return bool(self._undo)

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
        counts = pd.Series(self._labels()).value_counts()
        rows = [
            (c, self.names.get(c, _default_name(c)), self.colours.get(c, PALETTE[0]), int(counts.get(c, 0)))
            for c in self.clusters
        ]
        df = pd.DataFrame(rows, columns=["cluster", "name", "colour", "n_spots"])
        df["n_spots"] = df["n_spots"].astype(np.int64)
        return df

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
        return np.flatnonzero(np.asarray(self._labels().astype(object)) == cid)

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
        return ~np.isin(np.asarray(self._labels().astype(object)), list(self.hidden))

    def merge_suggestion(self) -> tuple[str, str] | None:
        """Default ``(merge, into)``: the smallest region and the region closest to it.

        Closest = nearest centroid in the SENCA embedding (spot positions when
        there is none). None with fewer than two regions.
        """
        if self.n_clusters < 2:
            return None
        leg = self.legend()
        small = str(leg.sort_values("n_spots", kind="stable").iloc[0]["cluster"])
        from ..section import EMBED_KEY

        space = self.adata.obsm[EMBED_KEY] if EMBED_KEY in self.adata.obsm else self.adata.obsm["spatial"]
        x = np.asarray(space, dtype=np.float64)
        lab = np.asarray(self._labels().astype(object))
        cen = {c: x[lab == c].mean(0) for c in self.clusters if (lab == c).any()}
        others = [c for c in self.clusters if c != small and c in cen]
        into = min(others, key=lambda c: float(np.linalg.norm(cen[c] - cen[small])))
        return small, into

    # ------------------------------------------------------------------- edits
    def set_n_clusters(self, n_clusters: int, keep_manual: bool = True) -> None:
        """Re-cluster the stored embedding into ``n_clusters`` regions (no retraining).

        The review is carried over: each new region takes the id, name and
        colour of the old region it shares most spots with (Hungarian
        matching, :func:`.matching.match_clusters`), and spots assigned by
        hand keep their region unless ``keep_manual`` is False. Undo brings
        back the previous cut.

        Raises
        ------
        ConfigError
            No SENCA result yet, or a count outside ``2..n_spots``.
        """
        from ..cluster import check_n_clusters, recluster

        self.require_result()
        if not self.can_recluster:
            raise ConfigError("this clustering has no stored SENCA embedding to re-cut: run the model first")
        k = int(n_clusters)
        check_n_clusters(k, self.n_spots)
        old_cats = self.clusters
        old = np.asarray(self._labels().astype(object), dtype=object)
        self._push(f"cluster count {self.clustering_k} -> {k}")
        try:
            new = recluster(self.adata, k, key=self.key)
        except Exception:
            self._pop_restore()
            raise
        values, fresh = self._carry_ids(old, np.asarray(new.astype(object), dtype=object))
        if keep_manual:
            values[self.manual] = old[self.manual]
        else:
            self.manual[:] = False
        used = set(values)
        cats = [c for c in old_cats if c in used] + [c for c in fresh if c in used]
        self._set_labels(pd.Categorical(values, categories=cats))
        self._complete_names_colours()
        kept = int(self.manual.sum())
        extra = f", {kept} spots assigned by hand kept" if kept else ""
        self._changed(f"re-cluster into {k} regions{extra}", labels=True)

    def _carry_ids(self, old: np.ndarray, new: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """New labels renamed to the matched old ids; unmatched ones get fresh ids."""
        match = match_clusters(old, new)
        taken = set(old.tolist()) | set(_history_ids(self._undo))
        nums = [int(c) for c in taken if re.fullmatch(r"\d+", str(c))]
        nxt = max(nums, default=-1) + 1
        mapping: dict[str, str] = {}
        fresh: list[str] = []
        for nid in pd.unique(new):
            if nid in match:
                mapping[nid] = match[nid]
                continue
            while str(nxt) in taken:
                nxt += 1
            mapping[nid] = str(nxt)
            fresh.append(str(nxt))
            taken.add(str(nxt))
        fresh.sort(key=lambda c: int(c) if c.isdigit() else 0)
        return np.asarray([mapping[v] for v in new], dtype=object), fresh

    def rename(self, cluster: Any, name: str) -> None:
        """Give a cluster a display name (e.g. ``"invasive cancer"``).

        Raises
        ------
        ConfigError
            Unknown cluster, empty name, or a name another cluster already has.
        """
        cid = self.resolve(cluster)
        new = str(name).strip()
        if not new:
            raise ConfigError("a region name cannot be empty")
        self._check_name_free(new, except_id=cid)
        old = self.names.get(cid, _default_name(cid))
        if new == old:
            return
        self._push(f"rename {old!r} -> {new!r}")
        self.names[cid] = new
        self._changed(f"renamed {old!r} to {new!r}")

    def recolour(self, cluster: Any, colour: Any) -> None:
        """Change the colour of a cluster (name, hex or RGB tuple).

        Raises
        ------
        ConfigError
            Unknown cluster or a value that is not a colour.
        """
        cid = self.resolve(cluster)
        hexc = to_hex(colour)
        if self.colours.get(cid) == hexc:
            return
        self._push(f"recolour {self.name_of(cid)!r}")
        self.colours[cid] = hexc
        self._changed(f"recoloured {self.name_of(cid)!r} to {hexc}")

    def assign(self, spots: Iterable[int], cluster: Any = None, *, new_name: str | None = None) -> str:
        """Assign spots to a cluster, or to a new region when ``cluster`` is None.

        Parameters
        ----------
        spots
            Spot indices (row positions, e.g. a points layer's ``selected_data``).
        cluster
            Target cluster id or name; ``None`` creates a new region.
        new_name
            Name of the new region (default ``"region <id>"``).

        Returns
        -------
        str
            The id of the cluster the spots now belong to.

        Raises
        ------
        ConfigError
            No result yet, no spots given, indices out of range, unknown
            cluster or a new name that is already used.
        """
        self.require_result()
        idx = self._indices(spots)
        if cluster is None:
            cid = self._new_id()
            name = (new_name or "").strip() or f"region {cid}"
            self._check_name_free(name)
            self._push(f"assign {idx.size} spots to new region {name!r}")
            labels = self._labels().add_categories([cid])
            self.names[cid] = name
            self.colours[cid] = self._free_colour()
        else:
            cid = self.resolve(cluster)
            self._push(f"assign {idx.size} spots to {self.name_of(cid)!r}")
            labels = self._labels()
        values = np.asarray(labels.astype(object), dtype=object)
        values[idx] = cid
        self.manual[idx] = True
        self._set_labels(pd.Categorical(values, categories=labels.categories))
        self._changed(f"assigned {idx.size} spots to {self.name_of(cid)!r}", labels=True)
        return cid

    def merge(self, keep: Any, other: Any) -> str:
        """Merge cluster ``other`` into ``keep``; returns the kept id.

        Raises
        ------
        ConfigError
            Unknown clusters or the same cluster twice.
        """
        a, b = self.resolve(keep), self.resolve(other)
        if a == b:
            raise ConfigError("choose two different clusters to merge")
        na, nb = self.name_of(a), self.name_of(b)
        self._push(f"merge {nb!r} into {na!r}")
        labels = self._labels()
        values = np.asarray(labels.astype(object), dtype=object)
        values[values == b] = a
        self._set_labels(pd.Categorical(values, categories=labels.categories))
        self._changed(f"merged {nb!r} into {na!r}", labels=True)
        return a

    def undo(self) -> str:
        """Undo the last edit; returns its description.

        Raises
        ------
        ConfigError
            When there is nothing to undo.
        """
        if not self._undo:
            raise ConfigError("nothing to undo")
        snap = self._pop_restore()
        self._changed(f"undo: {snap.description}", labels=True, logged=False)
        return snap.description

    # ----------------------------------------------------------- colour by gene
    def genes(self) -> list[str]:
        """All gene names of the section, sorted case-insensitively."""
        return _genes.gene_names(self.adata)

    def search_genes(self, text: str, limit: int = 50) -> list[str]:
        """Genes containing ``text`` (case-insensitive), prefix matches first."""
        return _genes.search_genes(self.adata, text, limit)

    def resolve_gene(self, gene: str) -> str:
        """The exact gene name (case-insensitive match); :class:`ConfigError` if none."""
        return _genes.resolve_gene(self.adata, gene)

    def gene_values(self, gene: str) -> np.ndarray:
        """log1p of library-size-normalised expression of one gene (per spot)."""
        if self._libsize is None:
            self._libsize = _genes.library_sizes(self.adata)
        return _genes.gene_values(self.adata, gene, self._libsize)

    def numeric_columns(self) -> list[str]:
        """Numeric ``obs`` columns spots can be coloured by (e.g. ``senca_confidence``)."""
        skip = {self.key, MANUAL_KEY}
        obs = self.adata.obs
        return [str(c) for c in obs.columns if c not in skip and _genes.is_numeric(obs[c])]

    def resolve_values(self, name: str) -> str:
        """A numeric ``obs`` column (exact name) or a gene (case-insensitive); :class:`ConfigError` if none."""
        n = str(name).strip()
        if n in self.numeric_columns():
            return n
        return self.resolve_gene(n)

    def values(self, name: str | None = None) -> np.ndarray:
        """Per-spot values of a numeric ``obs`` column or a gene (default: what spots are coloured by)."""
        n = name if name is not None else self.colour_by
        if n is None:
            raise ConfigError("not coloured by a gene or a value")
        if n in self.numeric_columns():
            return np.asarray(self.adata.obs[n], dtype=np.float64)
        return self.gene_values(n)

    def gene_limits(self, gene: str | None = None) -> tuple[float, float]:
        """Colour limits of a gene or value: its 2nd and 98th percentiles (robust to outliers)."""
        return _genes.robust_limits(self.values(gene))

    def colour_label(self) -> str:
        """What the colour bar shows: ``"ERBB2 (log-norm.)"`` or the obs column name."""
        if self.colour_by is None:
            return ""
        if self.colour_by in self.numeric_columns():
            return self.colour_by
        return f"{self.colour_by} (log-norm.)"

    def show_gene(self, gene: str) -> np.ndarray:
        """Colour spots by a gene or a numeric ``obs`` column from now on; returns the values."""
        g = self.resolve_values(gene)
        values = self.values(g)
        self.colour_by = g
        self._notify("colour")
        return values

    show_values = show_gene

    def show_clusters(self) -> None:
        """Colour spots by cluster again."""
        self.colour_by = None
        self._notify("colour")

    # ------------------------------------------------------ layer description
    def colour_cycle(self) -> dict[str, str]:
        """Cluster id -> colour, for a points layer's ``face_color_cycle``."""
        return _layers.colour_cycle(self)

    def colour_column(self) -> str | None:
        """The ``features`` column spots are coloured by (None: one colour)."""
        return _layers.colour_column(self)

    def label_cycle(self) -> dict[str, str]:
        """Pathologist label -> colour (used before a run)."""
        return _layers.label_cycle(self)

    def spot_colours(self) -> np.ndarray:
        """``(n_spots, 4)`` RGBA colours as the layer shows them."""
        return _layers.spot_colours(self)

    def features(self) -> pd.DataFrame:
        """The spot table for a points layer's ``features`` (see :func:`layers.features`)."""
        return _layers.features(self)

    def metadata(self) -> dict[str, Any]:
        """Points-layer ``metadata``: the AnnData, this state, names and colours."""
        return _layers.metadata(self)

    def layer_kwargs(self, name: str | None = None) -> dict[str, Any]:
        """Keyword arguments of ``napari.layers.Points`` for this section."""
        return _layers.layer_kwargs(self, name)

    def coordinates(self) -> np.ndarray:
        """Spot centres as napari ``(row, col)`` = ``(y, x)`` full-res pixels."""
        return _layers.spot_coordinates(self.adata)

    def apply_to_layer(self, layer: Any) -> None:
        """Write features, colours and metadata to a napari points layer (see :mod:`.layers`)."""
        _layers.apply_to_layer(self, layer)

    @classmethod
    def from_layer(cls, layer: Any) -> ReviewState:
        """The state of a points layer made by this plugin (created if needed)."""
        return _layers.state_from_layer(cls, layer)

    # --------------------------------------------------------------- internals
    def _restore_manual(self) -> np.ndarray:
        col = self.adata.obs.get(MANUAL_KEY)
        if col is None or len(col) != self.n_spots:
            return np.zeros(self.n_spots, dtype=bool)
        return np.asarray(col.fillna(False), dtype=bool).copy()

    def _labels(self) -> pd.Categorical:
        col = self.adata.obs[self.key]
        if not isinstance(col.dtype, pd.CategoricalDtype):
            col = col.astype(str).astype("category")
            self.adata.obs[self.key] = col
        cat = col.array
        if not all(isinstance(c, str) for c in cat.categories):
            cat = pd.Categorical(
                np.asarray(cat.astype(str), dtype=object), categories=[str(c) for c in cat.categories]
            )
            self.adata.obs[self.key] = cat
        return cat

    def _set_labels(self, labels: pd.Categorical) -> None:
        used = set(pd.unique(np.asarray(labels.astype(object))))
        keep = [c for c in labels.categories if c in used]
        labels = labels.set_categories(keep)
        self.adata.obs[self.key] = labels
        for c in list(self.names):
            if c not in keep:
                self.names.pop(c, None)
        for c in list(self.colours):
            if c not in keep:
                self.colours.pop(c, None)

    def _indices(self, spots: Iterable[int]) -> np.ndarray:
        try:
            idx = np.asarray(sorted({int(i) for i in spots}), dtype=np.int64)
        except (TypeError, ValueError):
            raise ConfigError("spots must be integer indices") from None
        if idx.size == 0:
            raise ConfigError("no spots selected: select spots with the points layer's selection or lasso tool")
        if idx.min() < 0 or idx.max() >= self.n_spots:
            raise ConfigError(f"spot indices must be in 0..{self.n_spots - 1}")
        return idx

    def _new_id(self) -> str:
        ids = self.clusters
        nums = [int(c) for c in ids if re.fullmatch(r"\d+", c)]
        nxt = max(nums, default=-1) + 1
        known = set(ids) | set(_history_ids(self._undo))
        while str(nxt) in known:
            nxt += 1
        return str(nxt)

    def _free_colour(self) -> str:
        used = set(self.colours.values())
        for c in PALETTE:
            if c not in used:
                return c
        return PALETTE[len(self.colours) % len(PALETTE)]

    def _check_name_free(self, name: str, except_id: str | None = None) -> None:
        for cid in self.clusters:
            if cid != except_id and self.names.get(cid, _default_name(cid)) == name:
                raise ConfigError(f"the name {name!r} is already used by another region")

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

    def _snapshot(self, description: str) -> _Snapshot:
        info = self.adata.uns.get(UNS_KEY)
        nk = info.get("n_clusters") if isinstance(info, dict) else None
        return _Snapshot(
            labels=self._labels().copy(),
            manual=self.manual.copy(),
            clusters=self.clusters,
            names=dict(self.names),
            colours=dict(self.colours),
            n_clusters=None if nk is None else int(nk),
            log_len=len(self.log),
            description=description,
        )

    def _push(self, description: str) -> None:
        self._undo.append(self._snapshot(description))
        if len(self._undo) > self.max_undo:
            del self._undo[0]

    def _pop_restore(self) -> _Snapshot:
        snap = self._undo.pop()
        self.adata.obs[self.key] = snap.labels.copy()
        self.names = dict(snap.names)
        self.colours = dict(snap.colours)
        self.manual = snap.manual.copy()
        info = self.adata.uns.get(UNS_KEY)
        if isinstance(info, dict) and snap.n_clusters is not None:
            info["n_clusters"] = snap.n_clusters
        del self.log[snap.log_len :]
        return snap

    def _changed(self, what: str, labels: bool = False, logged: bool = True) -> None:
        if labels:
            self._version += 1
        if logged:
            self.log.append(what)
        self._write()
        self._notify(what)

    def _notify(self, what: str) -> None:
        for cb in list(self._listeners):
            cb(what)

    def _write(self) -> None:
        """Store names, colours and the edit log in ``uns`` and ``obs``."""
        if not self.has_result:
            return
        labels = self._labels()
        ids = self.clusters
        self.adata.uns[REVIEW_KEY] = {
            "clusters": np.asarray(ids, dtype=object),
            "names": np.asarray([self.names.get(c, _default_name(c)) for c in ids], dtype=object),
            "colours": np.asarray([self.colours.get(c, PALETTE[0]) for c in ids], dtype=object),
            "log": np.asarray(self.log if self.log else ["loaded"], dtype=object),
            "n_edits": int(len(self.log)),
        }
        names = [self.names.get(c, _default_name(c)) for c in ids]
        # the conventions the exporters and scanpy read: names in uns["senca"],
        # colours in uns["<key>_colors"] (hex, category order)
        self.adata.uns[f"{self.key}_colors"] = np.asarray(
            [self.colours.get(c, PALETTE[0]) for c in ids], dtype=object
        )
        info = self.adata.uns.get(UNS_KEY)
        if isinstance(info, dict):
            info["cluster_names"] = dict(zip(ids, names, strict=True))
        self.adata.obs[MANUAL_KEY] = self.manual.copy()
        self.adata.obs[REGION_KEY] = pd.Categorical(
            [self.names.get(v, _default_name(v)) for v in labels.astype(str)], categories=names
        )

    def _restore_from_uns(self) -> None:
        info = self.adata.uns.get(REVIEW_KEY)
        if not isinstance(info, dict):
            return
        ids = [str(c) for c in np.asarray(info.get("clusters", []), dtype=object).ravel()]
        names = [str(c) for c in np.asarray(info.get("names", []), dtype=object).ravel()]
        colours = [str(c) for c in np.asarray(info.get("colours", []), dtype=object).ravel()]
        known = set(self.clusters)
        for cid, nm, col in zip(ids, names, colours, strict=False):
            if cid in known:
                self.names[cid] = nm
                try:
                    self.colours[cid] = to_hex(col)
                except ConfigError:
                    pass
        log = [str(s) for s in np.asarray(info.get("log", []), dtype=object).ravel()]
        n_edits = int(info.get("n_edits", len(log)))
        self.log = log[-n_edits:] if n_edits else []


def _history_ids(snaps: Sequence[_Snapshot]) -> list[str]:
    out: list[str] = []
    for s in snaps:
        out.extend(s.clusters)
    return out
