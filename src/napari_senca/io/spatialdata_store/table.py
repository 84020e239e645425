"""The table of a store and the spots it annotates: which table, which region, which instances.

Reading side of :func:`~napari_senca.io.spatialdata_store.read_spatialdata`:
the table by name (or the only one), its rows for one region element, that
element's spot centres and diameters, and the element row of every table row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from ...errors import DataError
from ...notes import examples


def _pick_table(sdata: Any, path: Path, table: str | None) -> tuple[str, AnnData]:
    """The table to read: ``table`` by name, else the only one."""
    names = list(sdata.tables.keys())
    if table is not None:
        if table not in names:
            raise DataError(path, f"no table {table!r} (tables: {', '.join(names) or 'none'})")
        return table, sdata.tables[table]
    if not names:
        raise DataError(path, "the store has no table (no counts to read); napari-senca needs a table of spots x genes")
    if len(names) > 1:
        raise DataError(
            path,
            f"{len(names)} tables ({', '.join(names)}): choose one (table= in Python, --section on the command line)",
        )
    return names[0], sdata.tables[names[0]]


def _table_rows(tab: AnnData, where: Path, region: str | None) -> tuple[str, AnnData, str]:
    """The region element the table annotates, the table's rows for it, and its instance key."""
    attrs = tab.uns.get("spatialdata_attrs")
    if not isinstance(attrs, dict) or "region" not in attrs or "instance_key" not in attrs:
        raise DataError(where, "the table annotates no element (no region / instance_key in uns['spatialdata_attrs'])")
    regions = [str(r) for r in np.atleast_1d(np.asarray(attrs["region"], dtype=object)).tolist()]
    rkey, ikey = str(attrs.get("region_key")), str(attrs["instance_key"])
    if region is None:
        if len(regions) != 1:
            raise DataError(where, f"the table annotates {len(regions)} elements ({', '.join(regions)}): choose one with region=")
        region = regions[0]
    elif region not in regions:
        raise DataError(where, f"the table does not annotate {region!r} (it annotates {', '.join(regions)})")
    if ikey not in tab.obs:
        raise DataError(where, f"no instance key column {ikey!r} in the table's obs")
    if len(regions) > 1 and rkey in tab.obs:
        tab = tab[tab.obs[rkey].astype(str).to_numpy() == region]
    return region, tab, ikey


def _region_element(sdata: Any, region: str, where: Path) -> tuple[Any, str]:
    """The element named ``region`` and its kind (``"shapes"`` or ``"points"``)."""
    if region in sdata.shapes:
        return sdata.shapes[region], "shapes"
    if region in sdata.points:
        return sdata.points[region], "points"
    if region in sdata.labels:
        raise DataError(
            where, f"the table annotates labels {region!r} (a segmentation raster): napari-senca needs spots (shapes or points)"
        )
    raise DataError(where, f"the table annotates {region!r}, which is not a shapes or points element of the store")


def _element_geometry(element: Any, kind: str) -> tuple[pd.Index, np.ndarray, np.ndarray | None]:
    """Instance ids, ``(n, 2)`` centres ``(x, y)`` and per-instance diameters (None for points)."""
    if kind == "points":
        df = element[["x", "y"]].compute()
        return pd.Index(df.index), df[["x", "y"]].to_numpy(np.float64), None
    geom = element.geometry
    if (geom.geom_type == "Point").all():
        xy = np.stack([geom.x.to_numpy(), geom.y.to_numpy()], axis=1)
        radius = element["radius"].to_numpy(np.float64) if "radius" in element else None
        return pd.Index(element.index), xy, None if radius is None else 2.0 * radius
    cent = geom.centroid
    diam = 2.0 * np.sqrt(np.asarray(geom.area, dtype=np.float64) / np.pi)  # circle of the same area
    return pd.Index(element.index), np.stack([cent.x.to_numpy(), cent.y.to_numpy()], axis=1), diam


def _match_instances(index: pd.Index, ids: pd.Series, where: Path, region: str) -> np.ndarray:
    """Row of ``index`` for every table instance id (errors name the ids that are missing)."""
    if not index.is_unique:
        raise DataError(where, f"element {region!r} has duplicated instance ids")
    idx = index.get_indexer(ids.to_numpy())
    if (idx < 0).any():  # ids stored as text on one side and numbers on the other
        idx = pd.Index(index.astype(str)).get_indexer(ids.astype(str).to_numpy())
    if (idx < 0).any():
        missing = ids[idx < 0].astype(str).tolist()
        raise DataError(where, f"no instance in {region!r} for {examples(missing, 'table rows')} (of {len(ids)})")
    return idx
