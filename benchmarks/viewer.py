"""The napari review at Visium HD scale: open, recolour, select, relabel, undo (issue 10, item 5).

A synthetic Visium-HD-like section (square bins inside an elliptic tissue
outline, six regions as clusters, an H&E-like image) is opened in a real
napari viewer with the Review widget, and each interaction is timed until the
canvas has been redrawn (``viewer.screenshot`` renders it). Run under Xvfb::

    xvfb-run -a -s "-screen 0 1600x1000x24" env QT_API=pyqt6 PYTHONPATH=src \\
        python benchmarks/viewer.py --bins 100000 500000
    ... python benchmarks/viewer.py --shot docs/images/viewer_raster.png
    ... python benchmarks/viewer.py --embedding --bins 500000      # the Embedding view on the raster
    ... python benchmarks/viewer.py --embedding --shot docs/images/viewer_embedding_raster.png

Prints a Markdown table (one column per size; each size in a fresh process).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp


def hd_section(n_bins: int, n_genes: int = 100, n_regions: int = 6, bin_px: float = 30.0, seed: int = 0) -> Any:
    """A Visium-HD-like section of about ``n_bins`` square bins with a clustering in ``obs["senca_cluster"]``.

    Bins lie on a square grid (``array_row``/``array_col``) inside an ellipse;
    regions are Voronoi cells of random seeds with 2 % noise; counts are
    Poisson with region-specific markers (sparse); the H&E-like image is
    stored at about 2,000 px on its long side.
    """
    from napari_senca.section import CLUSTER_KEY, UNS_KEY, make_section

    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n_bins * 4 / np.pi)))  # an ellipse inscribed in a side x side box
    gy, gx = np.mgrid[0:side, 0:side]
    c = (side - 1) / 2
    inside = ((gy - c) / (side / 2)) ** 2 + ((gx - c) / (side / 2)) ** 2 <= 1
    rows, cols = gy[inside], gx[inside]
    n = rows.size
    seeds = rng.uniform(0, side, size=(n_regions, 2))
    d = (rows[:, None] - seeds[None, :, 0]) ** 2 + (cols[:, None] - seeds[None, :, 1]) ** 2
    region = d.argmin(1)
    noise = rng.random(n) < 0.02
    region[noise] = rng.integers(0, n_regions, noise.sum())

    rate = np.full((n_regions, n_genes), 0.3, dtype=np.float32)
    for r in range(n_regions):
        rate[r, r * 5 : r * 5 + 5] = 3.0
    blocks = []
    for s in range(0, n, 50_000):
        blocks.append(sp.csr_matrix(rng.poisson(rate[region[s : s + 50_000]]).astype(np.float32)))
    counts = sp.vstack(blocks).tocsr()
    genes = [f"G{i}" for i in range(n_genes)]
    ids = [f"s_008um_{r:05d}_{q:05d}-1" for r, q in zip(rows, cols, strict=True)]
    margin = 20 * bin_px
    xy = np.stack([margin + cols * bin_px, margin + rows * bin_px], 1).astype(np.float64)

    full = 2 * margin + side * bin_px
    scalef = 2000.0 / full
    img_side = int(full * scalef)
    iy, ix = np.mgrid[0:img_side, 0:img_side]
    by = ((iy / scalef - margin) / bin_px).round().astype(int)
    bx = ((ix / scalef - margin) / bin_px).round().astype(int)
    off = (by < 0) | (by >= side) | (bx < 0) | (bx >= side)
    reg = np.full((side, side), -1)
    reg[rows, cols] = region
    pix = np.where(off, -1, reg[np.clip(by, 0, side - 1), np.clip(bx, 0, side - 1)])
    stain = np.array([[214, 170, 200], [180, 120, 170], [120, 90, 160], [225, 150, 185], [160, 110, 180],
                      [200, 140, 190]], dtype=np.float64)  # fmt: skip
    img = np.where(pix[..., None] >= 0, stain[pix % len(stain)], 245.0)
    img = np.clip(img + rng.normal(0, 10, img.shape), 0, 255).astype(np.uint8)

    adata = make_section(counts, ids, genes, xy, array_row=rows, array_col=cols, image=img, image_scalef=scalef,
                         spot_diameter_fullres=bin_px, library_id="hd_synthetic", source_format="synthetic")  # fmt: skip
    adata.obs[CLUSTER_KEY] = pd.Categorical(region.astype(str), categories=[str(i) for i in range(n_regions)])
    adata.uns[UNS_KEY] = {"n_clusters": n_regions}
    return adata


def with_embedding(adata: Any, dim: int = 16, seed: int = 0) -> Any:
    """Give a section from :func:`hd_section` a SENCA-like ``X_senca`` (regions as noisy clusters) and confidence."""
    from napari_senca.confidence import record_model_call
    from napari_senca.section import CLUSTER_KEY, EMBED_KEY

    rng = np.random.default_rng(seed)
    codes = adata.obs[CLUSTER_KEY].cat.codes.to_numpy()
    centres = rng.normal(0, 1.0, size=(codes.max() + 1, dim)).astype(np.float32)
    adata.obsm[EMBED_KEY] = centres[codes] + rng.normal(0, 0.45, size=(adata.n_obs, dim)).astype(np.float32)
    record_model_call(adata)
    return adata


def plot_lasso(xy: np.ndarray, frac: float = 0.3, n_vertices: int = 400) -> np.ndarray:
    """A wobbly closed lasso (``n_vertices``, plot x/y) around about ``frac`` of the points of a 2-D layout."""
    centre = np.median(xy, axis=0)
    d = np.linalg.norm((xy - centre) / xy.std(0), axis=1)
    r = float(np.quantile(d, frac)) * xy.std(0)
    t = np.linspace(0, 2 * np.pi, n_vertices, endpoint=False)
    wobble = 1 + 0.08 * np.sin(7 * t)
    return centre + np.stack([np.cos(t), np.sin(t)], 1) * r * wobble[:, None]


def lasso(adata: Any, frac: float = 0.3, n_vertices: int = 400) -> np.ndarray:
    """A wobbly closed lasso (``n_vertices``, napari row/col) around about ``frac`` of the section."""
    yx = np.asarray(adata.obsm["spatial"])[:, ::-1]
    lo, hi = yx.min(0), yx.max(0)
    centre = lo + (hi - lo) * np.array([0.4, 0.55])
    r = (hi - lo) * np.sqrt(frac / np.pi)
    t = np.linspace(0, 2 * np.pi, n_vertices, endpoint=False)
    wobble = 1 + 0.08 * np.sin(7 * t)
    return centre + np.stack([np.sin(t), np.cos(t)], 1) * r * wobble[:, None]


def _timed(viewer: Any, fn: Callable[[], Any]) -> str:
    """Wall and CPU seconds (this process, all its threads) for ``fn`` and the redraw that follows.

    On a shared machine the wall time includes waiting for a core; the CPU
    time is the work done.
    """
    from qtpy.QtWidgets import QApplication

    t0, c0 = time.perf_counter(), time.process_time()
    res = fn()
    viewer = res[0] if viewer is None else viewer  # no viewer yet: fn makes it and returns it first
    QApplication.processEvents()
    viewer.screenshot(canvas_only=True)
    return f"{time.perf_counter() - t0:.2f} / {time.process_time() - c0:.2f}"


def _timed_plot(viewer: Any, widget: Any, fn: Callable[[], Any]) -> str:
    """As :func:`_timed`, and the Embedding view's plot is rendered too (its ``draw_idle`` or ``draw``)."""
    from qtpy.QtWidgets import QApplication

    def with_plot() -> Any:
        res = fn()
        view = res if widget is None else widget  # no widget yet: fn makes it and returns it
        QApplication.processEvents()  # the view's sync after a review edit and its pending draw_idle run here
        if getattr(view.canvas, "_draw_pending", False):
            view.canvas.draw()
        return res

    return _timed(viewer, with_plot)


def run(n_bins: int) -> dict[str, float | int | str]:
    """Open a synthetic section of ``n_bins`` bins and time the review interactions."""
    from napari_senca._qt import _common
    from napari_senca._qt._review import NEW_REGION

    t0 = time.perf_counter()
    adata = hd_section(n_bins)
    out: dict[str, float | int | str] = {"bins": adata.n_obs, "build section ": f"{time.perf_counter() - t0:.1f}"}
    viewer, review = _review_viewer()
    layer: list[Any] = []
    out["open: add layers + first draw "] = _timed(viewer, lambda: layer.append(_common.add_section(viewer, adata, "HD")))
    spots = layer[0]
    out["layer"] = type(spots).__name__
    out["redraw alone, no change "] = _timed(viewer, lambda: None)
    out["recolour by gene "] = _timed(viewer, lambda: review.colour_by_gene("G3"))
    out["recolour by gene again "] = _timed(viewer, lambda: review.colour_by_gene("G12"))
    out["recolour by region "] = _timed(viewer, lambda: review.colour_by_clusters())
    out["change a region's colour "] = _timed(viewer, lambda: review.recolour("1", "#ff1744"))
    out["hide a region "] = _timed(viewer, lambda: review.set_visible("2", False))
    out["show it again "] = _timed(viewer, lambda: review.set_visible("2", True))
    shapes = viewer.add_shapes([lasso(adata)], shape_type="polygon", name="lasso", face_color="transparent",
                               edge_color="cyan", edge_width=max(2.0, 0.002 * adata.obsm["spatial"].max()))  # fmt: skip
    sel: list[Any] = []
    out["select inside a 400-vertex lasso "] = _timed(viewer, lambda: sel.append(review.select_in_shapes(shapes)))
    out["bins selected"] = len(sel[0] or [])
    out["assign selection to a new region "] = _timed(viewer, lambda: review.assign_selected(NEW_REGION, "lasso"))
    out["merge two regions "] = _timed(viewer, lambda: review.merge("0", "3"))
    out["undo "] = _timed(viewer, lambda: review.undo())
    out["redo "] = _timed(viewer, lambda: review.redo())
    out["undo twice "] = _timed(viewer, lambda: (review.undo(), review.undo()))
    st = review.state()
    out["undo memory (kB)"] = round(st.history.nbytes / 1024, 1)
    viewer.close()
    return out


def _review_viewer() -> tuple[Any, Any]:
    """A 1500 x 950 viewer with the Review widget docked: (viewer, review)."""
    import napari

    from napari_senca._qt import ReviewWidget

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1500, 950)
    review = ReviewWidget(viewer)
    viewer.window.add_dock_widget(review, name="Review regions", area="right")
    return viewer, review


def _hd_viewer(adata: Any, name: str) -> tuple[Any, Any, Any]:
    """A viewer with the Review widget docked and ``adata`` added: (viewer, review, layer)."""
    from napari_senca._qt import _common

    viewer, review = _review_viewer()
    return viewer, review, _common.add_section(viewer, adata, name)


def _save_shot(viewer: Any, path: str) -> None:
    """Let the window settle (a second), save the whole window as ``path`` and close it."""
    from qtpy.QtWidgets import QApplication

    viewer.reset_view()
    for _ in range(5):
        QApplication.processEvents()
        time.sleep(0.2)
    viewer.screenshot(path, canvas_only=False)
    viewer.close()


def _keep(store: list[Any], items: Any) -> Any:
    """Append ``items`` to ``store`` and return them (to keep what a timed lambda made)."""
    store.extend(items)
    return items


def _dock_view(viewer: Any) -> Any:
    """Dock the Embedding view (tabbed with the Review widget); it plots the section at once."""
    from napari_senca._qt import EmbeddingWidget

    view = EmbeddingWidget(viewer)
    viewer.window.add_dock_widget(view, name="Embedding view", area="right", tabify=True)
    return view


def run_embedding(n_bins: int) -> dict[str, float | int | str]:
    """Time the Embedding view linked to a raster section of ``n_bins`` bins (a fresh viewer)."""
    from qtpy.QtWidgets import QApplication

    from napari_senca import embedding_view as emb
    from napari_senca._qt._review import NEW_REGION
    from napari_senca.review import raster as _raster

    _raster.RASTER_MIN_SPOTS = 0  # the raster at every size (below 50,000 bins it would be points)
    t0 = time.perf_counter()
    adata = with_embedding(hd_section(n_bins))
    out: dict[str, float | int | str] = {"bins": adata.n_obs, "build section ": f"{time.perf_counter() - t0:.1f}"}
    got: list[Any] = []
    out["open the section: raster + Review widget "] = _timed(None, lambda: _keep(got, _hd_viewer(adata, "HD")))
    viewer, review, layer = got
    QApplication.processEvents()
    out["open the Embedding view: PCA (16 dims) + first plot "] = _timed_plot(
        viewer, None, lambda: _keep(got, [_dock_view(viewer)])[0])  # fmt: skip
    view = got[-1]
    out["points drawn in the plot"] = len(view.points.drawn)
    out["redraw plot + canvas, no change "] = _timed_plot(viewer, view, lambda: None)
    verts = plot_lasso(view.xy)
    t0 = time.perf_counter()
    inside = emb.points_in_lasso(view.xy, verts)
    out["of which: bins inside a 400-vertex plot lasso (numpy) "] = f"{time.perf_counter() - t0:.2f}"
    out["plot lasso: select bins, outline on the raster, highlight in the plot "] = _timed_plot(
        viewer, view, lambda: view._on_lasso(verts))  # fmt: skip
    out["bins selected in the plot"] = int(_raster.selected_bins(layer).size)
    assert np.array_equal(_raster.selected_bins(layer), inside)
    shapes = viewer.add_shapes([lasso(adata, 0.1)], shape_type="polygon", name="lasso", face_color="transparent",
                               edge_color="cyan", edge_width=max(2.0, 0.002 * adata.obsm["spatial"].max()))  # fmt: skip
    out["shape on the H&E: select bins, highlight in the plot "] = _timed_plot(
        viewer, view, lambda: review.select_in_shapes(shapes))  # fmt: skip
    out["colour by confidence (raster + plot) "] = _timed_plot(viewer, view, lambda: view.colour_by_confidence(True))
    out["select uncertain bins (< 0.25) "] = _timed_plot(viewer, view, lambda: view.select_uncertain(0.25))
    out["uncertain bins"] = int(_raster.selected_bins(layer).size)
    view._on_lasso(verts)
    out["assign the plot selection to a new region (+ plot, confidence) "] = _timed_plot(
        viewer, view, lambda: review.assign_selected(NEW_REGION, "lasso"))  # fmt: skip
    out["undo (+ plot, confidence) "] = _timed_plot(viewer, view, lambda: review.undo())
    out["colour by region again "] = _timed_plot(viewer, view, lambda: view.colour_by_confidence(False))
    viewer.close()
    return out


def screenshot_embedding(path: str, n_bins: int = 20_000) -> None:
    """Save a picture of the Embedding view linked to a raster: a plot lasso and the bins it selects."""

    from napari_senca.review import raster as _raster

    _raster.RASTER_MIN_SPOTS = 0  # a small section, drawn as a raster for the picture
    viewer, review, layer = _hd_viewer(with_embedding(hd_section(n_bins)), "HD synthetic")
    view = _dock_view(viewer)
    review.rename("0", "invasive cancer")
    review.rename("1", "stroma")
    st = review.state()
    own = view.xy[st.spots_of("1")]
    t = np.linspace(0, 2 * np.pi, 60, endpoint=False)
    wobble = (1 + 0.08 * np.sin(5 * t))[:, None]  # around the stroma's cluster
    verts = np.median(own, axis=0) + np.stack([np.cos(t), np.sin(t)], 1) * 2.6 * own.std(0) * wobble
    view._on_lasso(verts)
    view.ax.plot(*np.vstack([verts, verts[:1]]).T, color="#ffff00", linewidth=1.2)  # the lasso, as drawn
    _save_shot(viewer, path)


def screenshot(path: str, n_bins: int = 20_000, gene: str | None = None) -> None:
    """Save a picture of the raster review: regions on the H&E, a lasso and its selection outline."""
    from napari_senca.review import raster as _raster

    _raster.RASTER_MIN_SPOTS = 0  # a small section, drawn as a raster for the picture
    adata = hd_section(n_bins)
    viewer, review, _ = _hd_viewer(adata, "HD synthetic")
    review.rename("0", "invasive cancer")
    review.rename("1", "stroma")
    shapes = viewer.add_shapes([lasso(adata, 0.12, 120)], shape_type="polygon", name="lasso",
                               face_color="transparent", edge_color="cyan", edge_width=25.0)  # fmt: skip
    review.select_in_shapes(shapes)
    if gene:
        review.colour_by_gene(gene)
    _save_shot(viewer, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bins", type=int, nargs="+", default=[100_000, 500_000])
    ap.add_argument("--one", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--shot", default=None, help="only save a screenshot of a 20,000-bin raster (PNG)")
    ap.add_argument("--gene", default=None, help="colour the screenshot by this gene")
    ap.add_argument("--embedding", action="store_true", help="time (or picture) the Embedding view on the raster")
    args = ap.parse_args()
    if args.shot:
        screenshot_embedding(args.shot) if args.embedding else screenshot(args.shot, gene=args.gene)
        return
    if args.one:
        print("RESULT " + json.dumps(run_embedding(args.one) if args.embedding else run(args.one)))
        return
    rows = []
    extra = ["--embedding"] if args.embedding else []
    for n in args.bins:  # a fresh process per size: first-use costs (numba, shaders) count every time
        cmd = [sys.executable, __file__, "--one", str(n), *extra]
        res = subprocess.run(cmd, capture_output=True, text=True)
        line = [x for x in res.stdout.splitlines() if x.startswith("RESULT ")]
        if not line:
            raise SystemExit(f"{n} bins failed:\n{res.stderr[-3000:]}")
        rows.append(json.loads(line[0][7:]))
    keys = list(rows[0])
    print(f"load average before the run: {os.getloadavg()[0]:.1f}; cells: wall s / CPU s")
    print("| " + " | ".join(["step"] + [f"{r['bins']:,} bins" for r in rows]) + " |")
    print("|" + "---|" * (len(rows) + 1))
    for k in keys[1:]:
        cells = [f"{r[k]:.2f}" if isinstance(r[k], float) else str(r[k]) for r in rows]
        print("| " + " | ".join([k] + cells) + " |")


if __name__ == "__main__":
    main()
