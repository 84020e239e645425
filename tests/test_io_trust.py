"""Inputs that used to load silently wrong (issue 8, items 2-6, 9, 15): each is read right or said out loud."""

from __future__ import annotations

import gzip
import json
import warnings

import anndata
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from napari_senca.errors import DataError
from napari_senca.io import read_section

POS = ("outs", "spatial", "tissue_positions.csv")


def _pos(root):
    return root.joinpath(*POS)


def _quiet_read(*a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return read_section(*a, **kw)


# --------------------------------------------------------------------------- 2: columns by name


def test_positions_read_by_column_name(visium_folder):
    root = visium_folder(labels=False)
    want = _quiet_read(root).obsm["spatial"].copy()
    df = pd.read_csv(_pos(root))
    cols = ["barcode", "pxl_col_in_fullres", "array_col", "pxl_row_in_fullres", "in_tissue", "array_row"]
    df[cols].to_csv(_pos(root), index=False)
    a = _quiet_read(root)
    np.testing.assert_allclose(a.obsm["spatial"], want)
    assert a.obs["array_row"].tolist() == df["array_row"][df["in_tissue"] == 1].tolist()


def test_positions_parquet_only(visium_folder):
    pytest.importorskip("pyarrow")
    root = visium_folder(labels=False)
    want = _quiet_read(root).obsm["spatial"].copy()
    df = pd.read_csv(_pos(root))
    _pos(root).unlink()
    df[df.columns[::-1]].to_parquet(root / "outs" / "spatial" / "tissue_positions.parquet")
    a = _quiet_read(root)
    np.testing.assert_allclose(a.obsm["spatial"], want)
    assert a.n_obs == 12 and a.uns["senca_input"]["n_excluded"] == {}


def test_no_positions_names_all_layouts(visium_folder):
    root = visium_folder(labels=False)
    _pos(root).unlink()
    with pytest.raises(DataError, match=r"tissue_positions\.parquet"):
        read_section(root)


def test_visium_labels_columns_by_name(visium_folder):
    root = visium_folder(labels=False)
    bcs = [f"AAAC{i:04d}-1" for i in range(12)]
    (root / "labels.tsv").write_text("label\tbarcode\n" + "".join(f"L{i % 3}\t{b}\n" for i, b in enumerate(bcs)))
    a = _quiet_read(root)
    assert a.obs["label"].astype(str).tolist() == [f"L{i % 3}" for i in range(12)]


# --------------------------------------------------------------------------- 3: labels that match no spot


def test_visium_labels_without_suffix_match(visium_folder):
    root = visium_folder(labels=False)
    rows = "".join(f"AAAC{i:04d}\t{'T' if i % 2 else 'S'}\n" for i in range(12))
    (root / "labels.tsv").write_text("barcode\tlabel\n" + rows + "GGGG0000\tT\n")
    a = _quiet_read(root)
    assert a.obs["label"].notna().all()
    assert a.obs["label"].iloc[1] == "T"
    lab = a.uns["senca_input"]["labels"]
    assert (lab["matched"], lab["unmatched"], list(lab["examples"])) == (12, 1, ["GGGG0000"])


def test_labels_none_match_is_an_error(visium_folder):
    root = visium_folder(labels=False)
    ids = [f"ZZZZ{i:04d}-1" for i in range(346)]
    (root / "labels.tsv").write_text("barcode\tlabel\n" + "".join(f"{b}\tT\n" for b in ids))
    with pytest.raises(DataError) as e:
        read_section(root)
    msg = str(e.value)
    assert "labels.tsv" in msg and "no label row matches a spot" in msg and "346 label rows" in msg
    assert "ZZZZ0003" not in msg and len(msg) < 400  # a count and a few examples, not all 346


def test_labels_few_match_warns(visium_folder):
    from napari_senca.notes import InputWarning

    root = visium_folder(labels=False)
    rows = [f"AAAC{i:04d}-1\tT\n" for i in range(3)] + [f"ZZZZ{i:04d}-1\tT\n" for i in range(9)]
    (root / "labels.tsv").write_text("barcode\tlabel\n" + "".join(rows))
    with pytest.warns(InputWarning, match=r"only 3 of 12 label rows match a spot"):
        a = read_section(root)
    assert any("only 3 of 12" in w for w in a.uns["senca_input"]["warnings"])


def test_st_labels_by_spot_id_normalised(st_folder):
    folder = st_folder(labels=False)
    ids = [f"{x}_{y}" for y in range(1, 4) for x in range(1, 5)]  # '1_1' style for counts ids '1x1'
    (folder / "labels.tsv").write_text("spot\tlabel\n" + "".join(f"{s}\tT{i % 2}\n" for i, s in enumerate(ids)))
    a = _quiet_read(folder)
    assert a.obs["label"].notna().all()
    assert a.obs.loc["2x1", "label"] == "T1"
    assert a.uns["senca_input"]["labels"]["matched"] == 12


# --------------------------------------------------------------------------- 4: excluded spots


def test_st_excluded_spots_recorded(st_folder):
    folder = st_folder()
    spots = pd.read_csv(folder / "spots.tsv", sep="\t")
    spots.loc[spots.index[:2], "selected"] = 0
    spots.to_csv(folder / "spots.tsv", sep="\t", index=False)
    a = _quiet_read(folder)
    assert a.n_obs == 10
    info = a.uns["senca_input"]
    assert info["n_excluded"] == {"selected = 0": 2, "in spots.tsv without counts": 1}
    assert list(info["excluded_examples"]["selected = 0"]) == ["1x1", "2x1"]


def test_visium_excluded_spots_recorded(visium_folder):
    root = visium_folder(labels=False)
    df = pd.read_csv(_pos(root))
    df.loc[[0, 5, 7], "in_tissue"] = 0
    df.to_csv(_pos(root), index=False)
    a = _quiet_read(root)
    assert a.n_obs == 9
    assert a.uns["senca_input"]["n_excluded"] == {"in_tissue = 0": 3}


def test_info_and_run_lines_say_excluded(st_folder, capsys):
    from napari_senca.cli import main

    folder = st_folder()
    spots = pd.read_csv(folder / "spots.tsv", sep="\t")
    spots.loc[spots.index[:2], "selected"] = 0
    spots.to_csv(folder / "spots.tsv", sep="\t", index=False)
    assert main(["info", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "excluded:" in out and "3 spots: 2 selected = 0" in out and "1 in spots.tsv without counts" in out
    assert "label rows:" in out


def test_excluded_survives_h5ad_round_trip(st_folder, tmp_path):
    from napari_senca.io import write_h5ad
    from napari_senca.notes import describe_input

    a = _quiet_read(st_folder())
    write_h5ad(a, tmp_path / "s.h5ad")
    b = _quiet_read(tmp_path / "s.h5ad")
    assert dict(describe_input(b))["excluded"] == dict(describe_input(a))["excluded"]
    assert "1 in spots.tsv without counts" in dict(describe_input(b))["excluded"]


# --------------------------------------------------------------------------- 5: non-count input


def _lognorm(X):
    X = np.asarray(X, dtype=np.float64)
    return np.log1p(X / np.maximum(X.sum(1, keepdims=True), 1) * 1e4)


def test_lognormalised_tsv_is_refused(st_folder):
    folder = st_folder()
    counts = pd.read_csv(folder / "counts.tsv.gz", sep="\t", index_col=0)
    with gzip.open(folder / "counts.tsv.gz", "wt") as fh:
        fh.write(pd.DataFrame(_lognorm(counts.to_numpy()), index=counts.index, columns=counts.columns).to_csv(sep="\t"))
    with pytest.raises(DataError) as e:
        read_section(folder)
    msg = str(e.value)
    assert "counts.tsv.gz" in msg and "not integer counts" in msg and "log-normalised" in msg
    assert "--normalized" in msg
    a = _quiet_read(folder, normalized=True)
    assert a.uns["senca_input"]["normalized"] is True


def test_preprocess_skips_normalisation_for_normalized_input(st_folder):
    from napari_senca.config import SencaConfig
    from napari_senca.preprocess import preprocess_expression

    a = _quiet_read(st_folder(n_genes=6))
    vals = _lognorm(a.X.toarray())
    a.X = sp.csr_matrix(vals.astype(np.float32))
    a.uns["senca_input"]["normalized"] = True
    cfg = SencaConfig(scale=False, n_top_genes=50, min_gene_counts=10**6)
    expr = preprocess_expression(a, cfg)
    cols = [list(a.var_names).index(g) for g in expr.genes]
    np.testing.assert_allclose(expr.X, vals[:, cols], rtol=1e-5)


def _h5ad_with_lognorm(st_folder, tmp_path, *, layer=False, raw=False, sparse=True):
    a = _quiet_read(st_folder())
    counts = a.X.copy()
    if raw:
        a.raw = a.copy()
    if layer:
        a.layers["counts"] = counts
    ln = _lognorm(counts.toarray()).astype(np.float32)
    a.X = sp.csr_matrix(ln) if sparse else ln
    path = tmp_path / "ln.h5ad"
    a.write_h5ad(path)
    return path, counts


@pytest.mark.parametrize("sparse", [True, False])
def test_lognormalised_h5ad_without_counts_is_refused(st_folder, tmp_path, sparse):
    path, _ = _h5ad_with_lognorm(st_folder, tmp_path, sparse=sparse)
    with pytest.raises(DataError, match=r"ln\.h5ad: the values are not integer counts .*--normalized"):
        read_section(path)


def test_h5ad_counts_layer_used(st_folder, tmp_path):
    from napari_senca.notes import InputWarning

    path, counts = _h5ad_with_lognorm(st_folder, tmp_path, layer=True)
    with pytest.warns(InputWarning, match=r"layers\['counts'\]"):
        a = read_section(path)
    np.testing.assert_array_equal(a.X.toarray(), counts.toarray())
    assert "input_X" in a.layers


def test_h5ad_raw_used(st_folder, tmp_path):
    from napari_senca.notes import InputWarning

    path, counts = _h5ad_with_lognorm(st_folder, tmp_path, raw=True)
    with pytest.warns(InputWarning, match=r"using \.raw"):
        a = read_section(path)
    np.testing.assert_array_equal(np.asarray(a.X.toarray() if sp.issparse(a.X) else a.X), counts.toarray())
    assert "spatial" in a.uns and "spatial" in a.obsm


def _set_feature_types(h5, types):
    with h5py.File(h5, "a") as f:
        del f["matrix/features/feature_type"]
        f["matrix/features/feature_type"] = np.array([t.encode() for t in types])


def test_h5_antibody_capture_only_is_refused(visium_folder):
    root = visium_folder(labels=False)
    h5 = root / "outs" / "filtered_feature_bc_matrix.h5"
    _set_feature_types(h5, ["Antibody Capture"] * 6)
    with pytest.raises(DataError, match=r"filtered_feature_bc_matrix\.h5: no 'Gene Expression' features \(found 6 'Antibody Capture'\)"):
        read_section(root)


def test_h5_mixed_features_keep_gene_expression(visium_folder):
    from napari_senca.notes import InputWarning

    root = visium_folder(labels=False)
    h5 = root / "outs" / "filtered_feature_bc_matrix.h5"
    _set_feature_types(h5, ["Gene Expression"] * 4 + ["Antibody Capture"] * 2)
    with pytest.warns(InputWarning, match=r"kept the 4 'Gene Expression' features, dropped 2 'Antibody Capture'"):
        a = read_section(root)
    assert set(a.var["feature_types"]) == {"Gene Expression"}


# --------------------------------------------------------------------------- 6: duplicated gene names


def test_st_duplicate_gene_names_keep_highest_total(st_folder):
    from napari_senca.notes import InputWarning

    folder = st_folder(labels=False)
    counts = pd.read_csv(folder / "counts.tsv.gz", sep="\t", index_col=0)
    vals = counts.to_numpy().copy()
    vals[:, 3] = vals[:, 1] + 5  # the second 'ERBB2' column has the higher total
    names = ["G0", "ERBB2", "G2", "ERBB2", "G4"]
    text = pd.DataFrame(vals, index=counts.index, columns=names).to_csv(sep="\t")
    with gzip.open(folder / "counts.tsv.gz", "wt") as fh:
        fh.write(text)
    with pytest.warns(InputWarning, match=r"duplicated gene names \(1 name: 'ERBB2'\)"):
        a = read_section(folder)
    assert a.var_names.tolist() == ["G0", "G2", "ERBB2", "G4"]
    np.testing.assert_array_equal(a[:, "ERBB2"].X.toarray().ravel(), vals[:, 3])
    assert "ERBB2.1" not in a.var_names
    dup = a.uns["senca_input"]["duplicate_genes"]
    assert (dup["n_names"], dup["n_dropped"], list(dup["examples"])) == (1, 1, ["ERBB2"])


def test_h5ad_duplicate_gene_names(st_folder, tmp_path):
    a = _quiet_read(st_folder(labels=False))
    a.var_names = ["A", "B", "A", "C", "D"]
    path = tmp_path / "d.h5ad"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        a.write_h5ad(path)
    b = _quiet_read(path)
    assert b.var_names.is_unique and b.n_vars == 4
    tot = np.asarray(a.X.sum(0)).ravel()
    keep = 0 if tot[0] >= tot[2] else 2
    np.testing.assert_array_equal(b[:, "A"].X.toarray().ravel(), a.X[:, keep].toarray().ravel())


# --------------------------------------------------------------------------- 9: scale factors


def test_null_in_unused_scalefactor_is_ignored(visium_folder):
    root = visium_folder(labels=False)
    sfp = root / "outs" / "spatial" / "scalefactors_json.json"
    sf = json.loads(sfp.read_text())
    sf["regist_target_img_scalef"] = None
    sf["fiducial_diameter_fullres"] = None
    sfp.write_text(json.dumps(sf))
    a = _quiet_read(root)
    entry = a.uns["spatial"]["lib1"]["scalefactors"]
    assert entry["tissue_hires_scalef"] == 0.5 and "regist_target_img_scalef" not in entry


def test_null_in_used_scalefactor_is_an_error(visium_folder):
    root = visium_folder(labels=False)
    sfp = root / "outs" / "spatial" / "scalefactors_json.json"
    sf = json.loads(sfp.read_text())
    sf["spot_diameter_fullres"] = None
    sfp.write_text(json.dumps(sf))
    with pytest.raises(DataError, match="'spot_diameter_fullres' must be a positive number, got None"):
        read_section(root)


# --------------------------------------------------------------------------- 15: short errors


def test_mismatched_ids_error_is_short(st_folder):
    folder = st_folder(nx=20, ny=18, labels=False, image=False)
    spots = pd.read_csv(folder / "spots.tsv", sep="\t")
    spots["x"] += 100
    spots.to_csv(folder / "spots.tsv", sep="\t", index=False)
    with pytest.raises(DataError) as e:
        read_section(folder)
    msg = str(e.value)
    assert "360 of 360 counts rows" in msg and "360 ids, e.g. '1x1', '2x1', '3x1'" in msg
    assert "4x1" not in msg and len(msg) < 400


def test_comma_separated_counts_error_is_short(st_folder):
    folder = st_folder(labels=False)
    counts = pd.read_csv(folder / "counts.tsv.gz", sep="\t", index_col=0)
    wide = pd.DataFrame(np.ones((12, 3000), dtype=int), index=counts.index, columns=[f"GENE{i}" for i in range(3000)])
    with gzip.open(folder / "counts.tsv.gz", "wt") as fh:
        fh.write(wide.to_csv())
    with pytest.raises(DataError, match="not a tab-separated table") as e:
        read_section(folder)
    assert len(str(e.value)) < 400


def test_anndata_not_written_by_senca_still_reads(tmp_path):
    rng = np.random.default_rng(0)
    a = anndata.AnnData(X=sp.csr_matrix(rng.poisson(2, (30, 8)).astype(np.float32)))
    a.obsm["spatial"] = rng.uniform(0, 100, (30, 2))
    a.write_h5ad(tmp_path / "x.h5ad")
    b = _quiet_read(tmp_path / "x.h5ad")
    assert b.n_obs == 30 and b.uns["senca_input"]["format"] == "h5ad"


# --------------------------------------------------------------------------- the CLI run says it too


def test_run_normalized_says_excluded_and_warnings(st_folder, tmp_path, capsys, fake_pipeline):
    from napari_senca import cli
    from napari_senca.preprocess import preprocess_expression

    folder = st_folder(nx=6, ny=5, n_genes=30, image=False)
    counts = pd.read_csv(folder / "counts.tsv.gz", sep="\t", index_col=0)
    with gzip.open(folder / "counts.tsv.gz", "wt") as fh:
        fh.write(pd.DataFrame(_lognorm(counts.to_numpy()), index=counts.index, columns=counts.columns).to_csv(sep="\t"))
    args = ["run", str(folder), "--out", str(tmp_path / "res"), "--no-image"]
    assert cli.main(args) == 2
    assert "--normalized" in capsys.readouterr().err
    assert cli.main([*args, "--normalized"]) == 0
    err = capsys.readouterr().err
    assert "excluded: 1 spot: 1 in spots.tsv without counts" in err
    assert "label rows: 30 of 32 rows of labels.tsv match a spot" in err
    assert "normalized: yes" in err
    assert preprocess_expression(*fake_pipeline[-1]).X.max() > 0  # the run's input preprocesses as given


def test_markers_use_normalized_values_as_given():
    """With pre-normalised input the marker ranking must not normalise and log again."""
    import pandas as pd
    from anndata import AnnData

    from napari_senca.markers import rank_markers

    rng = np.random.default_rng(0)
    X = rng.uniform(0.0, 0.2, size=(40, 6)).astype(np.float32)
    X[:20, 0] += 3.0  # gene G0 marks region a on log-like values
    a = AnnData(X=X)
    a.var_names = [f"G{i}" for i in range(6)]
    a.obs["senca_cluster"] = pd.Categorical(["a"] * 20 + ["b"] * 20)
    a.uns["senca_input"] = {"normalized": True}
    df = rank_markers(a, "senca_cluster", n_genes=3)
    top = df[(df["cluster"] == "a") & (df["rank"] == 1)].iloc[0]
    assert top["gene"] == "G0"
    # log fold change on the values as given (~3 / ln 2 ... not of log1p(normalised) values)
    assert top["logfoldchange"] > 4.0
