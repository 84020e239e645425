"""Unit tests of the Qt-free review state (names, colours, edits, undo, layers)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_senca.errors import ConfigError, DataError
from napari_senca.review import (
    EXPRESSION_KEY,
    REGION_KEY,
    REVIEW_KEY,
    ReviewState,
    image_layer_data,
    points_layer_data,
    section_layer_data,
    spots_in_shapes,
    to_hex,
)
from napari_senca.section import CLUSTER_KEY, EMBED_KEY, spot_diameter


def annotated_section(n_side: int = 8, k: int = 3, seed: int = 0):
    """A synthetic section with a SENCA-like result (no training: a noisy one-hot embedding)."""
    from napari_senca.cluster import cluster_embedding
    from napari_senca.config import SencaConfig
    from napari_senca.datasets import synthetic_section
    from napari_senca.pipeline import SencaResult, annotate

    adata = synthetic_section(n_side=n_side, n_genes=60, n_regions=3, seed=seed)
    codes = adata.obs["label"].cat.codes.to_numpy()
    rng = np.random.default_rng(seed)
    emb = np.eye(3)[codes] * 3 + rng.normal(0, 0.5, size=(adata.n_obs, 3))
    labels, tree = cluster_embedding(emb, k)
    result = SencaResult(
        embedding=emb.astype(np.float32),
        labels=labels,
        linkage=tree,
        n_clusters=k,
        genes=list(adata.var_names),
        history=[{"total": 1.0, "mse": 0.5, "nt_window": 0.2, "nt_pool": 0.3}],
        config=SencaConfig(n_clusters=k, epochs=1),
        device="cpu",
        rna_only=True,
        image_weights_used="none (RNA-only)",
        timings={"total": 0.0},
    )
    return annotate(adata, result)


class FakeLayer:
    """The parts of a napari points layer that ReviewState touches."""

    def __init__(self, data, **kw):
        self.data = np.asarray(data)
        self.name = kw.get("name", "spots")
        self.metadata = dict(kw.get("metadata", {}))
        self.features = kw.get("features")
        self.face_color = np.zeros((len(self.data), 4))
        self.face_color_mode = "direct"
        self.face_color_cycle = None
        self.face_colormap = None
        self.refreshed = 0

    def refresh(self):
        self.refreshed += 1

    def refresh_colors(self, update_color_mapping=False):
        pass


@pytest.fixture
def adata():
    return annotated_section()


@pytest.fixture
def state(adata):
    return ReviewState(adata)


# --------------------------------------------------------------------------- basics


def test_defaults(state, adata):
    assert state.has_result and state.can_recluster
    assert state.clusters == ["0", "1", "2"]
    leg = state.legend()
    assert list(leg.columns) == ["cluster", "name", "colour", "n_spots"]
    assert leg["n_spots"].sum() == adata.n_obs
    assert leg["name"].tolist() == ["cluster 0", "cluster 1", "cluster 2"]
    assert len(set(leg["colour"])) == 3
    assert not state.can_undo
    # written straight away for exporters and scanpy
    assert list(adata.uns[REVIEW_KEY]["names"]) == leg["name"].tolist()
    assert list(adata.uns[f"{CLUSTER_KEY}_colors"]) == leg["colour"].tolist()
    assert adata.uns["senca"]["cluster_names"] == dict(zip(leg["cluster"], leg["name"], strict=True))
    assert (adata.obs[REGION_KEY].astype(str) == "cluster " + adata.obs[CLUSTER_KEY].astype(str)).all()


def test_fresh_forgets_an_earlier_review(adata):
    st = ReviewState(adata)
    st.rename("0", "tumour")
    st.recolour("0", "black")
    assert ReviewState(adata).name_of("0") == "tumour"
    new = ReviewState.fresh(adata)  # e.g. after a new training run
    assert new.name_of("0") == "cluster 0" and new.colour_of("0") != "#000000"
    assert new.log == []


def test_edits_summary_says_what_a_new_run_would_replace(state):
    assert state.edits_summary() == ""
    state.set_n_clusters(4)
    assert state.edits_summary() == "1 edit"
    state.rename("0", "tumour")
    state.assign([0], "1")
    assert state.edits_summary() == "3 edits: 1 renamed region, 1 spot assigned by hand"


def test_no_result_yet():
    from napari_senca.datasets import synthetic_section

    st = ReviewState(synthetic_section(n_side=5, n_genes=40))
    assert not st.has_result and st.clusters == [] and len(st.legend()) == 0
    for call in (lambda: st.set_n_clusters(3), lambda: st.rename("0", "x"), lambda: st.assign([0]),
                 lambda: st.markers("0")):
        with pytest.raises(ConfigError, match="run the model first"):
            call()
    # before a run the spots are coloured by the pathologist labels
    kw = st.layer_kwargs()
    assert kw["face_color"] == "label" and set(kw["face_color_cycle"]) == set(st.features()["label"].cat.categories)


def test_not_a_section():
    with pytest.raises(DataError):
        ReviewState("nope")  # type: ignore[arg-type]


def test_resolve_by_id_name_and_int(state):
    state.rename("1", "Invasive cancer")
    assert state.resolve(1) == "1"
    assert state.resolve("Invasive cancer") == "1"
    assert state.resolve("invasive CANCER") == "1"
    with pytest.raises(ConfigError, match="no cluster named"):
        state.resolve("stroma")


# --------------------------------------------------------------------------- edits


def test_set_n_clusters_and_undo(state, adata):
    before = adata.obs[CLUSTER_KEY].copy()
    state.rename("0", "tumour")
    state.set_n_clusters(5)
    assert state.n_clusters == 5 and adata.uns["senca"]["n_clusters"] == 5
    assert state.name_of("0") == "tumour"  # carried to the best-matching new region
    assert len(set(state.colour_cycle().values())) == 5
    assert state.undo().startswith("cluster count")
    assert state.n_clusters == 3 and adata.uns["senca"]["n_clusters"] == 3
    assert (adata.obs[CLUSTER_KEY] == before).all()
    assert state.name_of("0") == "tumour"


@pytest.mark.parametrize("k", [1, 0, 10_000])
def test_set_n_clusters_out_of_range(state, k):
    with pytest.raises(ConfigError):
        state.set_n_clusters(k)
    assert not state.can_undo and state.n_clusters == 3


def test_rename_rules(state):
    with pytest.raises(ConfigError, match="empty"):
        state.rename("0", "   ")
    state.rename("0", "stroma")
    with pytest.raises(ConfigError, match="already used"):
        state.rename("1", "stroma")
    state.rename("0", "stroma")  # same name: no edit
    assert state.log == ["renamed 'cluster 0' to 'stroma'"]


def test_recolour(state, adata):
    state.recolour("2", "red")
    assert state.colour_of("2") == "#ff0000"
    state.recolour("2", (0, 255, 0))
    assert state.colour_of("2") == "#00ff00"
    state.recolour("2", (0.0, 0.0, 1.0, 1.0))
    assert adata.uns[f"{CLUSTER_KEY}_colors"][2] == "#0000ff"
    with pytest.raises(ConfigError, match="not a colour"):
        state.recolour("2", "not-a-colour")
    state.undo()
    assert state.colour_of("2") == "#00ff00"


def test_to_hex():
    assert to_hex("#ABCDEF") == "#abcdef"
    assert to_hex([255, 0, 0]) == "#ff0000"
    with pytest.raises(ConfigError):
        to_hex(42)


def test_assign_existing_and_new(state, adata):
    n0 = int((adata.obs[CLUSTER_KEY] == "0").sum())
    spots = [i for i in range(adata.n_obs) if adata.obs[CLUSTER_KEY].iloc[i] != "0"][:4]
    assert state.assign(spots, "0") == "0"
    assert int((adata.obs[CLUSTER_KEY] == "0").sum()) == n0 + 4
    cid = state.assign([0, 1, 2], None, new_name="DCIS")
    assert cid == "3" and state.name_of(cid) == "DCIS"
    assert state.colour_of(cid) not in {state.colour_of(c) for c in ("0", "1", "2")}
    assert (adata.obs[CLUSTER_KEY].iloc[:3] == "3").all()
    assert list(adata.obs[REGION_KEY].iloc[:3]) == ["DCIS"] * 3
    auto = state.assign([5], None)
    assert state.name_of(auto) == f"region {auto}"
    # undo twice: back to the first assignment
    state.undo()
    state.undo()
    assert state.clusters == ["0", "1", "2"]
    assert int((adata.obs[CLUSTER_KEY] == "0").sum()) == n0 + 4
    state.undo()
    assert int((adata.obs[CLUSTER_KEY] == "0").sum()) == n0
    with pytest.raises(ConfigError, match="nothing to undo"):
        state.undo()


def test_assign_errors(state):
    with pytest.raises(ConfigError, match="no spots selected"):
        state.assign([], "0")
    with pytest.raises(ConfigError, match="must be in"):
        state.assign([10_000], "0")
    with pytest.raises(ConfigError, match="integer"):
        state.assign(["a"], "0")
    with pytest.raises(ConfigError, match="already used"):
        state.assign([0], None, new_name="cluster 1")
    with pytest.raises(ConfigError, match="no cluster named"):
        state.assign([0], "nope")
    assert not state.can_undo


def test_emptied_cluster_disappears(state, adata):
    members = np.where(adata.obs[CLUSTER_KEY] == "2")[0]
    state.assign(members, "1")
    assert state.clusters == ["0", "1"]
    assert "2" not in state.names and "2" not in state.colours
    state.undo()
    assert state.clusters == ["0", "1", "2"]


def test_merge(state, adata):
    n1 = int((adata.obs[CLUSTER_KEY] == "1").sum())
    n2 = int((adata.obs[CLUSTER_KEY] == "2").sum())
    assert state.merge("1", "2") == "1"
    assert state.clusters == ["0", "1"]
    assert state.legend().set_index("cluster").loc["1", "n_spots"] == n1 + n2
    with pytest.raises(ConfigError, match="two different"):
        state.merge("1", "1")
    state.undo()
    assert state.clusters == ["0", "1", "2"]


def test_new_region_id_after_undo(state):
    a = state.assign([0], None)
    state.undo()
    b = state.assign([1], None)
    assert a == b == "3"  # an undone region frees its id
    assert state.name_of(b) == "region 3"


def test_listeners(state):
    seen: list[str] = []
    state.connect(seen.append)
    state.rename("0", "a")
    state.show_gene(state.genes()[0])
    state.disconnect(seen.append)
    state.rename("0", "b")
    assert seen == ["renamed 'cluster 0' to 'a'", "colour"]


# --------------------------------------------------------------------------- genes and markers


def test_genes_search_and_values(state, adata):
    assert state.search_genes("marker")[:3] == ["MARKER0", "MARKER1", "MARKER2"]
    assert state.resolve_gene("marker1") == "MARKER1"
    with pytest.raises(ConfigError, match="no gene 'MARKERX'"):
        state.resolve_gene("MARKERX")
    v = state.gene_values("MARKER0")
    assert v.shape == (adata.n_obs,) and np.isfinite(v).all() and v.min() >= 0
    region0 = (adata.obs["label"] == "region 0").to_numpy()
    assert v[region0].mean() > v[~region0].mean()
    state.show_gene("marker0")
    assert state.colour_by == "MARKER0" and state.colour_column() == EXPRESSION_KEY
    f = state.features()
    np.testing.assert_allclose(f[EXPRESSION_KEY].to_numpy(), v)
    assert state.layer_kwargs()["face_colormap"]["name"] == "senca_values"
    state.show_clusters()
    assert EXPRESSION_KEY not in state.features()


def test_markers(state):
    df = state.markers("0", n_genes=5)
    assert len(df) == 5 and set(df["cluster"]) == {"0"}
    assert {"gene", "score", "pval_adj", "name"} <= set(df.columns)
    assert state.markers_cached(5)
    state.rename("0", "tumour")  # names do not invalidate the tests
    assert state.markers_cached(5)
    assert state.markers("tumour", n_genes=5)["name"].eq("tumour").all()
    state.assign([0], "1")
    assert not state.markers_cached(5)


def test_marker_snapshot(state):
    from napari_senca.markers import rank_markers

    snap, version = state.marker_snapshot()
    table = rank_markers(snap, CLUSTER_KEY, n_genes=25)
    assert state.cache_markers(version, table)
    assert state.markers_cached()
    snap2, v2 = state.marker_snapshot()
    state.merge("0", "1")
    assert not state.cache_markers(v2, table)  # stale: refused


# --------------------------------------------------------------------------- layers


def test_features_columns(state, adata):
    f = state.features()
    assert list(f.columns) == [
        "spot_id", "array_row", "array_col", "total_counts", "label", CLUSTER_KEY, REGION_KEY, "senca_confidence"
    ]
    assert isinstance(f[CLUSTER_KEY].dtype, pd.CategoricalDtype)
    assert list(f[CLUSTER_KEY].cat.categories) == state.clusters
    assert f["spot_id"].tolist() == list(adata.obs_names)


def test_layer_data_tuples(adata):
    layers = section_layer_data(adata, "S")
    assert [t[2] for t in layers] == ["image", "points"]
    img, ikw, _ = layers[0]
    assert ikw["rgb"] and ikw["scale"] == (1.0, 1.0) and ikw["name"] == "S H&E"
    pts, pkw, _ = layers[1]
    np.testing.assert_allclose(pts[:, 0], adata.obsm["spatial"][:, 1])  # rows are y
    np.testing.assert_allclose(pts[:, 1], adata.obsm["spatial"][:, 0])
    assert pkw["size"] == pytest.approx(spot_diameter(adata))
    assert pkw["metadata"]["adata"] is adata
    assert isinstance(pkw["metadata"][REVIEW_KEY], ReviewState)
    assert pkw["face_color"] == CLUSTER_KEY and set(pkw["face_color_cycle"]) == {"0", "1", "2"}


def test_image_scale_follows_scalefactor(adata):
    lib = next(iter(adata.uns["spatial"]))
    adata.uns["spatial"][lib]["scalefactors"]["tissue_hires_scalef"] = 0.25
    _, kw, _ = image_layer_data(adata)
    assert kw["scale"] == (4.0, 4.0)
    del adata.uns["spatial"][lib]["images"]["hires"]
    assert image_layer_data(adata) is None
    assert [t[2] for t in section_layer_data(adata)] == ["points"]


def test_apply_and_from_layer(adata):
    data, kw, _ = points_layer_data(adata)
    layer = FakeLayer(data, **kw)
    st = ReviewState.from_layer(layer)
    assert st is kw["metadata"][REVIEW_KEY]
    st.rename("0", "tumour")
    st.apply_to_layer(layer)
    assert layer.metadata["senca_names"]["0"] == "tumour"
    assert "tumour" in layer.features[REGION_KEY].tolist()
    np.testing.assert_allclose(np.asarray(layer.face_color), st.spot_colours())
    # a layer whose state object was lost (e.g. a copy) rebuilds it from the AnnData
    other = FakeLayer(data, metadata={"adata": adata, "senca_names": {"1": "stroma"}})
    st2 = ReviewState.from_layer(other)
    assert st2 is not st and st2.name_of("0") == "tumour" and st2.name_of("1") == "stroma"


def test_from_layer_errors(adata):
    with pytest.raises(DataError, match="holds no section"):
        ReviewState.from_layer(FakeLayer(np.zeros((3, 2))))
    data, kw, _ = points_layer_data(adata)
    layer = FakeLayer(data[:-1], **kw)
    with pytest.raises(DataError, match="points were added or deleted"):
        ReviewState.from_layer(layer)


def test_h5ad_round_trip_restores_names_colours_edits(tmp_path, adata):
    from anndata import read_h5ad

    st = ReviewState(adata)
    st.rename("0", "invasive cancer")
    st.recolour("1", "#123456")
    cid = st.assign([0, 1], None, new_name="DCIS")
    path = tmp_path / "s.h5ad"
    adata.write_h5ad(path)
    back = read_h5ad(path)
    st2 = ReviewState(back)
    assert st2.clusters == st.clusters
    assert st2.name_of("0") == "invasive cancer"
    assert st2.colour_of("1") == "#123456"
    assert st2.name_of(cid) == "DCIS" and list(back.obs[CLUSTER_KEY].iloc[:2]) == [cid, cid]
    assert st2.log == st.log and len(st2.log) == 3
    assert EMBED_KEY in back.obsm
    st2.set_n_clusters(4)  # the stored tree survives the round trip
    assert st2.clustering_k == 4 and st2.n_clusters == 5 and st2.name_of(cid) == "DCIS"  # DCIS kept


def test_spots_in_shapes():
    rc = np.array([[0.0, 0.0], [0.0, 10.0], [10.0, 0.0], [10.0, 10.0], [5.0, 5.0]])
    square = np.array([[-1.0, -1.0], [-1.0, 6.0], [6.0, 6.0], [6.0, -1.0]])
    assert spots_in_shapes(rc, [square]).tolist() == [0, 4]
    # an ellipse is stored as its bounding box; (0, 0) is in the box, not in the ellipse
    box = np.array([[-1.0, -1.0], [-1.0, 11.0], [11.0, 11.0], [11.0, -1.0]])
    assert spots_in_shapes(rc, [box], ["ellipse"]).tolist() == [4]
    assert spots_in_shapes(rc, [box], ["rectangle"]).tolist() == [0, 1, 2, 3, 4]
    line = np.array([[0.0, 0.0], [10.0, 10.0]])
    assert spots_in_shapes(rc, [line, square], ["line", "polygon"]).tolist() == [0, 4]
    assert spots_in_shapes(rc, []).tolist() == []


# --------------------------------------------------------------------------- issue 8: the review is kept


def _overlap(a, b) -> float:
    return float(np.mean(np.asarray(a, dtype=object) == np.asarray(b, dtype=object)))


def test_recluster_carries_names_colours_and_manual_assignments(state, adata):
    state.rename("0", "tumour")
    state.recolour("1", "#ffffff")
    before = np.asarray(adata.obs[CLUSTER_KEY].astype(str))
    moved = np.flatnonzero(before == "0")[:3]
    state.assign(moved, "2")
    assert state.n_manual == 3
    state.set_n_clusters(5)
    # the regions matching the old ones keep their ids (so names and colours)
    assert state.clustering_k == 5 and "tumour" in state.display_names()
    assert state.colour_of("1") == "#ffffff"
    now = np.asarray(adata.obs[CLUSTER_KEY].astype(str))
    tum = state.resolve("tumour")
    assert _overlap(now[before == "0"], [tum] * int((before == "0").sum())) > 0.5
    # spots assigned by hand stay where the user put them
    assert (now[moved] == "2").all() and state.n_manual == 3
    assert "3 spots assigned by hand kept" in state.log[-1]
    # and back to 3 regions: the original cut with all edits
    state.set_n_clusters(3)
    assert state.name_of("0") == "tumour" and state.colour_of("1") == "#ffffff"
    assert (np.asarray(adata.obs[CLUSTER_KEY].astype(str))[moved] == "2").all()


def test_names_come_back_when_the_count_steps_down_and_up():
    """7 -> 6 -> 5 -> 6 -> 7 is the same partition: the regions merged away get their ids, names and colours back."""
    adata = annotated_section(n_side=12, k=7)
    state = ReviewState(adata)
    names = ["tumour", "stroma", "fat", "immune", "necrosis", "DCIS", "normal duct"]
    for cid, name in zip(list(state.clusters), names, strict=True):
        state.rename(cid, name)
    state.recolour(state.clusters[-1], "#123456")
    before = state.legend()
    codes = state.codes().copy()
    for k in (6, 5, 6, 7):
        state.set_n_clusters(k)
    pd.testing.assert_frame_equal(state.legend(), before)
    assert (state.codes() == codes).all()
    # a merged region that a re-cut brings back gets its name back too
    state.merge("normal duct", "DCIS")
    state.set_n_clusters(7)
    pd.testing.assert_frame_equal(state.legend(), before)
    # a region given back, undone away and brought back again by a re-cut keeps its name
    state.set_n_clusters(6)
    state.undo()
    state.undo()
    state.set_n_clusters(7)
    pd.testing.assert_frame_equal(state.legend(), before)
    # and undo still walks back through every step
    while state.can_undo:
        state.undo()
    assert state.display_names()[:2] == ["cluster 0", "cluster 1"]


def test_a_different_region_does_not_take_a_remembered_name():
    """Only a region with nearly the same spots (Jaccard >= 0.5) gets a remembered name back."""
    from napari_senca.review.matching import RegionMemory

    memory = RegionMemory(10)
    memory.remember(np.array(["a"] * 6 + ["b"] * 4), ["b"], {"b": "DCIS"}, {"b": "#ff0000"})
    current = np.array(["a"] * 10)
    assert memory.recall(current, np.array(["x"] * 6 + ["y"] * 4)) == {"y": "b"}
    # J = 4/7 with "b", but 7/10 with the current "a": it stays a new region
    assert memory.recall(current, np.array(["x"] * 3 + ["y"] * 7)) == {}
    assert memory.recall(current, np.array(["x"] * 9 + ["y"] * 1)) == {}  # J = 1/4 with "b"


def test_recluster_can_drop_manual_assignments(state, adata):
    moved = np.flatnonzero(np.asarray(adata.obs[CLUSTER_KEY].astype(str)) == "0")[:3]
    state.assign(moved, "2")
    state.set_n_clusters(3, keep_manual=False)
    assert state.n_manual == 0
    assert (np.asarray(adata.obs[CLUSTER_KEY].astype(str))[moved] == "0").all()
    state.undo()  # undo brings the hand assignments back
    assert state.n_manual == 3


def test_manual_assignments_survive_h5ad(tmp_path, state, adata):
    from anndata import read_h5ad

    from napari_senca.review import MANUAL_KEY

    state.assign([0, 1], "2")
    adata.write_h5ad(tmp_path / "s.h5ad")
    back = ReviewState(read_h5ad(tmp_path / "s.h5ad"))
    assert back.n_manual == 2 and back.manual[[0, 1]].all()
    assert back.adata.obs[MANUAL_KEY].dtype == bool
    back.set_n_clusters(4)
    assert (np.asarray(back.adata.obs[CLUSTER_KEY].astype(str))[[0, 1]] == "2").all()


def test_clustering_k_is_not_the_region_count(state):
    state.assign([0, 1], None, new_name="DCIS")
    assert state.n_clusters == 4 and state.clustering_k == 3


def test_layer_changes_detect_and_restore(adata):
    from napari_senca.review.layers import describe_changes, layer_changes, restore_layer

    st = ReviewState(adata)
    data = np.vstack([st.coordinates(), [[1e6, 1e6], [-5.0, -5.0]]])
    added, missing = layer_changes(adata, data)
    assert added.tolist() == [adata.n_obs, adata.n_obs + 1] and missing.size == 0
    layer = FakeLayer(data, metadata=st.metadata())
    assert "2 point(s) added" in describe_changes(layer, adata)
    with pytest.raises(DataError, match="Restore spots"):
        ReviewState.from_layer(layer)
    layer.selected_data = {3}
    assert restore_layer(layer, adata) == (2, 0)
    assert describe_changes(layer, adata) is None and ReviewState.from_layer(layer) is st
    # deleted points are put back too
    layer.data = st.coordinates()[5:]
    assert layer_changes(adata, layer.data)[1].tolist() == [0, 1, 2, 3, 4]
    assert restore_layer(layer, adata) == (0, 5) and len(layer.data) == adata.n_obs


def test_palette_reads_on_he():
    from napari_senca.review.colours import H_AND_E, PALETTE, contrast_to_stain, value_rgba

    # every region colour is far (CIELAB Delta E) from haematoxylin purple and eosin pink
    assert contrast_to_stain(PALETTE).min() >= 40
    # the previous palette (tab10 + tab20 light) had lavender at 4.5
    assert contrast_to_stain(["#c5b0d5", "#9467bd", "#8c564b"]).min() < 20
    # the value colour map has no dark end that disappears in haematoxylin (viridis does)
    ramp = value_rgba(np.linspace(0, 1, 64))[:, :3]
    assert contrast_to_stain(ramp).min() >= 25
    import matplotlib

    assert contrast_to_stain(matplotlib.colormaps["viridis"](np.linspace(0, 1, 64))[:, :3]).min() < 15
    assert len(H_AND_E) >= 10


def test_palette_first_colours_survive_colour_blindness():
    from matplotlib.colors import to_rgb

    from napari_senca.review.colours import PALETTE, lab

    # Machado et al. (2009) full-severity deuteranopia and protanopia, on linear RGB
    sims = [np.array([[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413], [-0.011820, 0.042940, 0.968881]]),
            np.array([[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216], [-0.003882, -0.048116, 1.051998]])]  # fmt: skip
    rgb = np.array([to_rgb(c) for c in PALETTE[:6]])
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    for m in sims:
        s = np.clip(lin @ m.T, 0, 1)
        seen = np.where(s <= 0.0031308, 12.92 * s, 1.055 * s ** (1 / 2.4) - 0.055)
        d = np.linalg.norm(lab(seen)[:, None] - lab(seen)[None], axis=2)
        assert d[np.triu_indices(6, 1)].min() >= 20


def test_layer_kwargs_border_and_visibility(state):
    kw = state.layer_kwargs()
    assert kw["border_width_is_relative"] and 0.08 <= kw["border_width"] <= 0.25
    assert kw["border_color"] == "#ffffff" and kw["shown"].all()
    n1 = int((state.legend().set_index("cluster")["n_spots"])["1"])
    state.set_visible("1", False)
    assert not state.is_visible("1") and int((~state.shown_mask()).sum()) == n1
    assert state.layer_kwargs()["shown"].sum() == state.n_spots - n1
    assert not state.can_undo  # hiding is display, not an edit
    state.set_visible("1", True)
    assert state.shown_mask().all()


def test_spots_of(state, adata):
    idx = state.spots_of("1")
    assert (np.asarray(adata.obs[CLUSTER_KEY].astype(str))[idx] == "1").all()
    assert len(idx) == int((adata.obs[CLUSTER_KEY] == "1").sum())


def test_colour_by_numeric_obs_column(state, adata):
    conf = np.linspace(0.0, 1.0, adata.n_obs)
    adata.obs["senca_confidence"] = conf
    assert "senca_confidence" in state.numeric_columns() and CLUSTER_KEY not in state.numeric_columns()
    state.show_gene("senca_confidence")
    assert state.colour_by == "senca_confidence" and state.colour_label() == "senca_confidence"
    assert np.allclose(state.features()[EXPRESSION_KEY], conf)
    lo, hi = state.gene_limits()
    assert 0.0 <= lo < 0.05 and 0.95 < hi <= 1.0
    assert state.layer_kwargs()["face_colormap"]["name"] == "senca_values"
    # spots without a value (NaN) are grey, not transparent
    adata.obs["senca_confidence"] = np.where(np.arange(adata.n_obs) < 3, np.nan, conf)
    state.show_gene("senca_confidence")
    layer = FakeLayer(state.coordinates(), metadata=state.metadata())
    state.apply_to_layer(layer)
    assert np.allclose(np.asarray(layer.face_color)[:3], [0x9E / 255, 0x9E / 255, 0x9E / 255, 1.0])
    state.show_gene("marker0")
    assert state.colour_label() == "MARKER0 (log-norm.)"


def test_label_legend_before_a_run():
    from napari_senca.datasets import synthetic_section

    ad = synthetic_section(n_side=5, n_genes=40)
    st = ReviewState(ad)
    leg = st.label_legend()
    assert list(leg.columns) == ["label", "colour", "n_spots"]
    assert leg["n_spots"].sum() == ad.n_obs
    assert dict(zip(leg["label"], leg["colour"], strict=True)) == st.label_cycle()


def test_merge_suggestion_smallest_into_nearest(state, adata):
    small = state.assign([0, 1], None, new_name="tiny")
    a, b = state.merge_suggestion()
    assert a == small and b != small
    x = np.asarray(adata.obsm["X_senca"])
    lab = np.asarray(adata.obs[CLUSTER_KEY].astype(str))
    d = {c: np.linalg.norm(x[lab == c].mean(0) - x[lab == small].mean(0)) for c in state.clusters if c != small}
    assert b == min(d, key=d.get)


def test_merge_suggestion_ties_go_to_the_first_region_in_legend_order(state):
    first = state.assign([0], None, new_name="first")
    second = state.assign([1], None, new_name="second")
    sizes = dict(zip(state.legend()["cluster"], state.legend()["n_spots"], strict=True))
    assert sizes[first] == sizes[second] == 1
    expected = [c for c in state.clusters if c in (first, second)][0]
    assert state.merge_suggestion()[0] == expected
