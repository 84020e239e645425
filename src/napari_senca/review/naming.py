"""Regions named from annotated reference sections (a mixin of ReviewState).

The model draws the boundaries, the reference says which tissue each is: the
stored embedding is cut into :data:`EXTRA` more clusters than the clustering
has, each cluster is named after the region most of its spots get from the
reference (:func:`napari_senca.reference.predict_regions`, computed in a worker
thread by the widget), and clusters given one name become one region.

HER2ST, the other seven sections as the reference: 0.368 mean ARI against
0.298 for the model's k-means (held-out seeds; docs/benchmarks.md,
"Twenty-second session"). With one reference section the names collapse to one
or two regions (0.045), so a single name for every cluster is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from os import PathLike

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
        info = adata.uns.setdefault("senca_input", {})
        info["path"] = info.get("path") or str(p)
        reference_labels(adata, key)  # fails here, naming the file, rather than after minutes of work
        refs.append(adata)
    return refs


def reference_naming(adata: AnnData, references: Sequence[str | PathLike | AnnData], n_clusters: int,
                     key: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(predicted names per spot, the stored embedding cut into n_clusters)`` for :meth:`NamingMixin.name_from_reference`.

    Pure (reads the section, changes nothing), so the widget runs it in a worker thread.
    ``references`` are annotated sections or paths to them (:func:`read_references`).
    """
    from ..cluster import recluster_labels, stored_clustering
    from ..reference import predict_regions
    from ..section import UNS_KEY

    refs = [r if isinstance(r, AnnData) else read_references([r], key)[0] for r in references]
    k = int((adata.uns.get(UNS_KEY, {}).get("config", {}) or {}).get("n_neighbors", 4))
    pred = predict_regions(adata, refs, key=key, n_neighbors=k)
    tree, emb, seed = stored_clustering(adata)
    return pred.names, recluster_labels(tree, emb, n_clusters, seed)


class NamingMixin:
    """:meth:`name_from_reference` of :class:`~napari_senca.review.ReviewState`."""

    adata: AnnData
    names: dict[str, str]
    manual: np.ndarray
    clusters: list[str]
    n_spots: int
    clustering_k: int
    check_recluster: Callable[[int], int]
    name_of: Callable[[str], str]
    _labels: Callable[[], pd.Categorical]
    _set_labels: Callable[..., None]
    _carry_ids: Callable[..., tuple[np.ndarray, list[str], list[str]]]
    _give_back: Callable[[list[str]], None]
    _complete_names_colours: Callable[[], None]
    _capture: Callable[..., object]
    _changed: Callable[..., None]
    history: object

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

        Spots assigned by hand keep their region; a region of theirs whose name
        the reference gives joins the region of that name. Region ids carry
        over where the new regions overlap the old ones (colours follow). One
        edit: undo takes it back.

        Returns
        -------
        str
            What was done, in words.

        Raises
        ------
        ConfigError
            No stored embedding, a prediction that does not fit the section, or one name for every cluster.
        """
        from ..cluster import recluster_labels, stored_clustering
        from ..reference import name_clusters

        k = self.reference_cut()
        predicted = np.asarray(predicted).astype(str)
        if predicted.shape != (self.n_spots,):
            raise ConfigError(f"{predicted.shape[0] if predicted.ndim else 0} predicted regions for a section of "
                              f"{self.n_spots} spots")
        if labels is None:
            tree, emb, seed = stored_clustering(self.adata)
            labels = recluster_labels(tree, emb, k, seed)
        by_cluster = name_clusters(np.asarray(labels), predicted)
        if len(set(by_cluster.values())) < 2:
            raise ConfigError(f"the reference names every one of the {k} clusters {next(iter(by_cluster.values()))!r}; "
                              "nothing changed (one reference section is rarely enough: add more)")
        named = np.asarray([by_cluster[int(c)] for c in range(int(np.max(labels)) + 1)], dtype=object)[labels]
        old = np.asarray(self._labels().astype(object), dtype=object)
        edit = self._capture(f"name {k} clusters from a reference", None)
        values, fresh, back = self._carry_ids(old, named)
        values[self.manual] = old[self.manual]
        region_of = {str(n): str(v) for n, v in zip(named[~self.manual], values[~self.manual], strict=True)}
        kept = set(values[self.manual].tolist()) - set(region_of.values())
        for cid in kept:  # a region kept by hand that has a reference name joins that region
            name = self.names.get(cid, _default_name(cid))
            if name in region_of:
                values[values == cid] = region_of[name]
        self.history.push(edit)
        used = set(values.tolist())
        order = [c for c in self.clusters if c in used] + [c for c in (*back, *fresh) if c in used]
        self._set_labels(pd.Categorical(values, categories=list(dict.fromkeys(order))), before=old)
        self._give_back(back)
        for name, cid in region_of.items():
            if cid in used:
                self.names[cid] = name
        self._complete_names_colours()
        sizes = pd.Series(values).map(lambda c: self.names.get(c, c)).value_counts()
        what = (f"named {k} clusters from the reference: {len(sizes)} regions ("
                + ", ".join(f"{n}: {c}" for n, c in sizes.items()) + ")")
        self._changed(what, labels=True, spots=None)
        return what
