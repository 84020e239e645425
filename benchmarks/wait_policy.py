"""Training time by OpenMP waiting policy and thread count, on free cores and beside a busy one.

Each case is a fresh process (the policy is read when torch loads) that reads
the section, warms up with one epoch, then times a default run
(``run_senca``, 200 steps): wall and CPU seconds and the run's own training
time. "one busy core" = another process spinning on a core for the whole case.
Also prints a hash of the labels: the policy must not change them (the thread
count does).

    PYTHONPATH=src python benchmarks/wait_policy.py [--sections A1,DLPFC]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

DATA = Path("/work/shared/data")
SECTIONS = {"A1": DATA / "her2st" / "A1", "C1": DATA / "her2st" / "C1", "DLPFC": DATA / "dlpfc_151510"}
CASES = [("spinning", 2), ("passive", 2), ("passive", 1), ("spinning", 1)]


def one(path: str, threads: int) -> dict:
    import torch

    from napari_senca.config import SencaConfig
    from napari_senca.io import read_section
    from napari_senca.pipeline import run_senca

    torch.set_num_threads(threads)
    adata = read_section(path)
    run_senca(adata, SencaConfig(epochs=1))
    t, c = time.perf_counter(), time.process_time()
    r = run_senca(adata, SencaConfig())
    return {"wall": time.perf_counter() - t, "cpu": time.process_time() - c, "train": r.timings["train"],
            "labels": hashlib.md5(r.labels.astype("int64").tobytes()).hexdigest()[:8]}


def child_result(argv: list[str], env: dict[str, str] | None = None, busy: bool = False) -> tuple[dict | None, str]:
    """Run ``python *argv`` in a fresh process, beside a process spinning on one core when ``busy``.

    Returns the child's ``RESULT {json}`` line parsed (None when it printed
    none) and the tail of its stderr. Also used by ``gui_training.py``.
    """
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        time.sleep(0.5 if busy else 0.0)
        p = subprocess.run([sys.executable, *argv], env=env, capture_output=True, text=True)
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    line = [s for s in p.stdout.splitlines() if s.startswith("RESULT ")]
    return (json.loads(line[0][7:]) if line else None), p.stderr[-2000:]


def case(path: Path, policy: str, threads: int, busy: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy == "passive":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    r, err = child_result([__file__, "--one", f"{path}:{threads}"], env, busy)
    if r is None:
        raise RuntimeError(err)
    return r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sections", default="A1,DLPFC")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        path, _, threads = args.one.rpartition(":")
        print("RESULT " + json.dumps(one(path, int(threads))), flush=True)
        return 0
    print(f"load average at the start: {os.getloadavg()[0]:.1f}\n")
    print("| other programs | section | policy | threads | wall (s) | CPU (s) | training (s) | labels (hash) |")
    print("|---|---|---|---|---|---|---|---|")
    for busy in (False, True):
        for name in args.sections.split(","):
            for policy, threads in CASES:
                r = case(SECTIONS[name], policy, threads, busy)
                print(f"| {'one busy core' if busy else 'idle'} | {name} | {policy} | {threads} | {r['wall']:.2f} "
                      f"| {r['cpu']:.2f} | {r['train']:.2f} | {r['labels']} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
