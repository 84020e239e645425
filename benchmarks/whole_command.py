"""Whole ``napari-senca run`` command against the model's own time (issue 10, item 7).

Each section runs as a fresh process under ``/usr/bin/time -v`` (wall clock and
peak memory), twice: the first run encodes the H&E, the second finds the
features in the disk cache (a fresh cache folder per section). The model time
is the run's own ``train_total`` from the output's marker file.

``--fresh-install`` gives the runs empty numba and matplotlib caches (``NUMBA_CACHE_DIR``,
``MPLCONFIGDIR``, shared by the runs of this call): the first run then pays what a user's first
run after installing pays once (scanpy's numba kernels compiled, matplotlib's font list built).

    PYTHONPATH=src python benchmarks/whole_command.py [--sections C1,A1,DLPFC] [--fresh-install]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

DATA = Path("/work/shared/data")
SECTIONS = {
    "C1": DATA / "her2st" / "C1",
    "A1": DATA / "her2st" / "A1",
    "DLPFC": DATA / "dlpfc_151510",
}


def run_once(path: Path, out: Path, cache: Path, extra: list[str], env_extra: dict | None = None) -> dict:
    env = dict(os.environ, NAPARI_SENCA_CACHE=str(cache), **(env_extra or {}))
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "napari_senca.cli", "run", str(path), "--out", str(out),
           "--overwrite", *extra]  # fmt: skip
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(p.stderr[-2000:])
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", p.stderr)
    h, m, s = (float(x) if x else 0.0 for x in wall.groups())
    cpu = sum(float(re.search(rf"{k} time \(seconds\): ([\d.]+)", p.stderr).group(1)) for k in ("User", "System"))
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1))
    marker = json.loads((out / ".napari-senca-output.json").read_text())
    rep = marker.get("report", {})
    t = rep.get("timings", {})
    return {
        "wall": h * 3600 + m * 60 + s,
        "cpu": cpu,
        "peak_gb": rss / 1024**2,
        "model": float(t.get("train_total", float("nan"))),
        "patches": float(t.get("patches", 0.0)),
        "ari": rep.get("ari"),
        "weights": rep.get("image_weights", ""),
        "spots": rep.get("spots"),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sections", default="C1,A1,DLPFC")
    ap.add_argument("--extra", default="", help="more arguments for every run, e.g. '--image-weights none'")
    ap.add_argument("--fresh-install", action="store_true",
                    help="empty numba and matplotlib caches, as on a user's first run after installing")
    args = ap.parse_args(argv)
    print(f"load average at the start: {os.getloadavg()[0]:.1f} (2 cores)\n")
    print("| section | spots | run | whole command, wall (s) | whole command, CPU (s) | model, wall (s) "
          "| of which H&E encoding (s) | peak memory (GB) | ARI |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        fresh = {"NUMBA_CACHE_DIR": f"{tmp}/numba", "MPLCONFIGDIR": f"{tmp}/mpl"} if args.fresh_install else None
        for name in args.sections.split(","):
            cache = Path(tmp) / f"cache-{name}"
            for which in ("first", "second (features cached)")[: 1 if name == "DLPFC" else 2]:
                r = run_once(SECTIONS[name], Path(tmp) / f"out-{name}", cache, args.extra.split(), fresh)
                ari = "" if r["ari"] is None else f"{r['ari']:.3f}"
                print(f"| {name} | {r['spots']} | {which} | {r['wall']:.1f} | {r['cpu']:.1f} | {r['model']:.1f} "
                      f"| {r['patches']:.1f} "
                      f"| {r['peak_gb']:.2f} | {ari} |", flush=True)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}; image weights: {r['weights']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
