"""The cohort folder: new, empty, or a previous cohort output that may be written again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..output_marker import MARKER, read_marker, upgrade_marker, write_marker

__all__ = ["COHORT_FILES"]

#: Files ``batch`` writes into the cohort folder besides one folder per section.
COHORT_FILES = ("cohort.csv", "region_vocabulary.csv", "cohort.png")


def _written_before(root: Path) -> int | None:
    """When the last batch finished in ``root`` (``cohort.csv``'s ``st_mtime_ns``; None when there is none).

    ``cohort.csv`` is written after region matching rewrote the sections, so
    section files not later than it were written by napari-senca (see
    :func:`~napari_senca.outputs.changed_outputs`, for markers without stamps).
    """
    try:
        return (root / "cohort.csv").stat().st_mtime_ns
    except OSError:
        return None


def _upgrade_sections(root: Path, names: list[str]) -> None:
    """Give every section output in ``root`` written by an older version a record of its files, now.

    The sections are those the cohort marker lists and ``names`` (this
    batch's). Their markers without stamps are judged by time against the
    previous ``cohort.csv`` (:func:`_written_before`), which is only valid
    until this batch rewrites it: a section left out of this batch (or whose
    plan fails) judged later against the newer time would have its review
    edits counted as napari-senca's. So all are upgraded before anything is
    written (see :func:`~napari_senca.outputs.upgrade_marker`; sections with
    a record are not touched).
    """
    written_before = _written_before(root)
    listed = map(str, (read_marker(root) or {}).get("sections", []) or [])
    for name in dict.fromkeys([*listed, *names]):
        sec = root / name
        if name and sec.is_dir() and sec.parent == root:
            upgrade_marker(sec, written_before)


def _mark_cohort(root: Path, config: dict[str, Any], names: list[str], **extra: Any) -> None:
    """Mark ``root`` a cohort output holding its earlier sections and these (``extra``: more marker fields)."""
    before = [str(n) for n in (read_marker(root) or {}).get("sections", []) or []]
    sections = [*before, *[n for n in names if n not in before]]
    write_marker(root, COHORT_FILES, config=config, extra={"cohort": True, **extra, "sections": sections})


def _check_root(out: Path, inputs: list[Path], names: list[str]) -> Path:
    """The cohort folder: new, empty, or a previous cohort output (its marker lists what it holds)."""
    from ..errors import OutputError
    from ..outputs import check_not_input, check_writable

    o = out.expanduser().absolute()
    check_not_input(o, inputs)
    if o.exists() and not o.is_dir():
        raise OutputError(f"{out}: exists and is not a folder; choose a new folder")
    if o.is_dir() and any(o.iterdir()):
        _check_previous_cohort(o, names)
    check_writable(o)
    o.mkdir(parents=True, exist_ok=True)
    return o


def _check_previous_cohort(o: Path, names: list[str]) -> None:
    """A non-empty folder must be a cohort output holding only what napari-senca wrote there."""
    from ..errors import OutputError

    marker = read_marker(o)
    if marker is None or not marker.get("cohort"):
        raise OutputError(
            f"{o}: the folder is not empty and is not a napari-senca cohort output (no {MARKER}); "
            "choose a new or empty folder"
        )
    ours = {MARKER, *map(str, marker.get("files", []) or []), *map(str, marker.get("sections", []) or []), *names}
    extra = sorted(e.name for e in o.iterdir() if e.name not in ours and not e.name.startswith("."))
    if extra:
        shown = ", ".join(extra[:3]) + (f" and {len(extra) - 3} more" if len(extra) > 3 else "")
        raise OutputError(f"{o}: holds {len(extra)} file(s) napari-senca did not write ({shown}); move them away")
