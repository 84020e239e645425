"""The other spots from a few assigned by hand (nearest region mean in the SENCA embedding)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from napari_senca.errors import ConfigError
from napari_senca.review import ReviewState
from napari_senca.review import classify as classify_mod
from napari_senca.review.classify import nearest_region_mean
from napari_senca.section import CLUSTER_KEY, EMBED_KEY
from test_review import annotated_section  # tests/ is on sys.path


def test_nearest_region_mean_keeps_given_spots_and_takes_the_nearest_mean():
    x = np.array([[0.0, 0], [0.2, 0], [10, 0], [10.2, 0], [0.1, 0.1], [9.9, 0.1], [4.9, 0], [5.2, 0], [0.3, 0]])
    codes = np.array([0, 0, 1, 1, 1, 0, 0, -1, 1])  # spots 4-7: wrong or no region; 8: by hand, odd one out
    given = np.array([True, True, True, True, False, False, False, False, True])
    out = nearest_region_mean(x, codes, given)
    # means 0.1 and (10 + 10.2 + 0.3) / 3 = 6.83: 4.9 is nearer 6.83 than 0.1; the given spots keep their codes,
    # spot 8 too although it lies next to region 0's mean
    assert out.tolist() == [0, 0, 1, 1, 0, 1, 1, 1, 1]


def test_nearest_region_mean_in_blocks_matches_one_block(monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, 5))
    codes = rng.integers(0, 4, 1000)
    given = rng.random(1000) < 0.05
    whole = nearest_region_mean(x, codes, given)
    codes_keep = np.where(rng.random(1000) < 0.5, codes, 5)  # region 5: no spot by hand
    codes_keep[given] = codes[given]
    kept = nearest_region_mean(x, codes_keep, given, keep_unassigned=True)
    assert (kept == 5).any()
    monkeypatch.setattr(classify_mod, "_BLOCK", 7)
    assert np.array_equal(nearest_region_mean(x, codes, given), whole)
    assert np.array_equal(nearest_region_mean(x, codes_keep, given, keep_unassigned=True), kept)


def test_nearest_region_mean_needs_two_regions_and_a_matching_embedding():
    x = np.zeros((4, 2))
    with pytest.raises(ConfigError, match="at least two regions"):
        nearest_region_mean(x, np.array([0, 0, 1, 1]), np.array([True, True, False, False]))
    with pytest.raises(ConfigError, match="run the model again"):
        nearest_region_mean(x[:3], np.array([0, 0, 1, 1]), np.array([True, False, True, False]))


def test_a_few_spots_by_hand_bring_back_a_region_the_clustering_merged():
    """The user's grain: the clustering merged two regions; three spots of each by hand and 'classify' split them."""
    adata = annotated_section(n_side=10)
    truth = adata.obs["label"].astype(str).to_numpy()
    st = ReviewState(adata)
    st.merge("1", "2")  # the clustering's grain is coarser than the pathologist's
    before = adjusted_rand_score(truth, adata.obs[CLUSTER_KEY].astype(str))
    for region in np.unique(truth):
        spots = np.flatnonzero(truth == region)[:3]
        st.assign(spots, None, new_name=f"hand {region}")
    log_before, labels_before = list(st.log), adata.obs[CLUSTER_KEY].astype(str).to_numpy()
    hand_ids = labels_before.copy()
    what = st.classify_from_assigned()
    after = adjusted_rand_score(truth, adata.obs[CLUSTER_KEY].astype(str))
    assert before < 0.7 and after > 0.9, (before, after)
    assert "from 9 spots assigned by hand" in what and st.log == [*log_before, what]
    assert st.n_manual == 9  # the hand-assigned spots stay hand-assigned, in their regions
    hand = st.manual.copy()
    assert (adata.obs[CLUSTER_KEY].astype(str).to_numpy()[hand] == hand_ids[hand]).all()
    assert set(adata.obs["senca_region"].astype(str)) == {f"hand {r}" for r in np.unique(truth)}
    assert sorted(st.display_names()) == [f"hand {r}" for r in sorted(np.unique(truth))]  # the emptied regions go
    st.undo()
    assert np.array_equal(adata.obs[CLUSTER_KEY].astype(str).to_numpy(), labels_before)
    assert len(st.display_names()) == 5 and st.n_manual == 9  # two clustered regions and three by hand
    st.redo()
    assert adjusted_rand_score(truth, adata.obs[CLUSTER_KEY].astype(str)) == pytest.approx(after)


def test_classify_needs_spots_by_hand_in_two_regions_and_a_stored_embedding():
    adata = annotated_section()
    st = ReviewState(adata)
    with pytest.raises(ConfigError, match="at least two regions"):
        st.classify_from_assigned()
    st.assign([0, 1], "0")
    with pytest.raises(ConfigError, match="in 1 region"):
        st.classify_from_assigned()
    st.assign([2], "1")
    del adata.obsm[EMBED_KEY]
    with pytest.raises(ConfigError, match="no stored SENCA embedding"):
        st.classify_from_assigned()


def test_classify_names_the_named_regions_it_would_empty_and_changes_nothing_twice():
    adata = annotated_section(n_side=10)
    truth = adata.obs["label"].astype(str).to_numpy()
    st = ReviewState(adata)
    st.rename("0", "stroma")
    st.set_visible("1", False)
    assert st.classify_would_empty() == []  # no spot by hand: the button asks for some first
    a, b = (np.flatnonzero(truth == r)[:3] for r in np.unique(truth)[1:])
    st.assign(a, None, new_name="tumour")
    st.assign(b, None, new_name="immune")
    assert st.classify_would_empty() == ["stroma"]  # regions "1" and "2" keep their default names: not asked
    what = st.classify_from_assigned()
    assert "hidden regions" in what  # region "1" was hidden and lost its spots
    n_edits = len(st.history.undo)
    assert st.classify_from_assigned().startswith("nothing to change") and len(st.history.undo) == n_edits


def test_nearest_region_mean_keeps_regions_without_given_spots_when_asked():
    x = np.array([[0.0, 0], [0.2, 0], [10, 0], [10.2, 0], [5.0, 0], [5.2, 0], [9.0, 0], [0.4, 0]])
    codes = np.array([0, 0, 0, 0, 1, 1, 1, 1])  # region 0 merged two groups; region 1 holds strays
    given = np.array([False, False, True, True, False, False, False, False])
    code_new = 2
    codes[given] = code_new  # two spots of the right-hand group by hand, in a new region
    with pytest.raises(ConfigError, match="in 1 region"):
        nearest_region_mean(x, codes, given)  # dropping the others would leave one region
    out = nearest_region_mean(x, codes, given, keep_unassigned=True)
    # means: region 0 from spots 0, 1 (0.1); region 1 from spots 4-7 (4.9); region 2 from the given (10.1)
    assert out.tolist() == [0, 0, 2, 2, 1, 1, 2, 0]
    with pytest.raises(ConfigError, match="only one region"):
        nearest_region_mean(x, np.full(8, 2), given, keep_unassigned=True)
    with pytest.raises(ConfigError, match="at least two regions"):
        nearest_region_mean(x, codes, np.zeros(8, bool), keep_unassigned=True)  # nothing by hand


def test_adding_the_region_the_clustering_merged_keeps_the_other_regions():
    """The corrective reviewer: the clustering merged two regions; three spots of one of them in a new region
    and 'classify, keeping the others' split them again, with no spot assigned in the other regions."""
    adata = annotated_section(n_side=10)
    truth = adata.obs["label"].astype(str).to_numpy()
    st = ReviewState(adata)
    st.rename("0", "stroma")
    st.merge("1", "2")
    before = adjusted_rand_score(truth, adata.obs[CLUSTER_KEY].astype(str))
    assert st.clusters == ["0", "1"]  # region 1 and region 2 in cluster "1" now
    spots = np.flatnonzero(truth == "region 1")[:3]
    cid = st.assign(spots, None, new_name="split off")
    assert st.n_hand_regions == 1 and st.regions_without_hand() == ["0", "1"]
    assert st.classify_would_empty() == []  # with one region by hand nothing would be dropped
    with pytest.raises(ConfigError, match="in 1 region"):
        st.classify_from_assigned()
    what = st.classify_from_assigned(keep_unassigned=True)
    after = adjusted_rand_score(truth, adata.obs[CLUSTER_KEY].astype(str))
    assert before < 0.7 and after > 0.9, (before, after)
    assert "and 2 regions' own spots" in what and "stroma" in st.display_names()
    assert (adata.obs[CLUSTER_KEY].astype(str).to_numpy()[spots] == cid).all() and st.n_manual == 3
    st.undo()
    assert adjusted_rand_score(truth, adata.obs[CLUSTER_KEY].astype(str)) == pytest.approx(before, abs=0.05)


def test_a_kept_region_that_loses_every_spot_is_named():
    """Keep lets a region compete with its own spots' mean; if every one of them is nearer another mean it is
    gone, and the message says so (Undo brings it back)."""
    adata = annotated_section(n_side=10)
    st = ReviewState(adata)
    codes = adata.obs[CLUSTER_KEY].astype(str).to_numpy()
    hand0, hand1 = np.flatnonzero(codes == "0")[:3], np.flatnonzero(codes == "1")[:3]
    x = adata.obsm[EMBED_KEY]
    a, b = np.zeros(x.shape[1]), np.ones(x.shape[1])
    x[codes == "0"], x[codes == "1"] = a, b
    own = np.flatnonzero(codes == "2")  # half of region "2" where region 0 lies, half where region 1 lies:
    x[own[::2]], x[own[1::2]] = a, b  # its own mean lies between, nearer none of its spots
    st.rename("2", "kept one")
    st.assign(hand0, "0")
    st.assign(hand1, "1")
    what = st.classify_from_assigned(keep_unassigned=True)
    assert "'kept one' lost all its spots" in what and "kept one" not in st.display_names()
    assert "into 2 regions" in what
    st.undo()
    assert "kept one" in st.display_names() and (adata.obs[CLUSTER_KEY].astype(str).to_numpy() == codes).all()
