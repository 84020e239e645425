"""Joining a labels table to the spots of a section, and saying how well it matched.

Label ids are matched to spot ids exactly first; ids that do not match are
then compared after normalising both sides with :func:`normalise_id`:

* a trailing 10x library suffix is removed (``AAACAAGTATCTCCCA-1`` ->
  ``AAACAAGTATCTCCCA``);
* legacy ST coordinate ids are reduced to rounded grid coordinates
  (``10x13``, ``10_13``, ``X10x13``, ``10.02x12.97`` -> ``10x13``).

A normalised id is used only when it names exactly one spot.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..notes import add_warning, examples, set_labels

__all__ = ["normalise_id", "match_ids", "labels_by_id", "check_match", "record_label_match", "MIN_MATCHED_SHARE"]

MIN_MATCHED_SHARE = 0.5
_SUFFIX = re.compile(r"-\d+$")
_COORD = re.compile(r"^[A-Za-z]*\s*(-?\d+(?:\.\d+)?)\s*[xX_]\s*(-?\d+(?:\.\d+)?)$")


def normalise_id(spot_id: Any) -> str:
    """The id with a ``-<n>`` suffix removed and ST coordinates rounded (see the module)."""
    s = _SUFFIX.sub("", str(spot_id).strip())
    m = _COORD.match(s)
    if m is not None:
        return f"{round(float(m.group(1)))}x{round(float(m.group(2)))}"
    return s


def match_ids(label_ids: Sequence[Any], spot_ids: Sequence[Any]) -> np.ndarray:
    """For each label id, the index of its spot in ``spot_ids`` (-1 when none).

    Exact matches first, then normalised ones (:func:`normalise_id`) where the
    normalised id is unique among the spots.
    """
    spots = [str(s).strip() for s in spot_ids]
    exact = {s: i for i, s in enumerate(spots)}
    norm: dict[str, int] = {}
    clash: set[str] = set()
    for i, s in enumerate(spots):
        k = normalise_id(s)
        if k in norm:
            clash.add(k)
        norm[k] = i
    out = np.full(len(label_ids), -1, dtype=np.int64)
    for j, lid in enumerate(label_ids):
        s = str(lid).strip()
        if s in exact:
            out[j] = exact[s]
            continue
        k = normalise_id(s)
        if k in norm and k not in clash and not _other_library(s, spots[norm[k]]):
            out[j] = norm[k]
    return out


def _other_library(a: str, b: str) -> bool:
    """Both ids carry a 10x library suffix and they differ (``-2`` is another library's spot than ``-1``)."""
    sa, sb = _SUFFIX.search(a), _SUFFIX.search(b)
    return sa is not None and sb is not None and sa.group() != sb.group() and not _COORD.match(a)


def labels_by_id(
    label_ids: Sequence[Any],
    labels: Sequence[Any],
    spot_ids: Sequence[Any],
    path: str | PathLike | None = None,
) -> tuple[list[Any], list[Any]]:
    """Place labels given per id onto the spots (:func:`match_ids`).

    Parameters
    ----------
    label_ids, labels
        The id and the label of each label row.
    spot_ids
        The section's spot ids.
    path
        The labels file (named in the error).

    Returns
    -------
    tuple
        One label per spot (None where no row matched) and the label ids that
        matched no spot.

    Raises
    ------
    DataError
        When two rows give one spot different labels (repeated identical rows are accepted).
    """
    hit = match_ids(label_ids, spot_ids)
    out: list[Any] = [None] * len(spot_ids)
    first: dict[int, Any] = {}  # spot index -> id of the row that labelled it
    for j, i in enumerate(hit.tolist()):
        if i < 0:
            continue
        if i in first and not _same_label(out[i], labels[j]):
            raise DataError(
                path,
                f"spot {str(spot_ids[i])!r} has two labels ({out[i]!r} and {labels[j]!r}; "
                f"label ids {str(first[i])!r} and {str(label_ids[j])!r})",
            )
        first.setdefault(i, label_ids[j])
        out[i] = labels[j]
    unmatched = [lid for lid, i in zip(label_ids, hit.tolist(), strict=True) if i < 0]
    return out, unmatched


def _same_label(a: Any, b: Any) -> bool:
    """True for labels the section reads as the same (:func:`~napari_senca.section.clean_label`:
    surrounding spaces ignored; None, NaN, '' and 'undetermined' all missing)."""
    from ..section import clean_label

    return clean_label(a) == clean_label(b)


def check_match(
    path: Path,
    n_rows: int,
    unmatched: Sequence[Any],
    spot_ids: Sequence[Any],
) -> str | None:
    """Fail when label rows exist but none matches; a warning line when few match.

    Parameters
    ----------
    path
        The labels file (named in the message).
    n_rows
        Label rows read.
    unmatched
        Ids (or coordinates) of the label rows that match no spot.
    spot_ids
        The section's spot ids (a few are shown next to the label ids).

    Returns
    -------
    str or None
        A warning when fewer than :data:`MIN_MATCHED_SHARE` of the rows match.

    Raises
    ------
    DataError
        When there are label rows and none of them matches a spot.
    """
    n_un = len(unmatched)
    if n_rows == 0 or n_un == 0 or len(spot_ids) == 0:
        return None
    spots = examples(spot_ids, "spots", k=2)
    if n_un == n_rows:
        raise DataError(
            path,
            f"no label row matches a spot ({examples(unmatched, 'label rows')}; section has {spots})",
        )
    matched = n_rows - n_un
    if matched < MIN_MATCHED_SHARE * n_rows:
        return (
            f"{path}: only {matched} of {n_rows} label rows match a spot "
            f"(unmatched {examples(unmatched, 'rows')}; section has {spots})"
        )
    return None


def record_label_match(
    adata: Any, path: Path, n_rows: int, unmatched: Sequence[Any], warning: str | None
) -> None:
    """Record in the section how many rows of the labels file ``path`` matched a spot, and its warning."""
    set_labels(adata, n_rows - len(unmatched), len(unmatched), unmatched, path.name)
    if warning:
        add_warning(adata, warning)
