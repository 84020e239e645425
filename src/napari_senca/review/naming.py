"""Regions named from annotated reference sections (a mixin of ReviewState).

The model draws the boundaries, the reference says which tissue each is: the
stored embedding is cut into :data:`EXTRA` more clusters than the clustering
has, each cluster is named after the region most of its spots get from the
reference (:func:`napari_senca.reference.predict_regions`, computed in a worker
thread by the widget), and clusters given one name become one region.

HER2ST, the other seven sections as the reference: 0.360 mean ARI against
0.298 for the model's k-means (nine held-out seeds; docs/benchmarks.md,
"Twenty-second session"). With one reference section the names often collapse
(0.045; one name for every cluster in half the cases), so that result is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from os import PathLike
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from ..errors import ConfigError
from .keys import default_name as _default_name

__all__ = ["NamingMixin", "EXTRA", "read_references", "reference_naming"]

#: clusters cut beyond the clustering's count before the reference names them (pre-registered, not tuned)
EXTRA = 3


def read_references(paths: Sequence[str | PathLike], key: str | None = None) -> list[AnnData]:
    """Annotated sections read for :func:`reference_naming` (any file or folder ``read_section`` reads).

    ``key``: their ``obs`` column of region names (:func:`napari_senca.reference.reference_labels`).

    Raises
    ------
    DataError
        A file that cannot be read, or one without region names (naming the file).
    """
    from ..io import read_section
    from ..reference import reference_labels

    refs = []
    for p in paths:
        adata = read_section(p)
        adata.uns["senca_input"] = {**(adata.uns.get("senca_input") or {}), "path": str(p)}  # errors name this file
        reference_labels(adata, key)  # fails here, naming the file, rather than after minutes of work
        refs.append(adata)
    return refs


def reference_naming(adata: AnnData, references: Sequence[str | PathLike | AnnData], n_clusters: int,
                     key: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(predicted names per spot, the stored embedding cut into n_clusters)`` for :meth:`NamingMixin.name_from_reference`.

    Pure (reads the section, changes nothing), so the widget runs it in a worker thread.
    ``references`` are annotated sections or paths to them (:func:`read_references`).
    """
    from ..reference import predict_regions
    from ..section import UNS_KEY

    refs = [r if isinstance(r, AnnData) else read_references([r], key)[0] for r in references]
    k = int((adata.uns.get(UNS_KEY, {}).get("config", {}) or {}).get("n_neighbors", 4))
    pred = predict_regions(adata, refs, key=key, n_neighbors=k)
    return pred.names, _cut(adata, n_clusters)


def _cut(adata: AnnData, n_clusters: int) -> np.ndarray:
    """The section's stored embedding cut into ``n_clusters`` (its Ward tree, else k-means with its seed)."""
    from ..cluster import recluster_labels, stored_clustering

    tree, emb, seed = stored_clustering(adata)
    return recluster_labels(tree, emb, n_clusters, seed)


class NamingMixin:
    """:meth:`name_from_reference` of :class:`~napari_senca.review.ReviewState`."""

    adata: AnnData
    names: dict[str, str]
    manual: np.ndarray
    clusters: list[str]
    n_spots: int
    clustering_k: int
    check_recluster: Callable[[int], int]
    _labels: Callable[[], pd.Categorical]
    _set_labels: Callable[..., None]
    memory: Any
    _complete_names_colours: Callable[[], None]
    _capture: Callable[..., object]
    _changed: Callable[..., None]
    history: Any

    def reference_cut(self) -> int:
        """The cluster count the reference names (the clustering's count + :data:`EXTRA`)."""
        return self.check_recluster(self.clustering_k + EXTRA)

    def name_from_reference(self, predicted: np.ndarray, labels: np.ndarray | None = None) -> str:
        """Regions named by a reference: over-cluster, name each cluster by its spots' majority, merge equal names.

        Parameters
        ----------
        predicted
            ``(n_spots,)`` the reference's region per spot
            (:attr:`napari_senca.reference.ReferencePrediction.names`).
        labels
            The stored embedding cut into :meth:`reference_cut` clusters, when already
            computed (:func:`napari_senca.cluster.recluster_labels` in a worker thread).

        Spots assigned by hand keep their region and its name (the region's other
        spots are named like the rest); a region named as the reference names one
        joins it. The other regions are replaced: a reference name keeps the id
        (and colour) of the region that already has that name, else of the
        region it overlaps most among those without spots by hand, else a new id.
        One edit: undo takes it back.

        Returns
        -------
        str
            What was done, in words.

        Raises
        ------
        ConfigError
            No stored embedding, predictions or labels that do not fit the section, or one name for every cluster.
        """
        from ..reference import name_clusters

        predicted = np.asarray(predicted).astype(str)
        labels = np.asarray(_cut(self.adata, self.reference_cut()) if labels is None else labels)
        for what, arr in (("predicted regions", predicted), ("cluster labels", labels)):
            if arr.shape != (self.n_spots,):
                raise ConfigError(f"{arr.shape[0] if arr.ndim else 0} {what} for a section of {self.n_spots} spots")
        by_cluster = name_clusters(labels, predicted)
        k = len(by_cluster)
        if len(set(by_cluster.values())) < 2:
            raise ConfigError(f"the reference names every one of the {k} clusters {next(iter(by_cluster.values()))!r}; "
                              "nothing changed (one reference section is rarely enough: add more)")
        uniq, inv = np.unique(labels, return_inverse=True)
        named = np.asarray([by_cluster[int(c)] for c in uniq], dtype=object)[inv]
        cur = self._labels()
        old = np.asarray(cur.astype(object), dtype=object)
        ids = self._reference_ids(named, np.asarray(cur.codes), [str(c) for c in cur.categories])
        names, name_inv = np.unique(named.astype(str), return_inverse=True)
        values = np.asarray([ids[n] for n in names], dtype=object)[name_inv]
        values[self.manual] = old[self.manual]
        edit = self._capture(f"name {k} clusters from a reference", None)
        self.history.push(edit)
        used = set(pd.unique(values).tolist())
        order = [c for c in self.clusters if c in used]
        order += sorted(used - set(order), key=lambda c: (not c.isdigit(), int(c) if c.isdigit() else 0, c))
        self._set_labels(pd.Categorical(values, categories=order), before=old)
        for name, cid in ids.items():
            if cid in used:
                self.names[cid] = name
        self._complete_names_colours()
        counts = pd.Series(pd.Categorical(values, categories=order)).value_counts(sort=True)
        what = (f"named {k} clusters from the reference: {len(counts)} regions ("
                + ", ".join(f"{self.names.get(c, c)}: {n}" for c, n in counts.items()) + ")")
        self._changed(what, labels=True, spots=None)
        return what

    def _reference_ids(self, named: np.ndarray, codes: np.ndarray, cats: list[str]) -> dict[str, str]:
        """The region id each reference name takes: the region already so named, else the one it overlaps most.

        Overlap is counted on spots not assigned by hand, and regions holding spots by hand are not taken
        (those spots keep them, with their names); names left over get new ids.
        """
        from .matching import match_clusters

        hand = {cats[i] for i in np.unique(codes[self.manual & (codes >= 0)])}
        by_name = {self.names.get(c, _default_name(c)): c for c in cats}
        wanted = [str(n) for n in pd.unique(named)]
        ids = {n: by_name[n] for n in wanted if n in by_name}
        free = [c for c in cats if c not in hand and c not in ids.values()]
        rest = [n for n in wanted if n not in ids]
        old = np.asarray(cats + [""], dtype=object)[codes]  # "" for spots of no region
        sel = ~self.manual & (codes >= 0) & np.isin(named, rest) & np.isin(old, free)
        if rest and sel.any():
            ids.update(match_clusters(old[sel].astype(str), named[sel].astype(str)))
        taken = set(cats) | set(self.history.ids()) | set(self.memory.ids()) | set(ids.values())
        nxt = 0
        for n in rest:
            if n not in ids:
                while str(nxt) in taken:
                    nxt += 1
                ids[n] = str(nxt)
                taken.add(str(nxt))
        return ids
