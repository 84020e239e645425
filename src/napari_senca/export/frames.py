"""Pixel frames for GeoJSON: full resolution or a stored image, and which one QuPath users need."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from anndata import AnnData

from ..errors import ConfigError
from ..section import library_id

__all__ = ["FULLRES", "GeoFrame", "geojson_frames", "source_image_is_fullres", "default_geojson_frame", "geojson_frame"]

FULLRES = "fullres"


@dataclass(frozen=True)
class GeoFrame:
    """A pixel frame GeoJSON coordinates can be written in.

    Attributes
    ----------
    name
        ``"fullres"`` (full-resolution pixels, the frame of ``obsm["spatial"]``)
        or the key of a stored image (``"hires"``, ``"lowres"``, ...).
    scale
        Frame pixels per full-resolution pixel (the image's scale factor).
    image_size
        ``(width, height)`` of the stored image in this frame, None when not stored.
    """

    name: str
    scale: float
    image_size: tuple[int, int] | None = None

    @property
    def label(self) -> str:
        """One line for a menu, e.g. ``"hires image (x0.144, 1000 x 1069 px)"``."""
        if self.name == FULLRES:
            return "full resolution (x1)"
        size = f", {self.image_size[0]} x {self.image_size[1]} px" if self.image_size else ""
        return f"{self.name} image (x{self.scale:.3g}{size})"


def _spatial_entry(adata: AnnData) -> Mapping[str, Any]:
    lib = library_id(adata)
    entry = adata.uns["spatial"].get(lib) if lib is not None else None
    return entry if isinstance(entry, Mapping) else {}


def geojson_frames(adata: AnnData) -> list[GeoFrame]:
    """The frames of a section: full resolution, then every stored image (largest first)."""
    entry = _spatial_entry(adata)
    images = entry.get("images") or {}
    sf = entry.get("scalefactors") or {}
    frames = [GeoFrame(FULLRES, 1.0)]
    stored = []
    for key, img in images.items():
        scale = sf.get(f"tissue_{key}_scalef", 1.0 if key == FULLRES else None)
        if img is None or scale is None or not np.isfinite(float(scale)) or float(scale) <= 0:
            continue
        shape = np.shape(img)
        size = (int(shape[1]), int(shape[0])) if len(shape) >= 2 else None
        if key == FULLRES:
            frames[0] = GeoFrame(FULLRES, 1.0, size)
        else:
            stored.append(GeoFrame(str(key), float(scale), size))
    return frames + sorted(stored, key=lambda f: -f.scale)


def source_image_is_fullres(adata: AnnData, tolerance: float = 0.02) -> bool:
    """True when ``uns["spatial"][lib]["metadata"]["source_image_path"]`` is the full-resolution image.

    The readers record there the file the section's (largest) image was read
    from, which is the full-resolution slide only sometimes (a hires PNG or a
    downscaled JPEG is recorded too). The file's size is read from its header
    and compared with the full-resolution size implied by a stored image
    (its width / its scale factor); False when the file cannot be read.
    """
    entry = _spatial_entry(adata)
    path = (entry.get("metadata") or {}).get("source_image_path")
    stored = [f for f in geojson_frames(adata)[1:] if f.image_size]
    if not path or not stored or not Path(str(path)).is_file():
        return False
    from ..io.image import image_size

    try:
        w, _ = image_size(str(path))
    except Exception:
        return False
    ref = stored[0]
    return abs(w * ref.scale / ref.image_size[0] - 1.0) <= tolerance


def default_geojson_frame(adata: AnnData) -> str:
    """The frame QuPath users need: the full-resolution slide when it is known, else the largest image.

    The full-resolution frame is the default when the section has no image, when
    a stored image has scale factor 1 (it *is* the full-resolution image), or
    when ``uns["spatial"][lib]["metadata"]["source_image_path"]`` names a file
    of full-resolution size (:func:`source_image_is_fullres`, e.g. the slide
    behind an ``.h5ad`` whose stored images were downscaled). Otherwise the only
    H&E the user has is a downscaled image (e.g. a hires PNG, the bundled A1
    JPEG), and QuPath must open that one: the largest stored image is the default.
    """
    frames = geojson_frames(adata)
    if len(frames) == 1 or frames[0].image_size is not None:
        return FULLRES
    if any(abs(f.scale - 1.0) < 1e-9 for f in frames[1:]) or source_image_is_fullres(adata):
        return FULLRES
    return frames[1].name


def geojson_frame(adata: AnnData, frame: str | None = None) -> GeoFrame:
    """The :class:`GeoFrame` called ``frame`` (None: :func:`default_geojson_frame`).

    Raises
    ------
    ConfigError
        For a frame the section does not have.
    """
    frames = {f.name: f for f in geojson_frames(adata)}
    name = default_geojson_frame(adata) if frame is None else str(frame)
    if name not in frames:
        raise ConfigError(f"no GeoJSON frame {name!r} for this section; use one of: {', '.join(frames)}")
    return frames[name]
