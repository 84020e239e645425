"""The four dock widgets in a real napari viewer (pytest-qt, under Xvfb).

One short training (2 epochs, random image weights) goes through the worker;
the other tests use a section annotated without training.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest

# torch._dynamo probes for triton, whose LLVM crashes when it is first loaded
# after an OpenGL context exists (Mesa/llvmpipe under Xvfb): load it at
# collection time, before any viewer is made.
import torch._dynamo  # noqa: F401

from conftest import exported
from napari_senca._qt import ExportWidget, LoadWidget, ReviewWidget, RunWidget, _common
from napari_senca._qt._legend import COLOUR, NAME
from napari_senca.review import REGION_KEY, ReviewState
from napari_senca.section import CLUSTER_KEY, spot_diameter
from test_review import annotated_section  # tests/ is on sys.path

pytestmark = pytest.mark.qt


def _wait_idle(qtbot, widget, attr="worker", timeout=120_000):
    qtbot.waitUntil(lambda: getattr(widget, attr) is None, timeout=timeout)


def _load(qtbot, widget, path):
    widget.load(path)
    _wait_idle(qtbot, widget)
    return widget.last_layer


def _small_run_settings(w: RunWidget, epochs=2, k=3):
    w.epochs.value = epochs
    w.n_clusters.value = k
    w.image_weights.value = "none"
    w.patch_size.value = 64
    w.device.value = "cpu"
    w.overrides = {"steps_per_epoch": 3}


# --------------------------------------------------------------------------- load


def test_load_samples_and_files(qtbot, viewer, notes, st_folder, tmp_path):
    w = LoadWidget(viewer)
    viewer.window.add_dock_widget(w)
    pts = _load(qtbot, w, "sample:her2st_A1")
    assert [ly.name for ly in viewer.layers] == ["her2st_A1 H&E", "her2st_A1 spots"] or len(viewer.layers) == 2
    img = viewer.layers[0]
    adata = pts.metadata["adata"]
    scalef = img.metadata["senca_scalef"]
    np.testing.assert_allclose(img.scale, [1 / scalef, 1 / scalef])
    np.testing.assert_allclose(pts.data[:, ::-1], adata.obsm["spatial"])
    np.testing.assert_allclose(pts.size, spot_diameter(adata))
    assert {"spot_id", "total_counts", "label"} <= set(pts.features.columns)
    assert pts.features["spot_id"].tolist() == list(adata.obs_names)
    # spots land on the H&E: world -> image pixel inside the image
    px = img.world_to_data(pts.data[0])
    assert 0 <= px[0] < img.data.shape[0] and 0 <= px[1] < img.data.shape[1]

    synth = _load(qtbot, w, "sample:synthetic")
    assert synth.metadata["adata"].n_obs == 256 and len(viewer.layers) == 4

    w.path.value = str(st_folder())
    w.load()
    _wait_idle(qtbot, w)
    assert len(viewer.layers) == 6 and not notes["error"]

    # errors: empty path, unrecognised folder -> notification, no new layer
    w.path.value = ""
    assert w.load() is None
    (tmp_path / "nothing").mkdir()
    _load(qtbot, w, str(tmp_path / "nothing"))
    assert len(viewer.layers) == 6
    assert "choose a section" in notes["error"][0]
    assert "not a recognised section" in notes["error"][1]


def test_open_through_napari_plugin_machinery(qtbot, viewer, tmp_path):
    viewer.open_sample("napari-senca", "synthetic")
    assert [type(ly).__name__ for ly in viewer.layers] == ["Image", "Points"]
    pts = viewer.layers[-1]
    assert pts.features["label"].notna().all()
    # write the annotated section with napari's own save, then open it with the reader
    adata = annotated_section()
    ReviewState(adata).rename("0", "tumour")
    path = tmp_path / "s.h5ad"
    adata.write_h5ad(path)
    layers = viewer.open(str(path), plugin="napari-senca")
    assert [type(ly).__name__ for ly in layers] == ["Image", "Points"]
    assert "tumour" in layers[1].features[REGION_KEY].tolist()
    out = tmp_path / "again.h5ad"
    viewer.layers.selection = {layers[0], layers[1]}
    viewer.layers.save(str(out), selected=True, plugin="napari-senca")
    csv = tmp_path / "spots.csv"
    viewer.layers.selection = {layers[1]}
    viewer.layers.save(str(csv), selected=True, plugin="napari-senca")
    assert pd.read_csv(csv)["cluster_name"].isin(["tumour"]).any()
    from napari_senca.io import read_section

    assert ReviewState(read_section(out)).name_of("0") == "tumour"


# --------------------------------------------------------------------------- the whole flow


def test_run_review_export_flow(qtbot, viewer, notes, monkeypatch, tmp_path):
    from napari_senca.datasets import synthetic_section

    adata = synthetic_section(n_side=8, n_genes=80)
    pts = _common.add_section(viewer, adata, "small")
    run, review, export = RunWidget(viewer), ReviewWidget(viewer), ExportWidget(viewer)
    for wdg in (run, review, export):
        viewer.window.add_dock_widget(wdg)
    assert run.layer.value is pts and review.layer.value is pts
    assert review.hint.value.startswith("run SENCA-st")
    assert not review.assign_btn.enabled

    # ---- train through the worker; a second click does not start a second run
    _small_run_settings(run)
    yielded = []
    worker = run.run()
    assert worker is not None and run.running
    worker.yielded.connect(yielded.append)
    assert run.run() is None
    run.run_btn.native.click()  # disabled while running
    assert "already running" in notes["info"][0]
    _wait_idle(qtbot, run)
    assert not notes["error"], notes["error"]
    epochs = [p for p in yielded if p.stage == "train"]
    assert [p.step for p in epochs] == [1, 2] and all("total" in p.losses for p in epochs)
    assert "3 regions" in run.status.value and run.progress.value == run.progress.max
    assert pts.metadata["adata"] is not adata  # an annotated copy replaced it
    assert adata.obs.columns.tolist().count(CLUSTER_KEY) == 0  # the original was untouched
    feats = pts.features
    assert isinstance(feats[CLUSTER_KEY].dtype, pd.CategoricalDtype)
    assert feats[CLUSTER_KEY].nunique() == 3
    st = ReviewState.from_layer(pts)
    np.testing.assert_allclose(pts.face_color, st.spot_colours(), atol=1e-2)

    # ---- review: legend, instant re-cut, rename, recolour, assign, merge, undo
    assert review.legend.rowCount() == 3
    t0 = time.perf_counter()
    review.n_clusters.value = 5
    assert time.perf_counter() - t0 < 2.0
    assert review.legend.rowCount() == 5 and pts.features[CLUSTER_KEY].nunique() == 5
    review.legend.item(0, NAME).setText("invasive cancer")  # edit in the legend
    assert st.name_of("0") == "invasive cancer"
    assert "invasive cancer" in pts.features[REGION_KEY].tolist()
    monkeypatch.setattr(_common, "pick_colour", lambda parent, initial: "#00ff00")
    review.legend.cellDoubleClicked.emit(1, COLOUR)
    assert st.colour_of("1") == "#00ff00"
    ones = np.where(pts.features[CLUSTER_KEY] == "1")[0]
    np.testing.assert_allclose(pts.face_color[ones[0]], [0, 1, 0, 1])

    pts.selected_data = {0, 1, 2, 3}
    review.target.value = "+ new region"
    review.new_name.value = "DCIS"
    review.assign_btn.native.click()
    assert list(pts.features[REGION_KEY].iloc[:4]) == ["DCIS"] * 4
    assert review.legend.rowCount() == 6
    review.merge_a.value = "2"
    review.merge_b.value = "0"
    review.merge_btn.native.click()
    assert "2" not in st.clusters
    review.undo_btn.native.click()
    assert "2" in st.clusters
    review.undo_btn.native.click()
    assert "DCIS" not in pts.features[REGION_KEY].tolist()

    # ---- colour by gene and back; marker genes
    review.gene.value = "marker0"
    review.gene_btn.native.click()
    assert "expression" in pts.features and pts.face_color_mode == "colormap"
    review.clusters_btn.native.click()
    assert "expression" not in pts.features
    np.testing.assert_allclose(pts.face_color, st.spot_colours(), atol=1e-2)
    review.show_markers("1")
    _wait_idle(qtbot, review, "marker_worker", 60_000)
    qtbot.waitUntil(lambda: review.markers.rowCount() > 0, timeout=60_000)
    assert review.markers.item(0, 0).text() in set(st.adata.var_names)

    # ---- export all formats and read them back
    paths = {fmt: exported(qtbot, export, fmt, tmp_path / f"{name}.{fmt}")
             for fmt, name in (("csv", "spots"), ("geojson", "spots"), ("h5ad", "section"), ("png", "view"))}
    assert not notes["error"], notes["error"]
    df = pd.read_csv(paths["csv"])
    assert len(df) == 64 and set(df["cluster_name"]) >= {"invasive cancer"}
    fc = json.loads(paths["geojson"].read_text())
    assert len(fc["features"]) == 64
    assert {f["properties"]["classification"]["name"] for f in fc["features"]} >= {"invasive cancer"}
    from PIL import Image

    with Image.open(paths["png"]) as im:
        assert im.size[0] > 10 and im.size[1] > 10

    # ---- never overwrite without asking
    before = paths["csv"].read_bytes()
    monkeypatch.setattr(_common, "ask_overwrite", lambda parent, p: False)
    st.rename("1", "stroma")
    assert exported(qtbot, export, "csv", paths["csv"]) is None
    assert paths["csv"].read_bytes() == before
    monkeypatch.setattr(_common, "ask_overwrite", lambda parent, p: True)
    assert exported(qtbot, export, "csv", paths["csv"]) == paths["csv"]
    assert "stroma" in pd.read_csv(paths["csv"])["cluster_name"].tolist()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left

    # ---- reopening the .h5ad restores clusters, names, colours and edits
    load = LoadWidget(viewer)
    again = _load(qtbot, load, str(paths["h5ad"]))
    st2 = ReviewState.from_layer(again)
    assert st2.name_of("0") == "invasive cancer" and st2.colour_of("1") == "#00ff00"
    assert st2.n_clusters == 5 and st2.log == st.log[: len(st2.log)]
    assert review.layer.value is again and review.legend.item(0, NAME).text() == "invasive cancer"


# --------------------------------------------------------------------------- error paths


def test_run_errors(qtbot, viewer, notes):
    from napari_senca.datasets import synthetic_section

    run = RunWidget(viewer)
    assert run.run() is None
    assert "no section loaded" in notes["error"][-1]

    pts = _common.add_section(viewer, synthetic_section(n_side=3, n_genes=40), "tiny")
    _small_run_settings(run)
    run.overrides["n_clusters"] = 20
    assert run.run() is None
    assert "more clusters (20) than spots (9)" in notes["error"][-1]

    run.overrides = {"steps_per_epoch": 1}
    run.n_clusters.value = 2
    run.image_weights.value = "file"
    assert run.run() is None
    assert "choose an image weights file" in notes["error"][-1]

    # an error inside the worker: a notification, the layer is left as it was
    run.image_weights.value = "none"
    run.weights_file.value = ""
    before = pts.features.copy()
    run.overrides = {"steps_per_epoch": 1, "backbone": "resnet18", "image_weights": "/no/such/weights.pth"}
    assert run.run() is not None
    _wait_idle(qtbot, run)
    assert "weights file not found" in notes["error"][-1]
    pd.testing.assert_frame_equal(pts.features, before)
    assert not run.running and run.run_btn.enabled


def test_stop_mid_run(qtbot, viewer, notes):
    from napari_senca.datasets import synthetic_section

    pts = _common.add_section(viewer, synthetic_section(n_side=6, n_genes=60), "s")
    run = RunWidget(viewer)
    _small_run_settings(run, epochs=200)
    run.use_image.value = False
    epoch_times: list[float] = []
    worker = run.run()
    worker.yielded.connect(lambda p: epoch_times.append(time.perf_counter()) if p.stage == "train" else None)
    qtbot.waitUntil(lambda: len(epoch_times) >= 2, timeout=60_000)
    epoch = epoch_times[1] - epoch_times[0]
    t0 = time.perf_counter()
    run.stop_btn.native.click()
    _wait_idle(qtbot, run)
    assert run.stopped and "stopped" in run.status.value
    assert time.perf_counter() - t0 < epoch + 5.0  # within about one epoch
    assert worker._gen.gi_frame is None  # the run's generator is closed: its model and tensors are freed now
    assert CLUSTER_KEY not in pts.features and CLUSTER_KEY not in pts.metadata["adata"].obs
    assert not notes["error"]


def test_review_and_export_errors(qtbot, viewer, notes, monkeypatch, tmp_path):
    review, export = ReviewWidget(viewer), ExportWidget(viewer)
    # nothing loaded
    assert review.assign_selected() is None and "no section loaded" in notes["error"][-1]
    assert export.export_csv(tmp_path / "a.csv") is None and "no section loaded" in notes["error"][-1]
    review.set_n_clusters(3)
    assert "no section loaded" in notes["error"][-1]

    from napari_senca.datasets import synthetic_section

    plain = _common.add_section(viewer, synthetic_section(n_side=4, n_genes=40), "plain")
    assert export.export_geojson(tmp_path / "a.geojson") is None and "run the model first" in notes["error"][-1]
    assert review.undo() is None and "nothing to undo" in notes["error"][-1]
    assert not (tmp_path / "a.geojson").exists()
    viewer.layers.remove(plain)

    pts = _common.add_section(viewer, annotated_section(), "annotated")
    assert review.layer.value is pts and review.legend.rowCount() == 3
    pts.selected_data = set()
    assert review.assign_selected() is None and "no spots selected" in notes["error"][-1]
    # lasso: select the spots inside a shape drawn on a Shapes layer
    assert review.select_in_shapes() is None and "draw around the spots" in notes["error"][-1]
    r0, c0 = pts.data[[0, 1]].min(0) - 1
    r1, c1 = pts.data[[0, 1]].max(0) + 1
    viewer.add_shapes([np.array([[r0, c0], [r0, c1], [r1, c1], [r1, c0]])], shape_type="polygon", name="lasso")
    assert review.select_in_shapes() == [0, 1]
    assert pts.selected_data == {0, 1} and viewer.layers.selection.active is pts
    assert review.assign_selected("2") == "2"
    assert list(pts.features[CLUSTER_KEY].iloc[:2]) == ["2", "2"]
    review.undo()
    review.set_n_clusters(10_000)
    assert "more clusters" in notes["error"][-1]
    assert review.colour_by_gene("NOTAGENE") is None and "no gene 'NOTAGENE'" in notes["error"][-1]
    review.legend.item(0, NAME).setText("cluster 1")  # duplicate name: refused, legend restored
    assert "already used" in notes["error"][-1]
    assert review.legend.item(0, NAME).text() == "cluster 0"
    assert review.merge("0", "0") is None and "two different" in notes["error"][-1]
    monkeypatch.setattr(_common, "pick_colour", lambda parent, initial: None)  # cancelled dialog
    n = len(notes["error"])
    review.recolour("0")
    assert len(notes["error"]) == n and not ReviewState.from_layer(pts).can_undo

    # points deleted by hand: a clear error rather than a wrong export
    pts.data = pts.data[:-1]
    assert export.export_csv(tmp_path / "b.csv") is None and "points were added or deleted" in notes["error"][-1]
    # the save dialog cancelled: nothing written, no error
    monkeypatch.setattr(_common, "ask_save_path", lambda *a, **k: None)
    n = len(notes["error"])
    assert export.export_png() is None and len(notes["error"]) == n


def test_widgets_in_napari_menus(viewer):
    from napari._app_model import get_app_model

    menus = get_app_model().menus

    def titles(menu_id):
        return [str(getattr(getattr(i, "command", None), "title", "")) for i in menus.get_menu(menu_id)]

    assert any("Run SENCA-st" in t for t in titles("senca_segment"))
    assert any("Review regions" in t for t in titles("napari/layers/annotate"))
    assert any("Load section" in t for t in titles("napari/file/io_utilities"))
    for name, cls in (("Load section", LoadWidget), ("Run SENCA-st", RunWidget),
                      ("Review regions", ReviewWidget), ("Export regions", ExportWidget)):
        _, widget = viewer.window.add_plugin_dock_widget("napari-senca", name)
        assert isinstance(widget, cls)


@pytest.mark.qt
def test_export_never_replaces_the_sections_input(qtbot, viewer, notes, monkeypatch, tmp_path):
    """The Export widget refuses the file the section was read from, before asking 'replace?'."""
    from napari_senca.io import read_section, write_h5ad

    src = tmp_path / "in.h5ad"
    write_h5ad(annotated_section(), src)
    before = src.read_bytes()
    _common.add_section(viewer, read_section(src), "in")
    export = ExportWidget(viewer)
    asked = []
    monkeypatch.setattr(_common, "ask_overwrite", lambda parent, p: asked.append(p) or True)
    for do in (export.export_h5ad, export.export_csv, export.export_geojson):
        assert do(src) is None and "the section was read from this file" in notes["error"][-1]
    assert asked == [] and src.read_bytes() == before
    assert exported(qtbot, export, "h5ad", tmp_path / "out.h5ad") == tmp_path / "out.h5ad"  # anything else is written


@pytest.mark.qt
def test_export_writes_in_a_worker_from_a_snapshot(qtbot, viewer, notes, monkeypatch, tmp_path):
    """The viewer runs on while a file is written; edits made meanwhile do not reach it; one write at a time."""
    import threading

    import napari_senca.export as export_mod

    pts = _common.add_section(viewer, annotated_section(), "annotated")
    st = ReviewState.from_layer(pts)
    export = ExportWidget(viewer)
    gate, real = threading.Event(), export_mod.write_clusters_csv
    monkeypatch.setattr(export_mod, "write_clusters_csv", lambda *a, **k: (gate.wait(30), real(*a, **k))[1])
    target = tmp_path / "spots.csv"
    assert export.export_csv(target) is not None  # returns at once, the worker waits for the gate
    assert export.worker is not None and not export.csv_btn.enabled and "writing spots.csv" in export.status.value
    before = st.adata.obs[CLUSTER_KEY].astype(str).to_numpy()
    st.rename("0", "renamed meanwhile")
    st.assign(range(20), "1")
    assert exported(qtbot, export, "h5ad", tmp_path / "b.h5ad") is None
    assert "still writing spots.csv" in notes["error"][-1]
    gate.set()
    qtbot.waitUntil(lambda: export.worker is None, timeout=30_000)
    df = pd.read_csv(target)
    assert "renamed meanwhile" not in set(df["cluster_name"]) and (df["cluster"].astype(str) == before).all()
    assert (before[:20] != "1").any()
    assert export.last_path == target and export.csv_btn.enabled and "CSV written" in notes["info"][-1]
    again = exported(qtbot, export, "csv", tmp_path / "after.csv")  # written now: the edits are in
    assert "renamed meanwhile" in set(pd.read_csv(again)["cluster_name"])


@pytest.mark.qt
def test_export_error_in_the_worker_is_one_notification(qtbot, viewer, notes, monkeypatch, tmp_path):
    import errno

    import napari_senca.io as io_mod

    def full_disk(adata, path, overwrite=False):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    _common.add_section(viewer, annotated_section(), "annotated")
    export = ExportWidget(viewer)
    monkeypatch.setattr(io_mod, "write_h5ad", full_disk)
    assert exported(qtbot, export, "h5ad", tmp_path / "c.h5ad") is None
    assert "No space left on device" in notes["error"][-1] and "c.h5ad" in notes["error"][-1]
    assert export.status.value.startswith("not written") and export.h5ad_btn.enabled
    assert not (tmp_path / "c.h5ad").exists()


@pytest.mark.qt
def test_labels_colouring_is_compiled_in_a_daemon_thread_once(viewer):
    """Opening a dock widget compiles napari's labels colouring off the GUI thread, once per process, no layer made."""
    import time

    import numpy as np
    from napari.utils.colormaps import DirectLabelColormap

    from napari_senca._qt import _workers

    n_layers = len(viewer.layers)
    ExportWidget(viewer)
    thread = _workers.start_labels_warm_up()
    assert thread is _workers.start_labels_warm_up() and thread.daemon
    thread.join(60)
    assert not thread.is_alive() and len(viewer.layers) == n_layers
    from napari.utils.colormaps import _accelerated_cmap

    compiled = {str(sig[0].dtype) for sig in _accelerated_cmap._labels_raw_to_texture_direct_inner_loop.signatures}
    assert {"uint8", "uint16"} <= compiled  # no test before makes a uint16 labels layer: the warm-up compiled it
    t = time.perf_counter()
    DirectLabelColormap(color_dict={None: "#00000000", 0: "#00000000", 5: "#ff0000"}).map(np.ones((3, 3), np.uint16))
    assert time.perf_counter() - t < 0.5  # compiled already (cold: 1-2 s)
