"""Square bin grids (Visium HD) as rasters, and undo/redo stored as differences (no Qt)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_senca.review import ReviewState, section_layer_data, square_grid
from napari_senca.review import raster as _raster
from napari_senca.section import CLUSTER_KEY, UNS_KEY, make_section


def grid_section(n_rows=30, n_cols=40, angle=0.0, mirror=False, step=12.0, array=True, hex_grid=False, seed=0):
    """A small section on a square (or hexagonal) grid with four regions as a clustering."""
    rng = np.random.default_rng(seed)
    rr, cc = np.mgrid[0:n_rows, 0:n_cols]
    keep = rng.random(rr.shape) > 0.1  # holes, as in real tissue
    rows, cols = rr[keep], cc[keep]
    if hex_grid:  # standard Visium: odd rows shifted by half a spot
        cols = cols * 2 + (rows % 2)
        y, x = rows * step * np.sqrt(3) / 2, cols * step / 2
    else:
        y, x = rows * step, cols * step * (-1 if mirror else 1)
    c, s = np.cos(angle), np.sin(angle)
    yx = np.stack([c * y - s * x, s * y + c * x], 1) + [500.0, 700.0]
    region = (rows >= n_rows // 2).astype(int) * 2 + (cols >= cols.max() // 2).astype(int)
    counts = rng.poisson(1.0, size=(rows.size, 8)).astype(np.float32)
    counts[:, 0] += region * 3
    ad = make_section(counts, [f"b{i}" for i in range(rows.size)], [f"G{i}" for i in range(8)], yx[:, ::-1],
                      array_row=rows if array else None, array_col=cols if array else None,
                      spot_diameter_fullres=step)  # fmt: skip
    ad.obs[CLUSTER_KEY] = pd.Categorical(region.astype(str), categories=["0", "1", "2", "3"])
    ad.uns[UNS_KEY] = {"n_clusters": 4}
    return ad


@pytest.mark.parametrize("array", [True, False])
@pytest.mark.parametrize(("angle", "mirror"), [(0.0, False), (0.3, False), (0.2, True)])
def test_square_grid_maps_bins_onto_their_positions(array, angle, mirror):
    ad = grid_section(angle=angle, mirror=mirror, array=array)
    g = square_grid(ad)
    assert g is not None and g.n_bins == ad.n_obs
    yx = np.asarray(ad.obsm["spatial"])[:, ::-1]
    np.testing.assert_allclose(g.to_world(np.stack([g.rows, g.cols], 1)), yx, atol=1e-6)
    np.testing.assert_allclose(g.spacing, 12.0)
    assert (g.index()[g.rows, g.cols] == np.arange(ad.n_obs)).all()
    assert (g.index() >= 0).sum() == ad.n_obs  # one pixel per bin, holes stay empty


@pytest.mark.parametrize("array", [True, False])
def test_hexagonal_visium_grid_is_not_a_raster(array):
    ad = grid_section(hex_grid=True, array=array)
    assert square_grid(ad) is None
    assert [t[2] for t in section_layer_data(ad, raster_min_spots=0)] == ["points"]


def test_two_spots_on_one_cell_is_not_a_raster():
    import anndata as ad_

    ad = grid_section()
    twice = ad_.concat([ad, ad[:1]])  # the first bin again, on the same cell
    twice.obs_names_make_unique()
    twice.uns = ad.uns
    assert square_grid(ad) is not None and square_grid(twice) is None


def test_large_square_grid_opens_as_labels_with_region_values(monkeypatch):
    ad = grid_section()
    assert [t[2] for t in section_layer_data(ad)] == ["points"]  # below the threshold
    monkeypatch.setenv(_raster.RASTER_ENV, "0")  # the user's switch: every square grid as a raster
    assert [t[2] for t in section_layer_data(ad)] == ["labels"]
    monkeypatch.delenv(_raster.RASTER_ENV)
    monkeypatch.setattr(_raster, "RASTER_MIN_SPOTS", 500)
    (data, kw, ltype), = section_layer_data(ad)
    assert ltype == "labels" and data.shape == (30, 40)
    g = kw["metadata"][_raster.GRID_KEY]
    codes = ad.obs[CLUSTER_KEY].astype(int).to_numpy()
    assert (data[g.rows, g.cols] == codes + 1).all()
    assert (data[g.index() < 0] == 0).all()
    st = kw["metadata"]["senca_review"]
    for cid in st.clusters:
        assert kw["colormap"][int(cid) + 1] == st.colour_of(cid)
    assert kw["colormap"][0] == kw["colormap"][None] == "#00000000"
    assert set(kw["features"]["region"]) == {st.name_of(c) for c in st.clusters}


def test_undo_stores_only_the_changed_spots():
    ad = grid_section()
    st = ReviewState(ad)
    before = ad.obs[CLUSTER_KEY].copy()
    st.assign([0, 1, 2, 3, 4], "3")
    assert st.history.nbytes < 100 < ad.n_obs  # a copy of the column would be n_obs bytes or more
    n2 = int((ad.obs[CLUSTER_KEY] == "2").sum())
    st.merge("1", "2")
    assert st.history.undo[-1].idx.size == n2  # the merged region only
    st.undo()
    st.undo()
    assert (ad.obs[CLUSTER_KEY] == before).all() and st.n_manual == 0
    assert st.redo().startswith("assign") and st.n_manual == 5
    assert (ad.obs[CLUSTER_KEY].iloc[:5] == "3").all()
    st.redo()
    assert st.clusters == ["0", "1", "3"]
    st.undo()
    st.rename("0", "tumour")  # a new edit forgets what could be redone
    assert not st.can_redo


class FakeLabels:
    """The parts of a napari labels layer the raster functions touch."""

    def __init__(self, data, **kw):
        self.data = data
        self.name = kw["name"]
        self.metadata = dict(kw["metadata"])
        self.colormap = kw["colormap"]
        self.features = kw["features"]
        self.scale, self.rotate, self.translate = kw["scale"], kw["rotate"], kw["translate"]


FakeLabels.__name__ = "Labels"


def test_apply_to_labels_follows_edits_and_gene_colouring(monkeypatch):
    monkeypatch.setattr(_raster, "RASTER_MIN_SPOTS", 0)
    ad = grid_section()
    (data, kw, _), = section_layer_data(ad)
    layer = FakeLabels(data, **kw)
    st = ReviewState.from_layer(layer)
    g = layer.metadata[_raster.GRID_KEY]
    cid = st.assign(np.arange(10), None, new_name="DCIS")
    st.apply_to_layer(layer)
    assert (layer.data[g.rows[:10], g.cols[:10]] == int(cid) + 1).all()
    st.undo()
    st.apply_to_layer(layer)
    assert (layer.data[g.rows, g.cols] == ad.obs[CLUSTER_KEY].astype(int).to_numpy() + 1).all()
    st.show_gene("G0")
    st.apply_to_layer(layer)
    assert all(v == "#00000000" for v in layer.colormap.values())  # the value image shows instead
    img, ikw, ltype = _raster.value_layer_data(st, layer)
    assert ltype == "image" and img.shape == (30, 40, 4)
    assert (img[g.rows, g.cols, 3] == 255).all() and (img[g.index() < 0, 3] == 0).all()
    st.set_visible("1", False)
    assert (_raster.value_image(st, g)[g.rows[st.spots_of("1")], g.cols[st.spots_of("1")], 3] == 0).all()


def test_classify_the_rest_redraws_the_raster(monkeypatch):
    """Visium HD bins reviewed as a raster: classify from three bins by hand per region, the raster follows; undo."""
    from sklearn.metrics import adjusted_rand_score

    from napari_senca.section import EMBED_KEY

    monkeypatch.setattr(_raster, "RASTER_MIN_SPOTS", 0)
    ad = grid_section()
    truth = ad.obs[CLUSTER_KEY].astype(int).to_numpy()
    ad.obsm[EMBED_KEY] = (np.eye(4)[truth] * 3 + np.random.default_rng(0).normal(0, 0.5, (ad.n_obs, 4))).astype("f4")
    (data, kw, _), = section_layer_data(ad)
    layer = FakeLabels(data, **kw)
    st = ReviewState.from_layer(layer)
    g = layer.metadata[_raster.GRID_KEY]
    st.merge("2", "3")
    for region in range(4):
        st.assign(np.flatnonzero(truth == region)[:3], None, new_name=f"hand {region}")
    st.classify_from_assigned()
    st.apply_to_layer(layer)
    now = ad.obs[CLUSTER_KEY].astype(int).to_numpy()
    assert (layer.data[g.rows, g.cols] == now + 1).all()
    assert adjusted_rand_score(truth, now) > 0.95
    st.undo()
    st.apply_to_layer(layer)
    assert (layer.data[g.rows, g.cols] == ad.obs[CLUSTER_KEY].astype(int).to_numpy() + 1).all()
    assert len(st.clusters) == 7  # three regions of the merged clustering and four by hand


def test_polygon_mask_matches_point_in_polygon():
    from matplotlib.path import Path

    from napari_senca.review.geometry import index_mask, polygon_mask

    rng = np.random.default_rng(1)
    t = np.sort(rng.uniform(0, 2 * np.pi, 60))
    r = rng.uniform(8, 20, 60)
    poly = np.stack([25 + r * np.sin(t), 30 + r * np.cos(t)], 1) + 0.37  # no pixel centre on an edge
    poly[10] = [60.0, 70.0]  # a spike beyond the raster
    mask = polygon_mask(poly, (50, 55))
    rr, cc = np.mgrid[0:50, 0:55]
    want = Path(poly).contains_points(np.stack([rr.ravel(), cc.ravel()], 1)).reshape(50, 55)
    assert mask.sum() > 300 and (mask == want).all()
    assert index_mask(np.array([5, 1, 5, 99, -1]), 10).tolist() == [1, 5]
