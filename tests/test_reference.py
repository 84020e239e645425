"""Regions named from annotated reference sections (napari_senca.reference, ReviewState.name_from_reference)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from napari_senca import reference as ref_mod
from napari_senca.datasets import synthetic_section
from napari_senca.errors import ConfigError, DataError
from napari_senca.reference import name_clusters, predict_regions, reference_labels
from napari_senca.review import ReviewState
from napari_senca.review.naming import read_references, reference_naming
from napari_senca.section import CLUSTER_KEY
from test_review import annotated_section  # tests/ is on sys.path


def _sections(n_side: int = 14):
    """A target and two references: the same regions' marker genes, other layouts, other gene baselines."""
    target = synthetic_section(n_side=n_side, n_genes=80, n_regions=3, with_image=False, seed=0)
    target.X = target.X * 4  # a deeper run: the per-section scaling must not care
    refs = [synthetic_section(n_side=n_side, n_genes=80, n_regions=3, with_image=False, seed=s) for s in (1, 2)]
    return target, refs


def test_regions_learnt_from_other_sections_name_the_spots_of_a_new_one():
    target, refs = _sections()
    truth = target.obs["label"].astype(str).to_numpy()
    pred = predict_regions(target, refs)
    assert adjusted_rand_score(truth, pred.names) > 0.8
    assert (pred.names == truth).mean() > 0.9  # the names themselves, not only the partition
    assert list(pred.probabilities.columns) == ["region 0", "region 1", "region 2"]
    assert np.allclose(pred.probabilities.sum(1), 1) and pred.probabilities.index.equals(target.obs_names)
    assert sum(pred.n_reference_spots.values()) == sum(r.n_obs for r in refs)
    assert "label" in target.obs and target.X.max() > 0  # the section is not changed


def test_only_the_regions_asked_for_and_unknown_ones_refused():
    target, refs = _sections(10)
    pred = predict_regions(target, refs, regions=["region 0", "region 2"])
    assert set(pred.names) <= {"region 0", "region 2"} and np.allclose(pred.probabilities.sum(1), 1)
    with pytest.raises(ConfigError, match="name no region 'stroma'"):
        predict_regions(target, refs, regions=["region 0", "stroma"])
    with pytest.raises(ConfigError, match="no reference"):
        predict_regions(target, [])


def test_blocks_and_a_subset_of_reference_spots_give_the_same_regions(monkeypatch):
    target, refs = _sections(12)
    whole = predict_regions(target, refs)
    monkeypatch.setattr(ref_mod, "BLOCK", 7)
    blocked = predict_regions(target, refs)
    assert np.allclose(blocked.probabilities, whole.probabilities, atol=1e-6)
    monkeypatch.setattr(ref_mod, "MAX_FIT_SPOTS", 200)  # the components and classifier from 200 of 288 spots
    monkeypatch.setattr(ref_mod, "MIN_FIT_SPOTS", 10)
    sub = predict_regions(target, refs)
    assert sum(sub.n_reference_spots.values()) == 200
    assert (sub.names == whole.names).mean() > 0.9


def test_which_column_names_the_reference_regions(tmp_path):
    target, refs = _sections(8)
    r = refs[0]
    r.obs["senca_region"] = [f"cluster {i % 3}" for i in range(r.n_obs)]  # a review nobody named: not used
    labels, key = reference_labels(r)
    assert key == "label" and set(labels) == {"region 0", "region 1", "region 2"}
    r.obs["senca_region"] = np.where(np.arange(r.n_obs) % 2, "tumour", "stroma")
    assert reference_labels(r)[1] == "senca_region"
    r.obs["label"] = "undetermined"  # every spot unlabelled
    with pytest.raises(DataError, match="fewer than two regions"):
        reference_labels(r, "label")
    del r.obs["label"], r.obs["senca_region"]
    r.uns["senca_input"] = {"path": "/data/ref.h5ad"}
    with pytest.raises(DataError, match="/data/ref.h5ad: no region names"):
        reference_labels(r)
    bare = synthetic_section(n_side=6, n_genes=40, with_image=False, seed=3)
    del bare.obs["label"]
    path = tmp_path / "bare.h5ad"
    bare.write_h5ad(path)
    with pytest.raises(DataError, match="bare.h5ad"):
        read_references([path])


def test_name_clusters_takes_the_majority():
    clusters = np.array([0, 0, 0, 1, 1, 2, -1])
    pred = np.array(["a", "b", "a", "b", "b", "c", "a"])
    assert name_clusters(clusters, pred) == {0: "a", 1: "b", 2: "c"}


def test_review_names_the_clusters_and_merges_equal_names_in_one_edit():
    """The clustering merged two regions; the reference's names split them again (k + 3 clusters, majority names)."""
    adata = annotated_section(n_side=10)
    truth = adata.obs["label"].astype(str).to_numpy()
    st = ReviewState(adata)
    st.merge("1", "2")
    before = adata.obs[CLUSTER_KEY].astype(str).to_numpy()
    assert st.reference_cut() == 6
    what = st.name_from_reference(truth)
    after = adata.obs[CLUSTER_KEY].astype(str).to_numpy()
    assert adjusted_rand_score(truth, after) > 0.95 and adjusted_rand_score(truth, before) < 0.7
    assert sorted(st.display_names()) == ["region 0", "region 1", "region 2"]
    assert (adata.obs["senca_region"].astype(str).to_numpy() == truth).mean() > 0.95
    assert what.startswith("named 6 clusters from the reference: 3 regions") and st.log[-1] == what
    st.undo()
    assert np.array_equal(adata.obs[CLUSTER_KEY].astype(str).to_numpy(), before) and len(st.display_names()) == 2
    st.redo()
    assert sorted(st.display_names()) == ["region 0", "region 1", "region 2"]


def test_one_name_for_every_cluster_is_refused_and_changes_nothing():
    adata = annotated_section(n_side=8)
    st = ReviewState(adata)
    before, log = adata.obs[CLUSTER_KEY].astype(str).to_numpy(), list(st.log)
    with pytest.raises(ConfigError, match="names every one of the 6 clusters 'tumour'"):
        st.name_from_reference(np.full(adata.n_obs, "tumour"))
    with pytest.raises(ConfigError, match="63 predicted regions"):
        st.name_from_reference(np.full(adata.n_obs - 1, "tumour"))
    assert np.array_equal(adata.obs[CLUSTER_KEY].astype(str).to_numpy(), before) and st.log == log
    assert not st.can_undo


def test_spots_by_hand_keep_their_region_and_join_the_reference_region_of_its_name():
    adata = annotated_section(n_side=10)
    truth = adata.obs["label"].astype(str).to_numpy()
    st = ReviewState(adata)
    odd = np.flatnonzero(truth == "region 0")[:2]
    st.assign(odd, None, new_name="my spots")  # a region of its own, named by the user
    two = np.flatnonzero(truth == "region 2")[:2]
    st.assign(two, None, new_name="region 1")  # by hand into a region the reference also names
    st.name_from_reference(truth)
    names = adata.obs["senca_region"].astype(str).to_numpy()
    assert (names[odd] == "my spots").all() and (names[two] == "region 1").all()
    assert sorted(st.display_names()) == ["my spots", "region 0", "region 1", "region 2"]
    assert st.n_manual == 4


def test_reference_naming_reads_h5ad_references_and_cuts_the_embedding(tmp_path):
    adata = annotated_section(n_side=10)
    paths = []
    for s in (1, 2):
        r = synthetic_section(n_side=10, n_genes=60, n_regions=3, with_image=False, seed=s)
        paths.append(tmp_path / f"ref{s}.h5ad")
        r.write_h5ad(paths[-1])
    predicted, labels = reference_naming(adata, paths, 6)
    truth = adata.obs["label"].astype(str).to_numpy()
    assert labels.shape == (adata.n_obs,) and len(np.unique(labels)) == 6
    assert (predicted == truth).mean() > 0.8
    st = ReviewState(adata)
    st.name_from_reference(predicted, labels)
    assert adjusted_rand_score(truth, adata.obs[CLUSTER_KEY].astype(str)) > 0.8


def test_a_region_of_spots_by_hand_is_never_taken_by_a_reference_name():
    """More reference names than regions: the name left over must not take the id of a region made by hand."""
    adata = annotated_section(n_side=12)
    st = ReviewState(adata)
    codes = st.codes().copy()
    a = np.flatnonzero(codes == 0)
    mine = a[:3]
    st.assign(mine, None, new_name="my spots")
    pred = np.array(["A1", "B", "C"], dtype=object)[codes]
    pred[a[:20]] = "A2"  # the reference calls part of region 0 (the hand spots too) "A2"
    st.name_from_reference(pred, pd.factorize(pred)[0])
    legend = st.legend().set_index("name")
    assert legend.loc["my spots", "n_spots"] == 3 and st.manual[mine].all()
    assert set(adata.obs["senca_region"].astype(str).to_numpy()[mine]) == {"my spots"}
    assert {"A1", "A2", "B", "C"} <= set(legend.index)


@pytest.mark.parametrize("how", ["name", "recut"])
def test_spots_of_no_region_are_not_lost(how):
    """Spots without a region (NaN) must not give a new region the id 'nan' (which then vanished)."""
    adata = annotated_section(n_side=10)
    truth = adata.obs["label"].astype(str).to_numpy()
    col = adata.obs[CLUSTER_KEY].copy()
    col.iloc[:30] = np.nan
    adata.obs[CLUSTER_KEY] = col
    st = ReviewState(adata)
    if how == "name":
        st.name_from_reference(truth)
    else:
        st.set_n_clusters(4)
    assert (st.codes() >= 0).all() and "nan" not in st.clusters and "nan" not in st.names


def test_default_review_names_are_unlabelled_spots():
    """A reference reviewed in part: its regions still called 'cluster 3' teach nothing."""
    r = synthetic_section(n_side=8, n_genes=40, with_image=False, seed=1)
    r.obs["senca_region"] = np.where(np.arange(r.n_obs) < 20, "tumour", np.where(np.arange(r.n_obs) < 40, "stroma",
                                                                                  "cluster 2"))
    labels, key = reference_labels(r)
    assert key == "senca_region" and set(labels) == {"tumour", "stroma", None}


def test_labelled_reference_spots_fit_first(monkeypatch):
    """Above the spot limit, a sparsely annotated reference keeps its labelled spots."""
    target, refs = _sections(12)
    for r in refs:
        lab = r.obs["label"].astype(object).to_numpy()
        lab[np.arange(r.n_obs) % 4 != 0] = None  # a quarter of the spots labelled
        r.obs["label"] = pd.Categorical(lab)
    monkeypatch.setattr(ref_mod, "MAX_FIT_SPOTS", 100)
    monkeypatch.setattr(ref_mod, "MIN_FIT_SPOTS", 10)
    pred = predict_regions(target, refs)
    assert sum(pred.n_reference_spots.values()) == 72  # every labelled spot (2 x 36), then 28 unlabelled for the PCs


def test_a_reference_error_names_the_file_given(tmp_path):
    """An annotated.h5ad remembers the raw input it came from; an error must name the file the user gave."""
    bare = synthetic_section(n_side=6, n_genes=40, with_image=False, seed=3)
    del bare.obs["label"]
    bare.uns["senca_input"] = {"path": "/data/raw/A1_visium"}
    path = tmp_path / "annotated.h5ad"
    bare.write_h5ad(path)
    with pytest.raises(DataError, match="annotated.h5ad: no region names") as err:
        read_references([path])
    assert "A1_visium" not in str(err.value)


def test_a_small_reference_keeps_its_share_above_the_spot_limit(monkeypatch):
    """Above the limit each reference keeps a share: a reference with 3 labelled spots among 144 is not dropped
    (no share used to crash the gene selection)."""
    target, refs = _sections(12)
    small = refs[1]
    lab = small.obs["label"].astype(object).to_numpy()
    first = [int(np.flatnonzero(lab == r)[0]) for r in ("region 0", "region 1", "region 2")]
    lab[np.setdiff1d(np.arange(small.n_obs), first)] = None  # one labelled spot per region
    small.obs["label"] = pd.Categorical(lab)
    monkeypatch.setattr(ref_mod, "MAX_FIT_SPOTS", 100)
    monkeypatch.setattr(ref_mod, "MIN_FIT_SPOTS", 20)
    rows = ref_mod._fit_rows([reference_labels(r)[0] for r in refs], 0)
    assert [len(r) for r in rows] == [50, 50] and set(first) <= set(rows[1].tolist())
    pred = predict_regions(target, refs)
    assert sum(pred.n_reference_spots.values()) == 53


def test_duplicate_entries_in_the_counts_change_nothing():
    """A CSR matrix may store one count in two entries; the per-entry log must see their sum."""
    import scipy.sparse as sp

    target, refs = _sections(10)
    whole = predict_regions(target, refs)
    x = sp.csr_matrix(target.X)
    half = np.floor(x.data / 2)
    rows = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
    order = np.lexsort((np.tile([0, 1], len(rows)), np.repeat(rows, 2)))  # each count split in two entries, row-sorted
    data = np.ravel(np.column_stack([half, x.data - half]))[order]
    cols = np.repeat(x.indices, 2)[order]
    dup = sp.csr_matrix((data, cols, 2 * x.indptr), shape=x.shape)
    assert not dup.has_canonical_format and dup.nnz == 2 * x.nnz
    target.X = dup
    assert np.allclose(predict_regions(target, refs).probabilities, whole.probabilities, atol=1e-8)


def test_spots_by_hand_keep_the_name_of_a_clustered_region():
    """Spots assigned by hand into a region the user named keep that region and name; its other spots are named."""
    adata = annotated_section(n_side=10)
    truth = adata.obs["label"].astype(str).to_numpy()
    st = ReviewState(adata)
    st.rename("0", "tumour")
    spots = np.flatnonzero(st.codes() == 0)[:4]
    st.assign(spots, "0")
    st.name_from_reference(truth)
    names = adata.obs["senca_region"].astype(str).to_numpy()
    assert (names[spots] == "tumour").all() and st.legend().set_index("name").loc["tumour", "n_spots"] == 4


def test_a_partly_reviewed_reference_falls_back_to_its_labels():
    r = synthetic_section(n_side=8, n_genes=40, with_image=False, seed=1)
    r.obs["senca_region"] = np.where(np.arange(r.n_obs) < 20, "tumour", "cluster 1")  # one region named
    assert reference_labels(r)[1] == "label"


def test_a_new_run_forgets_the_review_of_the_previous_clustering():
    from napari_senca.pipeline import SencaResult, annotate

    adata = annotated_section(n_side=8)
    st = ReviewState(adata)
    st.rename("0", "tumour")
    st.assign([0, 1], "1")
    assert "senca_review" in adata.uns and "senca_manual" in adata.obs
    from napari_senca.config import SencaConfig

    result = SencaResult(embedding=np.asarray(adata.obsm["X_senca"]), labels=np.arange(adata.n_obs) % 2,
                         linkage=None, n_clusters=2, genes=list(adata.var_names), history=[], config=SencaConfig(),
                         device="cpu", rna_only=True, image_weights_used="none", timings={})
    annotate(adata, result)
    assert "senca_review" not in adata.uns and "senca_manual" not in adata.obs and "senca_region" not in adata.obs
    assert ReviewState(adata).names == {"0": "cluster 0", "1": "cluster 1"}
