"""Writing results: cluster tables, GeoJSON for QuPath, an overview figure, markers.

Qt-free; used by the command line and the napari writers. Every writer is
atomic (a temporary file in the target folder replaces the target in one
step, nothing is left behind on failure) and refuses to replace an existing
file unless ``overwrite=True``.

One concern per module, every public name re-exported here:

* :mod:`.atomic`: atomic writing (:func:`atomic_write`, :func:`atomic_path`, :func:`default_mode`);
* :mod:`.clusters`: cluster categories, display names, colours, :func:`adjusted_rand`;
* :mod:`.tables`: ``clusters.csv`` and ``markers.csv``;
* :mod:`.frames`: the pixel frames GeoJSON can be written in;
* :mod:`.geojson`: the GeoJSON features and writer;
* :mod:`.layout`: 2-D layouts of an embedding (PCA, UMAP);
* :mod:`.overview`: ``overview.png``;
* :mod:`.snapshot`: :func:`section_snapshot`, a copy later edits do not reach (for writing in a thread).

Cluster names and colours
-------------------------
Display names come from ``names=`` when given, else from
``adata.uns["senca"]["cluster_names"]`` (a dict cluster -> name, or a list in
category order), else ``"Region <cluster>"``. Colours come from
``adata.uns["<key>_colors"]`` (scanpy's convention, hex strings in category
order) when it matches the categories, else from a fixed 20-colour palette.
"""

from __future__ import annotations

from .atomic import atomic_path, atomic_write, default_mode, input_files, refuse_input
from .clusters import PALETTE, adjusted_rand, cluster_categories, cluster_colors, cluster_names
from .frames import (
    FULLRES,  # noqa: F401 - public, not in __all__ (as before the split)
    GeoFrame,
    default_geojson_frame,
    geojson_frame,
    geojson_frames,
    source_image_is_fullres,
)
from .geojson import geojson_features, write_geojson
from .layout import embedding_2d, overview_layout, pca_2d  # noqa: F401 - public, not in __all__
from .overview import write_overview_png
from .snapshot import section_snapshot
from .tables import clusters_table, write_clusters_csv, write_markers_csv

__all__ = [
    "PALETTE",
    "atomic_write",
    "atomic_path",
    "input_files",
    "refuse_input",
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
    "section_snapshot",
]

