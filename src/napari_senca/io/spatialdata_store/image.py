"""Coordinate systems, the H&E image element and where the spots land on it.

Reading side of :func:`~napari_senca.io.spatialdata_store.read_spatialdata`:
the image element sharing a coordinate system with the spots, its level
nearest :data:`HIRES_SIDE` (read with a stride, never whole), and the spots'
full-resolution frame (:func:`_place`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConfigError, DataError
from .common import GLOBAL, _first_line

#: Longest side (px) of the image level read as ``hires``.
HIRES_SIDE = 2000


def _affine(element: Any, cs: str) -> np.ndarray:
    """The 3 x 3 ``(x, y, 1)`` affine matrix from ``element``'s own coordinates to ``cs``."""
    from spatialdata.transformations import get_transformation

    t = get_transformation(element, to_coordinate_system=cs)
    return np.asarray(t.to_affine_matrix(input_axes=("x", "y"), output_axes=("x", "y")), dtype=np.float64)


def _coordinate_systems(element: Any) -> list[str]:
    from spatialdata.transformations import get_transformation

    return list(get_transformation(element, get_all=True))


def _first_cs(systems: list[str]) -> str:
    return GLOBAL if GLOBAL in systems else systems[0]


def _shared(element: Any, image: Any) -> list[str]:
    theirs = set(_coordinate_systems(image))
    return [cs for cs in _coordinate_systems(element) if cs in theirs]


def _image_levels(image: Any) -> list[Any]:
    """The levels of an image element as ``(c, y, x)`` DataArrays, finest first."""
    if hasattr(image, "dims") and "y" in image.dims:
        return [image]
    levels = []
    for key in sorted(image.keys(), key=lambda k: int(re.sub(r"\D", "", k) or 0)):
        node = image[key]
        levels.append(node["image"] if "image" in node else next(iter(node.ds.data_vars.values())))
    return levels


def _side(level: Any) -> int:
    return int(max(level.sizes["y"], level.sizes["x"]))


def _pick_image(sdata: Any, element: Any, image: str | bool | None, where: Path) -> tuple[str | None, str, str]:
    """The image element to read, the coordinate system of the spots and why no image was read.

    ``image`` by name, else the largest RGB (or grey) image that shares a
    coordinate system with the spots; ``global`` when they share it.
    """
    systems = _coordinate_systems(element)
    if not systems:
        raise DataError(where, "the spots have no coordinate system (no transformation)")
    if image is False:
        return None, _first_cs(systems), ""
    if isinstance(image, str):
        if image not in sdata.images:
            raise DataError(where, f"no image {image!r} (images: {', '.join(sdata.images.keys()) or 'none'})")
        shared = _shared(element, sdata.images[image])
        if not shared:
            raise DataError(where, f"image {image!r} shares no coordinate system with the spots ({', '.join(systems)})")
        level0 = _image_levels(sdata.images[image])[0]
        if not _channels_ok(level0):
            why = f"image {image!r} has {int(level0.sizes['c'])} channels, not an RGB H&E: read without an image"
            return None, _first_cs(shared), why
        return image, _first_cs(shared), ""
    if image is not None:
        raise ConfigError(f"{where}: image= names an image element of the store (or False for none)")
    usable = [(n, _shared(element, im), _image_levels(im)[0]) for n, im in sdata.images.items()]
    usable = [(n, shared, lv) for n, shared, lv in usable if shared and _channels_ok(lv)]
    if not usable:
        return None, _first_cs(systems), ""
    name, shared, _ = max(usable, key=lambda u: _side(u[2]))
    return name, _first_cs(shared), ""


def _read_hires(levels: list[Any], where: Path, name: str) -> tuple[np.ndarray, float]:
    """The level nearest :data:`HIRES_SIDE` as ``(H, W, C)``, and its pixels per pixel of the finest level.

    A level more than twice that size (a single-scale slide) is read with a
    stride, chunk by chunk, never whole; the result is at most
    :data:`HIRES_SIDE` px on its longer side.
    """
    level = min(levels, key=lambda lv: abs(np.log(_side(lv) / HIRES_SIDE)))
    step = max(1, int(np.ceil(_side(level) / (2 * HIRES_SIDE))))
    arr = level.transpose("y", "x", "c").data if "c" in level.dims else level.data[..., None]
    try:
        strided = arr[::step, ::step]
        img = np.asarray(strided.compute() if hasattr(strided, "compute") else strided)
    except Exception as exc:  # a missing or corrupt chunk
        raise DataError(where, f"cannot read image {name!r} ({_first_line(exc)})") from None
    from ..h5ad import _downscale

    factor = float(level.sizes["x"]) / float(levels[0].sizes["x"]) / step  # per pixel of the finest level
    if img.shape[-1] == 1:  # grey: one plane (made RGB when it has to be downscaled)
        img = img[..., 0]
    img, f = _downscale(img, HIRES_SIDE)
    return img, factor * f


def _channels_ok(level: Any) -> bool:
    return "c" not in level.dims or int(level.sizes["c"]) in (1, 3, 4)


def _place(xy: np.ndarray, diam: np.ndarray | None, to_cs: np.ndarray, img_to_cs: np.ndarray | None) -> tuple[
    np.ndarray, float | None, float, bool
]:
    """Spot centres and diameter in the section's full-resolution frame, and that frame's image scale.

    The frame is the spots' coordinate system when the image's transformation
    to it is a plain scale (the usual case: pixels or micrometres); otherwise
    (a translation, rotation or unequal axes) it is the image's own pixels.
    Returns ``(spatial, diameter, image px per frame unit, frame is the image)``.
    """
    mat, scale, in_image = to_cs, 1.0, False
    if img_to_cs is not None:
        lin = img_to_cs[:2, :2]
        s = float(lin[0, 0])
        if s > 0 and np.allclose(lin, np.diag([s, s])) and np.allclose(img_to_cs[:2, 2], 0.0):
            scale = 1.0 / s
        else:
            mat, in_image = np.linalg.inv(img_to_cs) @ to_cs, True
    pts = np.c_[xy, np.ones(len(xy))] @ mat.T
    d = None if diam is None or not np.isfinite(diam).any() else float(np.nanmedian(diam))
    if d is not None:
        d *= float(np.sqrt(abs(np.linalg.det(mat[:2, :2]))))
    return pts[:, :2], d, scale, in_image
