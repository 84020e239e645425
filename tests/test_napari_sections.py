"""Two sections open at once (issue 8, item 19): side by side, and every widget acts on the
section picked in it, with exports and selections in each section's own coordinates."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

# triton (probed by torch._dynamo) must load before any OpenGL context exists (see test_napari_widgets)
import torch._dynamo  # noqa: F401

from conftest import exported
from napari_senca._qt import ExportWidget, LoadWidget, ReviewWidget, RunWidget, _common
from napari_senca.datasets import synthetic_section
from napari_senca.review import ReviewState
from napari_senca.section import CLUSTER_KEY
from test_review import annotated_section  # tests/ is on sys.path

pytestmark = pytest.mark.qt


def _box(layers):
    b = np.array([np.asarray(ly.extent.world)[:, -2:] for ly in layers])
    return np.array([b[:, 0].min(0), b[:, 1].max(0)])


def _section_layers(viewer, points):
    """The points layer and the H&E layer added just before it."""
    layers = list(viewer.layers)
    i = layers.index(points)
    assert type(layers[i - 1]).__name__ == "Image"
    return [layers[i - 1], points]


def _apart(viewer, a, b):
    ba, bb = _box(_section_layers(viewer, a)), _box(_section_layers(viewer, b))
    return ba[1, 1] < bb[0, 1] or bb[1, 1] < ba[0, 1] or ba[1, 0] < bb[0, 0] or bb[1, 0] < ba[0, 0]


def test_sections_side_by_side_and_bound_widgets(qtbot, make_napari_viewer, notes, tmp_path):
    viewer = make_napari_viewer()
    run, review, export = RunWidget(viewer), ReviewWidget(viewer), ExportWidget(viewer)
    first = _common.add_section(viewer, synthetic_section(n_side=6, n_genes=40, seed=1), "first")
    second = _common.add_section(viewer, annotated_section(n_side=5, seed=2), "second")
    assert [type(ly).__name__ for ly in viewer.layers] == ["Image", "Points", "Image", "Points"]
    # ---- the second section lies to the right of the first; its H&E moved with its spots
    assert _apart(viewer, first, second)
    b1, b2 = _box(_section_layers(viewer, first)), _box(_section_layers(viewer, second))
    assert b2[0, 1] > b1[1, 1] and b2[0, 0] == pytest.approx(b1[0, 0])
    img2 = viewer.layers["second H&E"]
    np.testing.assert_allclose(img2.translate, second.translate)
    assert img2.world_to_data(second.data_to_world(second.data[0])) == pytest.approx(
        second.data[0] * np.asarray(img2.metadata["senca_scalef"]), abs=1e-6
    )  # the spots still sit on their own H&E
    # the data stay in the section's own pixels
    np.testing.assert_allclose(second.data[:, ::-1], second.metadata["adata"].obsm["spatial"])

    # ---- the newest section is current until the user picks one; then the pick stays
    assert run.layer.value is second and export.layer.value is second
    run.layer.value = first  # the user picks the first section
    third = _common.add_section(viewer, synthetic_section(n_side=4, n_genes=40, seed=3), "third")
    assert run.layer.value is first and export.layer.value is third
    assert _apart(viewer, third, first) and _apart(viewer, third, second)
    first.name = "first (renamed)"
    items = [run.layer.native.itemText(i) for i in range(run.layer.native.count())]
    assert run.layer.value is first and "first (renamed)" in items
    viewer.layers.remove(third)
    viewer.layers.remove("third H&E")
    assert export.layer.value is second and run.layer.value is first

    # ---- running on the first leaves the second untouched
    before = second.metadata["adata"]
    labels_before = before.obs[CLUSTER_KEY].copy()
    run.epochs.value = 1
    run.n_clusters.value = 3
    run.image_weights.value = "none"
    run.patch_size.value = 32
    run.device.value = "cpu"
    run.overrides = {"steps_per_epoch": 1}
    assert run.run() is not None
    qtbot.waitUntil(lambda: run.worker is None, timeout=120_000)
    assert not notes["error"], notes["error"]
    assert CLUSTER_KEY in first.metadata["adata"].obs
    assert second.metadata["adata"] is before
    pd.testing.assert_series_equal(before.obs[CLUSTER_KEY], labels_before)

    # ---- exporting the second gives the second's spots, in its own pixels (no translate)
    export.layer.value = second
    csv = exported(qtbot, export, "csv", tmp_path / "second.csv")
    df = pd.read_csv(csv)
    assert df["spot_id"].tolist() == list(before.obs_names)
    np.testing.assert_allclose(df[["pixel_x", "pixel_y"]].to_numpy(), before.obsm["spatial"])
    export.frame.value = "fullres"
    gj = exported(qtbot, export, "geojson", tmp_path / "second.geojson")
    fc = json.loads(gj.read_text())
    assert [f["properties"]["spot_id"] for f in fc["features"]] == list(before.obs_names)
    centres = np.array([np.asarray(f["geometry"]["coordinates"][0])[:-1].mean(0) for f in fc["features"]])
    np.testing.assert_allclose(centres, before.obsm["spatial"], atol=0.01)

    # ---- a lasso drawn around some of the second's spots (in world coordinates) selects them
    review.layer.value = second
    idx = np.arange(5)  # the first grid row
    world = np.array([second.data_to_world(p) for p in second.data[idx]])
    lo, hi = world.min(0) - 3, world.max(0) + 3
    shapes = viewer.add_shapes([np.array([[lo[0], lo[1]], [lo[0], hi[1]], [hi[0], hi[1]], [hi[0], lo[1]]])],
                               shape_type="polygon", name="lasso")
    got = review.select_in_shapes(shapes)
    assert sorted(got) == idx.tolist()
    assert ReviewState.from_layer(second).n_spots == before.n_obs


def test_sections_opened_with_file_open_are_placed_too(qtbot, make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    path = tmp_path / "s.h5ad"
    annotated_section(n_side=4).write_h5ad(path)
    a = viewer.open(str(path), plugin="napari-senca")
    b = viewer.open(str(path), plugin="napari-senca")  # opened before any widget: on top of each other
    assert not _apart(viewer, a[1], b[1])
    LoadWidget(viewer)  # the first napari-senca widget places them
    assert _apart(viewer, a[1], b[1])
    c = viewer.open(str(path), plugin="napari-senca")
    assert _apart(viewer, c[1], a[1]) and _apart(viewer, c[1], b[1])
    np.testing.assert_allclose(c[0].translate, c[1].translate)


@pytest.mark.qt
def test_long_texts_do_not_widen_the_docks(qtbot, make_napari_viewer):
    """Docks tabbed together take the widest minimum: a long status line or frame
    name must wrap / elide instead of stretching every napari-senca dock."""
    from napari_senca._qt import ExportWidget, LoadWidget, RunWidget

    viewer = make_napari_viewer()
    long = "SENCA-st: 5 regions in 26.3 s (H&E weights random (ImageNet weights unavailable offline), cpu) " * 2
    for cls in (LoadWidget, RunWidget, ExportWidget):
        w = cls(viewer)
        w.status.value = long
        if cls is ExportWidget:
            w.frame.native.addItem("hires image (x0.144, 1000 x 1069 px) - default, a long frame name")
        assert w.minimumSizeHint().width() < 480, cls.__name__
        if cls is RunWidget:
            qtbot.waitUntil(lambda w=w: w.warm_worker is None, timeout=60_000)
