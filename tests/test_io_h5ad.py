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


def _two_libraries(tmp_path, *, column=True, name="two.h5ad"):
    """An .h5ad holding two sections (squidpy style): 12 spots of secA, 8 of secB on a larger H&E."""
    import anndata as ad
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    a = ad.AnnData(X=sp.csr_matrix(rng.poisson(2, (20, 10)).astype(np.float32)))
    a.obs_names = [f"s{i}" for i in range(20)]
    a.var_names = [f"g{i}" for i in range(10)]
    a.obsm["spatial"] = np.concatenate([rng.uniform(5, 95, (12, 2)), rng.uniform(150, 290, (8, 2))])
    if column:
        a.obs["library_id"] = pd.Categorical(["secA"] * 12 + ["secB"] * 8)
    a.uns["spatial"] = {
        "secA": {"images": {"hires": np.zeros((100, 100, 3), np.uint8)}, "scalefactors": {"tissue_hires_scalef": 1.0}},
        "secB": {"images": {"hires": np.full((300, 300, 3), 50, np.uint8)}, "scalefactors": {"tissue_hires_scalef": 1.0}},
    }
    p = tmp_path / name
    a.write_h5ad(p)
    return p


def test_several_libraries_need_a_choice(tmp_path):
    p = _two_libraries(tmp_path)
    several = r'two\.h5ad: 2 libraries \(sections\) in uns\["spatial"\] \(secA, secB\): choose one \(--section'
    with pytest.raises(DataError, match=several):
        read_section(p)
    with pytest.raises(DataError, match=r"two\.h5ad: no library 'secC' in the file \(libraries: secA, secB\)"):
        read_section(p, section="secC")


def test_library_selects_its_image_and_spots(tmp_path):
    from napari_senca.section import get_image

    p = _two_libraries(tmp_path)
    b = read_section(p, section="secB")
    assert b.n_obs == 8 and set(b.obs["library_id"]) == {"secB"} and list(b.obs_names) == [f"s{i}" for i in range(12, 20)]
    assert list(b.uns["spatial"]) == ["secB"] and b.uns["senca_input"]["library_id"] == "secB"
    img, _ = get_image(b)
    assert img.shape == (300, 300, 3) and int(img.max()) == 50
    a = read_section(p, section="secA")
    assert a.n_obs == 12 and list(a.uns["spatial"]) == ["secA"]


def test_libraries_named_only_in_obs_need_a_choice(tmp_path):
    import anndata as ad

    p = _two_libraries(tmp_path)
    a = ad.read_h5ad(p)
    del a.uns["spatial"]["secB"]  # only secA's image stored: the spots still hold two sections
    a.write_h5ad(tmp_path / "one_image.h5ad")
    del a.uns["spatial"]
    a.write_h5ad(tmp_path / "no_image.h5ad")
    for name in ("one_image.h5ad", "no_image.h5ad"):
        with pytest.raises(DataError, match=rf'{name}: 2 libraries \(sections\) in obs\["library_id"\] \(secA, secB\)'):
            read_section(tmp_path / name)
    b = read_section(tmp_path / "one_image.h5ad", section="secB")
    assert b.n_obs == 8 and "secA" not in b.uns.get("spatial", {})  # secA's image is not secB's
    assert read_section(tmp_path / "no_image.h5ad", section="secA").n_obs == 12


def test_library_without_spot_column(tmp_path):
    p = _two_libraries(tmp_path, column=False)
    with pytest.raises(DataError, match=r'two\.h5ad: no obs\["library_id"\] column says which spots belong to library'):
        read_section(p, section="secA")


def test_spots_of_one_library_need_no_choice(tmp_path):
    import anndata as ad

    p = _two_libraries(tmp_path)
    a = ad.read_h5ad(p)
    a[a.obs["library_id"] == "secB"].copy().write_h5ad(tmp_path / "onlyB.h5ad")
    b = read_section(tmp_path / "onlyB.h5ad")
    assert b.n_obs == 8 and list(b.uns["spatial"]) == ["secB"]


def test_one_library_file_with_section(tmp_path):
    a = _annotated()
    p = write_h5ad(a, tmp_path / "s.h5ad")
    assert read_section(p, section="synthetic").n_obs == a.n_obs
    with pytest.raises(DataError, match=r"s\.h5ad: no library 'other' in the file \(libraries: synthetic\)"):
        read_section(p, section="other")


def test_cli_section_picks_the_library(tmp_path, capsys):
    from napari_senca.cli import main

    p = _two_libraries(tmp_path)
    assert main(["info", str(p)]) == 2
    assert "2 libraries" in capsys.readouterr().err
    assert main(["info", str(p), "--section", "secB"]) == 0
    out = capsys.readouterr().out
    assert "spots:         8" in out and "library id:    secB" in out


@pytest.mark.skipif(not hasattr(__import__("anndata").settings, "allow_write_nullable_strings"),
                    reason="anndata < 0.11 writes no pandas string arrays")
def test_pandas_string_arrays_are_written(tmp_path):
    """Text as pandas string arrays (pandas >= 3's default; pyarrow-backed tables) is written and read back."""
    a = synthetic_section(n_side=6, n_genes=20, with_image=False)
    a.obs["note"] = pd.array([f"spot {i}" for i in range(a.n_obs)], dtype="string")
    a.obs.index = pd.Index(a.obs_names.astype(str), dtype="string")
    a.var["symbol"] = pd.array(list(a.var_names), dtype="string")
    write_h5ad(a, tmp_path / "s.h5ad")
    back = read_h5ad(tmp_path / "s.h5ad")
    assert list(back.obs["note"].astype(str)) == [f"spot {i}" for i in range(a.n_obs)]
    assert list(back.obs_names) == list(a.obs_names.astype(str))
    assert list(back.var["symbol"].astype(str)) == list(a.var_names)
