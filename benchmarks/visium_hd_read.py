"""Reading a Visium HD bin folder at scale: time and peak memory of ``read_section``.

Writes a synthetic ``outs/binned_outputs/square_008um/`` (real layout: 10x HDF5 matrix,
``tissue_positions.parquet`` with every bin of the square grid, scale factors) with N in-tissue
bins x G genes and about ``--nnz`` non-zero genes per bin (Visium HD 8 um bins hold a few hundred
UMIs), then reads it in a fresh process and reports wall time and the process's peak resident
memory (``ru_maxrss``), next to what a dense bins x genes float32 matrix would take.

Usage::

    python benchmarks/visium_hd_read.py --bins 100000,500000 --genes 18000 --nnz 100
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def write_folder(root: Path, n: int, genes: int, nnz: int, seed: int = 0) -> Path:
    import h5py
    import pandas as pd

    sq = root / "outs" / "binned_outputs" / "square_008um"
    (sq / "spatial").mkdir(parents=True)
    side = int(np.ceil(np.sqrt(n)))
    r, c = np.divmod(np.arange(side * side), side)
    bc = np.char.add(np.char.add(np.char.add("s_008um_", np.char.zfill(r.astype(str), 5)), "_"), np.char.zfill(c.astype(str), 5))
    bc = np.char.add(bc, "-1")
    pd.DataFrame(
        {
            "barcode": bc,
            "in_tissue": (np.arange(side * side) < n).astype(np.int32),
            "array_row": r,
            "array_col": c,
            "pxl_row_in_fullres": 100 + 29.6 * r,
            "pxl_col_in_fullres": 100 + 29.6 * c,
        }
    ).to_parquet(sq / "spatial" / "tissue_positions.parquet", index=False)
    sf = {"spot_diameter_fullres": 29.6, "bin_size_um": 8.0, "microns_per_pixel": 8 / 29.6}
    (sq / "spatial" / "scalefactors_json.json").write_text(json.dumps(sf))
    rng = np.random.default_rng(seed)
    block = genes // nnz
    indices = (np.arange(nnz) * block + rng.integers(0, block, size=(n, nnz))).ravel()
    with h5py.File(sq / "filtered_feature_bc_matrix.h5", "w") as f:
        g = f.create_group("matrix")
        g["data"] = rng.integers(1, 4, size=n * nnz, dtype=np.int32)
        g["indices"] = indices.astype(np.int64)
        g["indptr"] = np.arange(0, n * nnz + 1, nnz, dtype=np.int64)
        g["shape"] = np.array([genes, n], dtype=np.int32)
        g["barcodes"] = bc[:n].astype("S")
        g["features/id"] = np.array([f"ENSG{i:06d}" for i in range(genes)], dtype="S")
        g["features/name"] = np.array([f"G{i}" for i in range(genes)], dtype="S")
        g["features/feature_type"] = np.array([b"Gene Expression"] * genes)
    return root


READ = """
import resource, sys, time, warnings
warnings.simplefilter("ignore")
from napari_senca.io import read_section
t = time.perf_counter()
a = read_section(sys.argv[1], bin_size=8)
dt = time.perf_counter() - t
import scipy.sparse as sp
print(a.n_obs, a.n_vars, int(a.X.nnz), sp.issparse(a.X), f"{dt:.1f}", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bins", default="100000,500000")
    ap.add_argument("--genes", type=int, default=18000)
    ap.add_argument("--nnz", type=int, default=100)
    args = ap.parse_args(argv)
    print("| bins | genes | non-zeros | sparse | read s | peak RSS GB | dense float32 GB |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for n in (int(v) for v in args.bins.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            root = write_folder(Path(tmp) / "HD", n, args.genes, args.nnz)
            res = subprocess.run([sys.executable, "-c", READ, str(root)], capture_output=True, text=True, check=True)
            n_obs, n_vars, nnz, sparse, dt, rss_kb = res.stdout.split()
            print(
                f"| {int(n_obs):,} | {int(n_vars):,} | {int(nnz):,} | {sparse} | {dt} | "
                f"{int(rss_kb) / 2**20:.2f} | {int(n_obs) * int(n_vars) * 4 / 2**30:.1f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
