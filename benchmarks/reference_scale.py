"""Time and peak memory of ``napari_senca.reference.predict_regions`` as the section grows.

Synthetic sections (3,000 genes, 4 regions; ``napari_senca.datasets.synthetic_section``), two references of
10,000 spots each, a target of SIDE x SIDE spots. The generator's counts are 75 % non-zero, far denser than
Visium; ``--keep`` thins every count binomially (0.05 gives about 19 % non-zero) for a sparser, more typical
section. Peak memory is traced by Python's ``tracemalloc`` (numpy and scipy allocations) within the call.

Usage::

    python benchmarks/reference_scale.py --keep 1 100 224
    python benchmarks/reference_scale.py --keep 0.05 100 224 447
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
import warnings

import numpy as np
import scipy.sparse as sp


def section(side: int, seed: int, keep: float):
    """A synthetic section with its counts thinned to ``keep``, as CSR."""
    from napari_senca.datasets import synthetic_section

    a = synthetic_section(n_side=side, n_genes=3000, n_regions=4, with_image=False, seed=seed)
    x = sp.csr_matrix(a.X)
    if keep < 1:
        x.data = np.random.default_rng(seed).binomial(x.data.astype(np.int64), keep).astype(np.float32)
        x.eliminate_zeros()
    a.X = x
    return a


def main(argv: list[str] | None = None) -> int:
    """One line per target size: seconds, traced peak, share of spots given their true region."""
    from napari_senca.reference import predict_regions

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", type=float, default=1.0, help="fraction of counts kept (binomial thinning)")
    ap.add_argument("sides", nargs="+", type=int, help="spots per side of the target")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    refs = [section(100, s, args.keep) for s in (1, 2)]
    print(f"counts kept {args.keep}: references {refs[0].X.nnz / np.prod(refs[0].shape):.3f} non-zero", flush=True)
    for side in args.sides:
        t = section(side, 0, args.keep)
        tracemalloc.start()
        t0 = time.perf_counter()
        p = predict_regions(t, refs)
        dt = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        right = (p.names == t.obs["label"].astype(str).to_numpy()).mean()
        print(f"{t.n_obs} target spots ({t.X.nnz / np.prod(t.shape):.3f} non-zero), 2 x 10,000 reference spots: "
              f"{dt:.1f} s, traced peak {peak / 1e6:.0f} MB, right names {right:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
