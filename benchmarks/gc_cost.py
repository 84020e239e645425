"""What CPython's cyclic garbage collector costs the whole ``napari-senca run`` command.

Each case is a fresh process that runs the command on a section with a
``gc.callbacks`` probe: the time spent in collections and their number per
generation, the command's own time, and the exit (from the command's return
to the end of the process, measured by the parent). Cases:

* ``default``: CPython's thresholds (700, 10, 10), no freeze (the console script before the sixth session);
* ``command_process``: :func:`napari_senca.gc_policy.command_process` (the console script now).

    PYTHONPATH=src python benchmarks/gc_cost.py [--sections A1,DLPFC] [--repeats 3]

The H&E features come from the disk cache after the first run of a section
(a fresh cache folder per section, warmed by one run that is not reported).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

DATA = Path("/work/shared/data")
SECTIONS = {"C1": DATA / "her2st" / "C1", "A1": DATA / "her2st" / "A1", "DLPFC": DATA / "dlpfc_151510"}

CHILD = r"""
import gc, json, sys, time
t0 = time.perf_counter()
spent, count, started = [0.0], [0, 0, 0], [0.0]
def probe(phase, info):
    if phase == "start":
        started[0] = time.perf_counter()
    else:
        spent[0] += time.perf_counter() - started[0]
        count[info["generation"]] += 1
gc.callbacks.append(probe)
from contextlib import nullcontext
from napari_senca.cli import main
from napari_senca.gc_policy import command_process
mode, argv = sys.argv[1], sys.argv[2:]
with (command_process() if mode == "command_process" else nullcontext()):
    code = main(argv)
gc.callbacks.remove(probe)
print("RESULT " + json.dumps({"code": code, "gc_s": spent[0], "collections": count,
                              "command_s": time.perf_counter() - t0, "end": time.time()}), flush=True)
"""


def run_case(mode: str, path: Path, out: Path, cache: Path) -> dict:
    from wait_policy import child_result  # benchmarks/ is on sys.path when this runs as a script

    env = dict(os.environ, NAPARI_SENCA_CACHE=str(cache))
    start = time.time()
    res, err = child_result(["-c", CHILD, mode, "run", str(path), "--out", str(out), "--overwrite"], env)
    finished = time.time()
    if res is None or res["code"] != 0:
        raise RuntimeError(err)
    res["wall_s"] = finished - start
    res["exit_s"] = finished - res.pop("end")
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sections", default="A1,DLPFC")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    print(f"load average at the start: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)\n")
    print("| section | collector | whole command, wall s (median; runs) | in collections, s | collections (young / middle / full) | exit s |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sections.split(","):
            cache, out = Path(tmp) / f"cache_{name}", Path(tmp) / f"out_{name}"
            run_case("default", SECTIONS[name], out, cache)  # warms the feature cache
            rows: dict[str, list[dict]] = {"default": [], "command_process": []}
            for _ in range(args.repeats):  # alternated, so that drift hits both
                for mode in rows:
                    rows[mode].append(run_case(mode, SECTIONS[name], out, cache))
            for mode, rs in rows.items():
                med = {k: statistics.median(r[k] for r in rs) for k in ("wall_s", "gc_s", "exit_s")}
                runs = ", ".join(f"{r['wall_s']:.1f}" for r in rs)
                coll = " / ".join(str(c) for c in rs[0]["collections"])
                print(f"| {name} | {mode} | {med['wall_s']:.1f} ({runs}) | {med['gc_s']:.2f} | {coll} | {med['exit_s']:.2f} |")
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
