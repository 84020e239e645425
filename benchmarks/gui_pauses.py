"""Does exporting or re-clustering freeze napari? The longest pause of the event loop while they run.

A synthetic Visium-HD-like section (:func:`viewer.hd_section`, clusters and a
SENCA-like embedding set) is opened in a real viewer; each export (CSV,
GeoJSON, ``.h5ad``) is started from the Export widget, and a new cluster count
from the Review widget (k-means on the stored embedding), while a 5 ms Qt
timer ticks. The longest gap between two ticks is how long the viewer could
not redraw or answer a click; the wall time is until the file is written or
the regions have changed. Run under Xvfb::

    xvfb-run -a -s "-screen 0 1600x1000x24" env QT_API=pyqt6 PYTHONPATH=src \\
        python benchmarks/gui_pauses.py --bins 62500 160000
    ... python benchmarks/gui_pauses.py --bins 160000 --counts-per-bin 300   # a realistic .h5ad (600 MB)
    ... python benchmarks/gui_pauses.py --bins 160000 --first-open   # the first section of a session
    ... python benchmarks/gui_pauses.py --bins 62500 --click markers   # the first "Find marker genes"
    ... python benchmarks/gui_pauses.py --bins 160000 --counts-per-bin 300 --click run   # pressing Run
    ... python benchmarks/gui_pauses.py --bins 500000 --click recluster   # only the re-clustering
    ... python benchmarks/gui_pauses.py --bins 62500 --click umap   # the Embedding view's UMAP (first in a session)

Each size runs in a fresh process. Works with widgets that work on the GUI
thread (the methods return a path or None) and with ones that work in a
worker (they return the worker; the widget's ``worker`` / ``recluster_worker``
is None when done).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

FORMATS = ("csv", "geojson", "h5ad")
ACTIONS = (*FORMATS, "recluster")


def _paused(app: Any, start: Any, busy: Any) -> dict[str, float]:
    """Wall time of ``start()`` until ``busy()`` is False, and the longest gap of a 5 ms timer meanwhile."""
    from qtpy.QtCore import QTimer

    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    for _ in range(20):  # the timer runs before the export starts
        app.processEvents()
        time.sleep(0.005)
    t0 = time.perf_counter()
    ticks.append(t0)
    ret = start()
    if ret is not None and hasattr(ret, "finished"):  # in a worker
        while busy():
            app.processEvents()
            time.sleep(0.002)
    t1 = time.perf_counter()
    app.processEvents()
    ticks.append(time.perf_counter())
    timer.stop()
    gaps = [b - a for a, b in zip(ticks, ticks[1:], strict=False) if b >= t0]
    return {"wall_s": t1 - t0, "longest_pause_s": max(gaps)}


def _one_export(app: Any, export: Any, fmt: str, target: Path) -> dict[str, float]:
    out = _paused(app, lambda: getattr(export, f"export_{fmt}")(target), lambda: export.worker is not None)
    if not target.exists():
        raise SystemExit(f"{fmt}: {target} was not written")
    return {**out, "mb": target.stat().st_size / 1e6}


def _recluster(app: Any, review: Any, layer: Any, k: int) -> dict[str, float]:
    from napari_senca.review import ReviewState

    st = ReviewState.from_layer(layer)
    out = _paused(app, lambda: review.set_n_clusters(k), lambda: getattr(review, "recluster_worker", None) is not None)
    if st.clustering_k != k:
        raise SystemExit(f"re-cluster: {st.clustering_k} regions, not {k}")
    return {**out, "mb": 0.0}


def _realistic_counts(adata: Any, n_genes: int, per_bin: int, seed: int = 0) -> Any:
    """The section with ``per_bin`` random nonzero counts per bin over ``n_genes`` genes (Visium HD: 18,000 genes,
    a few hundred per 8 um bin), so that the ``.h5ad`` has a realistic size."""
    import anndata as ad
    import numpy as np
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    n = adata.n_obs
    cols = np.sort(rng.integers(0, n_genes, size=(n, per_bin)), axis=1).ravel()
    X = sp.csr_matrix((rng.poisson(2.0, n * per_bin).astype(np.float32) + 1, cols, np.arange(n + 1) * per_bin),
                      shape=(n, n_genes))  # fmt: skip
    X.sum_duplicates()
    var = ad.AnnData(X=sp.csr_matrix((1, n_genes), dtype=np.float32)).var
    var.index = [f"G{i}" for i in range(n_genes)]
    return ad.AnnData(X=X, obs=adata.obs, var=var, uns=adata.uns, obsm=dict(adata.obsm))


def run_one(n_bins: int, per_bin: int = 0) -> dict[str, Any]:
    import napari
    from qtpy.QtWidgets import QApplication
    from viewer import hd_section, with_embedding

    from napari_senca._qt import ExportWidget, ReviewWidget, _common

    adata = hd_section(n_bins)
    if per_bin:
        adata = _realistic_counts(adata, 18_000, per_bin)
    adata = with_embedding(adata, dim=30)  # 30 columns, as the default's clustered embedding
    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    export, review = ExportWidget(viewer), ReviewWidget(viewer)
    layer = _common.add_section(viewer, adata, "HD")
    app.processEvents()
    out: dict[str, Any] = {"bins": adata.n_obs}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in FORMATS:
            out[fmt] = _one_export(app, export, fmt, Path(tmp) / f"hd.{fmt}")
    out["recluster"] = _recluster(app, review, layer, 8)
    viewer.close()
    return out


def first_open(n_bins: int) -> dict[str, Any]:
    """The first section of a session: a fresh viewer, the Load widget docked 6 s before the section is added."""
    import napari
    from qtpy.QtWidgets import QApplication
    from viewer import hd_section

    from napari_senca._qt import LoadWidget, _common

    adata = hd_section(n_bins)
    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    viewer.window.add_dock_widget(LoadWidget(viewer))
    t = time.perf_counter()
    while time.perf_counter() - t < 6:  # the user picks a file
        app.processEvents()
        time.sleep(0.01)
    return {"bins": adata.n_obs, **_paused(app, lambda: _common.add_section(viewer, adata, "HD"), lambda: False)}


def _watch(app: Any, start: Any, busy: Any, at_least: float) -> dict[str, float]:
    """Longest pause from ``start()`` until ``busy()`` is False, watching the event loop for ``at_least`` seconds."""
    def wait() -> Any:
        ret = start()
        t = time.perf_counter()
        while busy() or time.perf_counter() - t < at_least:
            app.processEvents()
            time.sleep(0.002)
        return ret

    return _paused(app, wait, lambda: False)


def click(what: str, n_bins: int, per_bin: int) -> dict[str, Any]:
    """The first "Find marker genes" of a session, pressing Run (the click, not the training) or re-clustering, in a fresh viewer."""
    import napari
    from qtpy.QtWidgets import QApplication
    from viewer import hd_section, with_embedding

    from napari_senca._qt import ReviewWidget, RunWidget, _common

    adata = hd_section(n_bins)
    if per_bin:
        adata = _realistic_counts(adata, 18_000, per_bin)
    adata = with_embedding(adata, dim=30)
    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    layer = _common.add_section(viewer, adata, "HD")
    out: dict[str, Any] = {"bins": adata.n_obs, "genes": adata.n_vars, "click": what}
    if what == "umap":
        from napari_senca._qt import EmbeddingWidget

        view = EmbeddingWidget(viewer)
        viewer.window.add_dock_widget(view)
        app.processEvents()

        def start() -> Any:
            view.method.value = "umap"
            return view.worker

        out.update(_watch(app, start, lambda: view.worker is not None, 1.0))
        out["drawn"] = view.xy is not None and view.method.value == "umap"
    elif what == "recluster":
        review = ReviewWidget(viewer)
        viewer.window.add_dock_widget(review)
        out.update(_recluster(app, review, layer, 8))
    elif what == "markers":
        review = ReviewWidget(viewer)
        viewer.window.add_dock_widget(review)
        out["scanpy_imported_before"] = "scanpy" in sys.modules
        out.update(_watch(app, lambda: review.show_markers("0"), lambda: review.marker_worker is not None, 1.0))
    else:
        run = RunWidget(viewer)
        viewer.window.add_dock_widget(run)
        while run.warm_worker is not None:  # the widget's warm-up import (torch, the pipeline) ends first
            app.processEvents()
            time.sleep(0.01)
        out.update(_watch(app, run.run, lambda: False, 1.0))
        run.stop()
        while run.worker is not None:
            app.processEvents()
            time.sleep(0.01)
    viewer.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bins", type=int, nargs="+", default=[62_500])
    ap.add_argument("--counts-per-bin", type=int, default=0,
                    help="random nonzero counts per bin over 18,000 genes (0: the synthetic section's 100 genes)")
    ap.add_argument("--first-open", action="store_true",
                    help="only the first add_section of a session (napari compiles its labels colouring on first use)")
    ap.add_argument("--click", choices=("markers", "run", "recluster", "umap"),
                    help="only this click: the first 'Find marker genes' of a session, pressing Run (1 s watched), "
                         "a new cluster count (8), or the UMAP layout of the Embedding view")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        if args.click:
            res = click(args.click, args.one, args.counts_per_bin)
        else:
            res = first_open(args.one) if args.first_open else run_one(args.one, args.counts_per_bin)
        print("RESULT " + json.dumps(res))
        return
    rows = []
    for n in args.bins:
        cmd = [sys.executable, __file__, "--one", str(n), "--counts-per-bin", str(args.counts_per_bin)]
        cmd += ["--first-open"] if args.first_open else []
        cmd += ["--click", args.click] if args.click else []
        p = subprocess.run(cmd, capture_output=True, text=True)
        line = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
        if not line:
            raise SystemExit(p.stderr[-3000:])
        rows.append(json.loads(line[0][7:]))
    if args.click:
        print(f"| bins | genes | {args.click}: wall s / longest pause s |\n|---|---|---|")
        for r in rows:
            print(f"| {r['bins']:,} | {r['genes']:,} | {r['wall_s']:.2f} / {r['longest_pause_s']:.2f} |")
        return
    if args.first_open:
        print("| bins | first add_section: wall s / longest pause s |\n|---|---|")
        for r in rows:
            print(f"| {r['bins']:,} | {r['wall_s']:.2f} / {r['longest_pause_s']:.2f} |")
        return
    print("| bins | " + " | ".join(f"{f}: wall s / longest pause s / MB" for f in FORMATS)
          + " | re-cluster into 8: wall s / longest pause s |")  # fmt: skip
    print("|---|" + "---|" * len(ACTIONS))
    for r in rows:
        cells = [f"{r[f]['wall_s']:.2f} / {r[f]['longest_pause_s']:.2f} / {r[f]['mb']:.0f}" for f in FORMATS]
        cells.append(f"{r['recluster']['wall_s']:.2f} / {r['recluster']['longest_pause_s']:.2f}")
        print(f"| {r['bins']:,} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
