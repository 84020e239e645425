"""Per-spot confidence (simplified silhouette in the clustered space)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_senca.cluster import recluster
from napari_senca.confidence import (
    CONFIDENCE_KEY,
    hand_assigned,
    silhouette_confidence,
    uncertain_spots,
    update_confidence,
)
from napari_senca.errors import ConfigError
from napari_senca.review import ReviewState
from napari_senca.section import CLUSTER_KEY, EMBED_KEY
from test_review import annotated_section  # tests/ is on sys.path


def two_blobs(n=60, dim=5, seed=0):
    """Two Gaussian blobs at +-3 on the first axis, 5 spots on the boundary plane x0 = 0."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 0.5, size=(n, dim))
    labels = np.repeat([0, 1], n // 2)
    z[:, 0] += np.where(labels == 0, -3.0, 3.0)
    boundary = np.arange(5)  # five spots of region 0 moved onto the boundary
    z[boundary, 0] = 0.0
    return z, labels, boundary


def test_low_at_the_boundary_high_at_the_centres():
    z, labels, boundary = two_blobs()
    c = silhouette_confidence(z, labels)
    assert c.shape == (len(z),) and np.all((c >= 0) & (c <= 1))
    assert c[boundary].max() < 0.2
    rest = np.setdiff1d(np.arange(len(z)), boundary)
    assert np.median(c[rest]) > 0.6
    # a spot exactly at its region's centre has confidence 1
    z2 = np.vstack([z, z[labels == 1].mean(0)])
    c2 = silhouette_confidence(z2, np.append(labels, 1))
    assert c2[-1] > 0.99
    # the five boundary spots are exactly the uncertain ones at 0.2
    np.testing.assert_array_equal(uncertain_spots(c, 0.2), boundary)


def test_spot_closer_to_another_centre_is_zero_and_formula():
    z = np.array([[0.0], [1.0], [10.0], [11.0], [9.0]])
    labels = np.array([0, 0, 1, 1, 0])  # the last spot sits inside region 1
    c = silhouette_confidence(z, labels)
    assert c[-1] == 0.0
    # spot 0: own centre (0 + 1 + 9) / 3 = 10/3, other centre 10.5
    a, b = 10 / 3, 10.5
    assert c[0] == pytest.approx((b - a) / b)
    assert np.all(silhouette_confidence(z, np.zeros(5)) == 1.0)  # one region: nothing to confuse
    with pytest.raises(ConfigError, match="do not match"):
        silhouette_confidence(z, labels[:3])


def test_annotate_and_recluster_store_it():
    adata = annotated_section(k=3)
    conf = adata.obs[CONFIDENCE_KEY].to_numpy()
    z = np.asarray(adata.obsm[EMBED_KEY])
    np.testing.assert_allclose(conf, silhouette_confidence(z, adata.obs[CLUSTER_KEY].astype(str)))
    recluster(adata, 5)
    new = adata.obs[CONFIDENCE_KEY].to_numpy()
    np.testing.assert_allclose(new, silhouette_confidence(z, adata.obs[CLUSTER_KEY].astype(str)))
    assert not np.allclose(new, conf)  # five regions have nearer neighbours than three
    assert np.isfinite(new).all()


def test_confidence_computed_in_a_worker_is_the_one_recluster_computes():
    """recluster_in_worker's confidence (off the GUI thread) is what recluster would store itself."""
    from napari_senca.cluster import recluster_in_worker, stored_clustering

    a, b = annotated_section(k=3), annotated_section(k=3)
    tree, emb, seed = stored_clustering(a)
    labels, conf = recluster_in_worker(tree, emb, 5, seed)
    ReviewState(a).set_n_clusters(5, labels=labels, confidence=conf)
    ReviewState(b).set_n_clusters(5)
    assert (a.obs[CLUSTER_KEY].astype(str).to_numpy() == b.obs[CLUSTER_KEY].astype(str).to_numpy()).all()
    np.testing.assert_allclose(a.obs[CONFIDENCE_KEY].to_numpy(), b.obs[CONFIDENCE_KEY].to_numpy())
    assert not np.allclose(conf, annotated_section(k=3).obs[CONFIDENCE_KEY].to_numpy())
    before = a.obs[CLUSTER_KEY].copy()
    with pytest.raises(ConfigError, match="confidence values"):
        recluster(a, 4, labels=recluster_in_worker(tree, emb, 4, seed)[0], confidence=conf[:-1])
    assert a.obs[CLUSTER_KEY].equals(before)  # refused before anything changed


def test_hand_assigned_spots_get_nan_merges_do_not():
    adata = annotated_section(k=3)
    st = ReviewState(adata)
    moved = np.flatnonzero(adata.obs[CLUSTER_KEY].astype(str).to_numpy() == "1")[:4]
    st.assign(moved, "0")
    conf = update_confidence(adata)
    assert np.isnan(conf[moved]).all()
    assert np.isfinite(np.delete(conf, moved)).all()
    assert not set(uncertain_spots(conf, 1.01)) & set(moved.tolist())  # never "uncertain"
    st.undo()
    st.merge("0", "2")
    conf = update_confidence(adata)
    assert np.isfinite(conf).all()
    assert len(np.unique(adata.obs[CLUSTER_KEY])) == 2


def test_undo_of_a_recluster_uses_the_call_of_that_count():
    adata = annotated_section(k=3)
    before = adata.obs[CONFIDENCE_KEY].to_numpy().copy()
    st = ReviewState(adata)
    st.set_n_clusters(6)
    st.undo()  # back to the three-region cut
    np.testing.assert_allclose(update_confidence(adata), before)


def test_hand_assigned_matches_by_majority():
    model = np.array(["a"] * 5 + ["b"] * 5)
    cur = np.array(["a", "a", "a", "a", "b", "b", "b", "b", "b", "c"])
    np.testing.assert_array_equal(hand_assigned(cur, model), [0, 0, 0, 0, 1, 0, 0, 0, 0, 1])
    merged = np.array(["a"] * 10)
    assert not hand_assigned(merged, model).any()


def test_survives_h5ad(tmp_path):
    import anndata

    adata = annotated_section(k=3)
    ReviewState(adata).assign([0, 1], None, new_name="manual")
    update_confidence(adata)
    adata.write_h5ad(tmp_path / "s.h5ad")
    back = anndata.read_h5ad(tmp_path / "s.h5ad")
    np.testing.assert_allclose(back.obs[CONFIDENCE_KEY], adata.obs[CONFIDENCE_KEY])
    np.testing.assert_allclose(update_confidence(back), adata.obs[CONFIDENCE_KEY])


def test_needs_a_result():
    from napari_senca.datasets import synthetic_section

    with pytest.raises(ConfigError, match="run the model first"):
        update_confidence(synthetic_section(n_side=4, n_genes=10))


def test_confidence_is_a_layer_feature_for_hover():
    """The points layer shows each spot's confidence on hover (a ``features`` column)."""
    adata = annotated_section(k=3)
    df = ReviewState(adata).features()
    assert CONFIDENCE_KEY in df
    np.testing.assert_allclose(df[CONFIDENCE_KEY].to_numpy(), adata.obs[CONFIDENCE_KEY].to_numpy())


def test_categorical_codes_read_as_the_strings_do():
    """update_confidence works from the categorical's codes: unused categories, missing values, 10 vs 9 sort as text."""
    import pandas as pd

    from napari_senca.confidence import label_codes

    z, labels, _ = two_blobs(n=60)
    labels = np.where(np.arange(60) % 7 == 0, 10, labels)  # a third region '10' (sorts before '9' as text)
    cat = pd.Series(pd.Categorical(labels, categories=[1, 0, 9, 10]))  # 9 unused
    cat[3] = np.nan
    names, codes = label_codes(cat)
    ref_names, ref_codes = np.unique(cat.astype(str).to_numpy(), return_inverse=True)
    used = np.unique(codes)
    assert list(names[used]) == list(ref_names) and np.array_equal(names[codes], ref_names[ref_codes])
    adata = annotated_section(k=3)
    adata.obs[CLUSTER_KEY] = adata.obs[CLUSTER_KEY].cat.add_categories(["never used"])
    np.testing.assert_allclose(update_confidence(adata), silhouette_confidence(
        np.asarray(adata.obsm[EMBED_KEY]), adata.obs[CLUSTER_KEY].astype(str)))
