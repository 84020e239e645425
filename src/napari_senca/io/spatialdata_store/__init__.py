"""SpatialData ``.zarr`` stores: read a table as a section, write an annotated section as a store.

Needs the optional extra ``napari-senca[spatialdata]`` (the ``spatialdata``
package and its stack: geopandas, xarray, ome-zarr, dask-image...); the rest
of napari-senca never imports it. ``spatialdata`` is imported inside the
functions, and a missing package is one line naming the extra.

Reading (:func:`read_spatialdata`): one *table* (an AnnData: counts, gene
names, obs) annotates one *region* element through
``table.uns["spatialdata_attrs"]`` (``region``, ``region_key``,
``instance_key``). Circles shapes give the spot centres and their diameter;
other shapes their centroids; points their coordinates. The spots go into the
coordinate system they share with the chosen *image*, through the elements'
transformations (:func:`spatialdata.transformations.get_transformation`), and
the image level closest to 2,000 px becomes the section's ``hires`` image
(a gigapixel level is never loaded whole). See :func:`read_spatialdata` for
the frame of ``obsm["spatial"]``.

Writing (:func:`write_spatialdata`): the section becomes a table (all of its
obs, obsm, layers and uns but the images), circles of the true spot radius
and the stored images (``hires`` and ``lowres``, at most Space Ranger's
sizes) with the scale transformation that puts them on the spots, all in the
``global`` coordinate system (full-resolution pixels). The store is written
beside the target and moved into place; an existing path is replaced only
with ``overwrite=True``, and only when it is a SpatialData store.

Modules: :mod:`.common` (the extra, store layout, detection), :mod:`.read`
(:func:`read_spatialdata`) with :mod:`.table` (table, region, spots),
:mod:`.image` (coordinate systems, image level, spot placement) and
:mod:`.assemble` (the section from them); :mod:`.convert`
(:func:`section_to_spatialdata`) and :mod:`.write` (:func:`write_spatialdata`:
atomic writing, which stores are ever replaced). Everything public is
importable from here, as before the split.
"""

from __future__ import annotations

# GLOBAL, HIRES_SIDE and OWN_STORE_ATTR are not in __all__ (as before) but stay importable from here
from .common import GLOBAL as GLOBAL
from .common import INSTALL_HINT, looks_like_spatialdata, spatialdata_available
from .convert import section_to_spatialdata
from .image import HIRES_SIDE as HIRES_SIDE
from .read import read_spatialdata
from .write import OWN_STORE_ATTR as OWN_STORE_ATTR
from .write import write_spatialdata

__all__ = [
    "INSTALL_HINT",
    "spatialdata_available",
    "looks_like_spatialdata",
    "read_spatialdata",
    "section_to_spatialdata",
    "write_spatialdata",
]
