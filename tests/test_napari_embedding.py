"""The Embedding view in a real napari viewer (pytest-qt, under Xvfb)."""

from __future__ import annotations

import numpy as np
import pytest

# triton must load before any OpenGL context exists (see test_napari_widgets.py)
import torch._dynamo  # noqa: F401

from napari_senca._qt import EmbeddingWidget, ReviewWidget, _common
from napari_senca.confidence import CONFIDENCE_KEY, silhouette_confidence
from napari_senca.embedding_view import NAN_COLOUR, confidence_colours, layout_key
from napari_senca.review import ReviewState
from napari_senca.section import CLUSTER_KEY, EMBED_KEY
from test_review import annotated_section  # tests/ is on sys.path

pytestmark = pytest.mark.qt


@pytest.fixture
def section(make_napari_viewer):
    """A viewer with an annotated section (no training) and an Embedding view docked."""
    viewer = make_napari_viewer()
    pts = _common.add_section(viewer, annotated_section(n_side=8, k=3), "s")
    w = EmbeddingWidget(viewer)
    viewer.window.add_dock_widget(w)
    return viewer, pts, w


class _Click:
    def __init__(self, x, y):
        self.xdata, self.ydata = x, y


def test_plot_is_the_pca_of_x_senca_in_region_colours(section, notes):
    viewer, pts, w = section
    adata = pts.metadata["adata"]
    assert w.xy is not None and w.xy.shape == (adata.n_obs, 2)
    assert layout_key("pca") in adata.obsm  # cached for the next time
    fc = np.asarray(w._scatter.get_facecolors())
    np.testing.assert_allclose(fc[:, :3], ReviewState.from_layer(pts).spot_colours()[:, :3], atol=1e-6)
    # the confidence column is shown on hover
    np.testing.assert_allclose(pts.features[CONFIDENCE_KEY], adata.obs[CONFIDENCE_KEY])
    assert not notes["error"]


def test_lasso_and_rectangle_in_the_plot_select_spots(section, notes):
    viewer, pts, w = section
    xy = w.xy
    cx = float(np.median(xy[:, 0]))
    lo, hi = xy.min(0) - 1, xy.max(0) + 1
    lasso = [(lo[0], lo[1]), (cx, lo[1]), (cx, hi[1]), (lo[0], hi[1])]  # the left half of the plot
    w._on_lasso(lasso)
    want = set(np.flatnonzero(xy[:, 0] < cx).tolist())
    assert set(pts.selected_data) == want and 0 < len(want) < len(xy)
    assert pts.mode == "select" and viewer.layers.selection.active is pts
    # the selection is highlighted back in the plot: selected opaque, the others faded
    alpha = np.asarray(w._scatter.get_facecolors())[:, 3]
    assert np.all(alpha[sorted(want)] == 1.0) and np.all(np.delete(alpha, sorted(want)) < 0.5)
    assert len(w._ring.get_offsets()) == len(want)
    # the rectangle (right button) selects the right half instead
    w._on_rectangle(_Click(cx, lo[1]), _Click(hi[0], hi[1]))
    assert set(pts.selected_data) == set(np.flatnonzero(xy[:, 0] >= cx).tolist())
    assert not notes["error"]


def test_layer_selection_highlights_plot_points(section):
    viewer, pts, w = section
    pts.selected_data = {0, 5, 7}
    alpha = np.asarray(w._scatter.get_facecolors())[:, 3]
    assert set(np.flatnonzero(alpha == 1.0)) == {0, 5, 7}
    np.testing.assert_allclose(np.asarray(w._ring.get_offsets()), w.xy[[0, 5, 7]])
    pts.selected_data = set()
    assert np.all(np.asarray(w._scatter.get_facecolors())[:, 3] == 1.0)
    assert len(w._ring.get_offsets()) == 0


def test_select_uncertain_selects_exactly_the_low_confidence_spots(section, notes):
    viewer, pts, w = section
    adata = pts.metadata["adata"]
    conf = silhouette_confidence(adata.obsm[EMBED_KEY], adata.obs[CLUSTER_KEY].astype(str))
    t = float(np.quantile(conf, 0.2))
    w.threshold.value = round(t, 2)
    got = w.select_uncertain()
    want = set(np.flatnonzero(conf < w.threshold.value).tolist())
    assert set(got) == want == set(pts.selected_data) and want
    assert any(f"{len(want)} of {adata.n_obs} spots" in m for m in notes["info"])


def test_colour_by_confidence_and_back(section, notes):
    viewer, pts, w = section
    adata = pts.metadata["adata"]
    regions = np.asarray(pts.face_color).copy()
    w.by_confidence.value = True  # the check box calls colour_by_confidence
    want = confidence_colours(adata.obs[CONFIDENCE_KEY].to_numpy())
    np.testing.assert_allclose(np.asarray(pts.face_color), want, atol=1e-2)
    assert not np.allclose(np.asarray(pts.face_color), regions, atol=1e-2)
    assert w.cbar_canvas.isVisibleTo(w)
    np.testing.assert_allclose(np.asarray(w._scatter.get_facecolors())[:, :3], want[:, :3], atol=1e-6)
    w.by_confidence.value = False
    np.testing.assert_allclose(np.asarray(pts.face_color), regions, atol=1e-2)
    assert not w.cbar_canvas.isVisibleTo(w)
    assert not notes["error"]


def _synced(qtbot, w):
    qtbot.waitUntil(lambda: not w._sync_pending, timeout=5_000)


def test_review_edits_recompute_confidence(section, notes, qtbot):
    """Assigning spots in the Review widget: NaN confidence (grey) for them, column kept."""
    viewer, pts, w = section
    review = ReviewWidget(viewer)
    viewer.window.add_dock_widget(review)
    adata = pts.metadata["adata"]
    w.by_confidence.value = True
    moved = np.flatnonzero(adata.obs[CLUSTER_KEY].astype(str).to_numpy() == "1")[:3]
    pts.selected_data = set(moved.tolist())
    review.assign_selected("0")
    _synced(qtbot, w)
    assert np.isnan(pts.features[CONFIDENCE_KEY].to_numpy()[moved]).all()
    fc = np.asarray(pts.face_color)
    np.testing.assert_allclose(fc[moved], np.tile(NAN_COLOUR, (len(moved), 1)), atol=1e-2)
    assert w.by_confidence.value  # an edit keeps the confidence colours
    assert moved[0] not in w.select_uncertain(1.01)
    # Colour by region in the Review widget wins over the confidence colours
    review.colour_by_clusters()
    _synced(qtbot, w)
    assert not w.by_confidence.value and not w.cbar_canvas.isVisibleTo(w)
    # a new cluster count: confidence recomputed for the new cut, plot recoloured
    # (hand assignments dropped here; kept, their spots would stay NaN)
    review.set_n_clusters(5, keep_manual=False)
    _synced(qtbot, w)
    labels = adata.obs[CLUSTER_KEY].astype(str)
    np.testing.assert_allclose(pts.features[CONFIDENCE_KEY], silhouette_confidence(adata.obsm[EMBED_KEY], labels))
    fc = np.asarray(w._scatter.get_facecolors())
    np.testing.assert_allclose(fc[:, :3], ReviewState.from_layer(pts).spot_colours()[:, :3], atol=1e-6)
    assert not notes["error"]


def test_umap_runs_in_a_worker_and_is_cached(section, qtbot, monkeypatch):
    viewer, pts, w = section
    from napari_senca import embedding_view as embedding

    calls = []

    def fake(z, method="pca", seed=0):
        calls.append(method)
        return np.asarray(z)[:, :2] * 10.0

    monkeypatch.setattr(embedding, "compute_layout_isolated", fake)
    w.method.value = "umap"
    assert w.worker is not None  # never computed on the GUI thread
    qtbot.waitUntil(lambda: w.worker is None, timeout=30_000)
    adata = pts.metadata["adata"]
    np.testing.assert_allclose(w.xy, np.asarray(adata.obsm[EMBED_KEY])[:, :2] * 10.0, rtol=1e-5)
    w.method.value = "pca"
    w.method.value = "umap"
    assert w.worker is None and calls == ["umap"]  # taken from obsm["X_senca_umap"]


def test_umap_failure_falls_back_to_pca(section, qtbot, monkeypatch, notes):
    viewer, pts, w = section
    from napari_senca import embedding_view as embedding
    from napari_senca.errors import ConfigError

    def broken(z, method="pca", seed=0):
        raise ConfigError("UMAP needs the umap-learn package")

    monkeypatch.setattr(embedding, "compute_layout_isolated", broken)
    w.method.value = "umap"
    qtbot.waitUntil(lambda: w.worker is None, timeout=30_000)
    assert "umap-learn" in notes["error"][-1]
    assert w.method.value == "pca" and w.xy is not None and len(notes["error"]) == 1


def test_no_section_and_errors(make_napari_viewer, notes):
    viewer = make_napari_viewer()
    w = EmbeddingWidget(viewer)
    assert w.xy is None
    assert w.select_uncertain() is None and "no section loaded" in notes["error"][-1]
    from napari_senca.datasets import synthetic_section

    pts = _common.add_section(viewer, synthetic_section(n_side=4, n_genes=10), "raw")
    assert w.layer.value is pts and w.xy is None  # nothing to plot before a run
    w.colour_by_confidence(True)
    assert "run the model first" in notes["error"][-1] and not w.by_confidence.value


def test_in_napari_menus(make_napari_viewer):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-senca", "Embedding view")
    assert isinstance(widget, EmbeddingWidget)


def test_a_new_run_on_the_layer_redraws_the_plot(section, qtbot):
    """The Run widget puts a new annotated copy on the same layer (ReviewState.fresh + apply)."""
    viewer, pts, w = section
    old_xy = w.xy.copy()
    new = annotated_section(n_side=8, k=4, seed=3)
    ReviewState.fresh(new).apply_to_layer(pts)
    _synced(qtbot, w)
    assert pts.metadata["adata"] is new
    assert not np.allclose(w.xy, old_xy)
    np.testing.assert_allclose(pts.features[CONFIDENCE_KEY], new.obs[CONFIDENCE_KEY])
    pts.selected_data = {1, 2}  # still linked to the new state
    assert set(np.flatnonzero(np.asarray(w._scatter.get_facecolors())[:, 3] == 1.0)) == {1, 2}


def _drag(w, path, button):
    """Press, move along ``path`` (data coordinates) and release on the plot canvas."""
    from matplotlib.backend_bases import MouseEvent

    w.canvas.draw()
    px = w.ax.transData.transform(np.asarray(path, dtype=float))
    MouseEvent("button_press_event", w.canvas, *px[0], button=button)._process()
    for p in px[1:]:
        MouseEvent("motion_notify_event", w.canvas, *p, button=button)._process()
    MouseEvent("button_release_event", w.canvas, *px[-1], button=button)._process()


def test_mouse_drags_on_the_canvas(section, notes):
    """The real matplotlib selectors: left drag = lasso, right drag = rectangle."""
    viewer, pts, w = section
    xy = w.xy
    (x0, x1), (y0, y1) = w.ax.get_xlim(), w.ax.get_ylim()  # the drags stay inside the axes
    lo = np.array([x0, y0]) + 0.01 * np.array([x1 - x0, y1 - y0])
    hi = np.array([x1, y1]) - 0.01 * np.array([x1 - x0, y1 - y0])
    mid = (xy.min(0) + xy.max(0)) / 2
    lasso = [(lo[0], lo[1]), (mid[0], lo[1]), (mid[0], hi[1]), (lo[0], hi[1]), (lo[0], lo[1])]
    _drag(w, lasso, button=1)
    left = set(np.flatnonzero(xy[:, 0] < mid[0]).tolist())
    assert left and set(pts.selected_data) == left
    _drag(w, [(mid[0], lo[1]), (hi[0], mid[1]), (hi[0], hi[1])], button=3)
    assert set(pts.selected_data) == set(np.flatnonzero(xy[:, 0] >= mid[0]).tolist())
    assert not notes["error"]
