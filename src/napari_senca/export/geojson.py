"""GeoJSON for QuPath: one circular polygon per spot, classified by cluster."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from ..section import CLUSTER_KEY, LABEL_KEY, has_labels, library_id, spot_diameter
from .atomic import atomic_write
from .clusters import _cluster_series, cluster_colors, cluster_names
from .frames import GeoFrame, geojson_frame

__all__ = ["geojson_features", "write_geojson"]


def _circles(xy: np.ndarray, r: float, n: int = 32) -> np.ndarray:
    """``(N, 2)`` centres -> ``(N, n + 1, 2)`` closed rings, rounded to 1/1000 pixel (all at once:
    a Python loop per vertex took 13 s for 62,500 spots)."""
    t = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    offsets = r * np.stack([np.cos(t), np.sin(t)], axis=1)  # (n, 2)
    rings = np.round(xy[:, None, :] + offsets[None], 3)  # (N, n, 2)
    return np.concatenate([rings, rings[:, :1]], axis=1)  # GeoJSON rings are closed


def _spot_properties(
    sid: Any, cluster: Any, label: Any, frame: str, nm: dict[str, str], col: dict[str, tuple[int, int, int]], labelled: bool
) -> dict[str, Any]:
    """The ``properties`` of one spot's feature."""
    props: dict[str, Any] = {"spot_id": str(sid), "objectType": "annotation", "frame": frame}
    if pd.isna(cluster):
        props.update(cluster=None, cluster_name=None)
    else:
        c = str(cluster)
        props.update(cluster=c, cluster_name=nm[c])
        props["classification"] = {"name": nm[c], "color": list(col[c])}
    if labelled:
        props["label"] = None if pd.isna(label) else str(label)
    return props


def _collection_properties(adata: AnnData, fr: GeoFrame, r: float) -> dict[str, Any]:
    """The collection's ``properties``: the frame the coordinates are in."""
    return {
        "frame": fr.name,
        "scale": fr.scale,
        "image_size": list(fr.image_size) if fr.image_size else None,
        "units": "pixels",
        "spot_diameter": round(2.0 * r, 3),
        "library_id": library_id(adata),
        "description": f"pixel = full-resolution pixel x {fr.scale:.6g} ({fr.label})",
    }


class _Spots:
    """What every feature of a section's GeoJSON is made from, computed once (a frame, a key, names)."""

    def __init__(self, adata: AnnData, key: str, names: Mapping[Any, str] | Sequence[str] | None,
                 frame: str | None, n_vertices: int) -> None:  # fmt: skip
        self.frame = geojson_frame(adata, frame)
        self.clusters = _cluster_series(adata, key).tolist()
        self.names = cluster_names(adata, key, names)
        self.colours = cluster_colors(adata, key)
        self.xy = np.asarray(adata.obsm["spatial"], dtype=np.float64)[:, :2] * self.frame.scale
        self.radius = spot_diameter(adata) * self.frame.scale / 2.0
        self.labelled = has_labels(adata)
        self.labels = adata.obs[LABEL_KEY].tolist() if self.labelled else [None] * adata.n_obs
        self.ids = list(adata.obs_names)
        self.n_vertices = n_vertices
        self.properties = _collection_properties(adata, self.frame, self.radius)

    def features(self, lo: int = 0, hi: int | None = None) -> list[dict[str, Any]]:
        """The features of spots ``lo:hi``."""
        sl = slice(lo, hi)
        rings = _circles(self.xy[sl], self.radius, self.n_vertices).tolist()
        return [
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": _spot_properties(sid, cluster, label, self.frame.name, self.names, self.colours,
                                               self.labelled),  # fmt: skip
            }
            for sid, cluster, label, ring in zip(self.ids[sl], self.clusters[sl], self.labels[sl], rings, strict=True)
        ]


def geojson_features(
    adata: AnnData,
    key: str = CLUSTER_KEY,
    *,
    names: Mapping[Any, str] | Sequence[str] | None = None,
    n_vertices: int = 32,
    frame: str | None = None,
) -> dict[str, Any]:
    """A GeoJSON FeatureCollection with one circular polygon per spot.

    Coordinates are pixels of ``frame`` (see :func:`~napari_senca.export.geojson_frames`;
    default :func:`~napari_senca.export.default_geojson_frame`): full-resolution
    pixels times the frame's scale factor, the frame of that image when it is
    opened in QuPath. Each circle has the true spot diameter. The collection's
    ``properties`` record the frame (``frame``, ``scale``, ``image_size``,
    ``spot_diameter``, ``units``); every feature has ``spot_id``, ``cluster``,
    ``cluster_name``, ``frame``, ``label`` (when the section has labels),
    ``objectType: "annotation"`` and a QuPath ``classification``
    ``{"name", "color": [r, g, b]}``.

    Raises
    ------
    ConfigError
        Unknown frame or missing clustering.
    """
    spots = _Spots(adata, key, names, frame, n_vertices)
    return {"type": "FeatureCollection", "properties": spots.properties, "features": spots.features()}


CHUNK = 2_000  # spots per piece of text: a worker thread writing the file lets the viewer run between pieces
_COMPACT = (",", ":")


def _rings_text(rings: np.ndarray) -> list[str]:
    """``(N, V, 2)`` closed rings -> N JSON texts ``[[[x,y],...]]``, as ``json.dumps`` writes them.

    Floats are written with ``float.__repr__`` (what the encoder uses) and no
    list is made per vertex: the cyclic garbage collector, which a napari
    process spends 0.2-0.4 s on per full pass, is not woken by strings.
    """
    n, v = rings.shape[:2]
    if not np.isfinite(rings).all():  # json writes NaN / Infinity, not repr's nan / inf
        return [json.dumps([ring], separators=_COMPACT) for ring in rings.tolist()]
    vals = list(map(float.__repr__, rings.ravel().tolist()))
    pairs = [x + "," + y for x, y in zip(vals[0::2], vals[1::2], strict=True)]
    return ["[[[" + "],[".join(pairs[i * v : (i + 1) * v]) + "]]]" for i in range(n)]


def _features_text(spots: _Spots, lo: int, hi: int) -> str:
    """The features of spots ``lo:hi`` as the comma-separated text ``json.dumps`` writes for them."""
    rings = _circles(spots.xy[lo:hi], spots.radius, spots.n_vertices)
    rest: dict[tuple[Any, Any], str] = {}  # the properties after spot_id depend on (cluster, label) only
    out = []
    for sid, cluster, label, ring in zip(spots.ids[lo:hi], spots.clusters[lo:hi], spots.labels[lo:hi],
                                         _rings_text(rings), strict=True):  # fmt: skip
        key = (cluster, label)
        if key not in rest:
            props = json.dumps(_spot_properties("", cluster, label, spots.frame.name, spots.names, spots.colours,
                                                spots.labelled), separators=_COMPACT)  # fmt: skip
            rest[key] = props[len('{"spot_id":""') :]
        out.append('{"type":"Feature","geometry":{"type":"Polygon","coordinates":' + ring + '},"properties":'
                   + '{"spot_id":' + json.dumps(str(sid)) + rest[key] + "}")  # fmt: skip
    return ",".join(out)


def write_geojson(
    adata: AnnData,
    path: str | PathLike,
    key: str = CLUSTER_KEY,
    *,
    names: Mapping[Any, str] | Sequence[str] | None = None,
    frame: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write :func:`geojson_features` in ``frame`` to ``path`` (atomic). Returns the path.

    The file is byte for byte the compact ``json.dumps`` of the collection,
    written as text in pieces of :data:`CHUNK` spots: no dict or list per
    vertex (62,500 spots in a napari viewer: 7.0 s -> 2 s; see
    ``benchmarks/gui_pauses.py``), less memory, and a thread writing it
    lets the others run between pieces.
    """
    spots = _Spots(adata, key, names, frame, 32)
    head = json.dumps({"type": "FeatureCollection", "properties": spots.properties, "features": []},
                      separators=_COMPACT)  # fmt: skip
    with atomic_write(path, overwrite=overwrite) as fh:
        fh.write(head[:-2])  # up to and with '"features":['
        for lo in range(0, len(spots.ids), CHUNK):
            fh.write(("," if lo else "") + _features_text(spots, lo, lo + CHUNK))
        fh.write("]}")
    return Path(path)
