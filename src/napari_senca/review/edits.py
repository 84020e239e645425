"""The edits of a review (a mixin of ReviewState): re-cluster, rename, recolour, assign, merge, undo, redo.

Every edit records what it changes first (:mod:`.history`: the spots it
changes and their previous cluster codes), then changes ``obs`` and the
names and colours, then calls the state's ``_changed``, which writes the
AnnData and tells the listeners.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from ..confidence import factorize_labels
from ..errors import ConfigError
from ..section import UNS_KEY
from .colours import PALETTE, to_hex
from .geometry import index_mask
from .history import Edit, History, capture, restore
from .keys import default_name as _default_name
from .matching import RegionMemory, match_clusters

__all__ = ["EditsMixin"]


class EditsMixin:
    """Edit methods of :class:`~napari_senca.review.ReviewState`.

    Uses the state's ``adata``, ``key``, ``names``, ``colours``, ``manual``,
    ``log``, ``history``, ``memory``, ``clusters``, ``resolve``, ``name_of``,
    ``require_result``, ``_labels``, ``_set_labels``, ``_complete_names_colours``
    and ``_changed``.
    """

    adata: AnnData
    key: str
    names: dict[str, str]
    colours: dict[str, str]
    manual: np.ndarray
    log: list[str]
    history: History
    memory: RegionMemory
    clusters: list[str]
    n_spots: int
    can_recluster: bool
    clustering_k: int
    resolve: Callable[[Any], str]
    name_of: Callable[[Any], str]
    require_result: Callable[[], None]
    _labels: Callable[[], pd.Categorical]
    _set_labels: Callable[..., None]
    _complete_names_colours: Callable[[], None]
    _changed: Callable[..., None]

    def set_n_clusters(self, n_clusters: int, keep_manual: bool = True, labels: np.ndarray | None = None,
                       confidence: np.ndarray | None = None) -> None:
        """Re-cluster the stored embedding into ``n_clusters`` regions (no retraining).

        The review is carried over: each new region takes the id, name and
        colour of the old region it shares most spots with (Hungarian
        matching, :func:`.matching.match_clusters`), a region that an earlier
        cut or merge made disappear and that comes back with nearly the same
        spots gets its id, name and colour back (:class:`.matching.RegionMemory`),
        and spots assigned by hand keep their region unless ``keep_manual``
        is False. Undo brings back the previous cut. ``labels`` are the model's
        new regions when already computed (:func:`napari_senca.cluster.recluster_labels`,
        e.g. in a worker thread); they depend only on the stored embedding and
        ``n_clusters``, not on the review; ``confidence`` is their
        :func:`~napari_senca.confidence.silhouette_confidence`, when also computed
        (both: :func:`napari_senca.cluster.recluster_in_worker`).

        Raises
        ------
        ConfigError
            No SENCA result yet, or a count outside ``2..n_spots``.
        """
        from ..cluster import recluster

        k = self.check_recluster(n_clusters)
        old_cats = self.clusters
        old = np.asarray(self._labels().astype(object), dtype=object)
        edit = self._capture(f"cluster count {self.clustering_k} -> {k}", None)
        try:
            new = recluster(self.adata, k, key=self.key, labels=labels, confidence=confidence)
        except Exception:
            self._restore(edit)
            raise
        self.history.push(edit)
        values, fresh, back = self._carry_ids(old, np.asarray(new.astype(object), dtype=object))
        if keep_manual:
            values[self.manual] = old[self.manual]
        else:
            self.manual[:] = False
        used = set(values)
        kept = [c for c in old_cats if c in used]
        self._set_labels(pd.Categorical(values, categories=_legend_order(kept, back, fresh, used)), before=old)
        self._give_back(back)
        self._complete_names_colours()
        n_kept = int(self.manual.sum())
        extra = f", {n_kept} spots assigned by hand kept" if n_kept else ""
        self._changed(f"re-cluster into {k} regions{extra}", labels=True, spots=None)

    def check_recluster(self, n_clusters: int) -> int:
        """``n_clusters`` as an int when :meth:`set_n_clusters` can use it.

        Raises
        ------
        ConfigError
            No SENCA result yet, or a count outside ``2..n_spots``.
        """
        from ..cluster import check_n_clusters

        self.require_result()
        if not self.can_recluster:
            raise ConfigError("this clustering has no stored SENCA embedding to re-cut: run the model first")
        k = int(n_clusters)
        check_n_clusters(k, self.n_spots)
        return k

    def _carry_ids(self, old: np.ndarray, new: np.ndarray) -> tuple[np.ndarray, list[str], list[str]]:
        """New labels renamed to old ids: remembered, matched, else fresh.

        Returns the new labels, the fresh ids and the remembered ids given back.
        """
        back = self.memory.recall(old, new)
        rest = ~np.isin(new.astype(str), list(back)) & pd.notna(old)  # spots of no region match nothing
        match = {**match_clusters(old[rest], new[rest]), **back}
        taken = set(pd.unique(old).tolist()) | set(self.history.ids()) | set(self.memory.ids())
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
        uniq, inv = factorize_labels(new, as_str=True)
        return np.asarray([mapping[v] for v in uniq], dtype=object)[inv], fresh, list(back.values())

    def _give_back(self, ids: list[str]) -> None:
        """Remembered regions that are back: their name and colour (when no other region has them).

        They stay remembered (``recall`` skips ids that are present), so an
        undo that removes them again and a later re-cut still give them back.
        """
        for cid in ids:
            reg = self.memory.get(cid)
            if reg is None or cid not in self.clusters:
                continue
            if all(self.names.get(c) != reg.name for c in self.clusters if c != cid):
                self.names[cid] = reg.name
            if reg.colour and all(self.colours.get(c) != reg.colour for c in self.clusters if c != cid):
                self.colours[cid] = reg.colour

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
        self._push(f"rename {old!r} -> {new!r}", np.zeros(0, dtype=np.int64))
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
        self._push(f"recolour {self.name_of(cid)!r}", np.zeros(0, dtype=np.int64))
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
            self._push(f"assign {idx.size} spots to new region {name!r}", idx)
            labels = self._labels().add_categories([cid])
            self.names[cid] = name
            self.colours[cid] = self._free_colour()
        else:
            cid = self.resolve(cluster)
            self._push(f"assign {idx.size} spots to {self.name_of(cid)!r}", idx)
            labels = self._labels()
        codes = np.asarray(labels.codes).copy()
        codes[idx] = list(labels.categories).index(cid)
        self.manual[idx] = True
        self._set_labels(pd.Categorical.from_codes(codes, categories=labels.categories))
        self._changed(f"assigned {idx.size} spots to {self.name_of(cid)!r}", labels=True, spots=idx)
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
        labels = self._labels()
        cats = list(labels.categories)
        codes = np.asarray(labels.codes).copy()
        idx = np.flatnonzero(codes == cats.index(b))
        self._push(f"merge {nb!r} into {na!r}", idx)
        codes[idx] = cats.index(a)
        self._set_labels(pd.Categorical.from_codes(codes, categories=labels.categories))
        self._changed(f"merged {nb!r} into {na!r}", labels=True, spots=idx)
        return a

    def undo(self) -> str:
        """Undo the last edit; returns its description.

        Raises
        ------
        ConfigError
            When there is nothing to undo.
        """
        if not self.history.undo:
            raise ConfigError("nothing to undo")
        return self._step(self.history.undo, self.history.redo, "undo")

    def redo(self) -> str:
        """Redo the last undone edit; returns its description.

        Raises
        ------
        ConfigError
            When there is nothing to redo (or a new edit was made since the undo).
        """
        if not self.history.redo:
            raise ConfigError("nothing to redo")
        return self._step(self.history.redo, self.history.undo, "redo")

    def _step(self, source: list, target: list, verb: str) -> str:
        """Restore the last edit of ``source``, keeping what it replaces on ``target``."""
        edit = source.pop()
        target.append(self._capture(edit.description, edit.idx))
        self._restore(edit)
        self._changed(f"{verb}: {edit.description}", labels=True, logged=False, spots=edit.idx)
        return edit.description


    # --------------------------------------------------------------- helpers
    def _indices(self, spots: Iterable[int]) -> np.ndarray:
        try:
            arr = np.asarray(spots if isinstance(spots, np.ndarray) else list(spots))
            if arr.size and not np.issubdtype(arr.dtype, np.integer):
                if not all(float(v) == int(v) for v in arr.ravel()[:1000]):
                    raise ValueError
            idx = arr.astype(np.int64).ravel()
        except (TypeError, ValueError):
            raise ConfigError("spots must be integer indices") from None
        if idx.size == 0:
            raise ConfigError("no spots selected: select spots with the points layer's selection or lasso tool")
        if idx.min() < 0 or idx.max() >= self.n_spots:
            raise ConfigError(f"spot indices must be in 0..{self.n_spots - 1}")
        return index_mask(idx, self.n_spots)

    def _new_id(self) -> str:
        ids = self.clusters
        nums = [int(c) for c in ids if re.fullmatch(r"\d+", c)]
        nxt = max(nums, default=-1) + 1
        known = set(ids) | set(self.history.ids()) | set(self.memory.ids())
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

    def _capture(self, description: str, idx: np.ndarray | None) -> Edit:
        info = self.adata.uns.get(UNS_KEY)
        nk = info.get("n_clusters") if isinstance(info, dict) else None
        return capture(description, self._labels(), self.manual, idx, self.names, self.colours,
                       None if nk is None else int(nk), self.log)  # fmt: skip

    def _push(self, description: str, idx: np.ndarray | None) -> None:
        """Record the spots ``idx`` (None: all) as they are before an edit."""
        self.history.push(self._capture(description, idx))

    def _restore(self, edit: Edit) -> None:
        labels, self.manual = restore(edit, self._labels(), self.manual)
        self.adata.obs[self.key] = labels
        self.names = dict(edit.names)
        self.colours = dict(edit.colours)
        info = self.adata.uns.get(UNS_KEY)
        if isinstance(info, dict) and edit.n_clusters is not None:
            info["n_clusters"] = edit.n_clusters
        self.log = list(edit.log)


def _legend_order(kept: list[str], back: list[str], fresh: list[str], used: set[str]) -> list[str]:
    """Categories after a re-cut: kept ids, then ids given back, then fresh ids.

    When all ids are numbers and the kept ones are in order, the ids given
    back are put in their place (the legend of 7 -> 5 -> 7 is that of 7).
    """
    back = [c for c in back if c in used]
    fresh = [c for c in fresh if c in used]
    ids = kept + back
    if all(c.isdigit() for c in ids) and kept == sorted(kept, key=int):
        ids = sorted(ids, key=int)
    return ids + fresh
