"""Take the user guide's screenshots in a real napari window.

Opens the bundled HER2ST A1 sample with the Load widget, trains SENCA-st
through the Run widget (default settings, random image weights), reviews the
regions and saves PNGs to ``docs/images/``. Run it under an X server::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshots.py

Options: ``--epochs N`` (default 10, as the CLI), ``--out DIR`` (default docs/images).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# triton (probed by torch._dynamo) must load before any OpenGL context exists
import torch._dynamo  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    import napari
    import numpy as np
    from PIL import Image
    from qtpy.QtWidgets import QApplication

    from napari_senca._qt import ExportWidget, LoadWidget, ReviewWidget, RunWidget
    from napari_senca.review import ReviewState

    app = QApplication.instance() or QApplication(sys.argv)

    def wait(cond, timeout=600.0):
        t0 = time.time()
        while not cond():
            app.processEvents()
            time.sleep(0.02)
            if time.time() - t0 > timeout:
                raise TimeoutError("timed out")
        for _ in range(20):
            app.processEvents()
            time.sleep(0.01)

    def settle(n=30):
        for _ in range(n):
            app.processEvents()
            time.sleep(0.02)

    def hide_toasts():
        # notification pop-ups would cover the canvas in the pictures
        try:
            from napari._qt.dialogs.qt_notification import NapariQtNotification

            for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
                toast.close()
        except Exception:
            pass
        settle(10)

    def shot(name, canvas_only=False):
        hide_toasts()
        return save(viewer.screenshot(canvas_only=canvas_only, flash=False), name)

    viewer = napari.Viewer(title="napari-senca: HER2ST A1", show=True)
    win = viewer.window._qt_window
    win.resize(1560, 960)
    load, run, review, export = LoadWidget(viewer), RunWidget(viewer), ReviewWidget(viewer), ExportWidget(viewer)
    docks = {}
    for name, w in (("Load section", load), ("Run SENCA-st", run), ("Review regions", review),
                    ("Export regions", export)):
        docks[name] = viewer.window.add_dock_widget(w, name=name, area="right", tabify=True)
    settle()

    def save(img: np.ndarray | Image.Image, name: str) -> Path:
        p = args.out / name
        (img if isinstance(img, Image.Image) else Image.fromarray(img)).save(p)
        print("wrote", p)
        return p

    def grab(widget, name: str) -> Image.Image:
        pm = widget.grab()
        pm.save(str(args.out / name))
        print("wrote", args.out / name)
        return Image.open(args.out / name).convert("RGB")

    # ---- load the sample (before training: spots coloured by pathologist label)
    docks["Load section"].raise_()
    load.load("sample:her2st_A1")
    wait(lambda: load.worker is None)
    pts = load.last_layer
    settle()
    shot("viewer_labels.png")
    docks["Review regions"].raise_()  # before a run the Review legend explains the label colours
    settle()
    grab(docks["Review regions"], "widget_review_labels.png")

    # ---- train through the Run widget
    docks["Run SENCA-st"].raise_()
    run.epochs.value = args.epochs
    run.image_weights.value = "none"
    run.device.value = "cpu"
    t0 = time.time()
    run.run()
    wait(lambda: run.progress.value >= 1 and run.last_progress is not None and run.last_progress.stage == "train")
    settle(5)
    w_run_progress = grab(docks["Run SENCA-st"], "widget_run_progress.png")
    wait(lambda: run.worker is None)
    print(f"trained in {time.time() - t0:.1f} s: {run.status.value}")
    settle()
    w_run = grab(docks["Run SENCA-st"], "widget_run.png")

    # ---- review: name each region after the pathologist label most of its spots carry
    st = ReviewState.from_layer(pts)
    obs = st.adata.obs
    tab = obs.groupby(["senca_cluster", "label"], observed=True).size().unstack(fill_value=0)
    used: set[str] = set()
    for cid, row in tab.iterrows():
        name = str(row.idxmax())
        if row.max() >= 0.5 * row.sum() and name not in used:
            review.rename(str(cid), name)
            used.add(name)
    docks["Review regions"].raise_()
    review.show_markers(st.clusters[0])
    wait(lambda: review.marker_worker is None)
    settle()
    viewer.layers.selection.active = pts
    shot("viewer_clusters.png")
    w_review = grab(docks["Review regions"], "widget_review.png")
    shot("canvas_clusters.png", canvas_only=True)

    # ---- colour by a gene (ERBB2 = HER2)
    gene = "ERBB2" if "ERBB2" in st.adata.var_names else st.genes()[0]
    review.colour_by_gene(gene)
    settle()
    viewer.reset_view()
    settle()
    shot("viewer_gene.png")
    grab(docks["Review regions"], "widget_review_gene.png")  # the colour bar with the gene's range
    review.colour_by_clusters()

    # ---- inspect a region: click its legend row (selects its spots), hide another one
    leg = st.legend()
    big = str(leg.sort_values("n_spots").iloc[-1]["cluster"])
    row = st.clusters.index(big)
    review.legend.cellClicked.emit(row, 2)
    review.set_visible(st.clusters[(row + 1) % st.n_clusters], False)
    pts.mode = "pan_zoom"
    settle()
    shot("viewer_region_selected.png")
    grab(docks["Review regions"], "widget_review_hidden.png")
    review.set_visible(st.clusters[(row + 1) % st.n_clusters], True)
    pts.selected_data = set()

    # ---- draw around some spots (Shapes lasso/polygon), select them, assign a new region
    xy = pts.data
    centre = xy.mean(0)
    spacing = float(np.median(np.sort(np.linalg.norm(xy[:, None] - xy[None], axis=-1), 1)[:, 1]))
    t = np.linspace(0, 2 * np.pi, 9, endpoint=False)
    radius = spacing * (1.6 + 0.35 * np.cos(3 * t))  # an irregular, hand-drawn-looking outline
    outline = np.stack([centre[0] + radius * np.sin(t), centre[1] + radius * np.cos(t)], 1)
    lasso = viewer.add_shapes([outline], shape_type="polygon", name="lasso", edge_color="yellow",
                              face_color=[1, 1, 0, 0.15], edge_width=spacing * 0.08)
    review.select_in_shapes(lasso)
    scene = getattr(viewer, "scene", None)  # napari >= 0.9
    camera = scene.camera if scene is not None else viewer.camera
    camera.center = tuple(centre)
    camera.zoom = camera.zoom * 2.2
    settle()
    shot("viewer_lasso.png")
    review.target.value = "+ new region"
    review.new_name.value = "DCIS (manual)"
    review.assign_selected()
    pts.selected_data = set()
    pts.mode = "pan_zoom"
    lasso.visible = False
    settle()
    shot("viewer_edited.png")
    review.undo()
    viewer.layers.remove(lasso)
    viewer.reset_view()
    settle()

    docks["Load section"].raise_()
    settle()
    w_load = grab(docks["Load section"], "widget_load.png")
    docks["Export regions"].raise_()
    settle()
    w_export = grab(docks["Export regions"], "widget_export.png")

    # ---- one picture of all four widgets side by side
    tiles = [w_load, w_run, w_review, w_export]
    h = max(t.height for t in tiles)
    sheet = Image.new("RGB", (sum(t.width for t in tiles) + 10 * (len(tiles) - 1), h), (38, 41, 48))
    x = 0
    for t in tiles:
        sheet.paste(t, (x, 0))
        x += t.width + 10
    save(sheet, "widgets.png")
    del w_run_progress

    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
