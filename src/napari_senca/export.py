"""Writing results: cluster tables, GeoJSON for QuPath, an overview figure, markers.

Qt-free; used by the command line and the napari writers. Every writer is
atomic (a temporary file in the target folder replaces the target in one
step, nothing is left behind on failure) and refuses to replace an existing
file unless ``overwrite=True``.

Cluster names and colours
-------------------------
Display names come from ``names=`` when given, else from
``adata.uns["senca"]["cluster_names"]`` (a dict cluster -> name, or a list in
category order), else ``"Region <cluster>"``. Colours come from
``adata.uns["<key>_colors"]`` (scanpy's convention, hex strings in category
order) when it matches the categories, else from a fixed 20-colour palette.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
from anndata import AnnData

from .errors import ConfigError
from .review.colours import PALETTE as _REVIEW_PALETTE
from .section import (
    CLUSTER_KEY,
    EMBED_KEY,
    LABEL_KEY,
    UNS_KEY,
    get_image,
    has_labels,
    library_id,
    spot_diameter,
)

__all__ = [
    "PALETTE",
    "atomic_write",
    "atomic_path",
    "default_mode",
    "cluster_categories",
    "cluster_names",
    "cluster_colors",
    "adjusted_rand",
    "clusters_table",
    "write_clusters_csv",
    "GeoFrame",
    "geojson_frames",
    "default_geojson_frame",
    "source_image_is_fullres",
    "geojson_frame",
    "geojson_features",
    "write_geojson",
    "write_overview_png",
    "write_markers_csv",
]

#: Region colours when none are stored: the review's palette, chosen to stay visible on H&E
#: (one palette for the viewer, overview.png, GeoJSON and the cohort figure).
PALETTE: tuple[str, ...] = tuple(_REVIEW_PALETTE)


# --------------------------------------------------------------------------- atomic files


def default_mode(folder: bool = False) -> int:
    """Permission bits a new file (or folder) gets under the current umask."""
    mask = os.umask(0o022)
    os.umask(mask)
    return (0o777 if folder else 0o666) & ~mask


def _check_target(path: str | PathLike, overwrite: bool) -> Path:
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(f"{p} is a folder, not a file")
    if p.exists() and not overwrite:
        raise FileExistsError(f"{p} already exists (use overwrite=True to replace it)")
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


@contextmanager
def atomic_path(path: str | PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``.

    For libraries that write to a file name themselves. On an exception the
    temporary file is removed and ``path`` is left untouched.

    Raises
    ------
    FileExistsError
        When ``path`` exists and ``overwrite`` is False.
    """
    p = _check_target(path, overwrite)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp" + p.suffix, dir=p.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, default_mode())  # mkstemp makes 0600 files
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_write(path: str | PathLike, *, overwrite: bool = False, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` that replaces ``path`` when the block ends.

    Parameters
    ----------
    path
        The target file.
    overwrite
        Replace an existing file.
    mode
        ``"w"`` (text, UTF-8, ``newline=""``) or ``"wb"`` (binary).

    Yields
    ------
    file object
        Write to it; on an exception it is closed and removed, and ``path`` is
        left untouched.

    Raises
    ------
    FileExistsError
        When ``path`` exists and ``overwrite`` is False.
    ValueError
        For a mode other than ``"w"`` or ``"wb"``.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    with atomic_path(path, overwrite=overwrite) as tmp:
        if mode == "w":
            fh: IO[Any] = open(tmp, "w", encoding="utf-8", newline="")
        else:
            fh = open(tmp, "wb")
        with fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())


# --------------------------------------------------------------------------- clusters


def _cluster_series(adata: AnnData, key: str) -> pd.Series:
    if key not in adata.obs:
        raise ConfigError(f"no clustering {key!r} on this section: run the model first")
    s = adata.obs[key]
    if not isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(str).where(s.notna()).astype("category")
    return s


def cluster_categories(adata: AnnData, key: str = CLUSTER_KEY) -> list[str]:
    """The clusters of ``obs[key]`` as strings, in category order."""
    return [str(c) for c in _cluster_series(adata, key).cat.categories]


def cluster_names(
    adata: AnnData, key: str = CLUSTER_KEY, names: Mapping[Any, str] | Sequence[str] | None = None
) -> dict[str, str]:
    """Display name of every cluster (see the module notes for the sources)."""
    cats = cluster_categories(adata, key)
    src: Any = names
    if src is None:
        uns = adata.uns.get(UNS_KEY)
        src = uns.get("cluster_names") if isinstance(uns, Mapping) else None
    out = {c: f"Region {c}" for c in cats}
    if isinstance(src, Mapping):
        for k, v in src.items():
            if str(k) in out and v is not None and str(v).strip():
                out[str(k)] = str(v)
    elif src is not None and not isinstance(src, str):
        vals = list(np.asarray(src, dtype=object).ravel())
        if len(vals) == len(cats):
            for c, v in zip(cats, vals, strict=True):
                if v is not None and str(v).strip():
                    out[c] = str(v)
    return out


def _hex_to_rgb(h: str) -> tuple[int, int, int]:
    from matplotlib.colors import to_rgb

    r, g, b = to_rgb(h)
    return round(r * 255), round(g * 255), round(b * 255)


def cluster_colors(adata: AnnData, key: str = CLUSTER_KEY) -> dict[str, tuple[int, int, int]]:
    """RGB (0-255) of every cluster: ``uns[key + "_colors"]`` if it fits, else :data:`PALETTE`."""
    cats = cluster_categories(adata, key)
    stored = adata.uns.get(f"{key}_colors")
    colours: list[str] = list(PALETTE)
    if stored is not None and len(stored) == len(cats):
        try:
            return {c: _hex_to_rgb(str(h)) for c, h in zip(cats, stored, strict=True)}
        except ValueError:
            pass
    return {c: _hex_to_rgb(colours[i % len(colours)]) for i, c in enumerate(cats)}


def adjusted_rand(adata: AnnData, key: str = CLUSTER_KEY, label_key: str = LABEL_KEY) -> float | None:
    """Adjusted Rand index of ``obs[key]`` against the labels, on labelled spots only.

    Returns None when the section has no labels.
    """
    if label_key not in adata.obs or not adata.obs[label_key].notna().any():
        return None
    from sklearn.metrics import adjusted_rand_score

    clusters = _cluster_series(adata, key)
    labels = adata.obs[label_key]
    ok = (labels.notna() & clusters.notna()).to_numpy()
    if not ok.any():
        return None
    return float(adjusted_rand_score(labels[ok].astype(str), clusters[ok].astype(str)))


def _integral(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if np.isfinite(a).all() and np.all(a == np.round(a)):
        return a.astype(np.int64)
    return a


def clusters_table(adata: AnnData, key: str = CLUSTER_KEY) -> pd.DataFrame:
    """One row per spot: ``spot_id, x, y, pixel_x, pixel_y, cluster`` (and ``label`` if any).

    ``x``/``y`` are the grid coordinates (``array_col``/``array_row``),
    ``pixel_x``/``pixel_y`` the full-resolution pixel centres (``obsm["spatial"]``).

    Raises
    ------
    ConfigError
        When ``obs[key]`` is missing.
    """
    clusters = _cluster_series(adata, key)
    xy = np.asarray(adata.obsm["spatial"], dtype=np.float64)
    df = pd.DataFrame(
        {
            "spot_id": np.asarray(adata.obs_names, dtype=object),
            "x": _integral(adata.obs["array_col"].to_numpy()) if "array_col" in adata.obs else np.nan,
            "y": _integral(adata.obs["array_row"].to_numpy()) if "array_row" in adata.obs else np.nan,
            "pixel_x": xy[:, 0],
            "pixel_y": xy[:, 1],
            "cluster": clusters.to_numpy(),
        }
    )
    if has_labels(adata):
        df["label"] = adata.obs[LABEL_KEY].to_numpy()
    return df


def write_clusters_csv(
    adata: AnnData, path: str | PathLike, key: str = CLUSTER_KEY, *, overwrite: bool = False
) -> Path:
    """Write :func:`clusters_table` as CSV (atomic). Returns the path."""
    df = clusters_table(adata, key)
    with atomic_write(path, overwrite=overwrite) as fh:
        df.to_csv(fh, index=False)
    return Path(path)


def write_markers_csv(df: pd.DataFrame, path: str | PathLike, *, overwrite: bool = False) -> Path:
    """Write a marker-gene table (e.g. from :func:`napari_senca.markers.rank_markers`) as CSV."""
    with atomic_write(path, overwrite=overwrite) as fh:
        df.to_csv(fh, index=False)
    return Path(path)


# --------------------------------------------------------------------------- GeoJSON


def _circle(cx: float, cy: float, r: float, n: int = 32) -> list[list[float]]:
    t = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    ring = [[round(float(cx + r * math.cos(a)), 3), round(float(cy + r * math.sin(a)), 3)] for a in t]
    ring.append(ring[0])  # GeoJSON rings are closed
    return ring


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
    from .io.image import image_size

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


def geojson_features(
    adata: AnnData,
    key: str = CLUSTER_KEY,
    *,
    names: Mapping[Any, str] | Sequence[str] | None = None,
    n_vertices: int = 32,
    frame: str | None = None,
) -> dict[str, Any]:
    """A GeoJSON FeatureCollection with one circular polygon per spot.

    Coordinates are pixels of ``frame`` (see :func:`geojson_frames`; default
    :func:`default_geojson_frame`): full-resolution pixels times the frame's
    scale factor, the frame of that image when it is opened in QuPath. Each
    circle has the true spot diameter. The collection's ``properties`` record
    the frame (``frame``, ``scale``, ``image_size``, ``spot_diameter``, ``units``);
    every feature has ``spot_id``, ``cluster``, ``cluster_name``, ``frame``,
    ``label`` (when the section has labels), ``objectType: "annotation"`` and a
    QuPath ``classification`` ``{"name", "color": [r, g, b]}``.

    Raises
    ------
    ConfigError
        Unknown frame or missing clustering.
    """
    fr = geojson_frame(adata, frame)
    clusters = _cluster_series(adata, key)
    nm = cluster_names(adata, key, names)
    col = cluster_colors(adata, key)
    xy = np.asarray(adata.obsm["spatial"], dtype=np.float64)[:, :2] * fr.scale
    r = spot_diameter(adata) * fr.scale / 2.0
    labels = adata.obs[LABEL_KEY] if has_labels(adata) else None
    feats = []
    for i, sid in enumerate(adata.obs_names):
        c = clusters.iloc[i]
        props: dict[str, Any] = {"spot_id": str(sid), "objectType": "annotation", "frame": fr.name}
        if pd.isna(c):
            props.update(cluster=None, cluster_name=None)
        else:
            c = str(c)
            props.update(cluster=c, cluster_name=nm[c])
            props["classification"] = {"name": nm[c], "color": list(col[c])}
        if labels is not None:
            v = labels.iloc[i]
            props["label"] = None if pd.isna(v) else str(v)
        feats.append(
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [_circle(xy[i, 0], xy[i, 1], r, n_vertices)]},
                "properties": props,
            }
        )
    meta = {
        "frame": fr.name,
        "scale": fr.scale,
        "image_size": list(fr.image_size) if fr.image_size else None,
        "units": "pixels",
        "spot_diameter": round(2.0 * r, 3),
        "library_id": library_id(adata),
        "description": f"pixel = full-resolution pixel x {fr.scale:.6g} ({fr.label})",
    }
    return {"type": "FeatureCollection", "properties": meta, "features": feats}


def write_geojson(
    adata: AnnData,
    path: str | PathLike,
    key: str = CLUSTER_KEY,
    *,
    names: Mapping[Any, str] | Sequence[str] | None = None,
    frame: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write :func:`geojson_features` in ``frame`` to ``path`` (atomic). Returns the path."""
    fc = geojson_features(adata, key, names=names, frame=frame)
    with atomic_write(path, overwrite=overwrite) as fh:
        json.dump(fc, fh, separators=(",", ":"))
    return Path(path)


# --------------------------------------------------------------------------- overview figure


def embedding_2d(emb: np.ndarray, seed: int = 0) -> tuple[np.ndarray, str]:
    """2-D layout of an embedding: UMAP (umap-learn), or PCA for fewer than 15 spots.

    Returns the coordinates and the method's name (``"UMAP"`` or ``"PCA"``).
    """
    x = np.asarray(emb, dtype=np.float64)
    n = x.shape[0]
    if n >= 15:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import umap

                xy = umap.UMAP(n_neighbors=min(15, n - 1), random_state=seed, n_jobs=1).fit_transform(x)
            return np.asarray(xy, dtype=np.float64), "UMAP"
        except ImportError:
            pass
    return pca_2d(x), "PCA"


def pca_2d(emb: np.ndarray) -> np.ndarray:
    """The first two principal components of an embedding, ``(n, 2)`` (zeros where undefined)."""
    x = np.asarray(emb, dtype=np.float64)
    n = x.shape[0]
    xc = x - x.mean(0) if n else x
    if n < 2 or xc.shape[1] == 0:
        return np.zeros((n, 2))
    u, s, _ = np.linalg.svd(xc, full_matrices=False)
    pcs = u[:, :2] * s[:2]
    if pcs.shape[1] < 2:
        pcs = np.concatenate([pcs, np.zeros((n, 2 - pcs.shape[1]))], axis=1)
    return pcs


def overview_layout(adata: AnnData, embedding_key: str, layout: str = "pca", seed: int = 0) -> tuple[np.ndarray, str]:
    """The overview's 2-D layout of ``obsm[embedding_key]``: PCA (default, milliseconds) or UMAP.

    UMAP reuses the layout the viewer's embedding view stored for this very
    embedding (:func:`napari_senca.embedding_view.cached_layout`, checked by
    checksum); else umap-learn runs (its numba kernels compile on first use in
    a process, about 20 s).
    """
    emb = np.asarray(adata.obsm[embedding_key])
    if str(layout).lower() == "umap":
        if embedding_key == EMBED_KEY:
            from .embedding_view import cached_layout

            stored = cached_layout(adata, "umap")
            if stored is not None:
                return np.asarray(stored, dtype=np.float64), "UMAP"
        return embedding_2d(emb, seed=seed)
    return pca_2d(emb), "PCA"


def write_overview_png(
    adata: AnnData,
    path: str | PathLike,
    key: str = CLUSTER_KEY,
    embedding_key: str = EMBED_KEY,
    *,
    names: Mapping[Any, str] | Sequence[str] | None = None,
    overwrite: bool = False,
    dpi: int = 150,
    layout: str = "pca",
) -> Path:
    """Save a figure: spots coloured by cluster over the H&E, beside a 2-D layout of the embedding.

    Parameters
    ----------
    adata
        Section with ``obs[key]``; ``obsm[embedding_key]`` adds the layout panel
        (the panel is left out without it).
    path
        Target ``.png``.
    names
        Cluster display names for the legend.
    overwrite
        Replace an existing file.
    dpi
        Resolution.
    layout
        ``"pca"`` (default: instant) or ``"umap"`` (see :func:`overview_layout`).

    Returns
    -------
    pathlib.Path
        The written file.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import EllipseCollection
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    clusters = _cluster_series(adata, key)
    cats = cluster_categories(adata, key)
    nm = cluster_names(adata, key, names)
    col = cluster_colors(adata, key)
    rgb = np.array(
        [np.array(col[str(c)]) / 255.0 if not pd.isna(c) else (0.6, 0.6, 0.6) for c in clusters],
        dtype=np.float64,
    ).reshape(-1, 3)
    xy = np.asarray(adata.obsm["spatial"], dtype=np.float64)[:, :2]
    emb = adata.obsm[embedding_key] if embedding_key in adata.obsm else None

    fig = Figure(figsize=(13.0 if emb is not None else 7.5, 6.0), dpi=dpi)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2 if emb is not None else 1, squeeze=False)[0]
    ax = axes[0]

    d = spot_diameter(adata)
    img = get_image(adata)
    if img is not None:
        image, scale = img
        step = max(1, int(math.ceil(max(image.shape[:2]) / 2000)))
        shown = image[::step, ::step]
        s = scale / step
        ax.imshow(shown, extent=(-0.5, shown.shape[1] - 0.5, shown.shape[0] - 0.5, -0.5))
        pts = xy * s
        dd = d * s
    else:
        pts = xy
        dd = d
        ax.set_facecolor("white")
        pad = max(dd, 1.0)
        ax.set_xlim(pts[:, 0].min() - pad, pts[:, 0].max() + pad)
        ax.set_ylim(pts[:, 1].max() + pad, pts[:, 1].min() - pad)
    ax.add_collection(
        EllipseCollection(
            widths=np.full(len(pts), dd),
            heights=np.full(len(pts), dd),
            angles=np.zeros(len(pts)),
            units="xy",
            offsets=pts,
            offset_transform=ax.transData,
            facecolors=rgb,
            edgecolors="none",
            alpha=0.85,
        )
    )
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    title = f"{library_id(adata) or 'section'}: {adata.n_obs} spots, {len(cats)} regions"
    ari = adjusted_rand(adata, key)
    if ari is not None:
        title += f" (ARI {ari:.3f})"
    ax.set_title(title, fontsize=10)

    if emb is not None:
        lay, method = overview_layout(adata, embedding_key, layout)
        ax2 = axes[1]
        ax2.scatter(lay[:, 0], lay[:, 1], c=rgb, s=max(2.0, min(30.0, 3000.0 / max(adata.n_obs, 1))), linewidths=0)
        ax2.set_title(f"{method} of {embedding_key}", fontsize=10)
        ax2.set_xticks([])
        ax2.set_yticks([])
        ax2.set_xlabel(f"{method} 1")
        ax2.set_ylabel(f"{method} 2")
    counts = clusters.value_counts()
    handles = [
        Line2D([], [], marker="o", linestyle="", markersize=8, color=np.array(col[c]) / 255.0,
               label=f"{nm[c]} ({int(counts.get(c, 0))})")
        for c in cats
    ]  # fmt: skip
    axes[-1].legend(
        handles=handles, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False, fontsize=9, title=key
    )
    fig.tight_layout()
    with atomic_write(path, overwrite=overwrite, mode="wb") as fh:
        fig.savefig(fh, format="png", dpi=dpi)
    return Path(path)
