"""Space Ranger outs folders."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd
import pytest

from napari_senca.errors import DataError
from napari_senca.io import read_10x_h5, read_section, read_visium
from napari_senca.section import get_image, has_labels, spot_diameter


def test_reads_outs_folder(visium_folder):
    root = visium_folder()
    a = read_visium(root / "outs")
    assert a.shape == (12, 5)  # 'GENE1' twice: one column kept
    # only in-tissue spots; (pxl_col, pxl_row)
    assert all(b.startswith("AAAC") for b in a.obs_names)
    np.testing.assert_allclose(a.obsm["spatial"][5], [300 + 200 * 1, 300 + 200 * 1])
    np.testing.assert_allclose(a.obsm["spatial"][2], [300 + 200 * 2, 300])
    assert a.obs["array_col"].iloc[2] == 2 and a.obs["array_row"].iloc[5] == 1
    # unique names: of the two 'GENE1' columns the one with the higher total is kept, with its id
    assert a.var_names.tolist() == ["GENE0", "GENE1", "GENE3", "GENE4", "GENE5"]
    X, _, feats, _ = read_10x_h5(root / "outs" / "filtered_feature_bc_matrix.h5")
    tot = np.asarray(X.sum(0)).ravel()
    best = 1 if tot[1] >= tot[2] else 2
    assert a.var["gene_ids"].tolist()[:2] == ["ENSG00000", f"ENSG0000{best}"]
    np.testing.assert_array_equal(a[:, "GENE1"].X.toarray().ravel(), X[:, best].toarray().ravel())
    assert a.uns["senca_input"]["duplicate_genes"] == {"n_names": 1, "n_dropped": 1, "examples": ["GENE1"]}
    # both images with scanpy's scale-factor names; hires preferred
    lib = next(iter(a.uns["spatial"]))
    assert lib == "lib1"
    entry = a.uns["spatial"][lib]
    assert set(entry["images"]) == {"hires", "lowres"}
    assert entry["scalefactors"]["tissue_hires_scalef"] == 0.5
    assert entry["scalefactors"]["tissue_lowres_scalef"] == 0.1
    assert get_image(a)[1] == 0.5
    assert get_image(a, prefer=("lowres",))[1] == 0.1
    assert spot_diameter(a) == 90.0
    # labels beside the outs folder, '' = unlabelled
    assert has_labels(a) and pd.isna(a.obs["label"].iloc[0]) and a.obs["label"].iloc[1] == "L1"
    assert a.uns["senca_input"]["format"] == "visium"


def test_parent_folder_and_h5_path(visium_folder):
    root = visium_folder()
    assert read_section(root).n_obs == 12
    assert read_section(root / "outs" / "filtered_feature_bc_matrix.h5").n_obs == 12


def test_v1_positions_lowres_only(visium_folder):
    root = visium_folder(v1=True, hires=False, outs=False, labels=False)
    a = read_visium(root)
    assert set(a.uns["spatial"]["lib1"]["images"]) == {"lowres"}
    assert get_image(a)[1] == 0.1
    assert "label" not in a.obs


def test_fullres_image(visium_folder, tmp_path):
    """A full-resolution TIFF is referenced and read lazily; a PNG is decoded as before."""
    import dask.array as da
    import tifffile

    from napari_senca.section import fullres_reference, get_image_levels

    root = visium_folder()
    tif = tmp_path / "full.tif"
    rng = np.random.default_rng(0)
    planes = rng.integers(0, 255, size=(3, 1600, 1200), dtype=np.uint8)
    tifffile.imwrite(tif, planes, photometric="rgb", planarconfig="separate")  # channel-first
    a = read_visium(root, fullres_image=tif)
    entry = a.uns["spatial"]["lib1"]
    assert "fullres" not in entry["images"]  # no pixels of the slide in the section
    ref = fullres_reference(a)
    assert (ref["width"], ref["height"], ref["path"]) == (1200, 1600, str(tif.absolute()))
    (level, scale), *_ = get_image_levels(a)
    assert scale == 1.0 and level.shape == (1600, 1200, 3) and isinstance(level, da.Array)
    assert np.array_equal(np.asarray(level[10:20, 30:40]), np.moveaxis(planes, 0, -1)[10:20, 30:40])
    img, scale = get_image(a)  # the in-memory image stays Space Ranger's hires image
    assert scale == entry["scalefactors"]["tissue_hires_scalef"]
    # read_section maps image= to the full-resolution image
    assert fullres_reference(read_section(root, image=tif)) is not None
    # a PNG cannot be read lazily: it is decoded and stored under "fullres"
    png = tmp_path / "full.png"
    from PIL import Image

    Image.fromarray(np.moveaxis(planes, 0, -1)).save(png)
    b = read_visium(root, fullres_image=png)
    assert b.uns["spatial"]["lib1"]["images"]["fullres"].shape == (1600, 1200, 3)
    assert get_image(b)[1] == 1.0 and fullres_reference(b) is None


def test_read_10x_h5_roundtrip(tmp_path, h5_writer):
    counts = np.array([[0, 1, 2], [3, 0, 0]])
    p = h5_writer(tmp_path / "m.h5", counts, ["a-1", "b-1"], ["i0", "i1", "i2"], ["g0", "g1", "g2"])
    X, bc, feats, attrs = read_10x_h5(p)
    np.testing.assert_array_equal(X.toarray(), counts)
    assert bc == ["a-1", "b-1"] and feats["name"].tolist() == ["g0", "g1", "g2"]


def test_legacy_genome_layout(tmp_path):
    import scipy.sparse as sp

    m = sp.csc_matrix(np.array([[1, 0], [2, 3], [0, 4]]))  # genes x barcodes
    p = tmp_path / "old.h5"
    with h5py.File(p, "w") as f:
        g = f.create_group("GRCh38")
        for k, v in dict(data=m.data, indices=m.indices, indptr=m.indptr, shape=np.array(m.shape)).items():
            g.create_dataset(k, data=v)
        g.create_dataset("barcodes", data=np.array([b"x-1", b"y-1"]))
        g.create_dataset("genes", data=np.array([b"E1", b"E2", b"E3"]))
        g.create_dataset("gene_names", data=np.array([b"A", b"B", b"C"]))
    X, bc, feats, _ = read_10x_h5(p)
    np.testing.assert_array_equal(X.toarray(), m.toarray().T)
    assert feats["gene_ids"].tolist() == ["E1", "E2", "E3"]


# --------------------------------------------------------------------------- bad input


def test_missing_h5(visium_folder):
    root = visium_folder()
    (root / "outs" / "filtered_feature_bc_matrix.h5").unlink()
    with pytest.raises(DataError, match="filtered_feature_bc_matrix.h5: count matrix file not found"):
        read_visium(root)


def test_not_hdf5(visium_folder):
    root = visium_folder()
    (root / "outs" / "filtered_feature_bc_matrix.h5").write_bytes(b"this is not hdf5")
    with pytest.raises(DataError, match="not a readable HDF5 file"):
        read_visium(root)


def test_missing_dataset(tmp_path, visium_folder, h5_writer):
    root = visium_folder()
    h5 = root / "outs" / "filtered_feature_bc_matrix.h5"
    h5_writer(h5, np.ones((12, 6)), [f"AAAC{i:04d}-1" for i in range(12)], list("abcdef"), list("abcdef"), drop=("indptr",))
    with pytest.raises(DataError, match="missing dataset matrix/indptr"):
        read_visium(root)


def test_inconsistent_matrix(tmp_path, h5_writer):
    p = h5_writer(tmp_path / "m.h5", np.ones((2, 3)), ["a-1", "b-1", "c-1"], ["i0", "i1", "i2"], ["g0", "g1", "g2"])
    with pytest.raises(DataError, match="inconsistent matrix"):
        read_10x_h5(p)


def test_feature_ids_and_names_disagree(tmp_path, h5_writer):
    """Two feature ids for three names: a DataError naming the file, not a pandas traceback."""
    p = h5_writer(tmp_path / "m.h5", np.ones((2, 3)), ["a-1", "b-1"], ["i0", "i1"], ["g0", "g1", "g2"])
    with pytest.raises(DataError, match=r"m\.h5: inconsistent matrix: 3 feature names, 2 ids"):
        read_10x_h5(p)


def test_negative_counts(visium_folder, h5_writer):
    root = visium_folder()
    h5 = root / "outs" / "filtered_feature_bc_matrix.h5"
    h5_writer(h5, -np.ones((12, 6)), [f"AAAC{i:04d}-1" for i in range(12)], list("abcdef"), list("abcdef"))
    with pytest.raises(DataError, match="filtered_feature_bc_matrix.h5: counts contain negative values"):
        read_visium(root)


def test_barcodes_without_positions(visium_folder):
    root = visium_folder()
    pos = root / "outs" / "spatial" / "tissue_positions.csv"
    df = pd.read_csv(pos)
    df.iloc[3:].to_csv(pos, index=False)
    with pytest.raises(DataError) as e:
        read_visium(root)
    msg = str(e.value)
    assert "mismatched spot ids" in msg and "tissue_positions.csv" in msg and "'AAAC0000-1'" in msg


def test_missing_positions(visium_folder):
    root = visium_folder()
    (root / "outs" / "spatial" / "tissue_positions.csv").unlink()
    with pytest.raises(DataError, match="tissue positions file not found"):
        read_visium(root)


def test_positions_wrong_columns(visium_folder):
    root = visium_folder()
    (root / "outs" / "spatial" / "tissue_positions.csv").write_text("barcode,x\nA,1\n")
    with pytest.raises(DataError, match="missing column.s. in_tissue, array_row"):
        read_visium(root)


def test_malformed_scalefactors(visium_folder):
    root = visium_folder()
    (root / "outs" / "spatial" / "scalefactors_json.json").write_text("{oops")
    with pytest.raises(DataError, match=r"scalefactors_json\.json: malformed JSON"):
        read_visium(root)


def test_scalefactor_missing_key(visium_folder):
    root = visium_folder()
    sfp = root / "outs" / "spatial" / "scalefactors_json.json"
    sf = json.loads(sfp.read_text())
    del sf["tissue_lowres_scalef"]
    sfp.write_text(json.dumps(sf))
    with pytest.raises(DataError, match="missing 'tissue_lowres_scalef'"):
        read_visium(root)


def test_scalefactor_not_a_number(visium_folder):
    root = visium_folder()
    sfp = root / "outs" / "spatial" / "scalefactors_json.json"
    sf = json.loads(sfp.read_text())
    sf["tissue_hires_scalef"] = "half"
    sfp.write_text(json.dumps(sf))
    with pytest.raises(DataError, match="'tissue_hires_scalef' must be a positive number"):
        read_visium(root)


def test_spots_outside_lowres(visium_folder, png_writer):
    root = visium_folder(hires=False)
    png_writer(root / "outs" / "spatial" / "tissue_lowres_image.png", 20, 20)
    with pytest.raises(DataError, match=r"tissue_lowres_image\.png: \d+ of 12 spots lie outside the 20x20 image"):
        read_visium(root)


def test_corrupt_png(visium_folder):
    root = visium_folder()
    (root / "outs" / "spatial" / "tissue_hires_image.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"tissue_hires_image\.png: not a readable image"):
        read_visium(root)


def test_fullres_tiff_only_gives_an_overview(visium_folder, tmp_path):
    """Without Space Ranger's PNGs, a small in-memory overview of the lazily read slide is the section's image."""
    from napari_senca.io.slide import write_pyramid
    from napari_senca.section import fullres_reference, get_image_levels

    root = visium_folder(hires=False, lowres=False)
    rng = np.random.default_rng(0)
    slide = write_pyramid(rng.integers(0, 255, (2600, 2500, 3), dtype=np.uint8), tmp_path / "s.tif", min_side=1000)
    a = read_visium(root, fullres_image=slide)
    img, scale = get_image(a)
    assert max(img.shape[:2]) == 2000 and scale == pytest.approx(2000 / 2600, rel=1e-3)
    assert fullres_reference(a) is not None and [lv.shape[0] for lv, _ in get_image_levels(a)][:2] == [2600, 1300]


def test_labels_conflict_by_barcode(visium_folder):
    root = visium_folder()
    lab = root / "labels.tsv"
    first = lab.read_text().splitlines()[2].split("\t")[0]  # the second barcode, labelled L1
    lab.write_text(lab.read_text() + f"{first.removesuffix('-1')}\tL2\n")
    with pytest.raises(DataError, match=rf"labels\.tsv: spot '{first}' has two labels \('L1' and 'L2'"):
        read_visium(root / "outs")
