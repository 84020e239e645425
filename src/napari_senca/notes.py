"""Facts about how a section was read: excluded spots, label matching, warnings.

Readers record what they dropped, matched or changed in
``adata.uns["senca_input"]``:

* ``"n_excluded"``: ``{reason: number of spots}`` for spots of the input
  that are not in the section (e.g. ``"selected = 0"``), with up to three
  ids per reason in ``"excluded_examples"``;
* ``"labels"``: ``{"matched": n, "unmatched": n, "examples": [...]}``, the
  label rows that did / did not find a spot (examples are unmatched ids);
* ``"duplicate_genes"``: ``{"n_names": n, "n_dropped": n, "examples": [...]}``;
* ``"warnings"``: one-line strings.

Every warning is also emitted as an :class:`InputWarning` through
:mod:`warnings`, so that napari shows it as a notification; the CLI prints
them from ``uns`` (:func:`describe_input`). Messages that list ids use
:func:`examples`: a count and a few ids, never the whole list.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import Any

from anndata import AnnData

from .errors import MAX_MESSAGE, shorten

__all__ = [
    "INPUT_KEY",
    "MAX_MESSAGE",
    "InputWarning",
    "examples",
    "one_line",
    "input_info",
    "add_warning",
    "add_excluded",
    "set_labels",
    "describe_input",
]

INPUT_KEY = "senca_input"


class InputWarning(UserWarning):
    """Something about the input the user should know (data were dropped or changed)."""


def examples(items: Iterable[Any], noun: str = "ids", k: int = 3) -> str:
    """``"346 ids, e.g. 'a', 'b', 'c'"``: a count and the first ``k`` items.

    Parameters
    ----------
    items
        The items (anything with a ``str``); only the first ``k`` are shown.
    noun
        What the items are, plural.
    k
        How many to show.
    """
    items = list(items)
    shown = ", ".join(_short(str(i)) for i in items[:k])
    if not items:
        return f"0 {noun}"
    if len(items) == 1:
        return f"1 {noun[:-1] if noun.endswith('s') else noun}: {shown}"
    if len(items) <= k:
        return f"{len(items)} {noun}: {shown}"
    return f"{len(items)} {noun}, e.g. {shown}"


def one_line(msg: object, limit: int = MAX_MESSAGE) -> str:
    """``msg`` on one line, cut to ``limit`` characters (see :func:`napari_senca.errors.shorten`)."""
    return shorten(str(msg), limit)


def input_info(adata: AnnData) -> dict[str, Any]:
    """``adata.uns["senca_input"]``, created when missing."""
    info = adata.uns.get(INPUT_KEY)
    if not isinstance(info, dict):
        info = {} if info is None else dict(info)
        adata.uns[INPUT_KEY] = info
    return info


def add_warning(adata: AnnData, msg: str, *, stacklevel: int = 2) -> str:
    """Record a one-line warning in ``uns`` and emit it as an :class:`InputWarning`."""
    line = one_line(msg)
    info = input_info(adata)
    info["warnings"] = [str(w) for w in _as_list(info.get("warnings"))] + [line]
    warnings.warn(line, InputWarning, stacklevel=stacklevel + 1)
    return line


def add_excluded(adata: AnnData, reason: str, ids: Iterable[Any]) -> None:
    """Record that the spots ``ids`` of the input were left out for ``reason``."""
    ids = [str(i) for i in ids]
    info = input_info(adata)
    counts = dict(info.get("n_excluded") or {})
    ex = dict(info.get("excluded_examples") or {})
    info["n_excluded"] = counts
    info["excluded_examples"] = ex
    if not ids:
        return
    counts[reason] = int(counts.get(reason, 0)) + len(ids)
    ex[reason] = ([str(e) for e in _as_list(ex.get(reason))] + ids)[:3]


def set_labels(adata: AnnData, matched: int, unmatched: int, unmatched_ids: Iterable[Any], source: str) -> None:
    """Record how many label rows of ``source`` matched a spot."""
    input_info(adata)["labels"] = {
        "source": str(source),
        "matched": int(matched),
        "unmatched": int(unmatched),
        "examples": list(dict.fromkeys(str(i) for i in unmatched_ids))[:3],
    }


def describe_input(adata: AnnData) -> list[tuple[str, str]]:
    """``(field, value)`` lines for excluded spots, label matching, duplicates and warnings.

    Fields are ``"excluded"``, ``"label rows"``, ``"gene names"``, ``"bins"``
    (Visium HD), ``"normalized"`` and ``"warning"`` (one line each); absent facts give no line,
    except ``"excluded"``, which says ``none`` when the reader recorded nothing.
    """
    info = adata.uns.get(INPUT_KEY) or {}
    rows: list[tuple[str, str]] = []
    if "n_excluded" in info:
        counts = {str(k): int(v) for k, v in dict(info.get("n_excluded") or {}).items() if int(v) > 0}
        if counts:
            ex = dict(info.get("excluded_examples") or {})
            parts = []
            for reason, n in counts.items():
                ids = [str(e) for e in _as_list(ex.get(reason))]
                parts.append(f"{n} {reason}" + (f" (e.g. {', '.join(ids)})" if ids else ""))
            total = sum(counts.values())
            rows.append(("excluded", f"{total} spot{'' if total == 1 else 's'}: " + "; ".join(parts)))
        else:
            rows.append(("excluded", "none"))
    lab = info.get("labels")
    if isinstance(lab, Mapping):
        m, u = int(lab.get("matched", 0)), int(lab.get("unmatched", 0))
        text = f"{m} of {m + u} rows of {lab.get('source', 'the labels file')} match a spot"
        ids = [str(e) for e in _as_list(lab.get("examples"))]
        if u:
            text += f"; {u} unmatched" + (f" (e.g. {', '.join(ids)})" if ids else "")
        rows.append(("label rows", text))
    dup = info.get("duplicate_genes")
    if isinstance(dup, Mapping) and int(dup.get("n_names", 0)):
        ids = ", ".join(str(e) for e in _as_list(dup.get("examples")))
        rows.append(
            (
                "gene names",
                f"{int(dup['n_names'])} duplicated (e.g. {ids}): kept the column with the highest total, "
                f"dropped {int(dup.get('n_dropped', 0))}",
            )
        )
    if info.get("bin_size_um"):
        have = ", ".join(str(int(b)) for b in _as_list(info.get("bin_sizes_available")))
        rows.append(("bins", f"Visium HD {int(info['bin_size_um'])} um bins" + (f" (available: {have} um)" if have else "")))
    if info.get("normalized"):
        rows.append(("normalized", "yes: values used as given (no normalisation or log1p)"))
    for w in _as_list(info.get("warnings")):
        rows.append(("warning", str(w)))
    return rows


def _short(s: str, limit: int = 40) -> str:
    text = repr(s)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def _as_list(v: Any) -> list[Any]:
    """A list from ``None``, a scalar, a list or an array read back from ``.h5ad``."""
    if v is None:
        return []
    if isinstance(v, str):
        return [v]
    try:
        return list(v)
    except TypeError:
        return [v]
