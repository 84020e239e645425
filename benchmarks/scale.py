"""Scale benchmark: a synthetic section of N spots x G genes with an H&E-like image.

Prints one Markdown row per size with the time split (preprocessing, patch
encoding, training, clustering), peak memory and the ARI against the planted
regions. Default settings (frozen backbone, random image weights since nothing
can be downloaded here).

Usage::

    python benchmarks/scale.py                     # 5,041 spots (71 x 71) x 3,000 genes
    python benchmarks/scale.py --sides 20,40,71    # several sizes
"""

from __future__ import annotations

import argparse
import resource
import time


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sides", default="71", help="grid sides, comma-separated (spots = side^2)")
    ap.add_argument("--genes", type=int, default=3000)
    ap.add_argument("--regions", type=int, default=5)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--image-weights", default="none")
    args = ap.parse_args(argv)

    from sklearn.metrics import adjusted_rand_score

    from napari_senca.config import SencaConfig
    from napari_senca.datasets import synthetic_section
    from napari_senca.pipeline import run_senca

    print("| spots | genes | preprocess s | patches s | train s | cluster s | total s | peak MB | ARI | device |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for side in (int(s) for s in args.sides.split(",")):
        adata = synthetic_section(side, args.genes, args.regions, with_image=True, seed=0)
        cfg = SencaConfig(n_clusters=args.regions, device=args.device, image_weights=args.image_weights)
        t0 = time.perf_counter()
        res = run_senca(adata, cfg)
        total = time.perf_counter() - t0
        t = res.timings
        ari = adjusted_rand_score(adata.obs["label"].astype(str), res.labels)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        print(
            f"| {adata.n_obs} | {adata.n_vars} | {t.get('preprocess', 0):.1f} | {t.get('patches', 0):.1f} | "
            f"{t.get('train', 0):.1f} | {t.get('cluster', 0):.1f} | {total:.1f} | {peak:.0f} | {ari:.3f} | "
            f"{res.device} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
