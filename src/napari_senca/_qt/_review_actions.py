"""The Review widget's actions (a mixin): each calls one method of the review state and writes it back.

These are the widget's public methods (and what its buttons call): re-cluster,
select a region, show or hide it, rename, recolour, assign the selected spots,
select inside drawn shapes, classify the rest from the spots assigned by hand,
name the regions from annotated sections, merge, undo / redo, colour by a gene
or by region.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..review import ReviewState
from ..review import raster as _raster
from ..review.layers import restore_layer
from . import _common
from ._common import guarded, notify_error, notify_info, qt_callback
from ._review_raster import _world

__all__ = ["NEW_REGION", "RECLUSTER_IN_WORKER", "ReviewActionsMixin"]

NEW_REGION = "+ new region"
#: above this many spots, k-means for a new cluster count runs in a worker thread (at 20,000 spots it takes
#: about 0.3 s; 160,000 bins 1.5-2.8 s, 500,000 several seconds)
RECLUSTER_IN_WORKER = 20_000


class ReviewActionsMixin:
    """Actions of :class:`~napari_senca._qt.ReviewWidget`.

    Uses the widget's ``viewer``, ``layer`` (section picker), the edit and
    colour-by controls, ``state``, ``_apply`` and (from
    :class:`~napari_senca._qt._review_raster.RasterSelectionMixin`) ``select``
    and ``selected``.
    """

    viewer: Any
    layer: Any
    target: Any
    new_name: Any
    merge_a: Any
    merge_b: Any
    gene: Any
    hint: Any
    n_clusters: Any
    recluster_worker: Any
    reference_worker: Any
    reference_btn: Any
    start_worker: Callable[..., Any]

    @guarded
    def set_n_clusters(self, k: int, keep_manual: bool = True) -> Any:
        """Re-cluster the stored embedding into ``k`` regions (names, colours, hand assignments kept).

        A re-cut of a Ward tree, or k-means on up to :data:`RECLUSTER_IN_WORKER`
        spots, is done at once (None is returned). k-means on more spots (a
        Visium HD section: seconds) runs in a worker thread and the regions
        change when it is done (the worker is returned; the review can go on
        meanwhile, and edits made meanwhile are kept as by any re-cluster).
        """
        from ..cluster import recluster_in_worker, stored_clustering

        st = self.state()
        if self.recluster_worker is not None:
            raise ConfigError("still re-clustering: wait for the regions to change, then choose the count again")
        if self.reference_worker is not None:
            raise ConfigError("still naming from the reference: wait for the regions to change, then re-cluster")
        k = st.check_recluster(k)
        tree, embedding, seed = stored_clustering(st.adata)
        if tree is not None or st.n_spots <= RECLUSTER_IN_WORKER:
            st.set_n_clusters(k, keep_manual=keep_manual)
            self._apply(st)
            return None
        layer = self.layer.require()
        self.hint.value = f"re-clustering {st.n_spots:,} spots into {k} regions …"
        self.n_clusters.enabled = False
        self.recluster_worker = self.start_worker(
            recluster_in_worker, None, embedding, k, seed,
            returned=lambda res: self._on_reclustered(layer, st, embedding, k, keep_manual, *res),
            errored=self._on_recluster_error, finished=self._on_recluster_finished,
        )  # fmt: skip
        return self.recluster_worker

    @qt_callback
    def _on_reclustered(self, layer: Any, st: Any, embedding: Any, k: int, keep_manual: bool, labels: Any,
                        confidence: Any) -> None:
        from ..section import EMBED_KEY

        same = (layer in self.viewer.layers and ReviewState.from_layer(layer) is st
                and st.adata.obsm.get(EMBED_KEY) is embedding)  # fmt: skip
        if not same:  # a new run or another section meanwhile: these regions belong to nothing shown
            notify_info(f"re-clustering into {k} regions dropped: the section changed meanwhile")
            return
        st.set_n_clusters(k, keep_manual=keep_manual, labels=labels, confidence=confidence)
        self._apply_to(layer, st)

    def _apply_to(self, layer: Any, st: Any) -> None:
        """Write a worker's result back to the layer it was computed for (redrawn when it is the one shown)."""
        if self.layer.value is layer:
            self._apply(st)
        else:
            st.apply_to_layer(layer)

    @qt_callback
    def _on_recluster_error(self, exc: BaseException) -> None:
        notify_error(exc)

    @qt_callback
    def _on_recluster_finished(self) -> None:
        self.recluster_worker = None
        self.refresh()

    @guarded
    def select_region(self, cluster: Any) -> list[int] | None:
        """Select the spots of a region (or, before a run, of a pathologist label) in the layer."""
        layer = self.layer.require()
        st = self.state()
        idx = st.spots_of(cluster) if st.has_result else st.spots_with_label(str(cluster))
        self.select(idx)
        self.viewer.layers.selection.active = layer
        return np.asarray(idx, dtype=np.int64).tolist()

    @guarded
    def set_visible(self, cluster: Any, visible: bool) -> None:
        """Show or hide the spots of a region."""
        st = self.state()
        st.set_visible(cluster, bool(visible))
        self._apply(st)

    @guarded
    def restore_spots(self) -> tuple[int, int] | None:
        """Drop points added to the spots layer and put back deleted ones; returns (dropped, restored)."""
        layer = self.layer.require()
        dropped, restored = restore_layer(layer, layer.metadata["adata"])
        self._apply(self.state())
        notify_info(f"spots restored: {dropped} added point(s) dropped, {restored} spot(s) put back")
        return dropped, restored

    @guarded
    def rename(self, cluster: Any, name: str) -> None:
        """Rename a region."""
        st = self.state()
        try:
            st.rename(cluster, name)
        finally:
            self._apply(st)

    @guarded
    def recolour(self, cluster: Any, colour: Any = None) -> None:
        """Recolour a region (asks with a colour dialog when ``colour`` is None)."""
        st = self.state()
        cid = st.resolve(cluster)
        if colour is None:
            colour = _common.pick_colour(self, st.colour_of(cid))
            if colour is None:
                return
        st.recolour(cid, colour)
        self._apply(st)

    @guarded
    def assign_selected(self, target: Any = None, new_name: str | None = None) -> str | None:
        """Assign the selected spots of the layer to ``target`` (default: the combo box).

        Returns the id of the region the spots now belong to.
        """
        st = self.state()
        st.require_result()
        sel = self.selected()
        if not sel.size:
            raise ConfigError(
                "no spots selected: choose the spots layer, press S (select) or the lasso tool, "
                "and select spots first"
            )
        tgt = self.target.value if target is None else target
        name = self.new_name.value if new_name is None else new_name
        if tgt in (None, NEW_REGION):
            cid = st.assign(sel, None, new_name=name or None)
            self.new_name.value = ""
        else:
            cid = st.assign(sel, tgt)
        self._apply(st)
        notify_info(f"{len(sel)} spots assigned to {st.name_of(cid)!r}")
        return cid

    @guarded
    def classify_rest(self, keep_unassigned: bool = False) -> str | None:
        """Every spot not assigned by hand to the region whose hand-assigned spots are nearest (no question asked).

        ``keep_unassigned``: regions without spots by hand compete with their current spots instead of
        losing them (:meth:`~napari_senca.review.ReviewState.classify_from_assigned`). Returns what was done.
        """
        st = self.state()
        what = st.classify_from_assigned(keep_unassigned)
        self._apply(st)
        notify_info(what)
        return what

    @guarded
    def name_from_reference(self, paths: Sequence[str], key: str | None = None) -> Any:
        """Name the regions after annotated sections (``.h5ad`` files with region names); returns the worker.

        The references are read, learnt and the embedding cut into k + 3 clusters in a worker thread
        (:func:`~napari_senca.review.naming.reference_naming`: 2-3 s for a HER2ST section, 15-25 s for
        10,000-200,000 spots named after two 10,000-spot sections); then each cluster is named by
        the reference and clusters with one name merge
        (:meth:`~napari_senca.review.ReviewState.name_from_reference`, one edit).
        ``key``: the references' ``obs`` column of names (default: named ``senca_region``, else ``label``).
        """
        from ..review.naming import reference_naming

        st = self.state()
        if self.reference_worker is not None:
            raise ConfigError("still naming from the reference: wait for the regions to change")
        if self.recluster_worker is not None:
            raise ConfigError("still re-clustering: wait for the regions to change, then name them")
        if not paths:
            raise ConfigError("choose at least one annotated section (.h5ad)")
        k = st.reference_cut()
        layer = self.layer.require()
        n = len(paths)
        self.hint.value = f"naming {k} clusters from {n} annotated section{'s' if n > 1 else ''} …"
        self.reference_btn.enabled = False
        self.reference_worker = self.start_worker(
            reference_naming, st.adata, list(paths), k, key,
            returned=lambda res: self._on_reference_named(layer, st, n, *res),
            errored=self._on_recluster_error, finished=self._on_reference_finished,
        )  # fmt: skip
        return self.reference_worker

    @qt_callback
    def _on_reference_named(self, layer: Any, st: Any, n_refs: int, predicted: Any, labels: Any) -> None:
        try:
            same = layer in self.viewer.layers and ReviewState.from_layer(layer) is st and len(labels) == st.n_spots
        except Exception:  # the layer's points no longer match its section
            same = False
        if not same:
            notify_info("naming from the reference dropped: the section changed meanwhile")
            return
        what = st.name_from_reference(predicted, labels)
        self._apply_to(layer, st)
        few = "; from one annotated section the names are often wrong: check them, or add sections" if n_refs < 2 else ""
        notify_info(what + few)

    @qt_callback
    def _on_reference_finished(self) -> None:
        self.reference_worker = None
        self.refresh()  # enables the button again (ReviewSyncMixin._refresh)

    @guarded
    def select_in_shapes(self, shapes_layer: Any = None) -> list[int] | None:
        """Select the spots inside the shapes of a Shapes layer (lasso, polygon, ...).

        ``shapes_layer`` defaults to the selected Shapes layer, else the
        topmost one. Returns the selected spot indices.
        """
        from ..review import spots_in_shapes

        layer = self.layer.require()
        shp = shapes_layer
        if shp is None:
            active = self.viewer.layers.selection.active
            cands = [ly for ly in self.viewer.layers if type(ly).__name__ == "Shapes"]
            shp = active if type(active).__name__ == "Shapes" else (cands[-1] if cands else None)
        if shp is None or len(shp.data) == 0:
            raise ConfigError(
                "draw around the spots first: add a Shapes layer and use its lasso or polygon tool"
            )
        polys = [_world(shp, verts) for verts in shp.data]
        if _raster.is_raster_layer(layer):
            idx = _raster.bins_in_shapes(layer, polys, list(shp.shape_type))
        else:
            idx = spots_in_shapes(_raster.layer_world_coords(layer), polys, list(shp.shape_type))
        idx = idx[self.state().shown_mask()[idx]]  # spots of hidden regions are not edited by accident
        self.select(idx)
        self.viewer.layers.selection.active = layer
        layer.mode = "pan_zoom" if _raster.is_raster_layer(layer) else "select"
        notify_info(f"{len(idx)} spots selected inside {len(shp.data)} shape(s) of {shp.name!r}")
        return np.asarray(idx, dtype=np.int64).tolist()

    @guarded
    def merge(self, keep: Any = None, other: Any = None) -> str | None:
        """Merge region ``other`` into ``keep`` (default: the two combo boxes)."""
        st = self.state()
        a = self.merge_b.value if keep is None else keep
        b = self.merge_a.value if other is None else other
        if a is None or b is None:
            raise ConfigError("choose two regions to merge")
        cid = st.merge(a, b)
        self._apply(st)
        return cid

    @guarded
    def undo(self) -> str | None:
        """Undo the last edit; returns its description."""
        return self._travel("undo", "undone")

    @guarded
    def redo(self) -> str | None:
        """Redo the last undone edit; returns its description."""
        return self._travel("redo", "redone")

    def _travel(self, step: str, done: str) -> str | None:
        """``ReviewState.undo`` or ``.redo`` (``step``), shown on the layers and in a notification."""
        st = self.state()
        what = getattr(st, step)()
        self._apply(st)
        notify_info(f"{done}: {what}")
        return what

    @guarded
    def colour_by_gene(self, gene: str | None = None) -> None:
        """Colour the spots by a gene's log-normalised expression or a numeric spot column."""
        st = self.state()
        g = (self.gene.value if gene is None else gene).strip()
        if not g:
            raise ConfigError("type a gene name or a numeric column (e.g. senca_confidence) first")
        st.show_gene(g)
        self.gene.value = st.colour_by or g
        self._apply(st)

    @guarded
    def colour_by_clusters(self) -> None:
        """Colour the spots by region again."""
        st = self.state()
        st.show_clusters()
        self._apply(st)
