"""Take the user guide's screenshots in a real napari window.

Opens the bundled HER2ST A1 sample with the Load widget, trains SENCA-st
through the Run widget (default settings, random image weights), reviews the
regions and saves PNGs to ``docs/images/``. Run it under an X server::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshots.py

Options: ``--epochs N`` (default 10, as the CLI), ``--out DIR`` (default docs/images).
``screenshots.py embedding [--section annotated.h5ad]`` takes only the Embedding
view shots (from a saved annotated section, or after a fresh run).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# triton (probed by torch._dynamo) must load before any OpenGL context exists
import torch._dynamo  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]


def settle(n: int = 30) -> None:
    """Let Qt process events for about ``n`` x 20 ms (layouts, repaints)."""
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance()
    for _ in range(n):
        app.processEvents()
        time.sleep(0.02)


def wait(cond, timeout: float = 600.0) -> None:
    """Process events until ``cond()`` holds, then settle."""
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance()
    t0 = time.time()
    while not cond():
        app.processEvents()
        time.sleep(0.02)
        if time.time() - t0 > timeout:
            raise TimeoutError("timed out")
    settle(20)


def hide_toasts(viewer) -> None:
    """Close napari's notification pop-ups, which would cover the canvas in the pictures."""
    try:
        from napari._qt.dialogs.qt_notification import NapariQtNotification

        for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
            toast.close()
    except Exception:
        pass
    settle(10)


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

    app = QApplication.instance() or QApplication(sys.argv)  # noqa: F841 (kept alive for the run)

    def shot(name, canvas_only=False):
        hide_toasts(viewer)
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

    # ---- five spots of each pathologist region assigned by hand, then "Classify the rest from assigned spots"
    rng = np.random.default_rng(0)
    truth = st.adata.obs["label"].astype(str).to_numpy()
    regions = sorted(set(truth[st.adata.obs["label"].notna().to_numpy()]))
    for region in regions:
        members = np.flatnonzero(truth == region)
        pts.selected_data = set(rng.choice(members, min(5, len(members)), replace=False).tolist())
        review.target.value = "+ new region"
        review.new_name.value = f"{region} (by hand)"
        review.assign_selected()
    pts.selected_data = set()

    def grab_question() -> None:  # the button's Keep / Drop question (the clustered regions have no spot by hand)
        from qtpy.QtCore import QTimer
        from qtpy.QtWidgets import QApplication

        box = QApplication.activeModalWidget()
        if box is None:
            QTimer.singleShot(50, grab_question)
            return
        grab(box, "dialog_classify_keep_drop.png")
        next(b for b in box.buttons() if b.text().replace("&", "") == "Cancel").click()  # Cancel: nothing changes

    from qtpy.QtCore import QTimer

    QTimer.singleShot(200, grab_question)
    review.classify_btn.native.click()
    review.classify_rest()  # Drop: the pathologist's regions only
    settle()
    shot("viewer_classified.png")
    for _ in range(len(regions) + 1):
        review.undo()
    settle()

    # ---- the regions named after the other seven annotated HER2ST sections (when the shared data are here)
    her2st = ROOT.parent / "shared" / "data" / "her2st"
    if her2st.is_dir():
        review.name_from_reference([str(her2st / s) for s in ("B1", "C1", "D1", "E1", "F1", "G2", "H1")])
        wait(lambda: review.reference_worker is None)
        settle()
        shot("viewer_named_from_reference.png")
        review.undo()
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

    embedding_shots(viewer, pts, args.out)
    viewer.close()
    return 0


# --------------------------------------------------------------------------- embedding view + confidence


def embedding_shots(viewer, pts, out: Path) -> list[Path]:
    """viewer_embedding.png (a lasso in the plot selects spots on the H&E) and
    viewer_confidence.png (spots coloured by confidence, the uncertain ones selected)."""
    import numpy as np
    from matplotlib.patches import Polygon
    from PIL import Image

    from napari_senca._qt import EmbeddingWidget
    from napari_senca.embedding_view import points_in_lasso

    def shot(name):
        hide_toasts(viewer)
        p = out / name
        Image.fromarray(viewer.screenshot(canvas_only=False, flash=False)).save(p)
        print("wrote", p)
        return p

    w = EmbeddingWidget(viewer)
    dock = viewer.window.add_dock_widget(w, name="Embedding view", area="right", tabify=True)
    dock.setMinimumWidth(460)
    dock.raise_()
    viewer.layers.selection.active = pts
    viewer.reset_view()
    w.method.value = "umap"  # the picture shows UMAP; PCA (the default) is instant
    t0 = time.time()
    while w.worker is not None and time.time() - t0 < 300:
        settle(5)
    settle()
    # a hand-drawn-looking lasso around the second-largest region in the plot
    labels = pts.metadata["adata"].obs["senca_cluster"].astype(str).to_numpy()
    xy = w.xy
    sel = xy[labels == "1"]
    c, r = np.median(sel, 0), np.percentile(np.abs(sel - np.median(sel, 0)), 80, axis=0) * 1.6
    t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    wobble = 1 + 0.12 * np.sin(3 * t) + 0.06 * np.cos(5 * t)
    lasso = np.stack([c[0] + r[0] * wobble * np.cos(t), c[1] + r[1] * wobble * np.sin(t)], 1)
    w._on_lasso(lasso)
    w.ax.add_patch(Polygon(lasso, closed=True, fill=False, edgecolor="#ffff00", linestyle="--", linewidth=1.2))
    w.ax.update_datalim(lasso)
    w.ax.autoscale_view()
    w.canvas.draw_idle()
    # zoom the H&E onto the selected spots
    scene = getattr(viewer, "scene", None)  # napari >= 0.9
    camera = scene.camera if scene is not None else viewer.camera
    chosen = pts.data[sorted(pts.selected_data)]
    camera.center = tuple(chosen.mean(0))
    camera.zoom = camera.zoom * 1.8
    settle()
    print(f"lasso in the plot selected {len(points_in_lasso(xy, lasso))} spots")
    paths = [shot("viewer_embedding.png")]
    # colour by confidence, select the uncertain spots
    pts.selected_data = set()
    viewer.reset_view()
    w.replot()
    w.by_confidence.value = True
    idx = w.select_uncertain()
    settle()
    print(f"uncertain below {w.threshold.value:.2f}: {len(idx or [])} spots")
    paths.append(shot("viewer_confidence.png"))
    w.by_confidence.value = False
    pts.selected_data = set()
    return paths


def embedding_only(argv: list[str] | None = None) -> int:
    """Only the embedding-view shots, from an annotated .h5ad (``--section``) or a fresh run."""
    ap = argparse.ArgumentParser(description="embedding view screenshots only")
    ap.add_argument("--section", type=Path, default=None, help="annotated .h5ad (skips training)")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    import anndata
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_senca._qt._common import add_section

    app = QApplication.instance() or QApplication(sys.argv)
    if args.section is not None:
        adata = anndata.read_h5ad(args.section)
    else:
        from napari_senca.config import SencaConfig
        from napari_senca.datasets import her2st_a1
        from napari_senca.pipeline import annotate, run_senca

        adata = her2st_a1()
        annotate(adata, run_senca(adata, SencaConfig(epochs=args.epochs, image_weights="none", device="cpu")))
    viewer = napari.Viewer(title="napari-senca: HER2ST A1", show=True)
    viewer.window._qt_window.resize(1560, 960)
    pts = add_section(viewer, adata, "her2st_A1")
    app.processEvents()
    embedding_shots(viewer, pts, args.out)
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(embedding_only(sys.argv[2:]) if sys.argv[1:2] == ["embedding"] else main())
