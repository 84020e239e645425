"""The CUDA path on a GPU machine, with the same machine's CPU beside it (docs/benchmarks.md, "GPU").

For each real section with an image (HER2ST A1 and DLPFC 151510 with labels; an unlabelled
full-resolution HER2ST section, C2 by default) and each setting (the default; fusion v2 with
the random-weight image fully counted, so that the whole image branch trains, as it would for users
with pretrained weights), the script runs
seeds 0..n-1 on ``cuda`` and seed 0 on the ``cpu`` of the same machine, in this one process
(imports paid once; a warm-up run first so that CUDA's start-up is not in the first row), and
prints one Markdown row per (section, setting, device): ARI median and range over seeds, seconds
per stage (median), GPU peak memory. Then:

* reproducibility: seed 0 again on ``cuda`` -- identical labels? largest embedding difference;
* the whole command a user types, ``python -m napari_senca.cli run A1 --device cuda``, timed as a
  fresh process (imports, figures and files included), cold then with the feature cache.

The patch-feature disk cache is off for the in-process runs, so every run encodes its image.

Usage::

    NAPARI_SENCA_SHARED=/path/to/data python benchmarks/gpu_check.py --seeds 3 --json gpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
NONDETERMINISTIC: set[str] = set()  # warnings of operations without a deterministic CUDA kernel
STAGES = ("preprocess", "graph", "patches", "train", "embed", "cluster", "total")
SETTINGS = {
    "default": {},
    # CUDA's own summation order (napari_senca.determinism off): the speed it costs, and what it changes
    # (run after the deterministic rows in the same process, so CUBLAS_WORKSPACE_CONFIG is already set)
    "default, deterministic=False": {"deterministic": False},
    # fusion v2 with the image fully counted (gate 1): every part of the image branch trains
    "fusion v2, image counted": {"image_pcs": 30, "image_recon_weight": 1.0, "projection_heads": True,
                                 "skip_mode": "both", "image_gate": 1.0, "random_weights_gate": 1.0},
}


def run_one(adata, truth, labelled, device: str, seed: int, settings: dict) -> dict:
    """One ``run_senca`` call: ARI, timings, GPU peak memory, labels and embedding."""
    import torch
    from sklearn.metrics import adjusted_rand_score

    from napari_senca.config import SencaConfig
    from napari_senca.pipeline import run_senca

    k = len(set(truth)) if truth is not None else None
    cfg = SencaConfig(n_clusters=k, seed=seed, device=device, image_weights="none", cache_features=False,
                      **settings)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = run_senca(adata, cfg)
    NONDETERMINISTIC.update(str(w.message)[:120] for w in caught if "determinis" in str(w.message))
    out = {"timings": dict(res.timings), "device": res.device, "labels": np.asarray(res.labels),
           "embedding": np.asarray(res.embedding), "gate": res.image_gate, "rna_only": res.rna_only}
    out["ari"] = (float(adjusted_rand_score(truth, out["labels"][labelled])) if truth is not None else None)
    out["gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None
    return out


def section_rows(name: str, path: Path, seeds: int, devices: list[str]) -> tuple[list[str], list[dict]]:
    from napari_senca.io import read_section

    adata = read_section(path)
    truth = labelled = None
    if "label" in adata.obs:
        labelled = adata.obs["label"].notna().to_numpy()
        truth = adata.obs["label"].to_numpy()[labelled].astype(str)
    rows, raw = [], []
    for setting, extra in SETTINGS.items():
        for dev in devices:
            if dev != devices[0] and "deterministic" in extra:
                continue  # the switch only matters on CUDA
            runs = [run_one(adata, truth, labelled, dev, s, extra) for s in range(seeds if dev == devices[0] else 1)]
            aris = [r["ari"] for r in runs if r["ari"] is not None]
            ari = f"{np.median(aris):.3f} ({min(aris):.3f}-{max(aris):.3f})" if aris else "–"
            med = {s: np.median([r["timings"].get(s, np.nan) for r in runs]) for s in STAGES}
            cells = " | ".join("–" if np.isnan(med[s]) else f"{med[s]:.2f}" for s in STAGES)
            gpu = f"{max(r['gpu_mb'] for r in runs):,.0f}" if runs[0]["gpu_mb"] is not None else "–"
            gate = runs[0]["gate"]
            rows.append(f"| {name} ({adata.n_obs:,}) | {setting} | {runs[0]['device']} | {len(runs)} | {ari} | "
                        f"{'–' if gate is None else f'{gate:.2f}'} | {cells} | {gpu} |")
            print(rows[-1], flush=True)
            raw += [{"section": name, "setting": setting, "device": dev, "seed": i, "ari": r["ari"],
                     "timings": r["timings"], "gpu_mb": r["gpu_mb"], "gate": r["gate"]} for i, r in enumerate(runs)]
            if dev == devices[0] and setting != "fusion v2, image counted":
                again = run_one(adata, truth, labelled, dev, 0, extra)
                same = bool(np.array_equal(again["labels"], runs[0]["labels"]))
                diff = float(np.abs(again["embedding"] - runs[0]["embedding"]).max())
                raw.append({"section": name, "setting": setting, "reproducible": same, "max_embedding_diff": diff})
                print(f"reproducibility {name} {setting} {dev} seed 0 twice: identical labels {same}, "
                      f"largest embedding difference {diff:.2e}", flush=True)
    return rows, raw


def whole_command(path: Path, device: str) -> list[str]:
    """``python -m napari_senca.cli run`` as a user types it, cold and with the feature cache."""
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, NAPARI_SENCA_CACHE=str(Path(tmp) / "cache"))
        for label in ("cold", "cached features"):
            cmd = [sys.executable, "-m", "napari_senca.cli", "run", str(path), "--out", str(Path(tmp) / "out"),
                   "--overwrite", "--device", device, "--image-weights", "none"]
            t0 = time.perf_counter()
            p = subprocess.run(cmd, env=env, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            tail = [ln for ln in (p.stdout + p.stderr).splitlines() if ln.startswith(("ARI", "device"))]
            tail = tail or (p.stdout + p.stderr).strip().splitlines()[-3:]
            lines.append(f"whole command {path.name} --device {device} ({label}): {wall:.1f} s, rc {p.returncode}; "
                         + " / ".join(tail))
            print(lines[-1], flush=True)
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--sections", default="C2,A1,DLPFC")
    ap.add_argument("--devices", default="cuda,cpu", help="the first runs every seed, the others seed 0")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    import torch

    devices = args.devices.split(",")
    if "cuda" in devices and not torch.cuda.is_available():
        sys.exit("no CUDA device: this script measures the CUDA path (--devices cpu to try it on the CPU)")
    sys.path.insert(0, str(HERE))
    from her2st import shared_data

    data = shared_data()
    paths = {"A1": data / "her2st" / "A1", "DLPFC": data / "dlpfc_151510"}
    paths.update({s: data / "her2st_unlabelled" / s for s in ("B4", "C2", "C3", "C4", "C5", "C6")})
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    print(f"torch {torch.__version__}, {gpu}, {torch.get_num_threads()} CPU threads",
          flush=True)
    from napari_senca.config import SencaConfig
    from napari_senca.datasets import synthetic_section
    from napari_senca.pipeline import run_senca

    t0 = time.perf_counter()
    run_senca(synthetic_section(), SencaConfig(device=devices[0], epochs=1, n_clusters=3))
    print(f"warm-up on {devices[0]} (CUDA start, first kernels): {time.perf_counter() - t0:.1f} s", flush=True)
    head = ("| section (spots) | setting | device | seeds | ARI median (range) | image gate | "
            + " | ".join(f"{s} s" for s in STAGES) + " | GPU peak MB |")
    rows, raw = [], []
    lines = whole_command(paths["A1"], devices[0])  # first: cheap, and a cut-short run still has it
    for name in args.sections.split(","):
        print(head + "\n|" + "---|" * (7 + len(STAGES)), flush=True)
        r, w = section_rows(name, paths[name], args.seeds, devices)
        rows += r
        raw += w
        print(f"operations without a deterministic CUDA kernel so far: {'; '.join(sorted(NONDETERMINISTIC)) or 'none'}",
              flush=True)
        if args.json:  # partial results survive a time limit
            args.json.write_text(json.dumps({"rows": rows, "raw": raw, "whole": lines}, indent=1, default=str))
    lines.append("operations without a deterministic CUDA kernel: " + ("; ".join(sorted(NONDETERMINISTIC)) or "none"))
    print("\n" + head + "\n|" + "---|" * (7 + len(STAGES)) + "\n" + "\n".join(rows) + "\n\n" + "\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "raw": raw, "whole": lines}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
