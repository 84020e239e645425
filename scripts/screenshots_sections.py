"""Screenshots of the Run widget mid-run, the Export widget and two sections side by side.

Opens the bundled HER2ST A1 sample with the Load widget, trains SENCA-st through the Run
widget (random image weights; the Run dock is grabbed during training), then loads a second
section (the DLPFC 151510 Visium section from the shared data when it is there, else the
synthetic sample), which is placed to the right of A1. Run it under an X server::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshots_sections.py

Writes ``widget_run_progress.png``, ``widget_export.png`` and ``viewer_two_sections.png``
to ``docs/images/`` (``--out DIR``).
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

# triton (probed by torch._dynamo) must load before any OpenGL context exists
import torch._dynamo  # noqa: F401
from screenshots import hide_toasts, settle  # scripts/ is on sys.path when run as a script
from screenshots import wait as _wait

ROOT = Path(__file__).resolve().parents[1]
wait = functools.partial(_wait, timeout=900.0)
DLPFC = [ROOT.parent / "shared" / "data" / "dlpfc_151510", Path("/work/shared/data/dlpfc_151510")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    ap.add_argument("--skip-run", action="store_true", help="no training (keeps widget_run_progress.png)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    import napari
    from qtpy.QtWidgets import QApplication

    from napari_senca._qt import ExportWidget, LoadWidget, RunWidget

    app = QApplication.instance() or QApplication(sys.argv)  # noqa: F841 (kept alive for the run)

    def grab(widget, name: str) -> None:
        widget.grab().save(str(args.out / name))
        print("wrote", args.out / name)

    def train(run, dock) -> None:
        dock.raise_()
        run.epochs.value = args.epochs
        run.image_weights.value = "none"
        run.device.value = "cpu"
        run.run()
        wait(lambda: run.last_progress is not None and run.last_progress.stage == "train"
             and run.last_progress.step >= max(1, args.epochs // 2))  # fmt: skip
        settle(5)
        grab(dock, "widget_run_progress.png")
        wait(lambda: run.worker is None)
        print("run:", run.status.value, "|", run.progress.native.format())

    viewer = napari.Viewer(title="napari-senca: two sections", show=True)
    viewer.window._qt_window.resize(1560, 960)
    load, run, export = LoadWidget(viewer), RunWidget(viewer), ExportWidget(viewer)
    docks = {
        name: viewer.window.add_dock_widget(w, name=name, area="right", tabify=True)
        for name, w in (("Load section", load), ("Run SENCA-st", run), ("Export regions", export))
    }
    settle()
    wait(lambda: run.warm_worker is None)

    load.load("sample:her2st_A1")
    wait(lambda: load.worker is None)
    a1 = load.last_layer

    if not args.skip_run:
        train(run, docks["Run SENCA-st"])

    second = next((p for p in DLPFC if p.is_dir()), None)
    docks["Load section"].raise_()
    load.load(str(second) if second is not None else "sample:synthetic")
    wait(lambda: load.worker is None)
    viewer.layers.selection.active = a1
    for dock in docks.values():  # the canvas gets the window's width
        dock.hide()
    settle()
    viewer.reset_view()
    hide_toasts(viewer)
    img = viewer.screenshot(canvas_only=False, flash=False)
    for dock in docks.values():
        dock.show()
    from PIL import Image

    Image.fromarray(img).save(args.out / "viewer_two_sections.png")
    print("wrote", args.out / "viewer_two_sections.png")

    docks["Export regions"].raise_()
    export.layer.value = a1
    settle()
    grab(docks["Export regions"], "widget_export.png")
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
