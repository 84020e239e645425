"""Whole-slide H&E read lazily: TIFF / OME-TIFF / SVS-like pyramids through tifffile's zarr store.

A full-resolution H&E of a Visium HD section is a 20,000-60,000 px TIFF
(BigTIFF ``.btf`` from Space Ranger's ``microscope_image``, pyramidal OME-TIFF
or SVS from a slide scanner). Such a file is never decoded whole: it is opened
as a zarr store (``tifffile.imread(path, aszarr=True)``) whose levels become
dask arrays, so only the tiles a caller slices (a screen, a batch of patches)
are read. The section keeps a *reference* to the file
(:func:`image_reference`: absolute path, size in pixels and bytes, SHA-256 of
the first :data:`HEADER_BYTES` bytes) in
``uns["spatial"][library]["metadata"]["fullres_image"]``; an ``.h5ad`` stores
the reference (never the pixels) and reading it back re-opens the file lazily,
or says that it moved or changed (:func:`reference_problem`).

The one-gigapixel limit of :mod:`napari_senca.io.image` applies to images that
must be decoded whole (PNG, JPEG); it does not apply here.
"""

from __future__ import annotations

import functools
import hashlib
import os
import warnings
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..section import REFERENCE_KEY

__all__ = [
    "SLIDE_SUFFIXES",
    "HEADER_BYTES",
    "REFERENCE_KEY",
    "is_slide",
    "image_reference",
    "reference_problem",
    "open_levels",
    "open_reference",
    "read_overview",
    "write_pyramid",
]

#: Suffixes read lazily (TIFF family: tifffile reads BigTIFF ``.btf``, OME-TIFF and Aperio ``.svs``).
SLIDE_SUFFIXES = (".tif", ".tiff", ".btf", ".svs")
#: Bytes hashed to recognise the referenced file (its header and first IFD in practice).
HEADER_BYTES = 1 << 16
#: Coarser levels are added (2x mean pooling, lazily) until the longest side is at most this.
_COARSEST_SIDE = 2048
#: Pixels read to find the maximum that scales a non-uint8 image to 0..255 (see :func:`_as_uint8_levels`).
_SCALE_SAMPLE_PIXELS = 1 << 22


def is_slide(path: str | PathLike) -> bool:
    """True when ``path`` is read lazily (a TIFF-family file by its suffix)."""
    return Path(path).suffix.lower() in SLIDE_SUFFIXES


def _header_hash(p: Path) -> str:
    with open(p, "rb") as fh:
        return hashlib.sha256(fh.read(HEADER_BYTES)).hexdigest()


def image_reference(path: str | PathLike, scalef: float = 1.0) -> dict[str, Any]:
    """A reference to a full-resolution image file, small enough for ``uns`` and ``.h5ad``.

    Parameters
    ----------
    path
        The image (TIFF family, see :data:`SLIDE_SUFFIXES`).
    scalef
        Image pixels per ``obsm["spatial"]`` unit (1 for Space Ranger, whose
        positions are full-resolution pixels).

    Returns
    -------
    dict
        ``path`` (absolute), ``width``, ``height``, ``levels`` (in the file),
        ``n_bytes``, ``header_sha256`` and ``scalef``.

    Raises
    ------
    DataError
        When the file is missing or not a readable TIFF image.
    """
    p = Path(path).expanduser().absolute()
    if not p.is_file():
        raise DataError(p, "image file not found")
    levels = _file_levels(str(p))
    h, w = levels[0][0][:2]
    return {
        "path": str(p),
        "width": int(w),
        "height": int(h),
        "levels": len(levels),
        "n_bytes": int(p.stat().st_size),
        "header_sha256": _header_hash(p),
        "scalef": float(scalef),
    }


def reference_problem(ref: Any) -> str | None:
    """Why a stored reference cannot be opened (moved, changed), or None when it can.

    Cheap: a stat and a hash of the first :data:`HEADER_BYTES` bytes.
    """
    if not isinstance(ref, dict) or not ref.get("path"):
        return "no full-resolution image is referenced"
    if ref.get("kind") == "spatialdata":  # an image element of a SpatialData store
        from .spatialdata_store.fullres import store_reference_problem

        return store_reference_problem(ref)
    p = Path(str(ref["path"]))
    if not p.is_file():
        return f"the full-resolution image {p} is not there (moved or deleted)"
    try:
        if int(ref.get("n_bytes", -1)) != p.stat().st_size or ref.get("header_sha256") != _header_hash(p):
            return f"the full-resolution image {p} has changed since the section was read"
    except OSError as exc:
        return f"the full-resolution image {p} cannot be read ({exc.strerror or exc})"
    return None


def _file_levels(path: str) -> list[tuple[tuple[int, ...], str]]:
    """``(shape, axes)`` of every level of the first series, finest first (header only)."""
    import tifffile

    p = Path(path)
    try:
        with tifffile.TiffFile(p) as tif:
            if not tif.series:
                raise DataError(p, "the TIFF file holds no image")
            series = tif.series[0]
            levels = list(getattr(series, "levels", None) or [series])
            out = [(tuple(int(d) for d in lv.shape), str(lv.axes)) for lv in levels]
    except DataError:
        raise
    except Exception as exc:  # tifffile raises many types on corrupt input
        raise DataError(p, f"cannot read the TIFF image ({_short(exc)})") from None
    return [(_yxc_shape(shape, axes, p), axes) for shape, axes in out]


def _yxc_shape(shape: tuple[int, ...], axes: str, p: Path) -> tuple[int, ...]:
    y, x = axes.find("Y"), axes.find("X")
    if y < 0 or x < 0:
        raise DataError(p, f"the TIFF image has axes {axes!r} (no Y and X)")
    c = next((shape[i] for i, a in enumerate(axes) if a in "SC"), 1)
    return (shape[y], shape[x], c)


def _as_yxc(arr: Any, axes: str, p: Path) -> Any:
    """A dask array of one level as ``(H, W, 3)`` in the file's dtype (lazily: nothing is read here)."""
    import dask.array as da

    a = da.from_zarr(arr)
    # drop every axis but Y, X and the channel (S or C): take the first plane of T, Z, ...
    index = tuple(slice(None) if ax in "YXSC" else 0 for ax in axes)
    a = a[index]
    kept = [ax for ax in axes if ax in "YXSC"]
    if "S" in kept and "C" in kept:  # rare: both; keep S (samples of one RGB plane)
        a = a[tuple(0 if ax == "C" else slice(None) for ax in kept)]
        kept = [ax for ax in kept if ax != "C"]
    order = [kept.index("Y"), kept.index("X")] + [i for i, ax in enumerate(kept) if ax in "SC"]
    a = a.transpose(order)
    if a.ndim == 2:
        a = da.stack([a] * 3, axis=-1)
    if a.shape[2] == 1:
        a = da.concatenate([a] * 3, axis=-1)
    elif a.shape[2] == 2 or a.shape[2] > 4:
        raise DataError(p, f"the TIFF image has {a.shape[2]} channels, expected RGB (3) or grey")
    return a[..., :3]


def _level_max(level: Any) -> float:
    """The largest value of a lazily read level (NaN ignored; NaN when all are).

    Levels of at most :data:`_SCALE_SAMPLE_PIXELS` are read whole; larger ones
    through an 8 x 8 grid of windows spread over the level (a bounded sample).
    """
    h, w = level.shape[:2]
    if h * w <= _SCALE_SAMPLE_PIXELS:
        parts = [level]
    else:
        side = max(1, int(np.sqrt(_SCALE_SAMPLE_PIXELS / 64)))
        ys = np.linspace(0, max(h - side, 0), 8).astype(int).tolist()
        xs = np.linspace(0, max(w - side, 0), 8).astype(int).tolist()
        parts = [level[y : y + side, x : x + side] for y in ys for x in xs]
    top = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN window
        for part in parts:
            top = np.fmax(top, np.nanmax(np.asarray(part)))
    return float(top)


def _to_uint8(level: Any, top: float) -> Any:
    """``level`` as uint8, scaled like :func:`~napari_senca.section.as_rgb_uint8` for an image whose maximum is ``top``.

    Floats up to 1 are taken as 0..1, larger ones as 0..255; uint16 (and
    integers above 255) are divided by ``top``. Values are clipped to 0..255
    (``top`` may come from a sample, see :func:`_level_max`).
    """
    import dask.array as da

    if level.dtype == np.uint8:
        return level
    if np.issubdtype(level.dtype, np.floating):
        return da.clip(da.nan_to_num(level) * (255.0 if top <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    if level.dtype == np.uint16 or top > 255:
        return da.clip(level.astype(np.float64) / max(top, 1.0) * 255.0, 0, 255).astype(np.uint8)
    return da.clip(level, 0, 255).astype(np.uint8)


def _as_uint8_levels(levels: list[Any]) -> list[Any]:
    """The file's levels as uint8, all scaled by one maximum so that they agree with the in-memory reader.

    The maximum is the larger of that of the finest level of at most
    :data:`_SCALE_SAMPLE_PIXELS` (read whole; else a bounded sample of the
    coarsest) and that of a bounded sample of the full-resolution level (a
    downsampled level can miss its brightest pixels; see :func:`_level_max`).
    Pixels brighter than every sample are clipped. uint8 files are not read here.
    """
    if all(lv.dtype == np.uint8 for lv in levels):
        return levels
    small = next((lv for lv in levels if lv.shape[0] * lv.shape[1] <= _SCALE_SAMPLE_PIXELS), levels[-1])
    top = _level_max(small)
    if small is not levels[0]:
        top = float(np.fmax(top, _level_max(levels[0])))
    return [_to_uint8(lv, top) for lv in levels]


@functools.lru_cache(maxsize=8)
def _open_cached(path: str, n_bytes: int, mtime_ns: int) -> tuple[Any, ...]:
    import tifffile
    import zarr

    p = Path(path)
    levels = _file_levels(path)
    try:
        store = tifffile.imread(p, aszarr=True)
        z = zarr.open(store, mode="r")
    except Exception as exc:  # tifffile / zarr raise many types on corrupt input
        raise DataError(p, f"cannot open the TIFF image lazily ({_short(exc)})") from None
    arrays = [z[str(i)] for i in range(len(levels))] if hasattr(z, "array_keys") else [z]
    out = [_as_yxc(a, axes, p) for a, (_shape, axes) in zip(arrays, levels, strict=False)]
    try:  # a file that is not 8-bit is read here (its maximum), and a damaged tile fails here
        scaled = _as_uint8_levels(out)
    except Exception as exc:  # codecs raise many types on corrupt tiles
        raise DataError(p, f"cannot read the TIFF image ({_short(exc)})") from None
    return tuple(_add_coarse_levels(scaled))


def _add_coarse_levels(levels: list[Any]) -> list[Any]:
    """Append 2x mean-pooled levels (lazy) until the longest side is at most :data:`_COARSEST_SIDE`."""
    import dask.array as da

    while max(levels[-1].shape[:2]) > _COARSEST_SIDE and min(levels[-1].shape[:2]) >= 4:
        last = levels[-1]
        pooled = da.coarsen(np.mean, last.astype(np.float32), {0: 2, 1: 2}, trim_excess=True)
        # halved chunks would shrink level by level (16 px at level 5): keep them tile-sized
        levels.append(pooled.astype(np.uint8).rechunk((512, 512, 3)))
    return levels


def open_levels(path: str | PathLike) -> list[Any]:
    """The levels of a TIFF-family image as lazy ``(H, W, 3)`` uint8 dask arrays, finest first.

    The file's own pyramid levels come first (read tile by tile through
    tifffile's zarr store), then 2x mean-pooled levels computed on demand
    until the longest side is at most 2048 px, so that napari can show any
    file as a multiscale image. Nothing is decoded here, except for a file
    that is not 8-bit: it is scaled to 0..255 like
    :func:`~napari_senca.io.image.load_image` does (floats up to 1 as 0..1,
    16-bit by the image's maximum), the maximum being read from a small level
    or a bounded sample. Opening the same unchanged file again reuses the store.

    Raises
    ------
    DataError
        When the file is missing or not a readable TIFF image.
    """
    p = Path(path).expanduser().absolute()
    try:
        st = p.stat()
    except OSError:
        raise DataError(p, "image file not found") from None
    return list(_open_cached(str(p), int(st.st_size), int(st.st_mtime_ns)))


def open_reference(ref: dict[str, Any]) -> list[Any]:
    """The levels of a referenced image (a TIFF-family file or a SpatialData store's image element).

    See :func:`open_levels`; references are made by :func:`image_reference`
    and :func:`napari_senca.io.spatialdata_store.fullres.store_image_reference`.
    """
    if ref.get("kind") == "spatialdata":
        from .spatialdata_store.fullres import open_store_levels

        return open_store_levels(ref)
    return open_levels(ref["path"])


def read_overview(levels: list[Any], max_side: int = 2000) -> tuple[np.ndarray, float]:
    """A small in-memory copy of a lazily read image and its factor (overview px per level-0 px).

    Reads the finest level whose longest side is at most ``2 * max_side``
    (at most ~16 Mpx, tile by tile) and shrinks it to ``max_side`` px.
    """
    from PIL import Image

    full_w = levels[0].shape[1]
    pick = next((lv for lv in levels if max(lv.shape[:2]) <= 2 * max_side), levels[-1])
    arr = np.asarray(pick)
    h, w = arr.shape[:2]
    if max(h, w) > max_side:
        f = max_side / max(h, w)
        size = (max(1, round(w * f)), max(1, round(h * f)))
        arr = np.asarray(Image.fromarray(arr).resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0))
    return np.ascontiguousarray(arr), arr.shape[1] / full_w


def write_pyramid(
    image: np.ndarray | str | PathLike, path: str | PathLike, *, tile: int = 512, min_side: int = 1024
) -> Path:
    """Write an RGB image as a tiled, pyramidal BigTIFF (levels halved down to ``min_side`` px).

    ``image`` is an array, a JPEG / PNG (decoded once: it must fit in memory)
    or a TIFF-family file, which is streamed band by band from its lazily read
    levels (memory bounded by one row of tiles, whatever the slide's height): use it for a
    large non-pyramidal TIFF (e.g. a BigTIFF microscope image), whose zoomed-out
    view napari would otherwise compute from the full-resolution pixels.
    The file is written beside ``path`` and moved into place when complete.
    """
    import tifffile

    from .image import load_image

    if isinstance(image, str | PathLike) and is_slide(image):
        lazy = open_levels(image)
        levels: list[Any] = [lv for lv in lazy if min(lv.shape[:2]) >= min_side] or lazy[:1]
    else:
        arr = load_image(image) if isinstance(image, str | PathLike) else np.asarray(image)
        levels = [arr]
        while min(levels[-1].shape[:2]) // 2 >= min_side:
            levels.append(np.ascontiguousarray(levels[-1][::2, ::2]))
    p = Path(path)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    kw = {"tile": (tile, tile), "photometric": "rgb", "compression": "zlib", "dtype": np.uint8}
    try:
        with tifffile.TiffWriter(tmp, bigtiff=True) as tw:
            for i, lv in enumerate(levels):
                extra = {"subifds": len(levels) - 1} if i == 0 else {"subfiletype": 1}
                tw.write(_tiles(lv, tile), shape=tuple(lv.shape), **extra, **kw)
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)
    return p


def _tiles(level: Any, tile: int) -> Any:
    """``tile`` x ``tile`` RGB tiles of ``level`` in row-major order (edge tiles padded).

    One band of ``tile`` rows is read at a time (60,000 px wide: 92 MB).
    """
    h, w = level.shape[:2]
    for y in range(0, h, tile):
        band = level[y : y + tile]
        band = band.compute(scheduler="synchronous") if hasattr(band, "compute") else np.asarray(band)
        for x in range(0, w, tile):
            part = band[:, x : x + tile]
            if part.shape[:2] != (tile, tile):
                full = np.zeros((tile, tile, 3), dtype=np.uint8)
                full[: part.shape[0], : part.shape[1]] = part
                part = full
            yield np.ascontiguousarray(part, dtype=np.uint8)


def _short(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()
    return msg[0][:200] if msg else type(exc).__name__
