"""Training in napari: how the thread waiting policy trades run time against a fluid viewer.

A real napari viewer opens HER2ST A1 (spots and H&E), docks the Run widget and
starts a default run (its worker thread, as a user's click does). While it
trains, a 20 ms Qt timer either does nothing ("still") or pans and zooms the
camera on every tick ("panning": a user looking around). Measured per run:
the training time the widget reports, the event loop's tick interval
(median / 95th percentile / max: how late the viewer answers) and the frames
drawn per second. Each case is a fresh process, because the policy is read
when torch loads. Run under Xvfb::

    xvfb-run -a -s "-screen 0 1600x1000x24" env QT_API=pyqt6 PYTHONPATH=src \\
        python benchmarks/gui_training.py [--repeats 2]

Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

A1 = Path("/work/shared/data/her2st/A1")
POLICIES = {"spinning (torch default)": "spin", "passive": "PASSIVE", "the widgets' choice (sampled)": ""}


def one(interaction: str, policy: str) -> dict[str, float]:
    """One run in this process; ``policy``: "PASSIVE", "spin" (torch's default) or "" (the widgets choose)."""
    os.environ.pop("OMP_WAIT_POLICY", None)
    if policy == "PASSIVE":
        os.environ["OMP_WAIT_POLICY"] = policy
    elif policy == "spin":
        from napari_senca import threads

        threads.prefer_passive_waiting = lambda *a, **k: False  # before napari_senca._qt calls it
    import napari
    import numpy as np
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    from napari_senca._qt import RunWidget

    viewer = napari.Viewer(show=True)
    viewer.open(str(A1), plugin="napari-senca")
    run = RunWidget(viewer)
    viewer.window.add_dock_widget(run)
    app = QApplication.instance()
    t_end = time.perf_counter() + 120
    while run.warm_worker is not None and time.perf_counter() < t_end:  # torch imported in the warm-up
        app.processEvents()
        time.sleep(0.01)
    canvas = viewer.window._qt_viewer.canvas
    frames: list[float] = []
    canvas._scene_canvas.events.draw.connect(lambda _e: frames.append(time.perf_counter()))
    ticks: list[float] = []
    cam = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    c0, z0 = np.array(cam.center), cam.zoom

    def tick() -> None:
        ticks.append(time.perf_counter())
        if interaction == "panning":
            k = len(ticks)
            cam.center = tuple(c0 + np.array([0.0] * (len(c0) - 2) + [40 * np.sin(k / 7), 40 * np.cos(k / 9)]))
            cam.zoom = z0 * (1.0 + 0.2 * np.sin(k / 11))

    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(tick)
    timer.start()
    t0 = time.perf_counter()
    run.run()
    while run.running and time.perf_counter() < t0 + 600:
        app.processEvents()
        time.sleep(0.002)
    wall = time.perf_counter() - t0
    timer.stop()
    result = run.last_result
    chosen = os.environ.get("OMP_WAIT_POLICY", "spin")
    gaps = np.diff(ticks) * 1000 if len(ticks) > 1 else np.array([np.nan])
    in_run = [f for f in frames if t0 <= f <= t0 + wall]
    out = {
        "wall": wall,
        "train": float(result.timings["train"]) if result is not None else float("nan"),
        "tick_p50": float(np.median(gaps)),
        "tick_p95": float(np.percentile(gaps, 95)),
        "tick_max": float(gaps.max()),
        "fps": len(in_run) / wall,
        "chosen": chosen,
    }
    viewer.close()
    return out


def _case(interaction: str, policy: str, busy: bool) -> dict | None:
    """One run in a fresh process, beside a process spinning on one core when ``busy``."""
    from wait_policy import child_result  # benchmarks/ is on sys.path when this runs as a script

    r, err = child_result([__file__, "--one", f"{interaction}:{policy}"], busy=busy)
    if r is None:
        print(err, file=sys.stderr)
    return r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        interaction, _, policy = args.one.partition(":")
        print("RESULT " + json.dumps(one(interaction, policy)), flush=True)
        return 0
    print(f"load average at the start: {os.getloadavg()[0]:.1f}\n")
    print("| policy | other programs | camera during training | run | training (s) | run, wall (s) "
          "| tick interval median / p95 / max (ms) | frames/s |")
    print("|---|---|---|---|---|---|---|---|")
    cases = [(load, cam, name) for load in ("idle", "one busy core") for cam in ("still", "panning")
             for name in POLICIES if load == "idle" or not POLICIES[name]]
    for rep in range(args.repeats):
        for load, interaction, name in cases:
            r = _case(interaction, POLICIES[name], busy=load != "idle")
            if r is None:
                continue
            label = name if POLICIES[name] else f"{name}: {r['chosen'].lower()}"
            print(f"| {label} | {load} | {interaction} | {rep + 1} | {r['train']:.1f} | {r['wall']:.1f} "
                  f"| {r['tick_p50']:.0f} / {r['tick_p95']:.0f} / {r['tick_max']:.0f} | {r['fps']:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
