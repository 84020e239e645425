"""One legend for several open sections: rename a region once, renamed in every section.

A :class:`SharedLegend` links the review states (:class:`~napari_senca.review.ReviewState`)
of several sections through one region vocabulary. Every region of every
section belongs to one *entry*:

* sections from one joint run (:mod:`napari_senca.joint`, ``uns["senca"]["joint"]``)
  share their region ids, so entry ``k`` is region ``k`` everywhere;
* sections whose regions were matched (``obs["cohort_region"]``, written by
  ``napari-senca batch``) use their cohort region;
* otherwise the regions are matched now (:func:`napari_senca.vocabulary.match_sections`,
  reference: the first section).

Renaming or recolouring an entry renames or recolours its regions in every
section (a section with two regions in one entry gets ``name`` and
``name (2)``). Linking gives every entry one colour (the first section's).
No Qt, no napari: the dock widget calls one method per action and then redraws
the layers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import ConfigError, OutputError
from .review import ReviewState
from .section import UNS_KEY
from .vocabulary import COHORT_KEY

__all__ = ["SharedLegend", "read_cohort", "match_for_link"]


def _joint_names(adata: Any) -> tuple[str, ...] | None:
    info = adata.uns.get(UNS_KEY)
    names = info.get("joint") if isinstance(info, dict) else None
    return None if names is None else tuple(str(n) for n in np.asarray(names).ravel())


def _how_linked(adatas: Sequence[Any]) -> str:
    """``"joint"`` (one joint run), ``"cohort"`` (regions matched by ``napari-senca batch``) or ``"match"``."""
    joint = {_joint_names(a) for a in adatas}
    if len(joint) == 1 and None not in joint:
        return "joint"
    return "cohort" if all(COHORT_KEY in a.obs for a in adatas) else "match"


def match_for_link(sections: Sequence[tuple[str, Any]], key: str, min_corr: float = 0.1) -> dict[str, dict[str, str]] | None:
    """The region matching :meth:`SharedLegend.link` would compute for these ``(name, adata)``, or None when it needs none.

    Pure: a worker thread computes it while the sections are read (160,000
    bins x 18,000 genes: 0.5 s that would otherwise pause the viewer) and
    passes it to ``link(matched=...)``.
    """
    if _how_linked([a for _, a in sections]) != "match":
        return None
    return _match(sections, key, min_corr)


def _match(sections: Sequence[tuple[str, Any]], key: str, min_corr: float) -> dict[str, dict[str, str]]:
    from .vocabulary import match_sections

    return match_sections(sections, key=key, min_corr=min_corr)[0]


def _cohort_entries(state: ReviewState) -> dict[str, str]:
    """Region id -> its cohort region (the most frequent one among its spots)."""
    lab = state.adata.obs[state.key].astype(str).to_numpy()
    coh = state.adata.obs[COHORT_KEY].astype(str).to_numpy()
    out = {}
    for cid in state.clusters:
        vals = pd.Series(coh[lab == cid])
        out[cid] = str(vals.mode().iloc[0]) if len(vals) else f"{cid}"
    return out


class SharedLegend:
    """Regions of several sections grouped into shared entries.

    Parameters
    ----------
    sections
        ``(section name, review state)`` pairs, in display order.
    entries
        ``entries[section][cluster id] = entry`` for every cluster of every section.
    """

    def __init__(self, sections: Sequence[tuple[str, ReviewState]], entries: dict[str, dict[str, str]]) -> None:
        names = [n for n, _ in sections]
        if len(set(names)) != len(names):
            raise ConfigError("two open sections have the same name; rename a layer first")
        self.sections = list(sections)
        self.entries = entries
        self.how = ""

    # ------------------------------------------------------------------ building
    @classmethod
    def link(cls, sections: Sequence[tuple[str, ReviewState]], min_corr: float = 0.1,
             matched: dict[str, dict[str, str]] | None = None) -> SharedLegend:
        """Link the sections' regions (joint ids, cohort regions, or matching now) and unify colours.

        ``matched`` is :func:`match_for_link` of the same sections, when it
        was computed already (in a worker); it is used only when it covers
        exactly these sections.

        Raises
        ------
        ConfigError
            Fewer than two sections, or a section without regions.
        """
        if len(sections) < 2:
            raise ConfigError(f"a shared legend needs at least 2 sections with regions, got {len(sections)}")
        for name, st in sections:
            if not st.has_result:
                raise ConfigError(f"section {name!r} has no regions yet: run SENCA-st on it first")
        mode = _how_linked([st.adata for _, st in sections])
        if mode == "joint":
            entries = {n: {c: c for c in st.clusters} for n, st in sections}
            how = "joint training: the same region ids in every section"
        elif mode == "cohort":
            entries = {n: _cohort_entries(st) for n, st in sections}
            how = "cohort regions matched by napari-senca batch"
        else:
            names = [n for n, _ in sections]
            covered = matched is not None and list(matched) == names and all(
                set(matched[n]) >= set(st.clusters) for n, st in sections)  # fmt: skip
            mapping = matched if covered else _match([(n, st.adata) for n, st in sections], sections[0][1].key,
                                                     min_corr)  # fmt: skip
            entries = {n: {c: mapping[n].get(c, f"{n}:{c}") for c in st.clusters} for n, st in sections}
            how = f"regions matched now by expression centroids (reference {sections[0][0]})"
        legend = cls(sections, entries)
        legend.how = how
        legend._unify_colours()
        return legend

    def _unify_colours(self) -> None:
        """One colour per entry: the palette in entry order (distinct for up to its length)."""
        from .review import PALETTE

        for i, e in enumerate(self.entry_ids()):
            colour = PALETTE[i % len(PALETTE)]
            for _, st, cids in self._members(e):
                for c in cids:
                    if st.colour_of(c) != colour:
                        st.recolour(c, colour)

    # ------------------------------------------------------------------ queries
    def state(self, section: str) -> ReviewState:
        """The review state of a section."""
        for n, st in self.sections:
            if n == section:
                return st
        raise ConfigError(f"no open section {section!r} (open: {', '.join(n for n, _ in self.sections)})")

    def entry_ids(self) -> list[str]:
        """Entries in order of first appearance (section order, then region order)."""
        seen: dict[str, None] = {}
        for n, st in self.sections:
            for c in st.clusters:
                seen.setdefault(self.entries[n].get(c, f"{n}:{c}"), None)
        return list(seen)

    def _members(self, entry: str) -> list[tuple[str, ReviewState, list[str]]]:
        out = []
        for n, st in self.sections:
            cids = [c for c in st.clusters if self.entries[n].get(c, f"{n}:{c}") == entry]
            if cids:
                out.append((n, st, cids))
        return out

    def resolve(self, entry: Any) -> str:
        """An entry given by its id or its current name.

        Raises
        ------
        ConfigError
            When no entry has that id or name.
        """
        e = str(entry).strip()
        ids = self.entry_ids()
        if e in ids:
            return e
        hits = [i for i in ids if self.name_of(i).lower() == e.lower()]
        if len(hits) == 1:
            return hits[0]
        raise ConfigError(f"no shared region {entry!r} (regions: {', '.join(self.name_of(i) for i in ids[:8])})")

    def name_of(self, entry: str) -> str:
        """The entry's name: its first region's display name, or the entry itself while
        that is a default name of another id (e.g. ``Region 3`` or ``B1:2``, not ``cluster 0``)."""
        from .review.keys import default_name

        _, st, cids = self._members(entry)[0]
        name = st.name_of(cids[0])
        return entry if name == default_name(cids[0]) and entry != cids[0] else name

    def colour_of(self, entry: str) -> str:
        """The entry's colour: its first region's colour."""
        _, st, cids = self._members(entry)[0]
        return st.colour_of(cids[0])

    def legend(self) -> pd.DataFrame:
        """One row per entry: ``entry``, ``name``, ``colour``, ``n_spots`` (all sections), ``n_sections``."""
        rows = []
        for e in self.entry_ids():
            mem = self._members(e)
            n = sum(int(np.isin(st.adata.obs[st.key].astype(str), cids).sum()) for _, st, cids in mem)
            rows.append((e, self.name_of(e), self.colour_of(e), n, len(mem)))
        return pd.DataFrame(rows, columns=["entry", "name", "colour", "n_spots", "n_sections"])

    # ------------------------------------------------------------------ edits
    def rename(self, entry: Any, name: str) -> list[str]:
        """Rename an entry's regions in every section; returns the sections changed.

        Checked in every section before any is changed (an empty name, or a
        name another region of a section already has, changes nothing).

        Raises
        ------
        ConfigError
            Unknown entry, empty name or a name already used.
        """
        e = self.resolve(entry)
        new = str(name).strip()
        if not new:
            raise ConfigError("a region name cannot be empty")
        plan = []
        for n, st, cids in self._members(e):
            names = [new] + [f"{new} ({i})" for i in range(2, len(cids) + 1)]
            others = {st.name_of(c) for c in st.clusters if c not in cids}
            clash = [x for x in names if x in others]
            if clash:
                raise ConfigError(f"the name {clash[0]!r} is already used by another region of section {n!r}")
            plan.append((n, st, list(zip(cids, names, strict=True))))
        changed = []
        for n, st, pairs in plan:
            temp = [(c, x) for c, x in pairs if st.name_of(c) != x]
            for c, _ in temp[1:]:  # free the names a group swaps among itself
                st.rename(c, f"\u2026{c}")
            for c, x in temp:
                st.rename(c, x)
            if temp:
                changed.append(n)
        return changed

    def recolour(self, entry: Any, colour: Any) -> None:
        """Give an entry's regions one colour in every section."""
        e = self.resolve(entry)
        for _, st, cids in self._members(e):
            for c in cids:
                st.recolour(c, colour)

    # ------------------------------------------------------------------ export
    def cohort_table(self) -> pd.DataFrame:
        """One row per spot of every section: ``section, spot_id, cluster, region, shared_region`` (+ ``label``)."""
        frames = []
        for n, st in self.sections:
            lab = st.adata.obs[st.key].astype(str).to_numpy()
            df = pd.DataFrame({
                "section": n,
                "spot_id": np.asarray(st.adata.obs_names, dtype=object),
                "cluster": lab,
                "region": [st.name_of(c) for c in lab],
                "shared_region": [self.name_of(self.entries[n].get(c, f"{n}:{c}")) for c in lab],
            })  # fmt: skip
            if "label" in st.adata.obs:
                df["label"] = st.adata.obs["label"].astype(object).to_numpy()
            frames.append(df)
        return pd.concat(frames, ignore_index=True)

    def export(self, folder: str | PathLike, *, overwrite: bool = False, sections: Sequence[str] | None = None) -> list[Path]:
        """Write ``folder/<section>/annotated.h5ad`` and ``clusters.csv`` per section and ``folder/cohort_regions.csv``.

        ``sections`` limits the export to some sections (default all; the
        cohort table is written only when every section is exported).

        Raises
        ------
        OutputError
            A target file exists and ``overwrite`` is False, or it is a file
            a section was read from (never replaced).
        """
        return self.export_job(folder, overwrite=overwrite, sections=sections)()

    def export_job(
        self, folder: str | PathLike, *, overwrite: bool = False, sections: Sequence[str] | None = None
    ) -> Callable[[], list[Path]]:
        """Check the targets of :meth:`export` now; return the writing, from a snapshot of the sections now.

        The returned function can run in another thread: later edits do not
        reach what it writes (:func:`~napari_senca.export.section_snapshot`).

        Raises
        ------
        OutputError
            As :meth:`export`, at once.
        """
        from .export import atomic_write, refuse_input, section_snapshot, write_clusters_csv
        from .io import write_h5ad

        root = Path(folder).expanduser()
        chosen = [self.state(s) and s for s in sections] if sections is not None else [n for n, _ in self.sections]
        files = [(n, root / n / f) for n in chosen for f in ("annotated.h5ad", "clusters.csv")]
        for n, t in files:
            refuse_input(self.state(n).adata, t)
        targets = [t for _, t in files] + ([root / "cohort_regions.csv"] if sections is None else [])
        exist = [t for t in targets if t.exists()]
        if exist and not overwrite:
            raise OutputError(f"{exist[0]}: exists ({len(exist)} file(s) in all); choose another folder or overwrite")
        frozen = [(n, section_snapshot(self.state(n).adata), self.state(n).key) for n in chosen]
        table = self.cohort_table() if sections is None else None

        def write() -> list[Path]:
            written = []
            for n, adata, key in frozen:
                (root / n).mkdir(parents=True, exist_ok=True)
                written.append(write_h5ad(adata, root / n / "annotated.h5ad", overwrite=True))
                written.append(write_clusters_csv(adata, root / n / "clusters.csv", key, overwrite=True))
            if table is not None:
                with atomic_write(root / "cohort_regions.csv", overwrite=True) as fh:
                    table.to_csv(fh, index=False)
                written.append(root / "cohort_regions.csv")
            return written

        return write


def read_cohort(folder: str | PathLike) -> list[tuple[str, Any]]:
    """``(section, adata)`` of every finished section of a ``napari-senca batch`` output folder.

    Raises
    ------
    DataError
        No ``cohort.csv`` in the folder, or no finished section.
    """
    import anndata

    from .errors import DataError

    root = Path(folder).expanduser()
    table = root / "cohort.csv"
    if not table.is_file():
        raise DataError(root, "not a napari-senca batch output (no cohort.csv)")
    df = pd.read_csv(table, dtype={"section": str})
    ok = [s for s, st in zip(df["section"], df["status"], strict=True) if st in ("done", "skipped")
          and (root / s / "annotated.h5ad").is_file()]  # fmt: skip
    if not ok:
        raise DataError(table, "no finished section in the cohort table")
    out = []
    for s in ok:
        path = root / s / "annotated.h5ad"
        adata = anndata.read_h5ad(path)
        adata.uns.setdefault("senca_input", {})["opened"] = str(path.resolve())  # never an export target
        out.append((s, adata))
    return out
