"""The ``napari-senca`` command line.

``napari-senca info PATH`` summarises a section; ``napari-senca run PATH --out
DIR`` trains SENCA-st on it and writes ``annotated.h5ad``, ``clusters.csv``,
``markers.csv`` and ``overview.png`` into ``DIR``. Errors in the data or the
settings are reported as one line (``napari-senca: error: ...``, exit code 2);
Ctrl-C exits with 130 and SIGTERM with 143, both leaving no partial output.

The output folder is checked before any work (see :mod:`napari_senca.outputs`):
it must not be, contain or lie inside an input, must be writable, and an
existing folder is replaced (``--overwrite``) only when it is empty or a
previous napari-senca output (it holds the marker file ``.napari-senca-output.json``).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ._version import __version__
from .errors import SencaError, shorten
from .outputs import MARKER, check_output_folder
from .threads import prefer_passive_waiting

if TYPE_CHECKING:  # anndata, pandas, torch... are imported by the commands, not by --help
    from anndata import AnnData

__all__ = ["main", "build_parser", "summarize", "ProgressPrinter"]

PROG = "napari-senca"


class CliError(SencaError):
    """A problem with the command line itself (e.g. the output folder exists)."""


class Terminated(BaseException):
    """Raised by the SIGTERM handler, so that a terminated run cleans up like Ctrl-C."""


def __getattr__(name: str) -> Any:
    """``OUTPUT_FILES`` from :mod:`napari_senca.runner`, imported on first use (it imports anndata)."""
    if name == "OUTPUT_FILES":
        from .runner import OUTPUT_FILES

        return OUTPUT_FILES
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (``info`` and ``run`` subcommands)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="SENCA-st tumour-region segmentation of spatial transcriptomics + H&E.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add_input(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "path",
            metavar="PATH",
            help="legacy ST folder, her2st repository (with --section), Space Ranger outs folder (Visium or "
            "Visium HD), .h5ad file, SpatialData .zarr store, or sample:her2st_A1 / sample:synthetic",
        )
        p.add_argument(
            "--section", metavar="S", help="section of a her2st repository, e.g. A1; table of a SpatialData store"
        )
        p.add_argument(
            "--image",
            metavar="FILE",
            help="H&E to use instead of the one found beside the data (Visium, Visium HD: full-resolution "
            "image; TIFF / OME-TIFF / SVS are read lazily; SpatialData: the name of an image element)",
        )
        p.add_argument(
            "--bin-size",
            type=int,
            metavar="UM",
            help="Visium HD: the bins to read, 2, 8 or 16 um (default 16)",
        )
        p.add_argument(
            "--normalized",
            action="store_true",
            help="the values are already normalised and log-transformed (not counts): use them as they are",
        )

    info = sub.add_parser("info", help="summarise a section", description="Summarise a section.")
    add_input(info)
    info.set_defaults(func=_cmd_info)

    run = sub.add_parser(
        "run",
        help="train SENCA-st and write the regions",
        description="Train SENCA-st on a section and write annotated.h5ad, clusters.csv, "
        "markers.csv and overview.png into --out.",
    )
    add_input(run)
    run.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="output folder: new, empty, or a previous napari-senca output (with --overwrite); "
        "never the input or a folder around it",
    )
    _add_settings(run)
    run.add_argument(
        "--spatialdata",
        action="store_true",
        help="also write annotated.zarr, a SpatialData store (table, spot circles, H&E); "
        'needs pip install "napari-senca[spatialdata]"',
    )
    run.add_argument(
        "--overwrite",
        action="store_true",
        help=f"replace a previous napari-senca output in --out (a folder holding {MARKER}); "
        "other folders are never replaced",
    )
    run.set_defaults(func=_cmd_run)
    _add_batch(sub)
    return parser


def _add_settings(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n-clusters", type=int, metavar="K", help="number of regions (default: labelled regions, else 7)")
    p.add_argument("--n-neighbors", type=int, metavar="N", help="spatial neighbours per spot (default 4)")
    p.add_argument("--epochs", type=int, metavar="E", help="training epochs (default 10)")
    p.add_argument("--seed", type=int, metavar="S", help="random seed (default 0)")
    p.add_argument("--device", metavar="D", help="auto (default), cpu, cuda or mps")
    p.add_argument("--no-image", action="store_true", help="RNA-only: ignore the H&E")
    p.add_argument(
        "--encoder",
        metavar="NAME|FILE",
        help="image encoder: resnet18 (default), resnet34, resnet50, any timm model name "
        "(e.g. hf-hub:MahmoodLab/UNI, hf-hub:bioptimus/H-optimus-0; gated models need HF_TOKEN), "
        "or a local checkpoint file (its 'arch' entry, else resnet18, names the architecture)",
    )
    p.add_argument(
        "--image-weights",
        metavar="auto|imagenet|none|FILE",
        help="encoder weights: auto (pretrained if available, else random; default), imagenet (pretrained), "
        "none (random) or a state dict file for --encoder's architecture",
    )
    p.add_argument(
        "--no-feature-cache",
        action="store_true",
        help="do not keep image features on disk (default: cached per image, spots, encoder and patch settings)",
    )
    p.add_argument("--lr", type=float, metavar="LR", help="learning rate (default 5e-4)")


def _add_batch(sub: Any) -> None:
    b = sub.add_parser(
        "batch",
        help="run many sections on a Dask cluster",
        description="Run SENCA-st on every section (paths, glob patterns or a CSV manifest) on Dask: "
        "one output folder per section in --out, plus cohort.csv, region_vocabulary.csv and cohort.png. "
        "Sections whose output is complete and current are skipped; a failing section does not stop "
        "the others (exit code 1, the cohort table says why).",
    )
    b.add_argument("sections", nargs="+", metavar="SECTION", help="section paths, glob patterns or manifest .csv files")
    b.add_argument("--out", required=True, metavar="DIR", help="cohort folder (new, empty, or a previous cohort output)")
    b.add_argument("--section", metavar="S[,S...]", help="section(s) of a her2st repository, e.g. A1,B1,C1")
    b.add_argument(
        "--bin-size",
        type=int,
        metavar="UM",
        help="Visium HD sections: the bins to read, 2, 8 or 16 um (default 16; a manifest's bin_size column "
        "overrides it per section)",
    )
    _add_settings(b)
    b.add_argument(
        "--scheduler",
        default="local",
        metavar="local|ADDRESS",
        help="local (default: a LocalCluster of processes sized to the machine), a scheduler address "
        "(tcp://10.0.0.5:8786) or a scheduler file (scheduler.json, from 'dask scheduler --scheduler-file')",
    )
    b.add_argument("--workers", type=int, metavar="N", help="worker processes of the local cluster (default: min(sections, cores))")
    b.add_argument("--reference", metavar="H5AD", help="annotated.h5ad whose (named) regions seed the region vocabulary")
    b.add_argument(
        "--min-corr",
        type=float,
        default=0.1,
        metavar="R",
        help="lowest centroid correlation for a region to join a cohort region (default 0.1; else it opens a new one)",
    )
    b.add_argument("--no-match", action="store_true", help="do not match regions across sections")
    b.add_argument(
        "--joint",
        action="store_true",
        help="train one model over all sections in this process (RNA-only) and cluster all spots together, "
        "so region k is the same tissue in every section (no Dask, no resume)",
    )
    b.add_argument(
        "--batch-correction",
        choices=("scale", "combat", "none"),
        default="scale",
        help="with --joint: per-section gene scaling (default), scanpy ComBat, or none",
    )
    b.set_defaults(func=_cmd_batch)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code.

    Parameters
    ----------
    argv
        Arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 2 for bad data / settings / usage, 130 on Ctrl-C, 143 on SIGTERM.
    """
    prefer_passive_waiting()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return int(exc.code) if isinstance(exc.code, int) else 2
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    previous = _on_sigterm(_raise_terminated)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        _error_line("interrupted; no output was written", prefix="")
        return 130
    except Terminated:
        _error_line("terminated; no output was written", prefix="")
        return 143
    except SencaError as exc:
        _error_line(str(exc))
        return 2
    except OSError as exc:  # permissions, full disk, file exists...
        _error_line(str(exc))
        return 2
    except MemoryError:
        _error_line("out of memory (the section or its image is too large for this machine)")
        return 2
    finally:
        _on_sigterm(previous)


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated


def _on_sigterm(handler: Any) -> Any:
    """Install ``handler`` for SIGTERM; returns the previous one (None where signals cannot be set)."""
    if handler is None:
        return None
    try:
        return signal.signal(signal.SIGTERM, handler)
    except (ValueError, OSError, AttributeError):  # not the main thread, or no SIGTERM here
        return None


def _error_line(msg: str, prefix: str = "error: ") -> None:
    print(f"{PROG}: {prefix}{shorten(str(msg))}", file=sys.stderr)


# --------------------------------------------------------------------------- info


def _read(args: argparse.Namespace) -> AnnData:
    import warnings

    from .notes import InputWarning
    from .runner import read_input

    with warnings.catch_warnings():  # printed from uns["senca_input"] by info / run
        warnings.simplefilter("ignore", InputWarning)
        return read_input(
            args.path,
            args.section,
            args.image,
            normalized=getattr(args, "normalized", False),
            bin_size=getattr(args, "bin_size", None),
        )


def summarize(adata: AnnData) -> list[tuple[str, str]]:
    """``(field, value)`` lines describing a section (what ``info`` prints).

    After the basic facts come the reader's notes (:func:`~napari_senca.notes.describe_input`):
    excluded spots and why, label rows that match no spot, duplicated gene
    names, pre-normalised input and one ``warning`` line per warning.
    """
    import numpy as np

    from .notes import describe_input
    from .section import (
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
        from .io.slide import reference_problem

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


# --------------------------------------------------------------------------- run


class ProgressPrinter:
    """Plain-text progress bar on a stream (``\\r`` updates on a terminal, lines otherwise)."""

    def __init__(self, stream: TextIO | None = None, width: int = 28) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._stage: str | None = None
        self._len = 0

    def __call__(self, p: Any) -> None:
        """Show one :class:`~napari_senca.pipeline.Progress`."""
        total = max(int(p.total), 1)
        frac = min(max(int(p.step) / total, 0.0), 1.0)
        filled = int(round(frac * self.width))
        bar = "#" * filled + "-" * (self.width - filled)
        line = f"{p.stage:<10} [{bar}] {int(p.step)}/{int(p.total)} {p.message}"
        if self.tty:
            if self._stage is not None and p.stage != self._stage:
                self.stream.write("\n")
                self._len = 0
            pad = max(0, self._len - len(line))
            self.stream.write("\r" + line + " " * pad)
            self._len = len(line)
        elif p.stage == "train" or int(p.step) >= int(p.total):
            self.stream.write(line + "\n")
        self._stage = p.stage
        self.stream.flush()

    def close(self) -> None:
        """End the current line."""
        if self.tty and self._stage is not None:
            self.stream.write("\n")
            self.stream.flush()
        self._stage = None


def _inputs(args: argparse.Namespace) -> list[Path]:
    """Every path ``run`` reads: the output folder must be none of them and hold none of them."""
    from .runner import section_inputs

    inputs = section_inputs(args.path, args.image, getattr(args, "image_weights", None))
    enc = getattr(args, "encoder", None)
    if enc and Path(enc).expanduser().is_file():  # a checkpoint given as the encoder is an input too
        inputs.append(Path(enc).expanduser())
    return inputs


def _config(args: argparse.Namespace) -> Any:
    """The settings given on the command line (checked before any data are read)."""
    from .config import SencaConfig

    changes: dict[str, Any] = {}
    for name in ("n_neighbors", "epochs", "seed", "device", "lr", "image_weights", "n_clusters"):
        v = getattr(args, name, None)
        if v is not None:
            changes[name] = v
    w = changes.get("image_weights")
    if w is not None and w not in ("auto", "imagenet", "none") and not Path(w).is_file():
        raise CliError(f"{w}: --image-weights must be auto, imagenet, none or an existing checkpoint file")
    enc = getattr(args, "encoder", None)
    if enc:
        if Path(enc).expanduser().is_file():  # a checkpoint: the weights, and the architecture it names
            from .encoders import checkpoint_arch

            changes["image_weights"] = str(Path(enc).expanduser())
            changes["backbone"] = checkpoint_arch(Path(enc).expanduser()) or "resnet18"
        elif any(c in enc for c in "/\\") and not enc.startswith(("hf-hub:", "timm:")):
            raise CliError(f"{enc}: --encoder file not found (or give a timm name such as hf-hub:MahmoodLab/UNI)")
        else:
            changes["backbone"] = enc
    if getattr(args, "no_feature_cache", False):
        changes["cache_features"] = False
    if getattr(args, "no_image", False):
        changes["use_image"] = False
    return SencaConfig(**changes)


def _cmd_batch(args: argparse.Namespace) -> int:
    from .batch import run_batch
    from .pipeline import Progress

    cfg = _config(args)
    bar = ProgressPrinter(sys.stderr)

    def update(row: dict[str, Any], done: int, total: int) -> None:
        bar.close()
        status = row["status"]
        if status == "failed":
            what = f"failed: {row['error']}"
        else:
            ari = f", ARI {row['ari']:.3f}" if isinstance(row.get("ari"), float) and row["ari"] == row["ari"] else ""
            secs = f", {row['time_total']:.1f} s" if isinstance(row.get("time_total"), float) else ""
            what = f"{status}: {row['spots']} spots, {row['regions']} regions{ari}{secs}"
            what += " (up to date)" if status == "skipped" else ""
        print(f"[{done}/{total}] {row['section']}: {what}", file=sys.stderr)
        bar(Progress("cohort", done, total, f"{done}/{total} sections"))

    try:
        if getattr(args, "joint", False):
            from .batch import run_joint_batch

            res = run_joint_batch(
                args.sections, args.out, cfg, section=args.section, batch=args.batch_correction,
                progress=bar, on_update=update, bin_size=args.bin_size,
            )  # fmt: skip
        else:
            res = run_batch(
                args.sections,
                args.out,
                cfg,
                scheduler=args.scheduler,
                n_workers=args.workers,
                section=args.section,
                match_regions=not args.no_match,
                reference=args.reference,
                min_corr=args.min_corr,
                on_update=update,
                bin_size=args.bin_size,
            )
    except (KeyboardInterrupt, Terminated) as exc:
        bar.close()
        what = "interrupted" if isinstance(exc, KeyboardInterrupt) else "terminated"
        _error_line(f"{what}; finished sections are kept: run the same command to resume", prefix="")
        return 130 if isinstance(exc, KeyboardInterrupt) else 143
    finally:
        bar.close()
    t = res.table
    n, failed = len(t), res.n_failed
    skipped = int((t["status"] == "skipped").sum())
    print(f"sections: {n - failed - skipped} done, {skipped} up to date, {failed} failed")
    if res.vocabulary is not None and len(res.vocabulary):
        print(f"region vocabulary: {res.vocabulary['cohort_region'].nunique()} cohort regions")
    print(f"wrote: {res.out} (cohort.csv, region_vocabulary.csv, cohort.png, one folder per section)")
    if failed:
        _error_line(f"{failed} of {n} sections failed (see {res.out / 'cohort.csv'})", prefix="")
        return 1
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from . import runner

    cfg = _config(args)
    if args.spatialdata:
        runner.check_spatialdata_output()
    inputs = _inputs(args)
    out = check_output_folder(args.out, inputs, overwrite=args.overwrite)  # before any work
    from .notes import describe_input

    request = runner.request_of(cfg, args.section, args.image, bin_size=getattr(args, "bin_size", None))
    t0 = time.perf_counter()
    adata = _read(args)
    t_read = time.perf_counter() - t0
    cfg, why = runner.resolve_n_clusters(adata, cfg)
    from .section import get_image

    img = "yes" if (get_image(adata) is not None and cfg.use_image) else "no (RNA-only)"
    print(
        f"{PROG}: {adata.n_obs} spots, {adata.n_vars} genes, image {img}; {cfg.n_clusters} regions ({why})",
        file=sys.stderr,
    )
    for field, value in describe_input(adata):  # excluded spots, label matching, warnings
        print(f"{PROG}: {field}: {value}", file=sys.stderr)

    bar = ProgressPrinter(sys.stderr)
    try:
        rep = runner.process_section(
            adata,
            cfg,
            out,
            inputs,
            overwrite=args.overwrite,
            request=request,
            progress=bar,
            warn=lambda msg: (bar.close(), _error_line(msg, prefix="warning: ")),
            spatialdata=args.spatialdata,
        )
    finally:
        bar.close()

    print(f"regions: {', '.join(f'{c}: {n}' for c, n in rep.region_sizes.items())}")
    if rep.ari is not None:
        print(f"ARI: {rep.ari:.4f} (against the labels, {rep.n_labelled} labelled spots)")
    total = time.perf_counter() - t0 - t_read
    gate = adata.uns.get("senca", {}).get("image_gate")  # how much the image counted (docs/method.md, "Fusion")
    counted = "" if gate is None else f"; image counted {gate:.2f} (0-1)"
    print(f"device: {rep.device}; image weights: {rep.image_weights}{counted}; {total:.1f} s")
    from .features import WEAK_FEATURES_NOTE, weights_are_random

    if rep.image and weights_are_random(rep.image_weights):
        _error_line(WEAK_FEATURES_NOTE, prefix="warning: ")
    print(f"wrote: {out} ({', '.join(runner.output_files(args.spatialdata))})")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
