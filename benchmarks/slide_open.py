"""Opening a real full-resolution H&E eagerly (decode the JPEG) vs lazily (tiled pyramidal TIFF).

For each HER2ST section of ``../shared/data/her2st_unlabelled/`` (about 9,300 x 9,900 px JPEG):

* eager: ``load_image(he.jpg)``, the whole image decoded into memory;
* convert: ``write_pyramid(he.jpg, he.tif)``, once per slide (what a user does for a JPEG);
* lazy: ``image_reference`` + ``open_levels`` of the TIFF (header only), then one
  1,000 x 1,000 px window of level 0 and the <= 2,000 px overview;
* patches: every spot's 224 px patch (radius 3 spacings), from the decoded JPEG
  (in memory) vs from the lazily read TIFF (window by window, level 0).

Time (wall, s) and traced peak memory (tracemalloc, MB; numpy's buffers are traced)
per step. One Markdown row per section.

Usage::

    python benchmarks/slide_open.py                  # C2
    python benchmarks/slide_open.py --sections C2,C3,B4
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import tracemalloc
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def measure(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """``(result, seconds, peak MB)`` of ``fn()``."""
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        out = fn()
        dt = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()
    return out, dt, peak


def all_patches(adata: Any) -> int:
    from napari_senca.patches import iter_patches

    return sum(len(b) for b in iter_patches(adata, 3.0, 224, 64))


def _data_root() -> Path:
    for c in (os.environ.get("NAPARI_SENCA_SHARED", ""), "/work/shared/data", str(ROOT.parent / "shared" / "data")):
        if c and (Path(c) / "her2st_unlabelled").is_dir():
            return Path(c) / "her2st_unlabelled"
    raise SystemExit("her2st_unlabelled not found (set NAPARI_SENCA_SHARED)")


def bench_section(folder: Path, tmp: Path) -> str:
    """One Markdown row for the section in ``folder``."""
    from napari_senca.io import read_st_folder, relink_slide
    from napari_senca.io.image import load_image
    from napari_senca.io.slide import (
        _open_cached,
        image_reference,
        open_levels,
        read_overview,
        write_pyramid,
    )

    jpg = folder / "he.jpg"
    img, t_eager, m_eager = measure(lambda: load_image(jpg))
    h, w = img.shape[:2]
    del img
    tif = tmp / f"{folder.name}.tif"
    _, t_conv, _ = measure(lambda: write_pyramid(jpg, tif))
    _open_cached.cache_clear()
    levels, t_lazy, m_lazy = measure(lambda: (image_reference(tif), open_levels(tif))[1])
    _, t_win, _ = measure(lambda: levels[0][4000:5000, 4000:5000].compute(scheduler="synchronous"))
    _, t_ov, m_ov = measure(lambda: read_overview(levels))
    eager = read_st_folder(folder)
    n, t_pe, m_pe = measure(lambda: all_patches(eager))
    eager = None  # free the decoded image before the lazy run
    lazy = relink_slide(read_st_folder(folder, image=False), tif)
    _, t_pl, m_pl = measure(lambda: all_patches(lazy))
    return (
        f"| {folder.name} | {w:,} x {h:,} | {t_eager:.2f} / {m_eager:.0f} | {t_conv:.1f} | "
        f"{t_lazy:.3f} / {m_lazy:.1f} | {t_win:.3f} | {t_ov:.2f} / {m_ov:.0f} | "
        f"{t_pe:.1f} / {m_pe:.0f} ({n} spots) | {t_pl:.1f} / {m_pl:.0f} |"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sections", default="C2")
    ap.add_argument("--data", default=None, help="the her2st_unlabelled folder")
    args = ap.parse_args(argv)
    data = Path(args.data) if args.data else _data_root()

    import dask.array  # noqa: F401  (imports outside the measurements)
    import PIL.Image  # noqa: F401
    import tifffile  # noqa: F401
    import zarr  # noqa: F401

    warnings.simplefilter("ignore")
    print(
        "| section | image px | eager decode s / MB | convert to pyramid s | lazy open s / MB | "
        "1k window s | overview s / MB | patches eager s / MB | patches lazy s / MB |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sections.split(","):
            print(bench_section(data / name, Path(tmp)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
