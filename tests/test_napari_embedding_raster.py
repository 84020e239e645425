"""The Embedding view linked to a Visium HD raster section (pytest-qt, under Xvfb)."""

from __future__ import annotations

import numpy as np
import pytest

# triton must load before any OpenGL context exists (see test_napari_widgets.py)
import torch._dynamo  # noqa: F401
from matplotlib.path import Path

from napari_senca import embedding_view as emb
from napari_senca._qt import EmbeddingWidget, ReviewWidget, _common
from napari_senca._qt._review import NEW_REGION
from napari_senca.confidence import CONFIDENCE_KEY, record_model_call
from napari_senca.review import ReviewState
from napari_senca.review import raster as _raster
from napari_senca.section import CLUSTER_KEY, EMBED_KEY
from test_review_raster import grid_section  # tests/ is on sys.path

pytestmark = pytest.mark.qt


def hd_section(seed: int = 0):
    """The 30 x 40 square-grid section of the raster tests with a SENCA-like embedding and confidence."""
    ad = grid_section(seed=seed)
    rng = np.random.default_rng(seed)
    codes = ad.obs[CLUSTER_KEY].cat.codes.to_numpy()
    ad.obsm[EMBED_KEY] = (np.eye(4)[codes] * 2 + rng.normal(0, 0.6, size=(ad.n_obs, 4))).astype(np.float32)
    record_model_call(ad)
    return ad


@pytest.fixture
def hd(viewer, monkeypatch, notes):
    """Review and Embedding widgets on a section drawn as a raster (threshold lowered to 500 bins)."""
    monkeypatch.setattr(_raster, "RASTER_MIN_SPOTS", 500)
    review = ReviewWidget(viewer)
    viewer.window.add_dock_widget(review, name="Review regions", area="right")
    w = EmbeddingWidget(viewer)
    viewer.window.add_dock_widget(w, name="Embedding view", area="right")
    layer = _common.add_section(viewer, hd_section(), "hd")
    assert type(layer).__name__ == "Labels" and w.layer.value is layer
    return review, w, layer


def _values(layer) -> np.ndarray:
    g = layer.metadata[_raster.GRID_KEY]
    return np.asarray(layer.data)[g.rows, g.cols]


def _synced(qtbot, w):
    qtbot.waitUntil(lambda: not w._sync_pending, timeout=5_000)


def _left_half(xy):
    x = np.sort(xy[:, 0])
    cx = float(x[len(x) // 2 - 1] + x[len(x) // 2]) / 2  # between two points: none on the edge
    lo, hi = xy.min(0) - 1, xy.max(0) + 1
    return [(lo[0], lo[1]), (cx, lo[1] + 0.3), (cx, hi[1]), (lo[0] + 0.2, hi[1])]


def test_plot_lasso_selects_the_bins_and_the_review_assigns_and_undoes_them(hd, viewer, qtbot, notes):
    review, w, layer = hd
    adata = layer.metadata["adata"]
    xy = w.xy
    np.testing.assert_allclose(xy, emb.layout_2d(adata, "pca"))
    lasso = _left_half(xy)
    w._on_lasso(lasso)
    want = np.flatnonzero(Path(np.asarray(lasso)).contains_points(xy))
    assert 0 < want.size < adata.n_obs
    np.testing.assert_array_equal(_raster.selected_bins(layer), want)  # the review's raster selection
    np.testing.assert_array_equal(review.selected(), want)
    outline = layer.metadata[_raster.SELECTION_LAYER_KEY]  # visible on the canvas, in magenta
    assert outline in viewer.layers and outline.visible
    g = layer.metadata[_raster.GRID_KEY]
    ring = np.flatnonzero(np.asarray(outline.data)[g.rows, g.cols])
    assert ring.size and set(ring) <= set(want)
    alpha = np.asarray(w._scatter.get_facecolors())[:, 3]  # and highlighted back in the plot
    assert np.all(alpha[want] == 1.0) and np.all(np.delete(alpha, want) < 0.5)

    before, obs_before = _values(layer).copy(), adata.obs[CLUSTER_KEY].astype(str).to_numpy().copy()
    cid = review.assign_selected(NEW_REGION, "from the plot")
    assert (_values(layer)[want] == int(cid) + 1).all()
    assert (adata.obs[CLUSTER_KEY].iloc[want] == cid).all()
    unchanged = np.setdiff1d(np.arange(adata.n_obs), want)
    np.testing.assert_array_equal(_values(layer)[unchanged], before[unchanged])
    _synced(qtbot, w)  # the plot follows the edit: the new region's colour
    fc = np.asarray(w._scatter.get_facecolors())
    np.testing.assert_allclose(fc[:, :3], emb.region_colours(ReviewState.from_layer(layer))[:, :3], atol=1e-6)
    review.undo()
    np.testing.assert_array_equal(_values(layer), before)
    np.testing.assert_array_equal(adata.obs[CLUSTER_KEY].astype(str).to_numpy(), obs_before)
    assert not notes["error"]


def test_shift_adds_and_rectangle_replaces_the_raster_selection(hd):
    review, w, layer = hd
    xy = w.xy
    a = w.select_in_plot(w.points.in_rectangle(xy.min(0) - 1, (np.median(xy[:, 0]), xy.max(0)[1] + 1)))
    b = w.select_in_plot([0, 1, 2], add=True)
    np.testing.assert_array_equal(b, np.union1d(a, [0, 1, 2]))
    np.testing.assert_array_equal(_raster.selected_bins(layer), b)
    assert w.select_in_plot([5]) == [5]


def test_raster_selection_is_highlighted_in_the_plot(hd, viewer):
    review, w, layer = hd
    region = review.select_region("2")  # a legend click selects the region's bins on the raster
    assert region
    alpha = np.asarray(w._scatter.get_facecolors())[:, 3]
    assert set(np.flatnonzero(alpha == 1.0)) == set(region)
    np.testing.assert_allclose(np.asarray(w._ring.get_offsets()), w.xy[region])
    box = np.array([[485.0, 690.0], [485.0, 795.0], [555.0, 795.0], [555.0, 690.0]])
    shapes = viewer.add_shapes([box], shape_type="rectangle")
    inside = review.select_in_shapes(shapes)  # a shape drawn on the H&E
    alpha = np.asarray(w._scatter.get_facecolors())[:, 3]
    assert set(np.flatnonzero(alpha == 1.0)) == set(inside) and 5 < len(inside) < len(region)
    review.select([])
    assert np.all(np.asarray(w._scatter.get_facecolors())[:, 3] == 1.0) and len(w._ring.get_offsets()) == 0


def test_confidence_colours_and_uncertain_bins_on_the_raster(hd, notes):
    review, w, layer = hd
    adata = layer.metadata["adata"]
    cmap_regions = dict(layer.metadata[_raster.COLORMAP_KEY])
    w.by_confidence.value = True
    values = layer.metadata[_raster.VALUE_LAYER_KEY]
    assert values.visible
    g = layer.metadata[_raster.GRID_KEY]
    want = np.round(emb.confidence_colours(adata.obs[CONFIDENCE_KEY].to_numpy()) * 255)
    np.testing.assert_array_equal(np.asarray(values.data)[g.rows, g.cols], want)
    assert all(c == "#00000000" for c in layer.metadata[_raster.COLORMAP_KEY].values())  # labels transparent
    np.testing.assert_allclose(np.asarray(w._scatter.get_facecolors())[:, :3], want[:, :3] / 255, atol=1e-2)
    conf = adata.obs[CONFIDENCE_KEY].to_numpy()
    t = float(np.quantile(conf, 0.15))
    got = w.select_uncertain(t)
    np.testing.assert_array_equal(got, np.flatnonzero(conf < t))
    np.testing.assert_array_equal(_raster.selected_bins(layer), np.flatnonzero(conf < t))
    w.by_confidence.value = False
    assert not values.visible and layer.metadata[_raster.COLORMAP_KEY] == cmap_regions
    assert not notes["error"]


def test_confidence_colours_survive_a_review_edit(hd, qtbot):
    review, w, layer = hd
    w.by_confidence.value = True
    picked = np.flatnonzero(layer.metadata["adata"].obs[CLUSTER_KEY].astype(str).to_numpy() == "3")[:10]
    w.select_in_plot(picked)
    review.assign_selected("0")
    _synced(qtbot, w)
    values = layer.metadata[_raster.VALUE_LAYER_KEY]
    g = layer.metadata[_raster.GRID_KEY]
    img = np.asarray(values.data)[g.rows, g.cols]
    assert values.visible and w.by_confidence.value
    grey = np.round(np.asarray(emb.NAN_COLOUR) * 255)
    assert np.isnan(layer.metadata["adata"].obs[CONFIDENCE_KEY].to_numpy()[picked]).all()
    assert np.all(img[picked] == grey)  # assigned by hand: grey


def test_a_large_layout_draws_a_subsample_and_selects_every_bin(hd, monkeypatch):
    review, w, layer = hd
    monkeypatch.setattr(emb, "MAX_DRAWN", 300)
    w.replot()
    n = layer.metadata["adata"].n_obs
    assert w.points.subsampled and len(w._scatter.get_offsets()) == 300 and w.points.n == n
    assert "300 drawn" in w.ax.get_title()
    lasso = _left_half(w.xy)
    w._on_lasso(lasso)
    want = np.flatnonzero(Path(np.asarray(lasso)).contains_points(w.xy))
    np.testing.assert_array_equal(_raster.selected_bins(layer), want)
    assert want.size > 300
    drawn_on = np.isin(w.points.drawn, want)
    alpha = np.asarray(w._scatter.get_facecolors())[:, 3]
    assert np.all(alpha[drawn_on] == 1.0) and np.all(alpha[~drawn_on] < 0.5)
    assert len(w._ring.get_offsets()) == drawn_on.sum()


def test_a_dense_plot_is_an_image_with_the_selection_opaque(hd, monkeypatch):
    """Above DENSE_POINTS drawn points the plot is one pixel per point (Agg draws it 3-4x faster)."""
    from napari_senca._qt import _embedding_plot

    review, w, layer = hd
    monkeypatch.setattr(_embedding_plot, "DENSE_POINTS", 50)
    w.replot()
    assert w._scatter is None and w._image is not None and w.painted
    x0, x1, y0, y1 = w._image.get_extent()
    assert x0 < w.xy[:, 0].min() and w.xy[:, 0].max() < x1 and y0 < w.xy[:, 1].min() and w.xy[:, 1].max() < y1
    lasso = _left_half(w.xy)
    w._on_lasso(lasso)
    want = np.flatnonzero(Path(np.asarray(lasso)).contains_points(w.xy))
    np.testing.assert_array_equal(_raster.selected_bins(layer), want)
    img = np.asarray(w._image.get_array()).reshape(-1, 4)
    alpha = img[w._splat.pix, 3]
    on = np.isin(w.points.drawn, want)
    assert np.all(alpha[on] == 1.0) and np.all(alpha[~on] < 0.5)
    w._on_lasso([])  # an empty lasso clears the selection: everything opaque again
    assert np.all(np.asarray(w._image.get_array()).reshape(-1, 4)[w._splat.pix, 3] == 1.0)


def test_recolouring_keeps_the_layout_a_new_plot_lays_out_again(hd, qtbot):
    """Constrained layout is half a redraw: it runs for a new plot or size, not for a recolouring."""
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    review, w, layer = hd
    w.replot()
    assert isinstance(w.figure.get_layout_engine(), ConstrainedLayoutEngine)
    w.canvas.draw()
    assert not isinstance(w.figure.get_layout_engine(), ConstrainedLayoutEngine)
    pos = w.ax.get_position().bounds
    w._on_lasso(_left_half(w.xy))
    w.canvas.draw()
    assert w.ax.get_position().bounds == pos
    from matplotlib.backend_bases import ResizeEvent

    ResizeEvent("resize_event", w.canvas)._process()  # what the Qt canvas sends when its widget is resized
    assert isinstance(w.figure.get_layout_engine(), ConstrainedLayoutEngine)


def test_a_dense_plot_follows_a_zoom(hd, qtbot, monkeypatch):
    """Zooming redraws the image for the new view (finer points), not an enlarged copy of the old one."""
    from napari_senca._qt import _embedding_plot

    review, w, layer = hd
    monkeypatch.setattr(_embedding_plot, "DENSE_POINTS", 50)
    w.replot()
    (x0, x1), (y0, y1) = w.ax.get_xlim(), w.ax.get_ylim()
    before = w._splat
    w.ax.set_xlim(x0, (x0 + x1) / 2)
    w.ax.set_ylim(y0, (y0 + y1) / 2)
    qtbot.waitUntil(lambda: w._splat is not before, timeout=2000)
    assert w._image.get_extent() == [x0, (x0 + x1) / 2, y0, (y0 + y1) / 2]
    drawn = w.xy[w.points.drawn]
    shown = (drawn[:, 0] <= (x0 + x1) / 2) & (drawn[:, 1] <= (y0 + y1) / 2)
    np.testing.assert_array_equal(w._splat.inside, np.flatnonzero(shown))
    assert np.asarray(w._image.get_array())[..., 3].sum() > 0
