"""Review state of one section: region names, colours and manual edits.

:class:`ReviewState` is the core object the napari Review widget calls (one
line per control, as in napari-animation): it holds a section AnnData with a
SENCA result, the display name and colour of every cluster and an undo stack,
and it knows how to describe itself as points-layer ``features`` and
``metadata``. It imports neither Qt nor napari (layers are duck-typed), so it
is unit-tested without a viewer.

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
import scipy.sparse as sp
from anndata import AnnData

from .errors import ConfigError, DataError
from .section import CLUSTER_KEY, LABEL_KEY, UNS_KEY, get_image, library_id, spot_diameter

__all__ = [
    "REVIEW_KEY",
    "REGION_KEY",
    "EXPRESSION_KEY",
    "PALETTE",
    "ReviewState",
    "to_hex",
    "section_layer_data",
    "points_layer_data",
    "image_layer_data",
    "spots_in_shapes",
]

REVIEW_KEY = "senca_review"
REGION_KEY = "senca_region"
EXPRESSION_KEY = "expression"
#: Default cluster colours (matplotlib's tab10 then tab20's lighter shades).
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5",
    "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
)  # fmt: skip
#: Colour of spots when there is nothing to colour by (before a run, no labels).
PLAIN_COLOUR = "#f0f0f0"
UNLABELLED_NAME = "unlabelled"


def to_hex(colour: Any) -> str:
    """Normalise a colour (name, hex, RGB/RGBA tuple in 0-1 or 0-255) to ``#rrggbb``.

    Raises
    ------
    ConfigError
        When ``colour`` is not a colour.
    """
    from matplotlib.colors import to_hex as _mpl_to_hex

    c = colour
    if isinstance(c, (tuple, list, np.ndarray)):
        arr = np.asarray(c, dtype=float).ravel()
        if arr.size in (3, 4) and arr.max(initial=0) > 1.0:
            arr = arr / 255.0
        c = tuple(np.clip(arr, 0, 1))
    try:
        return str(_mpl_to_hex(c, keep_alpha=False))
    except (ValueError, TypeError):
        raise ConfigError(f"{colour!r} is not a colour (use a name such as 'red' or a hex code)") from None


@dataclass
class _Snapshot:
    labels: pd.Categorical
    clusters: list[str]
    names: dict[str, str]
    colours: dict[str, str]
    n_clusters: int | None
    log_len: int
    description: str


class ReviewState:
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
        self.colour_by: str | None = None  # None = clusters, else a gene name
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
        from .section import EMBED_KEY

        return isinstance(self.adata.uns.get(UNS_KEY), dict) and EMBED_KEY in self.adata.obsm

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

    # ------------------------------------------------------------------- edits
    def set_n_clusters(self, n_clusters: int) -> None:
        """Re-cluster the stored embedding into ``n_clusters`` regions (no retraining).

        Names and manual edits of the previous cut are replaced (undo brings
        them back).

        Raises
        ------
        ConfigError
            No SENCA result yet, or a count outside ``2..n_spots``.
        """
        from .cluster import check_n_clusters, recluster

        self.require_result()
        if not self.can_recluster:
            raise ConfigError("this clustering has no stored SENCA embedding to re-cut: run the model first")
        k = int(n_clusters)
        check_n_clusters(k, self.n_spots)
        self._push(f"cluster count {self.n_clusters} -> {k}")
        try:
            recluster(self.adata, k, key=self.key)
        except Exception:
            self._pop_restore()
            raise
        self.names = {}
        self.colours = {}
        self._complete_names_colours()
        self._changed(f"re-cluster into {k} regions", labels=True)

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
        return sorted(map(str, self.adata.var_names), key=str.lower)

    def search_genes(self, text: str, limit: int = 50) -> list[str]:
        """Genes containing ``text`` (case-insensitive), prefix matches first."""
        t = str(text).strip().lower()
        if not t:
            return self.genes()[:limit]
        names = self.genes()
        pre = [g for g in names if g.lower().startswith(t)]
        rest = [g for g in names if t in g.lower() and not g.lower().startswith(t)]
        return (pre + rest)[:limit]

    def resolve_gene(self, gene: str) -> str:
        """The exact gene name (case-insensitive match).

        Raises
        ------
        ConfigError
            When the section has no such gene.
        """
        g = str(gene).strip()
        names = self.adata.var_names
        if g in names:
            return g
        low = {str(n).lower(): str(n) for n in names}
        if g.lower() in low:
            return low[g.lower()]
        close = self.search_genes(g, limit=5)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(f"the section has no gene {gene!r}{hint}")

    def gene_values(self, gene: str) -> np.ndarray:
        """log1p of library-size-normalised expression of one gene (per spot)."""
        g = self.resolve_gene(gene)
        j = int(self.adata.var_names.get_loc(g))
        X = self.adata.X
        col = X[:, j]
        col = np.asarray(col.toarray() if sp.issparse(col) else col, dtype=np.float64).ravel()
        if self._libsize is None:
            tot = np.asarray(X.sum(1), dtype=np.float64).ravel()
            self._libsize = tot
        tot = self._libsize
        target = float(np.median(tot[tot > 0])) if (tot > 0).any() else 1.0
        with np.errstate(divide="ignore", invalid="ignore"):
            norm = np.where(tot > 0, col / tot * target, 0.0)
        return np.log1p(norm)

    def gene_limits(self, gene: str | None = None) -> tuple[float, float]:
        """Colour limits of a gene: its 2nd and 98th percentiles (robust to outliers)."""
        g = gene if gene is not None else self.colour_by
        if g is None:
            raise ConfigError("not coloured by a gene")
        v = self.gene_values(g)
        lo, hi = (float(x) for x in np.percentile(v, [2, 98]))
        if hi <= lo:
            lo, hi = float(v.min()), float(v.max())
        if hi <= lo:
            hi = lo + 1.0
        return lo, hi

    def show_gene(self, gene: str) -> np.ndarray:
        """Colour spots by ``gene`` from now on; returns its values."""
        g = self.resolve_gene(gene)
        values = self.gene_values(g)
        self.colour_by = g
        self._notify("colour")
        return values

    def show_clusters(self) -> None:
        """Colour spots by cluster again."""
        self.colour_by = None
        self._notify("colour")

    # ------------------------------------------------------------ marker genes
    def markers(self, cluster: Any | None = None, n_genes: int = 25) -> pd.DataFrame:
        """Marker-gene table (Wilcoxon rank-sum, cluster vs rest, BH-adjusted).

        Parameters
        ----------
        cluster
            Id or name; ``None`` returns every cluster's table.
        n_genes
            Genes per cluster.

        Returns
        -------
        pandas.DataFrame
            :data:`napari_senca.markers.MARKER_COLUMNS` plus ``name``. A cluster
            with fewer than two spots has an empty table.
        """
        from .markers import rank_markers

        self.require_result()
        cid = None if cluster is None else self.resolve(cluster)
        if self._markers is None or self._markers[0] != (self._version, n_genes):
            self._markers = ((self._version, n_genes), rank_markers(self.adata, self.key, n_genes=n_genes))
        df = self._markers[1]
        if cid is not None:
            df = df[df["cluster"] == cid]
        df = df.copy()
        df.insert(1, "name", [self.names.get(c, _default_name(c)) for c in df["cluster"]])
        return df.reset_index(drop=True)

    def markers_cached(self, n_genes: int = 25) -> bool:
        """True when :meth:`markers` can answer without running the tests."""
        return self._markers is not None and self._markers[0] == (self._version, int(n_genes))

    def marker_snapshot(self) -> tuple[AnnData, int]:
        """A light copy (counts shared, clusters copied) for computing markers in a thread.

        Returns the copy and the :attr:`version` it reflects; pass both to
        :meth:`cache_markers` with the table of :func:`napari_senca.markers.rank_markers`.
        """
        self.require_result()
        ad = AnnData(
            X=self.adata.X,
            obs=pd.DataFrame({self.key: self._labels().copy()}, index=self.adata.obs_names.copy()),
            var=pd.DataFrame(index=self.adata.var_names.copy()),
        )
        return ad, self._version

    def cache_markers(self, version: int, table: pd.DataFrame, n_genes: int = 25) -> bool:
        """Keep a marker table computed from :meth:`marker_snapshot` (if still current)."""
        if version != self._version:
            return False
        self._markers = ((version, int(n_genes)), table)
        return True

    # ------------------------------------------------------ layer description
    def colour_cycle(self) -> dict[str, str]:
        """Cluster id -> colour, for a points layer's ``face_color_cycle``."""
        return {c: self.colours.get(c, PALETTE[i % len(PALETTE)]) for i, c in enumerate(self.clusters)}

    def colour_column(self) -> str | None:
        """The ``features`` column spots are coloured by (None: one colour)."""
        if self.colour_by is not None:
            return EXPRESSION_KEY
        if self.has_result:
            return self.key
        if LABEL_KEY in self.adata.obs:
            return LABEL_KEY
        return None

    def label_cycle(self) -> dict[str, str]:
        """Pathologist label -> colour (used before a run)."""
        cats = self._label_categories()
        return {c: (PLAIN_COLOUR if c == UNLABELLED_NAME else PALETTE[i % len(PALETTE)]) for i, c in enumerate(cats)}

    def spot_colours(self) -> np.ndarray:
        """``(n_spots, 4)`` RGBA colours as the layer shows them (clusters/labels)."""
        from matplotlib.colors import to_rgba

        col = self.colour_column()
        if col == EXPRESSION_KEY and self.colour_by is not None:
            import matplotlib

            v = self.gene_values(self.colour_by)
            lo, hi = self.gene_limits()
            return np.asarray(matplotlib.colormaps["viridis"](np.clip((v - lo) / (hi - lo), 0, 1)))
        if col == self.key:
            cyc = self.colour_cycle()
            vals = self._labels().astype(str)
            lut = {c: to_rgba(h) for c, h in cyc.items()}
            return np.asarray([lut[v] for v in vals], dtype=float)
        if col == LABEL_KEY:
            cyc = self.label_cycle()
            vals = self._label_values()
            return np.asarray([to_rgba(cyc[v]) for v in vals], dtype=float)
        return np.tile(to_rgba(PLAIN_COLOUR), (self.n_spots, 1))

    def features(self) -> pd.DataFrame:
        """The spot table for a points layer's ``features``.

        Columns: ``spot_id``, ``array_row``, ``array_col``, ``total_counts``,
        ``label`` (when present), ``senca_cluster`` (categorical ids) and
        ``senca_region`` (names) after a run, ``expression`` when coloured by
        a gene.
        """
        obs = self.adata.obs
        df = pd.DataFrame(index=pd.RangeIndex(self.n_spots))
        df["spot_id"] = np.asarray(self.adata.obs_names, dtype=object)
        for c in ("array_row", "array_col"):
            if c in obs:
                df[c] = np.asarray(obs[c])
        if "total_counts" in obs:
            df["total_counts"] = np.asarray(obs["total_counts"], dtype=np.float64)
        else:
            X = self.adata.X
            df["total_counts"] = np.asarray(X.sum(1), dtype=np.float64).ravel()
        if LABEL_KEY in obs:
            df[LABEL_KEY] = pd.Categorical(self._label_values(), categories=self._label_categories())
        if self.has_result:
            labels = self._labels()
            df[self.key] = pd.Categorical(np.asarray(labels.astype(object)), categories=labels.categories)
            names = [self.names.get(c, _default_name(c)) for c in labels.categories]
            df[REGION_KEY] = pd.Categorical(
                [self.names.get(v, _default_name(v)) for v in labels.astype(str)], categories=names
            )
        if self.colour_by is not None:
            df[EXPRESSION_KEY] = self.gene_values(self.colour_by)
        return df

    def metadata(self) -> dict[str, Any]:
        """Points-layer ``metadata``: the AnnData, this state, names and colours."""
        return {
            "adata": self.adata,
            REVIEW_KEY: self,
            "senca_names": dict(self.names),
            "senca_colours": dict(self.colours),
            "senca_colour_by": self.colour_by,
            "senca_library_id": library_id(self.adata),
        }

    def layer_kwargs(self, name: str | None = None) -> dict[str, Any]:
        """Keyword arguments of ``napari.layers.Points`` for this section."""
        kw: dict[str, Any] = {
            "name": name or f"{_section_name(self.adata)} spots",
            "features": self.features(),
            "size": float(spot_diameter(self.adata)),
            "border_width": 0.0,
            "opacity": 0.85,
            "metadata": self.metadata(),
        }
        col = self.colour_column()
        if col == EXPRESSION_KEY:
            kw.update(face_color=col, face_colormap="viridis", face_contrast_limits=self.gene_limits())
        elif col == self.key:
            kw.update(face_color=col, face_color_cycle=self.colour_cycle())
        elif col == LABEL_KEY:
            kw.update(face_color=col, face_color_cycle=self.label_cycle())
        else:
            kw.update(face_color=PLAIN_COLOUR)
        return kw

    def coordinates(self) -> np.ndarray:
        """Spot centres as napari ``(row, col)`` = ``(y, x)`` full-res pixels."""
        return np.asarray(self.adata.obsm["spatial"], dtype=np.float64)[:, 1::-1].copy()

    def apply_to_layer(self, layer: Any) -> None:
        """Write features, colours and metadata to a napari points layer.

        Raises
        ------
        DataError
            When the layer's point count differs from the section's spots
            (points were added or deleted).
        """
        check_layer_matches(layer, self.adata)
        layer.metadata.update(self.metadata())
        new = self.features()
        col = self.colour_column()
        old = getattr(layer, "features", None)
        if col is not None and isinstance(old, pd.DataFrame) and col not in old.columns and len(old) == len(new):
            # keep the column napari colours by now valid until the new one exists
            merged = old.copy()
            for c in new.columns:
                merged[c] = new[c].to_numpy() if not isinstance(new[c].dtype, pd.CategoricalDtype) else new[c].array
            layer.features = merged
        if col is None:
            layer.face_color = PLAIN_COLOUR
        elif col == EXPRESSION_KEY:
            layer.face_color = col
            layer.face_color_mode = "colormap"
            layer.face_colormap = "viridis"
            layer.face_contrast_limits = self.gene_limits()
        else:
            layer.face_color_mode = "cycle"
            layer.face_color = col
            layer.face_color_cycle = self.colour_cycle() if col == self.key else self.label_cycle()
        layer.features = new
        if col == EXPRESSION_KEY:
            layer.face_contrast_limits = self.gene_limits()
        # napari's mapping and ours must agree; fall back to explicit colours
        if col not in (None, EXPRESSION_KEY):
            want = self.spot_colours()
            got = np.asarray(layer.face_color)
            if got.shape != want.shape or not np.allclose(got, want, atol=1e-2):
                layer.face_color = want
        layer.refresh()

    @classmethod
    def from_layer(cls, layer: Any) -> ReviewState:
        """The state of a points layer made by this plugin (created if needed).

        Raises
        ------
        DataError
            When the layer carries no section or its points no longer match it.
        """
        meta = getattr(layer, "metadata", None) or {}
        state = meta.get(REVIEW_KEY)
        adata = meta.get("adata")
        if isinstance(state, ReviewState) and (adata is None or state.adata is adata):
            check_layer_matches(layer, state.adata)
            return state
        if not isinstance(adata, AnnData):
            raise DataError(
                None, f"layer {getattr(layer, 'name', '?')!r} holds no section: load one with the Load widget"
            )
        check_layer_matches(layer, adata)
        state = cls(adata)
        names, colours = meta.get("senca_names"), meta.get("senca_colours")
        if isinstance(names, dict):
            state.names.update({str(k): str(v) for k, v in names.items() if str(k) in state.clusters})
        if isinstance(colours, dict):
            state.colours.update({str(k): to_hex(v) for k, v in colours.items() if str(k) in state.clusters})
        if state.has_result:
            state._write()
        meta[REVIEW_KEY] = state
        return state

    # --------------------------------------------------------------- internals
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

    def _label_values(self) -> list[str]:
        lab = self.adata.obs[LABEL_KEY]
        return [UNLABELLED_NAME if pd.isna(v) else str(v) for v in lab]

    def _label_categories(self) -> list[str]:
        lab = self.adata.obs[LABEL_KEY]
        cats = [str(c) for c in (lab.cat.categories if isinstance(lab.dtype, pd.CategoricalDtype) else pd.unique(lab.dropna()))]
        if lab.isna().any() and UNLABELLED_NAME not in cats:
            cats.append(UNLABELLED_NAME)
        return cats

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


def _default_name(cid: str) -> str:
    return f"cluster {cid}"


def _history_ids(snaps: Sequence[_Snapshot]) -> list[str]:
    out: list[str] = []
    for s in snaps:
        out.extend(s.clusters)
    return out


def _section_name(adata: AnnData) -> str:
    lib = library_id(adata)
    info = adata.uns.get("senca_input")
    if isinstance(info, dict) and info.get("path"):
        from pathlib import Path

        p = Path(str(info["path"]))
        stem = p.name[: -len(".h5ad")] if p.name.endswith(".h5ad") else p.name
        if stem in ("outs", "") and p.parent.name:
            stem = p.parent.name
        return stem or (lib or "section")
    return lib or "section"


def check_layer_matches(layer: Any, adata: AnnData) -> None:
    """Raise :class:`DataError` when a points layer no longer has one point per spot."""
    n = len(getattr(layer, "data", []))
    if n != adata.n_obs:
        raise DataError(
            None,
            f"layer {getattr(layer, 'name', '?')!r} has {n} points but its section has {adata.n_obs} spots "
            "(points were added or deleted): reload the section",
        )


def _shape_outline(vertices: np.ndarray, shape_type: str) -> np.ndarray | None:
    v = np.asarray(vertices, dtype=np.float64)[:, -2:]
    if shape_type == "ellipse" and len(v) == 4:
        # napari stores an ellipse as the four corners of its bounding box
        c = v.mean(0)
        a, b = (v[1] - v[0]) / 2.0, (v[3] - v[0]) / 2.0
        t = np.linspace(0, 2 * np.pi, 64, endpoint=False)[:, None]
        return c + np.cos(t) * a + np.sin(t) * b
    if shape_type in ("line", "path", "polyline") or len(v) < 3:
        return None
    return v


def spots_in_shapes(
    coords: np.ndarray, shapes: Sequence[np.ndarray], shape_types: Sequence[str] | None = None
) -> np.ndarray:
    """Indices of the spots whose centres lie inside any of the drawn shapes.

    Parameters
    ----------
    coords
        ``(n_spots, 2)`` spot centres, napari ``(row, col)``, in the same
        (world) coordinates as the shapes.
    shapes
        Vertex arrays of polygons, lasso polygons, rectangles or ellipses
        (lines and paths enclose nothing and are ignored).
    shape_types
        napari shape type of each entry (default: polygon).

    Returns
    -------
    numpy.ndarray
        Sorted spot indices.
    """
    from matplotlib.path import Path as MplPath

    pts = np.asarray(coords, dtype=np.float64)[:, -2:]
    inside = np.zeros(len(pts), dtype=bool)
    types = list(shape_types) if shape_types is not None else ["polygon"] * len(shapes)
    for verts, kind in zip(shapes, types, strict=True):
        outline = _shape_outline(verts, kind)
        if outline is not None:
            inside |= MplPath(outline).contains_points(pts)
    return np.flatnonzero(inside)


def image_layer_data(adata: AnnData, name: str | None = None) -> tuple[Any, dict[str, Any], str] | None:
    """The section's H&E as a napari image layer-data tuple, or None.

    The layer is scaled by ``1 / scalefactor`` so that it lies in full-resolution
    pixel coordinates, the coordinates of the spots.
    """
    got = get_image(adata)
    if got is None:
        return None
    img, scalef = got
    s = 1.0 / float(scalef) if scalef else 1.0
    kw = {
        "name": name or f"{_section_name(adata)} H&E",
        "rgb": True,
        "scale": (s, s),
        "metadata": {"senca_library_id": library_id(adata), "senca_scalef": float(scalef)},
    }
    return (img, kw, "image")


def points_layer_data(adata: AnnData, name: str | None = None) -> tuple[Any, dict[str, Any], str]:
    """The spots as a napari points layer-data tuple (see :class:`ReviewState`)."""
    state = ReviewState(adata)
    return (state.coordinates(), state.layer_kwargs(name), "points")


def section_layer_data(adata: AnnData, name: str | None = None) -> list[tuple[Any, dict[str, Any], str]]:
    """Image (when there is one) and points layer-data tuples of a section."""
    base = name or _section_name(adata)
    out: list[tuple[Any, dict[str, Any], str]] = []
    img = image_layer_data(adata, f"{base} H&E")
    if img is not None:
        out.append(img)
    out.append(points_layer_data(adata, f"{base} spots"))
    return out
