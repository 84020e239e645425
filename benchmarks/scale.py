"""Scale benchmark: synthetic Visium-HD-like sections from 1,000 to 500,000 bins.

Each (size, mode) runs in a fresh child process, so that its peak memory (max
resident set size) is its own. The section is a square grid of bins with
sparse counts (``datasets.visium_hd_section``), with or without an H&E-like
image. Prints one Markdown row per run: seconds per stage (preprocess =
filter/normalise/HVG/scale/input PCs; graph = kNN graph, neighbourhoods,
targets; patches = image features; train; embed = S of every spot, tiled
above ``batch_spots``; cluster = smoothing, skip PCs, k-means), the total
(the whole ``run_senca`` call) and its CPU seconds (user + system, which
other jobs on the machine do not inflate), peak MB, the ARI against the planted regions,
and then the growth exponent of the total between two sizes
(log(t2/t1) / log(n2/n1)). Default settings (``SencaConfig()``; random image
weights since nothing can be downloaded here).

Usage::

    python benchmarks/scale.py                                     # 1k..100k RNA-only, 1k/5k with image
    python benchmarks/scale.py --sizes 1000,5000,20000,100000,500000 --image-sizes 1000,5000,20000
    python benchmarks/scale.py --sizes 20000 --image-sizes "" --json out.json
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import resource
import time
from pathlib import Path


def _cpu() -> float:
    """CPU seconds of this process so far (user + system): robust to other jobs on the machine."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _child(task: dict, queue: mp.Queue) -> None:
    """Build one section, run the pipeline, put a result dict on ``queue``."""
    import torch

    torch.set_num_threads(int(task["threads"]))
    from sklearn.metrics import adjusted_rand_score

    from napari_senca.config import SencaConfig
    from napari_senca.datasets import visium_hd_section
    from napari_senca.pipeline import run_senca

    out = {"task": task}
    try:
        t0 = time.perf_counter()
        adata = visium_hd_section(task["bins"], task["genes"], task["regions"], with_image=task["image"], seed=0)
        out["generate_s"] = time.perf_counter() - t0
        out["section_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        # with an image, random weights count (random_weights_gate=1), so the image branch trains as it
        # would with pretrained weights: the cost measured is the one users with weights pay
        counted = {"random_weights_gate": 1.0} if task["image"] else {}
        cfg = SencaConfig(n_clusters=task["regions"], device=task["device"], image_weights=task["image_weights"],
                          **{**counted, **task.get("settings", {})})
        t0, c0 = time.perf_counter(), _cpu()
        res = run_senca(adata, cfg)
        out["total_s"] = time.perf_counter() - t0
        out["cpu_s"] = _cpu() - c0
        out["timings"] = res.timings
        out["ari"] = float(adjusted_rand_score(adata.obs["label"].astype(str), res.labels))
        out["device"] = res.device
        out["n"] = int(adata.n_obs)
    except Exception as exc:  # report, do not hide
        out["error"] = f"{type(exc).__name__}: {exc}"
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    queue.put(out)


def run_task(task: dict) -> dict:
    """Run ``task`` in a spawned process (its own peak memory) with a wall-clock limit."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(task, q))
    p.start()
    try:
        return q.get(timeout=task["timeout"])
    except Exception:
        return {"task": task, "error": f"no result within {task['timeout']} s"}
    finally:
        p.join(5)
        if p.is_alive():
            p.kill()


STAGES = ("preprocess", "graph", "patches", "train", "embed", "cluster")


def row(r: dict) -> str:
    t, task = r.get("timings", {}), r["task"]
    mode = "H&E" if task["image"] else "RNA"
    if "error" in r:
        return f"| {task['bins']:,} | {mode} | " + " | ".join(["–"] * (len(STAGES) + 4)) + f" | {r['error']} |"
    cells = [f"{t[s]:.1f}" if s in t else "–" for s in STAGES]
    return (f"| {r['n']:,} | {mode} | " + " | ".join(cells) + f" | {r['total_s']:.1f} | {r['cpu_s']:.1f} | "
            f"{r['peak_mb']:,.0f} | "
            f"{r['ari']:.3f} | {r['device']} |")


def exponent(results: list[dict], n1: int, n2: int, image: bool) -> str:
    """Growth exponent of the total time between the runs nearest ``n1`` and ``n2`` bins."""
    ok = {r["task"]["bins"]: r for r in results if "error" not in r and r["task"]["image"] == image}
    if n1 not in ok or n2 not in ok:
        return "–"
    a, b = ok[n1], ok[n2]
    wall = math.log(b["total_s"] / a["total_s"]) / math.log(b["n"] / a["n"])
    cpu = math.log(b["cpu_s"] / a["cpu_s"]) / math.log(b["n"] / a["n"])
    return f"{wall:.2f} wall, {cpu:.2f} CPU"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,5000,20000,100000", help="RNA-only sizes (bins), comma-separated")
    ap.add_argument("--image-sizes", default="1000,5000", help="sizes with the H&E-like image ('' for none)")
    ap.add_argument("--genes", type=int, default=2000)
    ap.add_argument("--regions", type=int, default=6)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--image-weights", default="none")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per run")
    ap.add_argument("--json", type=Path, help="also write every raw result here")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a SencaConfig setting for every run (repeatable), e.g. steps_per_epoch=2")
    args = ap.parse_args(argv)
    settings = {k: json.loads(v) for k, v in (a.split("=", 1) for a in args.set)}

    def sizes(s: str) -> list[int]:
        return [int(v) for v in s.split(",") if v.strip()]

    tasks = [(n, False) for n in sizes(args.sizes)] + [(n, True) for n in sizes(args.image_sizes)]
    print("| bins | mode | preprocess s | graph s | patches s | train s | embed s | cluster s | total s | CPU s | "
          "peak MB | ARI | device |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    results = []
    for n, image in tasks:
        task = dict(bins=n, image=image, genes=args.genes, regions=args.regions, device=args.device,
                    image_weights=args.image_weights, threads=args.threads, timeout=args.timeout,
                    settings=settings)
        r = run_task(task)
        results.append(r)
        print(row(r), flush=True)
        if args.json:
            args.json.write_text(json.dumps(results, indent=1, default=str))
    print()
    print(f"growth exponent of the total, 20k -> 100k bins (RNA): {exponent(results, 20000, 100000, False)}; "
          f"5k -> 20k (RNA): {exponent(results, 5000, 20000, False)}; "
          f"1k -> 5k (H&E): {exponent(results, 1000, 5000, True)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
