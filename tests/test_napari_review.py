"""The Review dock in a real napari viewer (issue 8: keep the review, legend, colours, layout)."""

from __future__ import annotations

import numpy as np
import pytest
import torch._dynamo  # noqa: F401  (load before any OpenGL context, see test_napari_widgets)

from napari_senca._qt import ReviewWidget, _common, _review, _review_actions
from napari_senca._qt._legend import MAX_ROWS, NAME, SHOW
from napari_senca.review import ReviewState
from napari_senca.section import CLUSTER_KEY
from test_review import annotated_section  # tests/ is on sys.path

pytestmark = pytest.mark.qt


@pytest.fixture
def docked(qtbot, viewer):
    """A Review widget docked in the viewer and shown, with an annotated section (3 regions)."""
    review = ReviewWidget(viewer)
    viewer.window.add_dock_widget(review, name="Review regions", area="right")
    pts = _common.add_section(viewer, annotated_section(n_side=10), "annotated")
    viewer.window._qt_window.resize(1200, 800)
    viewer.window._qt_window.show()
    qtbot.waitUntil(review.isVisible, timeout=5000)
    return review, pts


def _cluster_of(pts) -> np.ndarray:
    return np.asarray(pts.features[CLUSTER_KEY].astype(str))


def test_spin_box_is_k_and_review_survives_recluster(docked, notes, monkeypatch):
    review, pts = docked
    st = ReviewState.from_layer(pts)
    assert review.n_clusters.value == 3
    pts.selected_data = {0, 1, 2}
    review.assign_selected(None, "DCIS")
    # a new region is not a new clustering: the spin box stays at k
    assert review.legend.rowCount() == 4 and review.n_clusters.value == 3
    assert "4 regions" in review.hint.value and "3 assigned by hand" in review.hint.value
    review.rename("0", "tumour")
    # with hand assignments, changing k asks first; Cancel changes nothing
    asked = []
    monkeypatch.setattr(_review, "ask_keep_manual", lambda parent, n, k: asked.append((n, k)))
    review.n_clusters.value = 5
    assert asked == [(3, 5)] and st.clustering_k == 3 and review.n_clusters.value == 3
    # Keep: names and hand assignments carried to the new cut
    monkeypatch.setattr(_review, "ask_keep_manual", lambda parent, n, k: "keep")
    review.n_clusters.value = 5
    assert st.clustering_k == 5 and review.n_clusters.value == 5
    names = [review.legend.item(r, NAME).text() for r in range(review.legend.rowCount())]
    assert "tumour" in names and "DCIS" in names
    assert set(pts.features["senca_region"].iloc[:3]) == {"DCIS"}
    # Drop: hand assignments go, names stay
    monkeypatch.setattr(_review, "ask_keep_manual", lambda parent, n, k: "drop")
    review.n_clusters.value = 4
    assert st.n_manual == 0 and "DCIS" not in st.display_names() and "tumour" in st.display_names()
    assert not notes["error"], notes["error"]


def test_spin_box_applies_k_on_enter_not_per_keystroke(docked, notes):
    """Typing 25 in the cluster count cuts once, into 25 regions, when Enter is pressed (not into 2 first)."""
    from qtpy.QtCore import Qt
    from qtpy.QtTest import QTest

    review, pts = docked
    st = ReviewState.from_layer(pts)
    edit = review.n_clusters.native.lineEdit()
    edit.setFocus()
    edit.selectAll()
    QTest.keyClicks(edit, "25")
    assert st.clustering_k == 3 and not st.log  # nothing cut while typing
    QTest.keyClick(edit, Qt.Key.Key_Return)
    assert st.clustering_k == 25 and st.log == ["re-cluster into 25 regions"]
    QTest.keyClick(edit, Qt.Key.Key_Up)  # an arrow step applies at once
    assert st.clustering_k == 26
    assert not notes["error"], notes["error"]


def test_legend_click_selects_and_checkbox_hides(docked, notes):
    review, pts = docked
    st = ReviewState.from_layer(pts)
    row = 1
    cid = review.legend.key(row)
    review.legend.cellClicked.emit(row, NAME)
    assert pts.selected_data == set(np.flatnonzero(_cluster_of(pts) == cid).tolist())
    assert review.viewer.layers.selection.active is pts
    colour = np.array([int(st.colour_of(cid)[i : i + 2], 16) for i in (1, 3, 5)])

    def drawn() -> int:  # canvas pixels of the region's colour
        review.viewer.reset_view()
        img = review.viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)
        return int((np.abs(img - colour).max(-1) < 40).sum())

    pts.selected_data = set()
    assert drawn() > 50
    review.legend.item(row, SHOW).setCheckState(_review.Qt.CheckState.Unchecked)
    hidden = _cluster_of(pts) == cid
    assert not pts.shown[hidden].any() and pts.shown[~hidden].all()
    # really gone from the canvas (napari 0.9 ignores `shown` for 2-D points)
    assert drawn() < 5
    assert np.allclose(pts.face_color[hidden, 3], 0) and np.allclose(pts.border_color[hidden, 3], 0)
    assert not st.can_undo  # hiding is not an edit
    # the lasso button leaves hidden spots out
    lo, hi = pts.data.min(0) - 1, pts.data.max(0) + 1
    review.viewer.add_shapes([np.array([[lo[0], lo[1]], [lo[0], hi[1]], [hi[0], hi[1]], [hi[0], lo[1]]])],
                             shape_type="polygon", name="all")
    got = review.select_in_shapes()
    assert set(got) == set(np.flatnonzero(~hidden).tolist())
    review.viewer.layers.selection.active = pts
    review.legend.item(row, SHOW).setCheckState(_review.Qt.CheckState.Checked)
    pts.selected_data = set()
    assert pts.shown.all() and drawn() > 50
    # a recolour reaches the canvas (the colour writes of an edit are drawn in one redraw at the end)
    before = drawn()
    review.recolour(cid, "#00ff7f")
    colour = np.array([0x00, 0xFF, 0x7F])
    assert drawn() >= before * 0.8 and np.allclose(pts.face_color[hidden][:, :3], colour / 255, atol=1e-3)
    assert not notes["error"], notes["error"]


def test_colour_bar_for_gene_and_numeric_column(docked, notes):
    review, pts = docked
    st = ReviewState.from_layer(pts)
    assert not review.colour_bar.isVisible()
    review.colour_by_gene("marker0")
    assert review.colour_bar.isVisible()
    lo, hi = st.gene_limits()
    assert "MARKER0" in review.colour_bar.title.text()
    assert review.colour_bar.lo_label.text() == f"≤ {lo:.3g}" and review.colour_bar.hi_label.text() == f"≥ {hi:.3g}"
    assert review.legend.isColumnHidden(1)  # no region swatches while coloured by a gene
    # the colour map has no dark end: the lowest value is pale yellow, not viridis' dark purple
    low = np.argmin(pts.features["expression"].to_numpy())
    assert pts.face_color[low][:3].min() > 0.7
    # a numeric spot column goes the same way
    st.adata.obs["senca_confidence"] = np.linspace(0, 1, st.n_spots)
    review.colour_by_gene("senca_confidence")
    assert "senca_confidence" in review.colour_bar.title.text()
    assert np.allclose(pts.features["expression"], np.linspace(0, 1, st.n_spots))
    review.colour_by_clusters()
    assert not review.colour_bar.isVisible() and not review.legend.isColumnHidden(1)
    assert not notes["error"], notes["error"]


def test_label_legend_before_a_run(qtbot, viewer, notes):
    from napari_senca.datasets import synthetic_section

    review = ReviewWidget(viewer)
    ad = synthetic_section(n_side=5, n_genes=40)
    pts = _common.add_section(viewer, ad, "plain")
    assert review.legend.mode == "labels" and "Pathologist" in review.legend_title.text()
    st = ReviewState.from_layer(pts)
    labels = st.label_legend()
    assert review.legend.rowCount() == len(labels) > 1
    assert [review.legend.item(r, NAME).text() for r in range(len(labels))] == labels["label"].tolist()
    review.legend.cellClicked.emit(0, NAME)
    assert pts.selected_data == set(st.spots_with_label(labels["label"][0]).tolist())
    assert not notes["error"], notes["error"]


def test_dock_layout_and_merge_defaults(docked, qtbot, notes):
    review, pts = docked
    st = ReviewState.from_layer(pts)
    review.set_n_clusters(MAX_ROWS)
    qtbot.wait(50)
    # wide enough: no horizontal scroll bar, counts not clipped
    assert review.width() >= _review.MIN_WIDTH
    assert not review.scroll.horizontalScrollBar().isVisible()
    hh = review.legend.horizontalHeader()
    assert hh.sectionViewportPosition(3) + hh.sectionSize(3) <= review.legend.viewport().width()
    # the legend shows every region up to MAX_ROWS without scrolling
    assert review.legend.rowCount() == MAX_ROWS and not review.legend.verticalScrollBar().isVisible()
    assert review.hint.native.wordWrap() and review.marker_status.native.wordWrap()
    # status lines use the dock's width (a magicgui Label alone is Fixed at its text's width)
    assert review.hint.native.width() >= review.legend.width() - 20
    # dropdowns in legend order; merge: smallest region into its closest one
    legend_ids = [review.legend.key(r) for r in range(review.legend.rowCount())]
    assert [v for v in review.merge_a.choices] == legend_ids
    sizes = st.legend().set_index("cluster")["n_spots"]
    assert review.merge_a.value == st.merge_suggestion()[0] and sizes[review.merge_a.value] == sizes.min()
    # the largest region can be the one merged away by choosing it once
    big = str(sizes.idxmax())
    review.merge_a.value = big
    review.merge_btn.native.click()
    assert big not in st.clusters
    assert not notes["error"], notes["error"]


def test_classify_button_splits_what_the_clustering_merged(docked, notes, monkeypatch):
    """Assign three spots of each region by hand, press the button, drop the clustered regions: the rest follow;
    Undo takes it back. Regions without spots by hand: the button asks, keep / drop / cancel."""
    review, pts = docked
    st = ReviewState.from_layer(pts)
    truth = st.adata.obs["label"].astype(str).to_numpy()
    review.merge("1", "2")
    # before any spot is assigned by hand the button says what to do, in one line, and changes nothing
    monkeypatch.setattr(_review, "ask_keep_regions", lambda *a: pytest.fail("nothing by hand: nothing to ask"))
    review.classify_btn.native.click()
    assert notes["error"] and "at least two regions" in notes["error"][-1]
    notes["error"].clear()
    for region in np.unique(truth):
        pts.selected_data = set(np.flatnonzero(truth == region)[:3].tolist())
        review.assign_selected(None, f"hand {region}")
    review.rename("0", "stroma")
    asked = []
    answers = iter(["drop", None, "keep"])
    monkeypatch.setattr(_review, "ask_keep_regions",
                        lambda parent, names, named: asked.append((names, named)) or next(answers))
    review.classify_btn.native.click()  # drop
    assert asked[0] == (["stroma", "cluster 1"], ["stroma"])  # the clustered regions; the one the user named
    assert (_cluster_of(pts) == st.adata.obs[CLUSTER_KEY].astype(str).to_numpy()).all()  # the layer follows
    assert set(st.display_names()) == {f"hand {r}" for r in np.unique(truth)}
    assert review.legend.rowCount() == 3 and any("classified" in m for m in notes["info"])
    review.classify_btn.native.click()  # every region has spots by hand now: nothing to ask, nothing to change
    assert len(asked) == 1 and notes["info"][-1].startswith("nothing to change")
    review.undo_btn.native.click()
    assert review.legend.rowCount() == 5
    review.classify_btn.native.click()  # cancel: nothing changes
    assert len(asked) == 2 and review.legend.rowCount() == 5
    review.classify_btn.native.click()  # keep: the clustered regions compete with their own spots
    assert "regions' own spots" in notes["info"][-1] and "stroma" in st.display_names()
    assert not notes["error"], notes["error"]


def test_classify_button_with_one_region_by_hand_keeps_the_others(docked, notes, monkeypatch):
    """The corrective reviewer: three spots of the region the clustering merged away, in a new region; the button
    asks nothing (dropping the others would leave one region) and keeps them."""
    review, pts = docked
    st = ReviewState.from_layer(pts)
    truth = st.adata.obs["label"].astype(str).to_numpy()
    review.merge("1", "2")
    monkeypatch.setattr(_review, "ask_keep_regions", lambda *a: pytest.fail("one region by hand: nothing to ask"))
    pts.selected_data = set(np.flatnonzero(truth == "region 1")[:3].tolist())
    review.assign_selected(None, "split off")
    review.classify_btn.native.click()
    assert review.legend.rowCount() == 3 and "split off" in st.display_names()
    assert (st.adata.obs[CLUSTER_KEY].astype(str).to_numpy()[truth == "region 1"]
            == st.adata.obs[CLUSTER_KEY].astype(str).to_numpy()[np.flatnonzero(truth == "region 1")[0]]).all()
    assert not notes["error"], notes["error"]


def test_stray_point_does_not_lock_the_widget(docked, qtbot, notes):
    review, pts = docked
    n = len(pts.data)
    # 'add' mode is refused on the spots layer
    pts.mode = "add"
    qtbot.waitUntil(lambda: str(pts.mode) == "select", timeout=2000)
    assert any("cannot be added" in w for w in notes["warning"])
    # a point added anyway (e.g. by a script): the widget says so and offers to restore
    pts.add(np.array([[1e5, 1e5]]))
    qtbot.waitUntil(lambda: "added" in review.hint.value, timeout=2000)
    assert "load a section first" not in review.hint.value and review.restore_btn.visible
    assert review.restore_spots() == (1, 0)
    assert len(pts.data) == n and not review.restore_btn.visible
    assert review.legend.rowCount() == 3 and review.assign_btn.enabled
    pts.selected_data = {0}
    assert review.assign_selected("1") == "1"


def test_selection_ring_is_thick_and_magenta(docked, notes):
    from napari_senca.review.colours import BORDER_WIDTH, SELECT_WIDTH

    review, pts = docked
    review.select_region("1")
    sel = np.asarray(sorted(pts.selected_data))
    rest = np.setdiff1d(np.arange(len(pts.data)), sel)
    assert np.allclose(pts.border_width[sel], SELECT_WIDTH) and np.allclose(pts.border_width[rest], BORDER_WIDTH)
    assert np.allclose(pts.border_color[sel], [1, 0, 1, 1]) and np.allclose(pts.border_color[rest], 1)
    assert pts.border_width_is_relative
    pts.selected_data = set()
    assert np.allclose(pts.border_width, BORDER_WIDTH)


def test_large_sections_recluster_in_a_worker(docked, qtbot, notes, monkeypatch):
    """k-means for a new count runs off the GUI thread; edits made meanwhile stay; a stale result is dropped."""
    import threading

    from sklearn.metrics import adjusted_rand_score

    import napari_senca.cluster as cluster_mod
    from napari_senca.cluster import cluster_embedding

    review, pts = docked
    st = ReviewState.from_layer(pts)
    del st.adata.uns["senca"]["linkage"]  # a k-means clustering, as above 10,000 spots
    monkeypatch.setattr(_review_actions, "RECLUSTER_IN_WORKER", 10)
    gate, real = threading.Event(), cluster_mod.recluster_labels
    monkeypatch.setattr(cluster_mod, "recluster_labels", lambda *a: (gate.wait(30), real(*a))[1])
    review.n_clusters.value = 4
    assert review.recluster_worker is not None and not review.n_clusters.enabled
    assert st.clustering_k == 3 and "re-clustering 100 spots into 4 regions" in review.hint.value
    review.rename("0", "tumour")  # the review goes on meanwhile
    assert review.set_n_clusters(5) is None and "still re-clustering" in notes["error"][-1]
    gate.set()
    qtbot.waitUntil(lambda: review.recluster_worker is None, timeout=30_000)
    assert st.clustering_k == 4 and review.n_clusters.value == 4 and review.n_clusters.enabled
    emb = st.adata.obsm["X_senca"]
    expected = cluster_embedding(emb, 4, "kmeans", int(st.adata.uns["senca"]["config"].get("seed", 0)))[0]
    assert adjusted_rand_score(expected, st.adata.obs[CLUSTER_KEY].astype(str)) == 1.0
    assert "tumour" in st.display_names()
    # a result for an embedding that was replaced meanwhile (a new run) is dropped
    gate.clear()
    review.n_clusters.value = 6
    st.adata.obsm["X_senca"] = emb.copy()
    gate.set()
    qtbot.waitUntil(lambda: review.recluster_worker is None, timeout=30_000)
    assert st.clustering_k == 4 and "dropped: the section changed" in notes["info"][-1]
    assert review.n_clusters.value == 4


def test_one_redraw_draws_once_and_also_after_an_error():
    from napari.layers import Points

    from napari_senca.review.layers import one_redraw

    layer = Points(np.random.default_rng(0).uniform(0, 10, (20, 2)))
    drawn = []
    layer.events.set_data.connect(lambda e: drawn.append(1))
    with one_redraw(layer):
        layer.face_color = "red"
        layer.border_color = "blue"
        layer.border_width = 0.2
    assert len(drawn) == 1 and np.allclose(layer.face_color[:, :3], [1, 0, 0])
    with one_redraw(layer):  # nothing written: no redraw
        pass
    assert len(drawn) == 1
    with pytest.raises(RuntimeError), one_redraw(layer):
        layer.face_color = "green"
        raise RuntimeError("half-way")
    assert len(drawn) == 2  # what was written before the error is drawn


@pytest.mark.parametrize(("button", "expect"), [("Keep", "keep"), ("Drop", "drop"), ("Cancel", None)])
def test_ask_keep_regions_says_what_each_answer_does(qtbot, button, expect):
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    seen = []

    def click() -> None:
        box = QApplication.activeModalWidget()
        if box is None:
            QTimer.singleShot(20, click)
            return
        seen.append((box.text(), box.informativeText()))
        next(b for b in box.buttons() if b.text().replace("&", "") == button).click()

    QTimer.singleShot(0, click)
    assert _review.ask_keep_regions(None, ["stroma", "cluster 1"], ["stroma"]) == expect
    text, more = seen[0]
    assert "2 regions ('stroma', 'cluster 1') have no spot assigned by hand" in text
    assert "Drop empties 'stroma', which you named" in more


def test_name_regions_from_annotated_sections(docked, qtbot, notes, tmp_path, monkeypatch):
    """Pick annotated .h5ad sections; the work runs in a worker; the merged regions come back with their names."""
    from napari_senca.datasets import synthetic_section

    review, pts = docked
    st = ReviewState.from_layer(pts)
    truth = st.adata.obs["label"].astype(str).to_numpy()
    review.merge("1", "2")
    paths = []
    for s in (1, 2):
        paths.append(str(tmp_path / f"ref{s}.h5ad"))
        synthetic_section(n_side=10, n_genes=60, n_regions=3, with_image=False, seed=s).write_h5ad(paths[-1])
    monkeypatch.setattr(_review, "ask_reference_paths", lambda parent: [])
    review.reference_btn.native.click()  # cancelled: nothing happens
    assert review.reference_worker is None and review.legend.rowCount() == 2
    monkeypatch.setattr(_review, "ask_reference_paths", lambda parent: paths)
    review.recluster_worker = object()  # a re-cluster in flight: naming waits for it
    review.reference_btn.native.click()
    assert review.reference_worker is None and "still re-clustering" in notes["error"][-1]
    review.recluster_worker = None
    notes["error"].clear()
    review.reference_btn.native.click()
    assert review.reference_worker is not None and not review.reference_btn.enabled
    assert review.set_n_clusters(4) is None and "still naming" in notes["error"][-1]  # and the other way round
    notes["error"].clear()
    qtbot.waitUntil(lambda: review.reference_worker is None, timeout=60_000)
    assert review.reference_btn.enabled and review.legend.rowCount() == 3
    assert sorted(st.display_names()) == ["region 0", "region 1", "region 2"]
    assert (np.asarray(pts.features["senca_region"].astype(str)) == truth).mean() > 0.8  # the layer follows
    assert notes["info"][-1].startswith("named 6 clusters") and "one annotated section" not in notes["info"][-1]
    review.undo_btn.native.click()
    assert review.legend.rowCount() == 2
    bare = synthetic_section(n_side=6, n_genes=60, with_image=False, seed=3)
    del bare.obs["label"]
    bare.write_h5ad(tmp_path / "bare.h5ad")
    review.name_from_reference([paths[0], str(tmp_path / "bare.h5ad")])
    qtbot.waitUntil(lambda: review.reference_worker is None, timeout=60_000)
    assert "bare.h5ad: no region names" in notes["error"][-1] and review.legend.rowCount() == 2
    assert review.reference_btn.enabled
    notes["error"].clear()
    review.name_from_reference(paths[:1])
    qtbot.waitUntil(lambda: review.reference_worker is None, timeout=60_000)
    assert not notes["error"] and "one annotated section" in notes["info"][-1]  # one reference: named, and warned
