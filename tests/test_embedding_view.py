"""2-D layouts of X_senca, plot selections and confidence colours (no Qt)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_senca import embedding_view as emb
from napari_senca.embedding_view import (
    NAN_COLOUR,
    cached_layout,
    compute_layout,
    confidence_colours,
    layout_2d,
    layout_key,
    points_in_lasso,
    points_in_rectangle,
)
from napari_senca.errors import ConfigError
from napari_senca.section import EMBED_KEY
from test_review import annotated_section  # tests/ is on sys.path


def test_lasso_and_rectangle_select_the_points_inside():
    xy = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [5.0, 5.0], [1.5, 0.2]])
    triangle = [(-1, -1), (4, -1), (-1, 1.5)]  # below y = 1 - (x + 1) / 2
    np.testing.assert_array_equal(points_in_lasso(xy, triangle), [0, 4])
    np.testing.assert_array_equal(points_in_lasso(xy, [(0, 0), (1, 1)]), [])  # not a polygon
    np.testing.assert_array_equal(points_in_rectangle(xy, (2.5, 2.5), (0.5, 0.5)), [1, 2])
    np.testing.assert_array_equal(points_in_rectangle(xy, (-1, -1), (6, 6)), np.arange(5))


def test_pca_layout_is_the_top_two_components_and_cached():
    adata = annotated_section()
    z = np.asarray(adata.obsm[EMBED_KEY], dtype=np.float64)
    xy = layout_2d(adata, "pca")
    assert xy.shape == (adata.n_obs, 2)
    zc = z - z.mean(0)
    var = np.linalg.svd(zc, compute_uv=False) ** 2
    np.testing.assert_allclose(np.sort(xy.var(0) * len(z))[::-1], var[:2], rtol=1e-4)
    assert layout_key("PCA") in adata.obsm
    np.testing.assert_allclose(cached_layout(adata, "pca"), xy, rtol=1e-6)
    # a new embedding (a new run) invalidates the cached layout
    adata.obsm[EMBED_KEY] = z[:, ::-1].copy() * 2
    assert cached_layout(adata, "pca") is None
    assert not np.allclose(layout_2d(adata, "pca"), xy)


def test_layout_errors():
    with pytest.raises(ConfigError, match="unknown layout"):
        compute_layout(np.zeros((20, 3)), "tsne")
    with pytest.raises(ConfigError, match="at least 15 spots"):
        compute_layout(np.zeros((5, 3)), "umap")
    from napari_senca.datasets import synthetic_section

    with pytest.raises(ConfigError, match="run the model first"):
        layout_2d(synthetic_section(n_side=4, n_genes=10))


def test_umap_without_umap_learn_is_one_clear_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "umap", None)  # makes `import umap` fail
    with pytest.raises(ConfigError, match="umap-learn"):
        compute_layout(np.zeros((20, 3)), "umap")


def test_confidence_colours():
    rgba = confidence_colours(np.array([0.0, 1.0, np.nan, 0.5]))
    assert rgba.shape == (4, 4)
    assert tuple(rgba[2]) == NAN_COLOUR
    assert not np.allclose(rgba[0], rgba[1])
    assert rgba[0, 0] > rgba[0, 2] and rgba[1, 2] > rgba[1, 0]  # uncertain red, confident blue


def test_core_modules_need_no_qt():
    import subprocess
    import sys

    code = (
        "import sys; import napari_senca.confidence, napari_senca.embedding_view, napari_senca.pipeline, "
        "napari_senca.review.link; "
        "bad = [k for k in sys.modules if k.split('.')[0] in ('qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'napari')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr


# --------------------------------------------------------------------------- large sections and rasters
def test_lasso_matches_matplotlib_on_many_points_and_awkward_polygons():
    from matplotlib.path import Path

    rng = np.random.default_rng(1)
    xy = rng.normal(size=(20_000, 2))
    t = np.linspace(0, 2 * np.pi, 400, endpoint=False)
    wobbly = np.stack([np.cos(t), np.sin(t)], 1) * (1 + 0.2 * np.sin(7 * t))[:, None]
    polys = [wobbly, rng.normal(size=(25, 2)), [(-1, -1), (1, -1), (1, 1), (-1, 1)], wobbly[::-1] + 0.5]
    for poly in polys:
        want = np.flatnonzero(Path(np.asarray(poly, dtype=float)).contains_points(xy))
        got = points_in_lasso(xy, poly)
        assert 0 < want.size < len(xy)
        np.testing.assert_array_equal(got, want)


def test_plot_points_draw_a_subsample_but_select_and_highlight_all():
    from napari_senca.embedding_view import PlotPoints, plot_sample

    rng = np.random.default_rng(2)
    xy = rng.uniform(0, 10, size=(5_000, 2))
    pp = PlotPoints.of(xy, max_points=800)
    assert pp.subsampled and len(pp.drawn) == 800 and np.all(np.diff(pp.drawn) > 0)
    np.testing.assert_array_equal(pp.drawn, plot_sample(5_000, 800))  # the same points every time
    np.testing.assert_array_equal(PlotPoints.of(xy[:50], max_points=800).drawn, np.arange(50))
    sel = pp.in_rectangle((0, 0), (5, 10))  # over every point, not only the drawn ones
    np.testing.assert_array_equal(sel, np.flatnonzero(xy[:, 0] <= 5))
    assert sel.size > 800
    rgba = np.tile([0.1, 0.2, 0.3, 1.0], (5_000, 1))
    col = pp.colours(rgba, sel)
    on = np.isin(pp.drawn, sel)
    assert col.shape == (800, 4) and np.all(col[on, 3] == 1.0) and np.all(col[~on, 3] == 0.3)
    np.testing.assert_allclose(pp.ring(sel, max_rings=800), xy[pp.drawn[on]])
    assert len(pp.ring(sel, max_rings=10)) == 0  # a large selection shows by opacity, not rings
    assert np.all(pp.colours(rgba, [])[:, 3] == 1.0) and len(pp.ring([])) == 0
    undrawn = np.setdiff1d(np.arange(5_000), pp.drawn)[:1]  # selected but not drawn: the rest still fades
    assert np.all(pp.colours(rgba, undrawn)[:, 3] == 0.3)


def test_region_colours_follow_the_review_colours():
    from matplotlib.colors import to_rgba

    from napari_senca.embedding_view import region_colours
    from napari_senca.review import ReviewState

    st = ReviewState(annotated_section())
    st.recolour(st.clusters[1], "#ff0000")
    got = region_colours(st)
    want = np.asarray([to_rgba(st.colour_of(c)) for c in st.adata.obs[st.key].astype(str)])
    np.testing.assert_allclose(got, want)


class Labels:
    """The parts of a napari labels layer that the raster selection touches (no napari)."""

    def __init__(self, metadata):
        self.metadata = metadata


def test_link_selects_on_a_raster_and_tells_its_watchers():
    from napari_senca.review import link
    from napari_senca.review import raster as _raster
    from napari_senca.review.grid import square_grid
    from test_review_raster import grid_section

    ad = grid_section()
    layer = Labels({_raster.GRID_KEY: square_grid(ad), "adata": ad})
    calls, other = [], []
    link.watch_selection(layer, lambda *a: calls.append(link.selected_spots(layer).tolist()))
    stray = lambda *a: other.append(1)  # noqa: E731
    link.watch_selection(layer, stray)
    link.unwatch_selection(layer, stray)
    got = link.select_spots(layer, [7, 3, 3, 900])
    np.testing.assert_array_equal(got, [3, 7, 900])
    np.testing.assert_array_equal(_raster.selected_bins(layer), [3, 7, 900])  # what Assign reads
    np.testing.assert_array_equal(link.select_spots(layer, [1], add=True), [1, 3, 7, 900])
    assert calls == [[3, 7, 900], [1, 3, 7, 900]]
    link.unwatch_selection(layer, link.unwatch_selection)  # not watching: no error
    link.select_spots(layer, [])
    assert calls[-1] == [] and len(calls) == 3
    assert other == []  # an unwatched listener is no longer called


def test_splat_puts_each_point_on_its_pixel_and_rings_the_selected():
    xy = np.array([[0.0, 0.0], [10.0, 5.0], [5.0, 2.5], [10.0, 0.0]])
    s = emb.Splat.of(xy, width=21, height=11, margin=0.0)
    assert s.extent == (0.0, 10.0, 0.0, 5.0) and s.shape == (11, 21)
    assert np.array_equal(s.inside, np.arange(4))
    rows, cols = np.divmod(s.pix, 21)
    np.testing.assert_array_equal(rows, [0, 10, 5, 0])  # row 0 at the bottom (imshow origin="lower")
    np.testing.assert_array_equal(cols, [0, 20, 10, 20])
    rgba = np.array([[1, 0, 0, 1], [0, 1, 0, 1], [0, 0, 1, 0.2], [0.5, 0.5, 0.5, 1]], dtype=float)
    img = s.image(rgba)
    np.testing.assert_array_equal(img[5, 10], rgba[2])
    assert img[:, :, 3].sum() == rgba[:, 3].sum()  # nothing else painted
    ringed = s.image(rgba, ring=xy[[2]])
    assert np.all(ringed[4:7, 9:12][[0, 0, 0, 1, 1, 2, 2, 2], [0, 1, 2, 0, 2, 0, 1, 2]] == 1.0)  # white around it
    np.testing.assert_array_equal(ringed[5, 10], rgba[2])  # the point itself stays on top
    assert ringed[0, 0, 3] == 1.0 and ringed[0, 0, 0] == 1.0 and ringed[0, 0, 1] == 0.0


def test_splat_of_a_single_point_or_a_line_has_a_finite_extent():
    s = emb.Splat.of(np.array([[3.0, 3.0]]), width=10, height=10)
    x0, x1, y0, y1 = s.extent
    assert x0 < 3 < x1 and y0 < 3 < y1
    s = emb.Splat.of(np.array([[0.0, 1.0], [4.0, 1.0]]), width=10, height=10)
    assert s.extent[2] < 1 < s.extent[3]


@pytest.mark.parametrize("shape", [(400, 16), (3, 5), (50, 1)])
def test_pca_layout_is_the_first_two_principal_component_scores(shape):
    from sklearn.decomposition import PCA

    z = np.random.default_rng(2).normal(size=shape) * np.arange(1, shape[1] + 1)
    xy = compute_layout(z, "pca")
    k = min(2, shape[1], shape[0] - 1)
    ref = PCA(k).fit_transform(z)
    for j in range(k):  # each axis up to its sign
        assert min(np.abs(xy[:, j] - ref[:, j]).max(), np.abs(xy[:, j] + ref[:, j]).max()) < 1e-8
    assert np.all(xy[:, k:] == 0)


def test_splat_shows_the_most_opaque_point_of_a_shared_pixel():
    """A selected (opaque) point under a later faded one stays visible, as the scatter's blending showed it."""
    xy = np.array([[1.0, 1.0], [1.0, 1.0], [0.0, 0.0], [2.0, 2.0]])
    s = emb.Splat.of(xy, width=3, height=3, margin=0.0)
    rgba = np.array([[1, 0, 0, 1.0], [0, 0, 1, 0.3], [0, 1, 0, 0.3], [0, 1, 0, 0.3]])
    np.testing.assert_array_equal(s.image(rgba)[1, 1], rgba[0])
    np.testing.assert_array_equal(s.image(rgba[[1, 0, 2, 3]])[1, 1], rgba[0])


def test_splat_of_a_zoomed_view_leaves_out_the_points_outside():
    xy = np.array([[0.0, 0.0], [5.0, 5.0], [9.0, 9.0]])
    s = emb.Splat.of(xy, width=10, height=10, extent=(4.0, 6.0, 4.0, 6.0))
    np.testing.assert_array_equal(s.inside, [1])
    img = s.image(np.ones((3, 4)))
    assert img[:, :, 3].sum() == 1 and img[5, 5, 3] == 1
