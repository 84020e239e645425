"""Large square-grid sections (Visium HD) in napari: a labels raster instead of points (issue 10, item 5)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch._dynamo  # noqa: F401  (load before any OpenGL context, see test_napari_widgets)
from matplotlib.colors import to_rgba

from conftest import exported
from napari_senca._qt import ExportWidget, ReviewWidget, _common
from napari_senca._qt._review import NEW_REGION
from napari_senca.review import REGION_KEY, ReviewState
from napari_senca.review import raster as _raster
from napari_senca.section import CLUSTER_KEY
from test_review import annotated_section  # tests/ is on sys.path
from test_review_raster import grid_section

pytestmark = pytest.mark.qt


@pytest.fixture
def hd(viewer, monkeypatch, notes):
    """A Review widget and a 30 x 40 square-grid section drawn as a raster (threshold lowered to 500 bins)."""
    monkeypatch.setattr(_raster, "RASTER_MIN_SPOTS", 500)
    review = ReviewWidget(viewer)
    viewer.window.add_dock_widget(review, name="Review regions", area="right")
    layer = _common.add_section(viewer, grid_section(), "hd")
    return review, layer


def _values(layer) -> np.ndarray:
    g = layer.metadata[_raster.GRID_KEY]
    return np.asarray(layer.data)[g.rows, g.cols]


def test_square_grid_opens_as_a_labels_raster_on_the_spots(hd):
    review, layer = hd
    assert type(layer).__name__ == "Labels" and review.layer.value is layer
    adata = layer.metadata["adata"]
    st = ReviewState.from_layer(layer)
    assert (_values(layer) == adata.obs[CLUSTER_KEY].astype(int).to_numpy() + 1).all()
    g = layer.metadata[_raster.GRID_KEY]
    world = _raster.layer_world_coords(layer)  # each bin's pixel lands on its spot
    np.testing.assert_allclose(world, np.asarray(adata.obsm["spatial"])[:, ::-1], atol=1e-6)
    assert np.asarray(layer.data)[g.index() < 0].max() == 0
    for cid in st.clusters:
        np.testing.assert_allclose(layer.colormap.color_dict[int(cid) + 1], to_rgba(st.colour_of(cid)), atol=1e-6)
    assert "4 regions" in review.hint.value.replace("in 4", "4")


def test_shape_selection_relabel_undo_redo_change_raster_and_obs(hd, viewer, notes, tmp_path, qtbot):
    review, layer = hd
    adata = layer.metadata["adata"]
    yx = np.asarray(adata.obsm["spatial"])[:, ::-1]
    box = np.array([[485.0, 690.0], [485.0, 795.0], [555.0, 795.0], [555.0, 690.0]])
    inside = np.flatnonzero(((yx >= box.min(0)) & (yx <= box.max(0))).all(1))
    shapes = viewer.add_shapes([box], shape_type="rectangle")
    got = review.select_in_shapes(shapes)
    assert sorted(got) == inside.tolist() and inside.size > 5
    sel_layer = layer.metadata[_raster.SELECTION_LAYER_KEY]
    assert sel_layer in viewer.layers and sel_layer.visible
    g = layer.metadata[_raster.GRID_KEY]
    ring = np.flatnonzero(np.asarray(sel_layer.data)[g.rows, g.cols])  # the outline of the selection
    assert set(ring) <= set(inside) and 0 < ring.size < inside.size
    assert np.asarray(sel_layer.data).sum() == ring.size

    before = _values(layer).copy()
    cid = review.assign_selected(NEW_REGION, "DCIS")
    assert cid == "4"
    assert (_values(layer)[inside] == 5).all()
    assert (adata.obs[CLUSTER_KEY].iloc[inside] == "4").all()
    assert set(adata.obs[REGION_KEY].iloc[inside]) == {"DCIS"}
    review.undo()
    assert (_values(layer) == before).all() and "4" not in adata.obs[CLUSTER_KEY].cat.categories
    assert review.redo_btn.enabled
    review.redo()
    assert (_values(layer)[inside] == 5).all() and (adata.obs[CLUSTER_KEY].iloc[inside] == "4").all()
    review.merge("0", "4")
    assert (_values(layer)[inside] == 1).all()
    export = ExportWidget(viewer)  # the exports read the section behind the raster
    csv = exported(qtbot, export, "csv", tmp_path / "bins.csv")
    table = pd.read_csv(csv)
    assert len(table) == adata.n_obs and (table["cluster"].astype(str).to_numpy()[inside] == "0").all()
    assert not notes["error"]


def test_colour_by_gene_shows_a_value_image_under_transparent_labels(hd, viewer, notes):
    review, layer = hd
    review.colour_by_gene("G0")
    img = layer.metadata[_raster.VALUE_LAYER_KEY]
    assert img in viewer.layers and img.visible and img.rgb
    assert viewer.layers.index(img) == viewer.layers.index(layer) - 1
    assert all(c[3] == 0 for c in layer.colormap.color_dict.values())
    g = layer.metadata[_raster.GRID_KEY]
    assert (np.asarray(img.data)[g.rows, g.cols, 3] == 255).all()
    review.colour_by_clusters()
    assert not img.visible and layer.colormap.color_dict[1][3] == 1
    review.set_visible("0", False)
    assert layer.colormap.color_dict[1][3] == 0 and not notes["error"]


def test_painting_bins_relabels_them_and_undo_takes_it_back(hd, qtbot, notes):
    review, layer = hd
    adata = layer.metadata["adata"]
    g = layer.metadata[_raster.GRID_KEY]
    i = int(np.flatnonzero(adata.obs[CLUSTER_KEY].to_numpy() == "0")[0])
    layer.brush_size = 1
    layer.mode = "paint"
    layer.paint((int(g.rows[i]), int(g.cols[i])), 4)  # label 4 = region "3"
    qtbot.waitUntil(lambda: adata.obs[CLUSTER_KEY].iloc[i] == "3", timeout=3000)
    assert _values(layer)[i] == 4 and ReviewState.from_layer(layer).manual[i]
    hole = tuple(int(v) for v in np.argwhere(g.index() < 0)[0])
    layer.paint(hole, 9)  # outside the tissue: not an edit, put back
    qtbot.waitUntil(lambda: np.asarray(layer.data)[hole] == 0, timeout=3000)
    assert ReviewState.from_layer(layer).clusters == ["0", "1", "2", "3"]
    review.undo()
    assert adata.obs[CLUSTER_KEY].iloc[i] == "0" and _values(layer)[i] == 1
    layer.mode = "erase"  # bins cannot be removed
    qtbot.waitUntil(lambda: str(layer.mode) == "pan_zoom", timeout=2000)
    assert "cannot be erased" in notes["warning"][0] and not notes["error"]


def test_standard_sections_keep_the_points_layer(viewer, monkeypatch):
    monkeypatch.setattr(_raster, "RASTER_MIN_SPOTS", 0)
    hexa = _common.add_section(viewer, grid_section(hex_grid=True), "visium")  # hexagonal: never a raster
    assert type(hexa).__name__ == "Points"
    monkeypatch.setattr(_raster, "RASTER_MIN_SPOTS", 50_000)
    small = _common.add_section(viewer, annotated_section(n_side=10), "st")  # square but small
    assert type(small).__name__ == "Points" and len(small.data) == 100
