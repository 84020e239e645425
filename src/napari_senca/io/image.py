"""Loading H&E images (JPEG, PNG, TIFF) and their JSON sidecars.

TIFF files are read with :mod:`tifffile` (first series, full resolution
level), everything else with Pillow. Before any pixel is decoded, the size in
the file's header is compared with :data:`MAX_IMAGE_PIXELS` (environment
variable ``NAPARI_SENCA_MAX_IMAGE_PIXELS`` overrides it), so an image too
large for memory gives one clear error instead of a ``MemoryError``. Pillow's
own decompression-bomb guard is lifted while an image is read, because
whole-slide H&E images routinely have more pixels than its default limit; it
is restored afterwards.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..section import as_rgb_uint8, set_fullres_reference

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_IMAGE_PIXELS",
    "max_image_pixels",
    "image_size",
    "check_image_size",
    "load_image",
    "find_images",
    "read_json",
    "read_scale_sidecar",
    "check_inside",
    "record_source_image",
    "record_image_origin",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")

#: Largest image (width x height) that is decoded: 1 gigapixel, 3 GB as RGB (a 9,300 x 9,900 px
#: HER2ST H&E has 0.09 gigapixels, a 24,000 px square Visium full-resolution image 0.58).
MAX_IMAGE_PIXELS = 1_000_000_000


def max_image_pixels() -> int:
    """The pixel limit in force (``NAPARI_SENCA_MAX_IMAGE_PIXELS`` or :data:`MAX_IMAGE_PIXELS`)."""
    env = os.environ.get("NAPARI_SENCA_MAX_IMAGE_PIXELS", "").replace("_", "")
    return int(env) if env.isdigit() and int(env) > 0 else MAX_IMAGE_PIXELS


@contextmanager
def _no_pixel_limit() -> Iterator[None]:
    """Temporarily lift Pillow's ``MAX_IMAGE_PIXELS`` guard."""
    from PIL import Image

    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = old


def load_image(path: str | PathLike) -> np.ndarray:
    """Read an H&E image as ``(H, W, 3)`` uint8.

    Parameters
    ----------
    path
        A ``.jpg``, ``.jpeg``, ``.png``, ``.tif`` or ``.tiff`` file.

    Returns
    -------
    numpy.ndarray
        RGB image (grey is replicated, alpha dropped, 16-bit rescaled).

    Raises
    ------
    DataError
        When the file is missing, unreadable or not an RGB/grey image, or its
        header gives more pixels than :func:`max_image_pixels` (checked
        before decoding), or decoding runs out of memory.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(p, "image file not found")
    w, h = image_size(p)
    check_image_size(p, (w, h))
    try:
        img = _read_tiff(p) if _is_tiff(p) else _read_pillow(p)
        return as_rgb_uint8(img, p)
    except MemoryError:
        raise DataError(p, f"not enough memory to decode the {w:,} x {h:,} px image; use a downscaled image") from None


def _is_tiff(p: Path) -> bool:
    return p.suffix.lower() in (".tif", ".tiff")


def image_size(path: str | PathLike) -> tuple[int, int]:
    """Width and height of an image from its header, without decoding the pixels.

    Raises
    ------
    DataError
        When the file is not a readable image.
    """
    p = Path(path)
    if _is_tiff(p):
        return _tiff_size(p)
    from PIL import Image, UnidentifiedImageError

    try:
        with _no_pixel_limit(), Image.open(p) as im:
            return int(im.size[0]), int(im.size[1])
    except UnidentifiedImageError:
        raise DataError(p, "not a readable image (unknown or corrupt format)") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DataError(p, f"cannot read the image ({_short(exc)})") from None


def _full_level(tif: Any, p: Path) -> Any:
    """The full-resolution level of a TIFF's first series (pyramids: level 0)."""
    if not tif.series:
        raise DataError(p, "the TIFF file holds no image")
    series = tif.series[0]
    return series.levels[0] if getattr(series, "levels", None) else series


def _tiff_size(p: Path) -> tuple[int, int]:
    import tifffile

    try:
        with tifffile.TiffFile(p) as tif:
            level = _full_level(tif, p)
            shape, axes = tuple(level.shape), str(getattr(level, "axes", ""))
    except DataError:
        raise
    except Exception as exc:  # tifffile raises many types on corrupt input
        raise DataError(p, f"cannot read the TIFF image ({_short(exc)})") from None
    if "Y" in axes and "X" in axes:
        return int(shape[axes.index("X")]), int(shape[axes.index("Y")])
    dims = [d for d in shape if d not in (1, 3, 4)] or list(shape)
    return (int(dims[-1]), int(dims[-2])) if len(dims) >= 2 else (int(shape[-1]), 1)


def check_image_size(path: str | PathLike, size: tuple[int, int]) -> None:
    """Raise a one-line :class:`DataError` when a ``(width, height)`` image is too large to decode."""
    w, h = size
    limit = max_image_pixels()
    if w * h > limit:
        raise DataError(
            path,
            f"the image is {w:,} x {h:,} px ({w * h / 1e9:.3g} gigapixels, {3 * w * h / 2**30:.3g} GiB as RGB), "
            f"more than the limit of {limit / 1e9:.3g} gigapixels; use a downscaled image with its scale "
            "factor (e.g. a Space Ranger hires image) or raise NAPARI_SENCA_MAX_IMAGE_PIXELS",
        )


def _read_tiff(p: Path) -> np.ndarray:
    import tifffile

    try:
        with tifffile.TiffFile(p) as tif:
            img = np.asarray(_full_level(tif, p).asarray())
    except (DataError, MemoryError):
        raise
    except Exception as exc:  # tifffile raises many types on corrupt input
        raise DataError(p, f"cannot read the TIFF image ({_short(exc)})") from None
    img = np.squeeze(img)
    # channel-first (3, H, W) or (4, H, W) -> channel-last
    if img.ndim == 3 and img.shape[0] in (3, 4) and img.shape[2] not in (3, 4):
        img = np.moveaxis(img, 0, -1)
    return img


def _read_pillow(p: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with _no_pixel_limit(), Image.open(p) as im:
            im.load()
            if im.mode not in ("RGB", "L"):
                im = im.convert("RGBA" if "A" in im.getbands() else "RGB")
            return np.asarray(im)
    except UnidentifiedImageError:
        raise DataError(p, "not a readable image (unknown or corrupt format)") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DataError(p, f"cannot read the image ({_short(exc)})") from None


def find_images(folder: str | PathLike) -> list[Path]:
    """Image files (by suffix, case-insensitive) directly inside ``folder``, sorted."""
    d = Path(folder)
    if not d.is_dir():
        return []
    return sorted(
        f for f in d.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith(".")
    )


def read_json(path: str | PathLike) -> dict[str, Any]:
    """Read a JSON object from ``path``.

    Raises
    ------
    DataError
        When the file cannot be read, is not valid JSON or is not an object.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(p, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(p, f"cannot read the file ({_short(exc)})") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(p, f"malformed JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise DataError(p, f"expected a JSON object, got {type(obj).__name__}")
    return obj


def positive_number(obj: dict[str, Any], key: str, path: str | PathLike) -> float:
    """``obj[key]`` as a finite positive float, or a :class:`DataError` naming ``path``."""
    if key not in obj:
        raise DataError(path, f"missing {key!r}")
    v = obj[key]
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
        raise DataError(path, f"{key!r} must be a positive number, got {v!r}")
    return float(v)


def read_scale_sidecar(path: str | PathLike) -> float:
    """The ``spot_to_image_scale`` of a legacy-ST image sidecar (image px per spot px).

    Raises
    ------
    DataError
        Malformed JSON, or a missing / non-positive ``spot_to_image_scale``.
    """
    return positive_number(read_json(path), "spot_to_image_scale", path)


def check_inside(
    xy_img: np.ndarray,
    shape: tuple[int, ...],
    ids: list[str],
    image_path: str | PathLike,
    scale_source: str | PathLike | None = None,
) -> None:
    """Raise a :class:`DataError` naming the image when spots fall outside it.

    Parameters
    ----------
    xy_img
        Spot centres ``(x, y)`` in image pixels.
    shape
        The image's shape ``(H, W, ...)``.
    ids
        Spot ids, for the message.
    image_path
        The image file named in the message.
    scale_source
        Where the scale factor came from (sidecar / scale-factor file), if any.
    """
    h, w = shape[:2]
    xy = np.asarray(xy_img, dtype=np.float64)
    out = (xy[:, 0] < 0) | (xy[:, 0] >= w) | (xy[:, 1] < 0) | (xy[:, 1] >= h)
    if out.any():
        i = int(np.where(out)[0][0])
        where = f"the scale factor in {Path(scale_source).name}" if scale_source else "the scale factor"
        raise DataError(
            image_path,
            f"{int(out.sum())} of {len(ids)} spots lie outside the {w}x{h} image "
            f"(e.g. {ids[i]!r} at x={xy[i, 0]:.1f}, y={xy[i, 1]:.1f} image px); check {where}",
        )


def record_source_image(adata: Any, path: str | PathLike) -> None:
    """Name the H&E file a section's image was read from.

    Stored in ``uns["spatial"][library_id]["metadata"]["source_image_path"]``
    (absolute path), so that an ``.h5ad``, which keeps only downscaled images
    (see :func:`napari_senca.io.h5ad.compact_spatial`), still leads back to
    the full-resolution file. Does nothing for a section without ``uns["spatial"]``.
    """
    spatial = adata.uns.get("spatial")
    if not isinstance(spatial, dict) or not spatial:
        return
    entry = spatial[next(iter(spatial))]
    if isinstance(entry, dict):
        meta = entry.setdefault("metadata", {})
        meta["source_image_path"] = str(Path(path).expanduser().absolute())


def _short(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()
    return msg[0] if msg else type(exc).__name__


def record_image_origin(adata: Any, ref: dict | None, path: str | PathLike | None) -> None:
    """A referenced slide (read lazily: the section keeps the reference), else the image file read.

    Either way :func:`record_source_image` names the file the H&E came from.
    """
    if ref is not None:
        set_fullres_reference(adata, ref)
        record_source_image(adata, ref["path"])
    elif path is not None:
        record_source_image(adata, path)
