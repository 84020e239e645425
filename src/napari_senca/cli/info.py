"""``napari-senca info``: what a section holds (:func:`summarize`)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from .common import _read

if TYPE_CHECKING:  # anndata is imported by the commands, not by --help
    from anndata import AnnData


def summarize(adata: AnnData) -> list[tuple[str, str]]:
    """``(field, value)`` lines describing a section (what ``info`` prints).

    After the basic facts come the reader's notes (:func:`~napari_senca.notes.describe_input`):
    excluded spots and why, label rows that match no spot, duplicated gene
    names, pre-normalised input and one ``warning`` line per warning.
    """
    import numpy as np

    from ..notes import describe_input
    from ..section import (
        LABEL_KEY,
        fullres_reference,
        has_labels,
        library_id,
        spot_diameter,
        spot_spacing,
    )

    src = adata.uns.get("senca_input", {}) or {}
    lib = library_id(adata)
    rows: list[tuple[str, str]] = [
        ("path", str(src.get("path", "")) or "(in memory)"),
        ("format", str(src.get("format", "unknown"))),
        ("library id", lib or "none"),
        ("spots", str(adata.n_obs)),
        ("genes", str(adata.n_vars)),
    ]
    images = []
    if lib is not None:
        entry = adata.uns["spatial"][lib]
        sf = entry.get("scalefactors", {}) or {}
        for key, img in (entry.get("images", {}) or {}).items():
            arr = np.asarray(img)
            if arr.size == 0:
                continue
            scale = float(sf.get(f"tissue_{key}_scalef", 1.0))
            images.append(f"{key} {arr.shape[1]} x {arr.shape[0]} px, scale factor {scale:.6g}")
    rows.append(("image", "; ".join(images) + " (image px per full-res px)" if images else "none"))
    ref = fullres_reference(adata)
    if ref is not None:
        from ..io.slide import reference_problem

        problem = reference_problem(ref)
        rows.append(
            (
                "slide",
                f"{ref['path']}: {int(ref['width'])} x {int(ref['height'])} px, {int(ref.get('levels', 1))} "
                f"level(s), read lazily" + (f" (NOT USABLE: {problem})" if problem else ""),
            )
        )
    if has_labels(adata):
        lab = adata.obs[LABEL_KEY]
        vc = lab.value_counts(dropna=True)
        vc = vc[vc > 0]
        parts = ", ".join(f"{k} {int(v)}" for k, v in vc.items())
        rows.append(("labels", f"{len(vc)} regions ({parts}); {int(lab.isna().sum())} unlabelled"))
    else:
        rows.append(("labels", "none"))
    rows.append(("spot spacing", f"{spot_spacing(adata):.1f} full-res px"))
    rows.append(("spot diameter", f"{spot_diameter(adata):.1f} full-res px"))
    rows.extend(describe_input(adata))
    return rows


def _cmd_info(args: argparse.Namespace) -> int:
    adata = _read(args)
    rows = summarize(adata)
    if rows[0][1] == "(in memory)":
        rows[0] = ("path", str(args.path))
    width = max(len(k) for k, _ in rows) + 1
    for k, v in rows:
        print(f"{k + ':':<{width}} {v}")
    return 0
