"""Visium HD: binned_outputs/square_XXXum read by bin size (io/visium_hd.py)."""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from napari_senca.errors import ConfigError, DataError
from napari_senca.io import detect_format, read_section
from napari_senca.io.visium_hd import find_hd_bins
from napari_senca.notes import InputWarning, describe_input
from napari_senca.section import fullres_reference, get_image, spot_diameter


def _read(path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputWarning)
        return read_section(path, **kw)


def test_reads_16um_bins_by_default(visium_hd_folder):
    root = visium_hd_folder()
    a = _read(root)
    info = a.uns["senca_input"]
    assert info["format"] == "visium_hd" and info["bin_size_um"] == 16 and list(info["bin_sizes_available"]) == [8, 16]
    assert a.n_obs == 12 * 10 - 1 and a.n_vars == 30 and sp.issparse(a.X)
    # positions from the parquet: bin (row 2, col 5) of 16 um = 32 px bins, 64 px from the corner
    i = a.obs_names.get_loc("s_016um_00002_00005-1")
    assert tuple(a.obsm["spatial"][i]) == (64 + 5.5 * 32, 64 + 2.5 * 32)
    assert (a.obs["array_row"].iloc[i], a.obs["array_col"].iloc[i]) == (2, 5)
    assert spot_diameter(a) == 32.0
    sf = a.uns["spatial"][next(iter(a.uns["spatial"]))]["scalefactors"]
    assert sf["bin_size_um"] == 16.0 and sf["microns_per_pixel"] == 0.5 and sf["tissue_hires_scalef"] == 0.25
    # labels from square_016um/labels.tsv
    assert a.obs["label"].value_counts().to_dict() == {"stroma": 60, "tumour": 59}
    # excluded bins are reported: the off-tissue row is not in the h5, the bin without counts is
    rows = dict(describe_input(a))
    assert rows["excluded"].startswith("1 spot: 1 in tissue_positions.parquet (in tissue) without counts")
    assert rows["bins"] == "Visium HD 16 um bins (available: 8, 16 um)"
    # the microscope image beside outs is found and referenced (read lazily), the hires PNG is in memory
    assert fullres_reference(a)["path"].endswith("microscope_image/slide.btf")
    assert get_image(a)[1] == 0.25
    assert "found beside the data" in rows["warning"]


def test_bin_size_and_square_folder(visium_hd_folder):
    root = visium_hd_folder()
    b = _read(root / "outs", bin_size=8)
    assert b.n_obs == 24 * 20 - 1 and b.uns["senca_input"]["bin_size_um"] == 8 and "label" not in b.obs
    assert spot_diameter(b) == 16.0
    sq = root / "outs" / "binned_outputs" / "square_008um"
    for p in (sq, sq / "filtered_feature_bc_matrix.h5", root / "outs" / "binned_outputs"):
        assert detect_format(p) == "visium_hd"
    c = _read(sq)  # a path at one square folder reads those bins
    assert c.n_obs == b.n_obs and c.uns["senca_input"]["bin_size_um"] == 8
    assert fullres_reference(c) is not None  # the slide beside outs is still found
    with pytest.raises(ConfigError, match="holds the 8 um bins; bin_size=16"):
        _read(sq, bin_size=16)
    with pytest.raises(DataError, match="no square_002um folder in binned_outputs .bin sizes found: 8 um, 16 um."):
        _read(root, bin_size=2)


def test_positions_read_by_column_name(visium_hd_folder):
    a = _read(visium_hd_folder("A"))
    b = _read(visium_hd_folder("B", shuffle_columns=True))
    assert np.array_equal(a.obsm["spatial"], b.obsm["spatial"])
    assert np.array_equal(a.obs["array_row"], b.obs["array_row"])


def test_detection_is_cheap_and_precise(visium_hd_folder, visium_folder, tmp_path):
    root = visium_hd_folder(slide=False)
    assert detect_format(root) == detect_format(root / "outs") == "visium_hd"
    assert detect_format(visium_folder()) == "visium"  # standard Visium stays standard
    empty = tmp_path / "x" / "binned_outputs"
    empty.mkdir(parents=True)
    assert detect_format(empty) is None and find_hd_bins(empty) == {}
    (tmp_path / "square_016um").mkdir()
    assert detect_format(tmp_path / "square_016um") is None  # an empty folder with the name is not a section
    assert find_hd_bins(tmp_path / "nope") == {}


def test_bin_size_only_for_visium_hd(visium_folder):
    with pytest.raises(ConfigError, match="a bin size only applies to a Visium HD folder"):
        read_section(visium_folder(), bin_size=16)


def test_no_slide_and_explicit_image(visium_hd_folder, tmp_path):
    root = visium_hd_folder(slide=False)
    a = _read(root)
    assert fullres_reference(a) is None and get_image(a)[1] == 0.25
    other = visium_hd_folder("with", slide=True) / "microscope_image" / "slide.btf"
    b = _read(root, image=other)
    assert fullres_reference(b)["path"] == str(other)


def test_large_sparse_section_stays_sparse(tmp_path, visium_hd_folder):
    """10,000 bins x 6,000 genes (dense float32: 240 MB) are read with far less memory."""
    root = visium_hd_folder(slide=False, labels=False, bin_sizes=(16,))
    sq = root / "outs" / "binned_outputs" / "square_016um"
    n, g = 10_000, 6_000
    side = int(np.ceil(np.sqrt(n)))
    rows = [(f"s_016um_{r:05d}_{c:05d}-1", 1, r, c, 64 + 32 * r, 64 + 32 * c) for r in range(side) for c in range(side)]
    df = pd.DataFrame(
        rows[:n], columns=["barcode", "in_tissue", "array_row", "array_col", "pxl_row_in_fullres", "pxl_col_in_fullres"]
    )
    df.to_parquet(sq / "spatial" / "tissue_positions.parquet", index=False)
    for f in (sq / "spatial").glob("*.png"):
        f.unlink()  # no image: positions beyond the small test images
    rng = np.random.default_rng(0)
    per_row = 60  # 1% of the genes: one in each block of 100
    indices = (np.arange(per_row) * 100 + rng.integers(0, 100, size=(n, per_row))).ravel()
    data = rng.integers(1, 6, size=n * per_row).astype(np.float32)
    X = sp.csr_matrix((data, indices, np.arange(0, n * per_row + 1, per_row)), shape=(n, g))
    _write_sparse_h5(sq / "filtered_feature_bc_matrix.h5", X, df["barcode"].tolist())
    _read(visium_hd_folder("warm", slide=False))  # imports happen outside the measurement
    tracemalloc.start()
    try:
        a = _read(root)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert a.n_obs == n and a.n_vars == g and sp.issparse(a.X)
    assert peak < 80e6, f"peak {peak / 1e6:.0f} MB"


def _write_sparse_h5(path, X, barcodes):
    import h5py

    m = sp.csc_matrix(X.T)
    with h5py.File(path, "w") as f:
        grp = f.create_group("matrix")
        grp["data"] = m.data.astype(np.int32)
        grp["indices"] = m.indices.astype(np.int64)
        grp["indptr"] = m.indptr.astype(np.int64)
        grp["shape"] = np.array(m.shape, dtype=np.int32)
        grp["barcodes"] = np.array([b.encode() for b in barcodes])
        grp["features/id"] = np.array([f"ENSG{i:05d}".encode() for i in range(X.shape[1])])
        grp["features/name"] = np.array([f"G{i}".encode() for i in range(X.shape[1])])
        grp["features/feature_type"] = np.array([b"Gene Expression"] * X.shape[1])


def test_missing_h5_named(visium_hd_folder):
    root = visium_hd_folder(slide=False)
    (root / "outs" / "binned_outputs" / "square_016um" / "filtered_feature_bc_matrix.h5").unlink()
    with pytest.raises(DataError, match="square_016um/filtered_feature_bc_matrix.h5: count matrix file not found"):
        _read(root)


def test_packed_binned_outputs_named(visium_hd_folder):
    """10x downloads ship binned_outputs.tar.gz: the one line says to extract it."""
    import shutil

    root = visium_hd_folder(slide=False)
    shutil.rmtree(root / "outs" / "binned_outputs")
    (root / "outs" / "binned_outputs.tar.gz").write_bytes(b"\x1f\x8b")
    with pytest.raises(DataError, match="binned_outputs.tar.gz: a Visium HD output whose bins are still packed"):
        read_section(root)
