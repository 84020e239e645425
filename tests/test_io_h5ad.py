"""h5ad read / atomic write round trip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_senca.datasets import synthetic_section
from napari_senca.errors import DataError
from napari_senca.io import read_h5ad, read_section, write_h5ad


def _annotated():
    a = synthetic_section(n_side=6, n_genes=20, n_regions=2)
    a.obs["senca_cluster"] = pd.Categorical([str(i % 3) for i in range(a.n_obs)], categories=["0", "1", "2"])
    a.obsm["X_senca"] = np.random.default_rng(0).normal(size=(a.n_obs, 4)).astype(np.float32)
    a.uns["senca"] = {"n_clusters": 3, "linkage": np.zeros((0, 4)), "config": {"epochs": 2, "lr": 5e-4}}
    return a


def test_roundtrip_identical(tmp_path):
    a = _annotated()
    p = write_h5ad(a, tmp_path / "s.h5ad")
    b = read_h5ad(p)
    assert (a.X != b.X).nnz == 0 and b.X.dtype == a.X.dtype
    pd.testing.assert_frame_equal(a.obs, b.obs)
    pd.testing.assert_frame_equal(a.var, b.var)
    assert list(b.obs["label"].cat.categories) == list(a.obs["label"].cat.categories)
    for k in a.obsm:
        np.testing.assert_array_equal(a.obsm[k], b.obsm[k])
    ea, eb = a.uns["spatial"]["synthetic"], b.uns["spatial"]["synthetic"]
    np.testing.assert_array_equal(ea["images"]["hires"], eb["images"]["hires"])
    assert ea["scalefactors"] == eb["scalefactors"]
    assert a.uns["senca_input"] == b.uns["senca_input"]
    assert b.uns["senca"]["n_clusters"] == 3 and b.uns["senca"]["config"]["epochs"] == 2
    assert read_section(p).n_obs == a.n_obs
    assert [f.name for f in tmp_path.iterdir()] == ["s.h5ad"]


def test_refuses_overwrite(tmp_path):
    a = _annotated()
    p = write_h5ad(a, tmp_path / "s.h5ad")
    with pytest.raises(FileExistsError, match="s.h5ad"):
        write_h5ad(a, p)
    write_h5ad(a[:5].copy(), p, overwrite=True)
    assert read_h5ad(p).n_obs == 5


def test_failed_write_leaves_nothing(tmp_path):
    a = _annotated()
    a.uns["bad"] = object()  # anndata cannot write this
    with pytest.raises(Exception):  # noqa: B017 - whatever anndata raises
        write_h5ad(a, tmp_path / "s.h5ad")
    assert list(tmp_path.iterdir()) == []


def test_adds_senca_input_when_missing(tmp_path):
    a = _annotated()
    del a.uns["senca_input"]
    p = write_h5ad(a, tmp_path / "s.h5ad")
    assert read_h5ad(p).uns["senca_input"]["format"] == "h5ad"


def test_bad_files(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_h5ad(tmp_path / "none.h5ad")
    (tmp_path / "junk.h5ad").write_bytes(b"not hdf5 at all")
    with pytest.raises(DataError, match=r"junk\.h5ad: not a readable \.h5ad file"):
        read_h5ad(tmp_path / "junk.h5ad")
    a = _annotated()
    del a.obsm["spatial"]
    a.write_h5ad(tmp_path / "nospatial.h5ad")
    with pytest.raises(DataError, match=r"nospatial\.h5ad: no spot positions"):
        read_section(tmp_path / "nospatial.h5ad")
