"""Marker genes of the regions, cached per version of the clustering (a mixin of ReviewState)."""

from __future__ import annotations

from typing import Any

import pandas as pd
from anndata import AnnData

from .keys import default_name as _default_name

__all__ = ["MarkersMixin"]


class MarkersMixin:
    """Marker-gene tables of :class:`~napari_senca.review.ReviewState` (Wilcoxon, cached).

    Uses the state's ``adata``, ``key``, ``names``, ``_version``, ``_markers``,
    ``require_result``, ``resolve`` and ``_labels``.
    """

    adata: AnnData
    key: str
    names: dict[str, str]
    _version: int
    _markers: tuple[tuple[int, int], pd.DataFrame] | None

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
        from ..markers import rank_markers

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
