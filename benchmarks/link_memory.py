"""Linking the legends of large sections (``SharedLegend.link`` -> ``vocabulary.match_sections``): time and peak memory.

Two synthetic Visium-HD-like sections (``viewer.hd_section`` + ``with_embedding``) of N bins
with ``--counts-per-bin`` random nonzero counts over 18,000 genes (``gui_pauses._realistic_counts``);
peak memory from ``tracemalloc`` (numpy's allocations)::

    PYTHONPATH=src python benchmarks/link_memory.py 10000 160000
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def section(n: int, seed: int, per_bin: int):
    from gui_pauses import _realistic_counts
    from viewer import hd_section, with_embedding

    return with_embedding(_realistic_counts(hd_section(n, seed=seed), 18_000, per_bin, seed=seed), dim=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bins", type=int, nargs="+")
    ap.add_argument("--counts-per-bin", type=int, default=100)
    args = ap.parse_args()
    from napari_senca.review import ReviewState
    from napari_senca.shared_legend import SharedLegend

    for n in args.bins:
        secs = [(f"S{i}", ReviewState(section(n, i, args.counts_per_bin))) for i in range(2)]
        tracemalloc.start()
        t = time.perf_counter()
        SharedLegend.link(secs)
        dt = time.perf_counter() - t
        peak = tracemalloc.get_traced_memory()[1] / 1e9
        tracemalloc.stop()
        st = secs[0][1]
        print(f"{st.n_spots:,} bins x {st.adata.n_vars:,} genes: link {dt:.2f} s, peak {peak:.2f} GB", flush=True)


if __name__ == "__main__":
    main()
