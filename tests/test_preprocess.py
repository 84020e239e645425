"""Expression preprocessing: count filter, normalisation, HVGs, scaling."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from anndata import AnnData

from napari_senca import DataError, SencaConfig
from napari_senca.datasets import synthetic_section
from napari_senca.preprocess import Expression, preprocess_expression
from napari_senca.section import make_section


def _section(counts: np.ndarray, source: str | None = None) -> AnnData:
    n, g = counts.shape
    side = int(np.ceil(np.sqrt(n)))
    xy = np.array([(10.0 * (i % side), 10.0 * (i // side)) for i in range(n)])
    return make_section(
        counts, [f"s{i}" for i in range(n)], [f"G{j}" for j in range(g)], xy, source=source
    )


@pytest.fixture(scope="module")
def section() -> AnnData:
    return synthetic_section(n_side=10, n_genes=80, seed=1)


def test_returns_float32_matrix_of_the_hvgs(section: AnnData) -> None:
    expr = preprocess_expression(section, SencaConfig(n_top_genes=50))
    assert isinstance(expr, Expression)
    assert isinstance(expr.X, np.ndarray)
    assert expr.X.dtype == np.float32
    assert expr.X.flags.c_contiguous
    assert expr.X.shape == (section.n_obs, 50)
    assert len(expr.genes) == 50
    assert len(set(expr.genes)) == 50
    assert set(expr.genes) <= set(section.var_names)
    assert np.isfinite(expr.X).all()


@pytest.mark.parametrize("n_top", [2, 10, 50])
def test_hvg_count(section: AnnData, n_top: int) -> None:
    expr = preprocess_expression(section, SencaConfig(n_top_genes=n_top))
    assert expr.X.shape[1] == n_top
    assert len(expr.genes) == n_top


def test_hvg_count_capped_by_kept_genes(section: AnnData) -> None:
    expr = preprocess_expression(section, SencaConfig(n_top_genes=500, min_gene_counts=0))
    assert expr.n_genes_kept == section.n_vars
    assert expr.X.shape[1] == section.n_vars
    assert expr.genes == [str(g) for g in section.var_names]


def test_hvgs_are_enriched_for_region_programme_genes() -> None:
    # genes 0..29 are 6x up in one of the 3 regions (30 of 120 genes): the
    # 40 most variable genes should be mostly these
    ad = synthetic_section(n_side=10, n_genes=120, seed=3)
    expr = preprocess_expression(ad, SencaConfig(n_top_genes=40))
    pos = {g: i for i, g in enumerate(ad.var_names)}
    n_programme = sum(pos[g] < 30 for g in expr.genes)
    assert n_programme >= 20


def test_gene_filter_drops_low_total_genes() -> None:
    rng = np.random.default_rng(0)
    counts = rng.poisson(5.0, size=(20, 8)).astype(np.float32)
    counts[:, 2] = 0
    counts[:9, 2] = 1  # total 9: dropped
    counts[:, 5] = 0
    counts[:10, 5] = 1  # total 10: kept (>= min_gene_counts)
    counts[:, 6] = 0  # total 0: dropped
    ad = _section(counts)
    expr = preprocess_expression(ad, SencaConfig(min_gene_counts=10, n_top_genes=500))
    assert expr.n_genes_kept == 6
    assert expr.genes == ["G0", "G1", "G3", "G4", "G5", "G7"]
    assert expr.X.shape == (20, 6)


def test_min_gene_counts_zero_keeps_every_gene() -> None:
    rng = np.random.default_rng(0)
    counts = rng.poisson(5.0, size=(12, 6)).astype(np.float32)
    counts[:, 3] = 0
    ad = _section(counts)
    expr = preprocess_expression(ad, SencaConfig(min_gene_counts=0, n_top_genes=500, scale=False))
    assert expr.n_genes_kept == 6
    assert expr.X.shape == (12, 6)
    assert np.all(expr.X[:, 3] == 0)


def test_too_few_genes_after_filter_is_a_data_error() -> None:
    counts = np.ones((10, 4), dtype=np.float32)  # every gene totals 10
    ad = _section(counts, source="/data/tiny")
    with pytest.raises(DataError, match="min_gene_counts") as info:
        preprocess_expression(ad, SencaConfig(min_gene_counts=11))
    assert info.value.path == "/data/tiny"


def test_scale_gives_zero_mean_unit_variance(section: AnnData) -> None:
    X = preprocess_expression(section, SencaConfig(n_top_genes=50, scale=True)).X.astype(np.float64)
    np.testing.assert_allclose(X.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(X.std(0), 1.0, atol=1e-4)
    assert np.abs(X).max() <= 10.0


def test_scale_leaves_constant_genes_at_zero() -> None:
    rng = np.random.default_rng(0)
    counts = rng.poisson(5.0, size=(15, 5)).astype(np.float32) + 1
    counts[:, 0] = 4.0
    counts[:, 1] = 3.0
    # equal library sizes: a constant count stays constant after normalisation
    counts[:, 4] = 100.0 - counts[:, :4].sum(1)
    ad = _section(counts)
    X = preprocess_expression(ad, SencaConfig(n_top_genes=500, min_gene_counts=0, scale=True)).X
    assert np.isfinite(X).all()
    np.testing.assert_allclose(X[:, 0], 0.0, atol=1e-5)
    np.testing.assert_allclose(X[:, 1], 0.0, atol=1e-5)


def test_no_scale_is_log_normalised(section: AnnData) -> None:
    cfg = SencaConfig(n_top_genes=500, min_gene_counts=0, scale=False, target_sum=1e4)
    expr = preprocess_expression(section, cfg)
    assert (expr.X >= 0).all()
    # every spot sums to target_sum before log1p
    np.testing.assert_allclose(np.expm1(expr.X.astype(np.float64)).sum(1), 1e4, rtol=1e-3)


def test_median_library_size_by_default() -> None:
    rng = np.random.default_rng(0)
    counts = rng.poisson(5.0, size=(9, 6)).astype(np.float32) + 1
    ad = _section(counts)
    expr = preprocess_expression(ad, SencaConfig(n_top_genes=500, min_gene_counts=0, scale=False))
    lib = np.expm1(expr.X.astype(np.float64)).sum(1)
    np.testing.assert_allclose(lib, np.median(counts.sum(1)), rtol=1e-3)


def test_spot_without_counts_is_a_data_error() -> None:
    rng = np.random.default_rng(0)
    counts = rng.poisson(5.0, size=(12, 6)).astype(np.float32)
    counts[4] = 0
    ad = _section(counts)
    with pytest.raises(DataError, match="s4"):
        preprocess_expression(ad, SencaConfig(min_gene_counts=0))


def test_spot_with_counts_only_in_dropped_genes_is_a_data_error() -> None:
    rng = np.random.default_rng(0)
    counts = rng.poisson(5.0, size=(12, 6)).astype(np.float32) + 1
    counts[:, 5] = 0
    counts[7] = 0
    counts[7, 5] = 3  # gene 5 totals 3 < 10: dropped, spot 7 is left empty
    ad = _section(counts)
    with pytest.raises(DataError, match="s7"):
        preprocess_expression(ad, SencaConfig(min_gene_counts=10))


def test_nan_counts_are_a_data_error() -> None:
    rng = np.random.default_rng(0)
    ad = _section(rng.poisson(5.0, size=(10, 5)).astype(np.float32))
    X = ad.X.toarray()
    X[2, 3] = np.nan
    ad.X = sp.csr_matrix(X)
    with pytest.raises(DataError, match="NaN"):
        preprocess_expression(ad, SencaConfig(min_gene_counts=0))


def test_dense_and_sparse_input_agree(section: AnnData) -> None:
    cfg = SencaConfig(n_top_genes=30)
    dense = section.copy()
    dense.X = section.X.toarray()
    a = preprocess_expression(section, cfg)
    b = preprocess_expression(dense, cfg)
    assert a.genes == b.genes
    np.testing.assert_allclose(a.X, b.X, atol=1e-6)


def test_input_anndata_is_not_modified(section: AnnData) -> None:
    ad = section.copy()
    X_before = ad.X.copy()
    obs_before = ad.obs.copy()
    var_before = ad.var.copy()
    uns_keys = set(ad.uns)
    obsm_keys = set(ad.obsm)
    layers = set(ad.layers)
    preprocess_expression(ad, SencaConfig(n_top_genes=30))
    assert (ad.X != X_before).nnz == 0
    assert ad.X.dtype == X_before.dtype
    assert ad.obs.equals(obs_before)
    assert ad.var.equals(var_before)
    assert list(ad.var.columns) == list(var_before.columns)  # no 'highly_variable' etc.
    assert set(ad.uns) == uns_keys
    assert set(ad.obsm) == obsm_keys
    assert set(ad.layers) == layers
    assert ad.raw is None


def test_default_config_is_used_when_none(section: AnnData) -> None:
    a = preprocess_expression(section)
    b = preprocess_expression(section, SencaConfig())
    assert a.genes == b.genes
    np.testing.assert_array_equal(a.X, b.X)


# --------------------------------------------------------------------------- library size


def test_library_size_is_each_spots_total_of_the_kept_genes() -> None:
    rng = np.random.default_rng(0)
    counts = rng.poisson(3.0, size=(30, 20)).astype(np.float32)
    counts[:, 0] = 0  # a gene below the count filter: not in the library size
    counts[0, 0] = 5
    expr = preprocess_expression(_section(counts), SencaConfig(n_top_genes=10))
    assert expr.library_size is not None
    expected = counts[:, 1:].sum(1)
    np.testing.assert_allclose(expr.library_size, expected)


def test_library_size_of_pre_normalised_input_comes_from_the_counts_layer_or_nowhere() -> None:
    rng = np.random.default_rng(1)
    counts = rng.poisson(3.0, size=(30, 20)).astype(np.float32)
    a = _section(np.log1p(counts))
    a.uns["senca_input"] = {"normalized": True}
    assert "total_counts" in a.obs  # a sum of the normalised values: not the library size
    assert preprocess_expression(a, SencaConfig(n_top_genes=10)).library_size is None  # nothing to recover it from
    a.layers["counts"] = sp.csr_matrix(counts)
    np.testing.assert_allclose(preprocess_expression(a, SencaConfig(n_top_genes=10)).library_size, counts.sum(1))
    bad = counts.copy()
    bad[0, 0] = np.nan
    a.layers["counts"] = bad
    assert preprocess_expression(a, SencaConfig(n_top_genes=10)).library_size is None  # unusable: skipped
