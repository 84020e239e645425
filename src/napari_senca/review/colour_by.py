"""Colour the spots by a gene or a numeric ``obs`` column (a mixin of ReviewState)."""

from __future__ import annotations

import numpy as np
from anndata import AnnData

from ..errors import ConfigError
from . import genes as _genes
from .keys import MANUAL_KEY

__all__ = ["ColourByMixin"]


class ColourByMixin:
    """Gene search, per-spot values and the colour-by switch of :class:`~napari_senca.review.ReviewState`.

    Uses the state's ``adata``, ``key``, ``colour_by``, ``_libsize``,
    ``_values_cache`` and ``_notify``.
    """

    adata: AnnData
    key: str
    colour_by: str | None
    _libsize: np.ndarray | None
    _values_cache: tuple[str, np.ndarray] | None

    def _notify(self, what: str) -> None:  # pragma: no cover - provided by ReviewState
        raise NotImplementedError

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
        """Per-spot values of a numeric ``obs`` column or a gene (default: what spots are coloured by).

        The values of a gene are computed once and kept until another gene
        is asked for (a layer refresh asks several times).
        """
        n = name if name is not None else self.colour_by
        if n is None:
            raise ConfigError("not coloured by a gene or a value")
        if n in self.numeric_columns():
            return np.asarray(self.adata.obs[n], dtype=np.float64)
        cache = self._values_cache
        if cache is None or cache[0] != n:
            self._values_cache = cache = (n, self.gene_values(n))
        return cache[1]

    def gene_limits(self, gene: str | None = None) -> tuple[float, float]:
        """Colour limits of a gene or value: its 2nd and 98th percentiles (robust to outliers)."""
        v = self.values(gene)
        cache = getattr(self, "_limits_cache", None)
        if cache is not None and cache[0] is v:  # the cached gene values: percentiles once
            return cache[1]
        lim = _genes.robust_limits(v)
        self._limits_cache = (v, lim)
        return lim

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
