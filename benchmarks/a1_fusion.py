"""HER2ST A1 (or DLPFC): the default / fusion v1 / v2 / RNA-only per seed, one JSON line per run.

A lighter companion of ``her2st.py --fusion`` for a contended CPU: one process,
results printed as soon as each run ends.

Usage::

    python benchmarks/a1_fusion.py default,v1,rna,v2 0,1,2 [path/to/her2st/A1]
    python benchmarks/a1_fusion.py default,rna 0 path/to/dlpfc_151510
    python benchmarks/a1_fusion.py image,rna-baseline,concat,concat_half 0,1,2   # baselines
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    import torch

    torch.set_num_threads(1)
    from sklearn.metrics import adjusted_rand_score

    sys.path.insert(0, str(HERE))
    from crossmodal import _baseline
    from her2st import FUSION_V1, FUSION_V2, shared_data

    from napari_senca.config import SencaConfig
    from napari_senca.io import read_section
    from napari_senca.pipeline import run_senca

    path = argv[2] if len(argv) > 2 else str(shared_data() / "her2st" / "A1")
    ad = read_section(path)
    lab = ad.obs["label"].notna().to_numpy()
    truth = ad.obs["label"].to_numpy()[lab].astype(str)
    k = len(set(truth))
    for seed in map(int, argv[1].split(",")):
        for name in argv[0].split(","):
            t = time.perf_counter()
            if name in ("image", "rna-baseline", "concat", "concat_half"):  # benchmarks/crossmodal.py baselines
                labels = _baseline(ad, "rna" if name == "rna-baseline" else name, k, seed, "none")
                ari = adjusted_rand_score(truth, labels[lab])
                print(json.dumps({"method": name, "seed": seed, "ari": ari, "s": time.perf_counter() - t}), flush=True)
                continue
            extra = {"default": {}, "v2": FUSION_V2, "v1": FUSION_V1, "rna": {"use_image": False},
                     "v2-rna-skip": dict(FUSION_V2, skip_mode="rna")}[name]
            t = time.perf_counter()
            r = run_senca(ad, SencaConfig(n_clusters=k, seed=seed, image_weights="none", **extra))
            out = {"method": name, "seed": seed, "ari": adjusted_rand_score(truth, r.labels[lab]),
                   "s": time.perf_counter() - t, "weights": r.image_weights_used, "gate": r.image_gate,
                   "agreement": r.modality_agreement}
            print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
