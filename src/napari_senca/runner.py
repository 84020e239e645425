"""One section from input to output folder, without Qt and without printing.

:func:`run_section` is what ``napari-senca run`` and every task of
``napari-senca batch`` do: check the output folder, read the section, train
SENCA-st, rank marker genes and write ``annotated.h5ad``, ``clusters.csv``,
``markers.csv``, ``overview.png`` and the marker file into the output folder.
It returns a :class:`SectionReport` (spots, regions, ARI, device, image
weights, seconds per stage). The marker records the settings asked for and a
fingerprint of the inputs (sizes and modification times), so that
:func:`is_current` can tell whether a previous output is complete and up to date.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

from anndata import AnnData

from .config import SencaConfig
from .errors import DataError, OutputError
from .outputs import (
    Overwrite,
    check_output_folder,
    file_stamps,
    read_marker,
    replace_folder,
    write_marker,
)

__all__ = [
    "OUTPUT_FILES",
    "SectionReport",
    "section_inputs",
    "read_input",
    "resolve_n_clusters",
    "process_section",
    "finish_section",
    "run_section",
    "input_fingerprint",
    "request_of",
    "is_current",
    "output_files",
    "check_spatialdata_output",
    "SPATIALDATA_OUTPUT",
]

#: Files every section output holds (besides the marker).
OUTPUT_FILES = ("annotated.h5ad", "clusters.csv", "markers.csv", "overview.png")

#: The SpatialData store ``run --spatialdata`` adds.
SPATIALDATA_OUTPUT = "annotated.zarr"


def output_files(spatialdata: bool = False) -> tuple[str, ...]:
    """The files a section output holds (besides the marker)."""
    return (*OUTPUT_FILES, SPATIALDATA_OUTPUT) if spatialdata else OUTPUT_FILES


def check_spatialdata_output() -> None:
    """Before any work: the SpatialData output needs the optional extra.

    Raises
    ------
    ConfigError
        ``spatialdata`` is not installed (the message names the extra).
    """
    from .errors import ConfigError
    from .io.spatialdata_store import INSTALL_HINT, spatialdata_available

    if not spatialdata_available():
        raise ConfigError(f"--spatialdata: {INSTALL_HINT}")


#: Image-weights values that are not files.
_WEIGHT_WORDS = ("auto", "imagenet", "none")


@dataclass
class SectionReport:
    """What one section's run produced (a row of the cohort table)."""

    out: str
    spots: int = 0
    genes: int = 0
    regions: int = 0
    why_regions: str = ""
    image: bool = False
    ari: float | None = None
    n_labelled: int = 0
    device: str = ""
    cpu_threads: int | None = None  # torch's CPU threads in training
    image_weights: str = ""
    region_sizes: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    named: str | None = None  # what naming the regions after annotated sections did


# --------------------------------------------------------------------------- inputs


def section_inputs(
    path: str | PathLike, image: str | PathLike | None = None, image_weights: str | None = None
) -> list[Path]:
    """Every path a run reads: the output folder must be none of them and hold none of them."""
    from .io import detect_format
    from .io.visium import find_visium_outs

    paths: list[Path] = []
    if not str(path).startswith("sample:"):
        p = Path(path).expanduser()
        paths.append(p)
        fmt = detect_format(str(p))
        if fmt == "st" and p.is_file():
            paths.append(p.parent)  # counts.tsv / spots.tsv: the whole section folder
        elif fmt == "visium":
            outs = find_visium_outs(p)
            if outs is not None:
                paths += [outs, outs.parent / "labels.tsv"]
        elif fmt == "visium_hd":
            paths += _hd_inputs(p, image)
        elif fmt == "spatialdata":
            image = None  # the name of an image element in the store, not a file
    for f in (image, image_weights):
        if f and str(f) not in _WEIGHT_WORDS:
            paths.append(Path(f).expanduser())
    return paths


def _hd_inputs(p: Path, image: str | PathLike | None) -> list[Path]:
    """A Visium HD run reads the ``outs`` folder, labels beside it and the microscope image found there."""
    from .io.visium_hd import find_fullres_image, find_hd_bins

    bins = find_hd_bins(p)
    if not bins:
        return []
    square = next(iter(bins.values()))
    outs = square.parent.parent if square.parent.name == "binned_outputs" else square
    found = [] if image else [f for f in [find_fullres_image(outs)[0]] if f is not None]
    return [outs, outs.parent / "labels.tsv", *found]


def read_input(
    path: str | PathLike,
    section: str | None = None,
    image: str | PathLike | None = None,
    label_column: str | None = None,
    *,
    normalized: bool = False,
    bin_size: int | None = None,
) -> AnnData:
    """Read a section; ``label_column`` names the ``obs`` column holding the reference labels.

    ``normalized`` declares pre-normalised (log) values instead of counts
    (see :func:`napari_senca.io.read_section`); ``bin_size`` picks the bins of
    a Visium HD section (um, default 16).
    """
    from .io import read_section

    adata = read_section(path, section=section, image=image, normalized=normalized, bin_size=bin_size)
    if image and adata.uns.get("senca_input", {}).get("format") != "spatialdata":  # there: an element name
        from .io.image import record_source_image

        record_source_image(adata, image)
    if label_column:
        from .section import LABEL_KEY, clean_labels

        if label_column not in adata.obs:
            cols = list(map(str, adata.obs.columns))
            shown = ", ".join(cols[:5]) + (f" and {len(cols) - 5} more" if len(cols) > 5 else "")
            raise DataError(path, f"no label column {label_column!r} (obs has {shown or 'no columns'})")
        adata.obs[LABEL_KEY] = clean_labels(adata.obs[label_column].tolist())
    return adata


def resolve_n_clusters(adata: AnnData, cfg: SencaConfig, fallback: int = 7) -> tuple[SencaConfig, str]:
    """``cfg`` with ``n_clusters`` set (the labelled regions, else ``fallback``) and why that number."""
    from .pipeline import check_run_settings
    from .section import LABEL_KEY

    if cfg.n_clusters is not None:
        k, why = int(cfg.n_clusters), "--n-clusters"
    else:
        k, why = min(fallback, adata.n_obs), "default"
        if LABEL_KEY in adata.obs:
            n_lab = int(adata.obs[LABEL_KEY].dropna().nunique())
            if n_lab >= 2:
                k, why = n_lab, "the number of labelled regions"
    check_run_settings(cfg, adata.n_obs, k)  # a too-small section is named as such, before training
    return cfg.replace(n_clusters=k), why


# --------------------------------------------------------------------------- fingerprints


def _files_under(p: Path) -> Iterable[Path]:
    if p.is_dir():
        for root, dirs, files in os.walk(p):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for f in sorted(files):
                yield Path(root) / f
    elif p.exists():
        yield p


def input_fingerprint(inputs: Iterable[str | PathLike]) -> str:
    """SHA-256 over the relative path, size and modification time of every input file.

    Cheap (no file is read) and changes whenever a file is added, removed,
    rewritten or touched.
    """
    h = hashlib.sha256()
    for inp in inputs:
        p = Path(inp).expanduser().resolve(strict=False)
        h.update(f"@{p}\n".encode())
        for f in _files_under(p):
            try:
                st = f.stat()
            except OSError:
                continue
            h.update(f"{f.relative_to(p) if f != p else ''}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _image_ref(image: str | PathLike | None) -> str | None:
    """An image file as its absolute path; anything else (a SpatialData element name) as given."""
    if image is None:
        return None
    p = Path(image).expanduser()
    return str(p.resolve()) if p.exists() else str(image)


def request_of(
    cfg: SencaConfig,
    section: str | None = None,
    image: str | PathLike | None = None,
    label_column: str | None = None,
    bin_size: int | None = None,
) -> dict[str, Any]:
    """What was asked for (settings before defaults are filled in from the data), as plain JSON."""
    req = {
        "config": cfg.to_dict(),
        "section": section,
        "image": _image_ref(image),
        "label_column": label_column,
    }
    if bin_size is not None:
        req["bin_size"] = int(bin_size)
    return req


def is_current(out: str | PathLike, inputs: Iterable[str | PathLike], request: dict[str, Any]) -> bool:
    """Whether ``out`` holds a complete output made from these inputs (unchanged) with these settings."""
    o = Path(out)
    marker = read_marker(o)
    if marker is None or not all((o / f).is_file() for f in OUTPUT_FILES):
        return False
    if set(OUTPUT_FILES) - set(marker.get("files", []) or []):
        return False
    return marker.get("request") == request and marker.get("inputs_fingerprint") == input_fingerprint(inputs)


# --------------------------------------------------------------------------- run


def process_section(
    adata: AnnData,
    cfg: SencaConfig,
    out: Path,
    inputs: list[Path],
    *,
    overwrite: Overwrite = False,
    request: dict[str, Any] | None = None,
    progress: Callable[[Any], None] | None = None,
    warn: Callable[[str], None] | None = None,
    spatialdata: bool = False,
    references: list[AnnData | str | PathLike] | None = None,
    reference_key: str | None = None,
) -> SectionReport:
    """Train on a read section (``cfg.n_clusters`` set) and write its output folder ``out``.

    ``out`` must have passed :func:`~napari_senca.outputs.check_output_folder`.
    ``progress`` receives every :class:`~napari_senca.progress.Progress`,
    ``warn`` one-line warnings (e.g. no marker genes); ``spatialdata`` also
    writes ``annotated.zarr`` (see :func:`write_section_output`). ``references``:
    annotated sections (or their paths, read after training) the regions are named after
    (:meth:`~napari_senca.review.ReviewState.name_from_reference`; their ``obs``
    column ``reference_key``), before anything is written.
    """
    from . import pipeline

    t0 = time.perf_counter()
    result = pipeline.run_senca(adata, cfg, progress)
    pipeline.annotate(adata, result)  # also drops the review of an earlier clustering (a reviewed .h5ad)
    named, problem = _name_after(adata, references, reference_key, result.timings) if references else (None, None)
    train_total = time.perf_counter() - t0
    return finish_section(adata, result, cfg, out, inputs, overwrite=overwrite, request=request, warn=warn,
                          train_total=train_total, spatialdata=spatialdata, named=named,
                          naming_problem=problem)  # fmt: skip


def _name_after(adata: AnnData, references: list[AnnData | str | PathLike], key: str | None,
                timings: dict[str, float]) -> tuple[str | None, str | None]:
    """Name the regions after annotated sections: ``(what was done, None)``, or ``(None, why not)``.

    A naming that cannot be done (one name for every cluster, references that do not fit) leaves the
    model's regions, with a warning, rather than losing the run.
    """
    from .review import ReviewState
    from .review.naming import reference_naming

    st = ReviewState(adata)
    t0 = time.perf_counter()
    try:
        what = st.name_from_reference(*reference_naming(adata, references, st.reference_cut(), key))
    except (ValueError, OSError, MemoryError) as exc:  # ConfigError and DataError are ValueErrors
        return None, f"regions not named after the annotated sections: {exc}; the model's regions are written"
    timings["name_from_reference"] = time.perf_counter() - t0
    return what, None


def finish_section(
    adata: AnnData,
    result: Any,
    cfg: SencaConfig,
    out: Path,
    inputs: list[Path],
    *,
    overwrite: Overwrite = False,
    request: dict[str, Any] | None = None,
    warn: Callable[[str], None] | None = None,
    train_total: float = 0.0,
    spatialdata: bool = False,
    named: str | None = None,
    naming_problem: str | None = None,
) -> SectionReport:
    """Rank marker genes, score against the labels and write the output folder of an annotated section.

    ``named``: what naming the regions after annotated sections did (``clusters.csv`` then gets their
    names); ``naming_problem``: why it could not (a warning). Both go into the report written.

    ``adata`` carries ``result`` already (:func:`~napari_senca.pipeline.annotate`,
    or its part of a joint run, :func:`napari_senca.joint.split`).
    """
    from .errors import ConfigError
    from .export import adjusted_rand
    from .markers import rank_markers
    from .section import CLUSTER_KEY, LABEL_KEY, get_image

    rep = SectionReport(out=str(out), spots=int(adata.n_obs), genes=int(adata.n_vars), regions=int(cfg.n_clusters or 0),
                        named=named)
    if naming_problem:
        rep.warnings.append(naming_problem)
        if warn is not None:
            warn(naming_problem)
    rep.image = get_image(adata) is not None and bool(cfg.use_image)
    t1 = time.perf_counter()
    rep.timings.update({k: float(v) for k, v in (getattr(result, "timings", None) or {}).items() if k != "total"})
    rep.timings["train_total"] = train_total
    try:
        markers = rank_markers(adata, key=CLUSTER_KEY)
    except ConfigError as exc:
        import pandas as pd

        from .markers import MARKER_COLUMNS

        rep.warnings.append(f"no marker genes: {exc}")
        if warn is not None:
            warn(rep.warnings[-1])
        markers = pd.DataFrame(columns=MARKER_COLUMNS)
    t2 = time.perf_counter()
    rep.timings["markers"] = t2 - t1
    sizes = adata.obs[CLUSTER_KEY].value_counts().sort_index()
    rep.region_sizes = {str(c): int(n) for c, n in sizes.items()}
    if named:
        rep.regions = int((sizes > 0).sum())  # the named regions, fewer than the clusters cut
    rep.ari = adjusted_rand(adata, CLUSTER_KEY)
    if rep.ari is not None:
        rep.n_labelled = int(adata.obs[LABEL_KEY].notna().sum())
    rep.device = str(result.device)
    rep.cpu_threads = result.cpu_threads
    rep.image_weights = str(result.image_weights_used)
    write_section_output(adata, markers, out, inputs, cfg, overwrite, request, dataclasses.asdict(rep), spatialdata,
                         named is not None)
    rep.timings["write"] = time.perf_counter() - t2
    return rep


def run_section(
    path: str | PathLike,
    out: str | PathLike,
    config: SencaConfig | None = None,
    *,
    section: str | None = None,
    image: str | PathLike | None = None,
    label_column: str | None = None,
    overwrite: Overwrite = False,
    progress: Callable[[Any], None] | None = None,
    warn: Callable[[str], None] | None = None,
    bin_size: int | None = None,
    spatialdata: bool = False,
) -> SectionReport:
    """Everything ``napari-senca run`` does for one section, returning its report.

    Parameters
    ----------
    path, section, image
        The section (as :func:`napari_senca.io.read_section` takes them).
    out
        The output folder (checked before any work, see :mod:`napari_senca.outputs`).
    config
        Settings; ``n_clusters=None`` uses the number of labelled regions (else 7).
    label_column
        ``obs`` column with the reference labels (default: the reader's ``label``).
    overwrite
        Replace a previous napari-senca output in ``out``; ``"unchanged"``
        (:data:`~napari_senca.outputs.UNCHANGED`): only when its files are as napari-senca wrote them.
    progress, warn
        Callbacks for progress reports and one-line warnings.
    bin_size
        Visium HD: the bins to read (um; default 16).
    spatialdata
        Also write ``annotated.zarr``, a SpatialData store (needs ``napari-senca[spatialdata]``).

    Raises
    ------
    SencaError, OSError
        Bad input, settings or output folder; nothing is left in ``out``.
    """
    cfg = config or SencaConfig()
    t0 = time.perf_counter()
    if spatialdata:
        check_spatialdata_output()
    inputs = section_inputs(path, image, cfg.image_weights)
    out_p = check_output_folder(out, inputs, overwrite=overwrite)  # before any work
    request = request_of(cfg, section, image, label_column, bin_size)
    adata = read_input(path, section, image, label_column, bin_size=bin_size)
    t_read = time.perf_counter() - t0
    cfg, why = resolve_n_clusters(adata, cfg)
    rep = process_section(
        adata, cfg, out_p, inputs, overwrite=overwrite, request=request, progress=progress, warn=warn,
        spatialdata=spatialdata,
    )  # fmt: skip
    rep.why_regions = why
    rep.timings = {"read": t_read, **rep.timings, "total": time.perf_counter() - t0}
    return rep


def write_section_output(
    adata: AnnData,
    markers: Any,
    out: Path,
    inputs: list[Path],
    cfg: SencaConfig,
    overwrite: Overwrite,
    request: dict[str, Any] | None = None,
    report: dict[str, Any] | None = None,
    spatialdata: bool = False,
    named: bool = False,
) -> None:
    """Write every output into a hidden folder beside ``out``, then move it into place.

    ``named``: ``clusters.csv`` gets a ``cluster_name`` column (the regions were named).

    ``spatialdata`` adds :data:`SPATIALDATA_OUTPUT`, the annotated section as a
    SpatialData store (:func:`napari_senca.io.spatialdata_store.write_spatialdata`). Any failure or
    interruption (Ctrl-C, SIGTERM) removes the hidden folder and any parent
    folders made for it; errors name ``out``, never the hidden folder.
    """
    from . import export
    from .export import default_mode
    from .io import write_h5ad
    from .section import CLUSTER_KEY

    made = [p for p in (out.parent, *out.parent.parents) if not p.exists()]
    tmp: Path | None = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
        write_h5ad(adata, tmp / "annotated.h5ad", overwrite=True)
        export.write_clusters_csv(adata, tmp / "clusters.csv", CLUSTER_KEY, overwrite=True,
                                  names=export.cluster_names(adata, CLUSTER_KEY) if named else None)
        export.write_markers_csv(markers, tmp / "markers.csv", overwrite=True)
        export.write_overview_png(adata, tmp / "overview.png", CLUSTER_KEY, overwrite=True)
        files = output_files(spatialdata)
        if spatialdata:
            from .io.spatialdata_store import write_spatialdata

            write_spatialdata(adata, tmp / SPATIALDATA_OUTPUT)
        extra: dict[str, Any] = {"inputs_fingerprint": input_fingerprint(inputs), "stamps": file_stamps(tmp, files)}
        if request is not None:
            extra["request"] = request
        if report is not None:
            extra["report"] = report
        write_marker(tmp, files, inputs=inputs, config=cfg.to_dict(), extra=extra)
        check_output_folder(out, inputs, overwrite=overwrite)  # nothing changed while we worked
        os.chmod(tmp, default_mode(folder=True))  # mkdtemp makes 0700 folders
        replace_folder(tmp, out)
    except BaseException as exc:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        for p in made:  # innermost first; only folders made here and still empty
            try:
                p.rmdir()
            except OSError:
                break
        if isinstance(exc, OSError):
            raise OutputError(f"{out}: cannot write the output ({exc.strerror or _short(exc)})") from None
        raise


def _short(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
