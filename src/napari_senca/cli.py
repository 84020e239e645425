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
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from anndata import AnnData

from ._version import __version__
from .errors import SencaError, shorten
from .outputs import MARKER, check_output_folder, replace_folder, write_marker

__all__ = ["main", "build_parser", "summarize", "ProgressPrinter"]

PROG = "napari-senca"
OUTPUT_FILES = ("annotated.h5ad", "clusters.csv", "markers.csv", "overview.png")


class CliError(SencaError):
    """A problem with the command line itself (e.g. the output folder exists)."""


class Terminated(BaseException):
    """Raised by the SIGTERM handler, so that a terminated run cleans up like Ctrl-C."""


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
            help="legacy ST folder, her2st repository (with --section), Space Ranger outs folder, "
            ".h5ad file, or sample:her2st_A1 / sample:synthetic",
        )
        p.add_argument("--section", metavar="S", help="section of a her2st repository, e.g. A1")
        p.add_argument(
            "--image",
            metavar="FILE",
            help="H&E to use instead of the one found beside the data (Visium: full-resolution image)",
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
    run.add_argument(
        "--n-clusters",
        type=int,
        metavar="K",
        help="number of regions (default: the number of labelled regions, else 7)",
    )
    run.add_argument("--n-neighbors", type=int, metavar="N", help="spatial neighbours per spot (default 4)")
    run.add_argument("--epochs", type=int, metavar="E", help="training epochs (default 10)")
    run.add_argument("--seed", type=int, metavar="S", help="random seed (default 0)")
    run.add_argument("--device", metavar="D", help="auto (default), cpu, cuda or mps")
    run.add_argument("--no-image", action="store_true", help="RNA-only: ignore the H&E")
    run.add_argument(
        "--image-weights",
        metavar="auto|imagenet|none|FILE",
        help="ResNet weights: auto (ImageNet if it can be loaded, else random; default), "
        "imagenet, none, or a local .pth state dict",
    )
    run.add_argument("--lr", type=float, metavar="LR", help="learning rate (default 5e-4)")
    run.add_argument(
        "--overwrite",
        action="store_true",
        help=f"replace a previous napari-senca output in --out (a folder holding {MARKER}); "
        "other folders are never replaced",
    )
    run.set_defaults(func=_cmd_run)
    return parser


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

    from .io import read_section
    from .notes import InputWarning

    with warnings.catch_warnings():  # printed from uns["senca_input"] by info / run
        warnings.simplefilter("ignore", InputWarning)
        normalized = getattr(args, "normalized", False)
        adata = read_section(args.path, section=args.section, image=args.image, normalized=normalized)
    if args.image:
        from .io.image import record_source_image

        record_source_image(adata, args.image)
    return adata


def summarize(adata: AnnData) -> list[tuple[str, str]]:
    """``(field, value)`` lines describing a section (what ``info`` prints).

    After the basic facts come the reader's notes (:func:`~napari_senca.notes.describe_input`):
    excluded spots and why, label rows that match no spot, duplicated gene
    names, pre-normalised input and one ``warning`` line per warning.
    """
    import numpy as np

    from .notes import describe_input
    from .section import LABEL_KEY, has_labels, library_id, spot_diameter, spot_spacing

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
    from .io import detect_format
    from .io.visium import find_visium_outs

    paths: list[Path] = []
    if not str(args.path).startswith("sample:"):
        p = Path(args.path).expanduser()
        paths.append(p)
        fmt = detect_format(str(p))
        if fmt == "st" and p.is_file():
            paths.append(p.parent)  # counts.tsv / spots.tsv: the whole section folder
        elif fmt == "visium":
            outs = find_visium_outs(p)
            if outs is not None:
                paths += [outs, outs.parent / "labels.tsv"]
    for f in (args.image, getattr(args, "image_weights", None)):
        if f and f not in ("auto", "imagenet", "none"):
            paths.append(Path(f).expanduser())
    return paths


def _default_n_clusters(adata: AnnData, fallback: int = 7) -> tuple[int, str]:
    from .section import LABEL_KEY

    if LABEL_KEY in adata.obs:
        k = int(adata.obs[LABEL_KEY].dropna().nunique())
        if k >= 2:
            return k, "the number of labelled regions"
    return min(fallback, adata.n_obs), "default"


def _config(args: argparse.Namespace) -> Any:
    """The settings given on the command line (checked before any data are read)."""
    from .config import SencaConfig

    changes: dict[str, Any] = {}
    for name in ("n_neighbors", "epochs", "seed", "device", "lr", "image_weights", "n_clusters"):
        v = getattr(args, name)
        if v is not None:
            changes[name] = v
    w = changes.get("image_weights")
    if w is not None and w not in ("auto", "imagenet", "none") and not Path(w).is_file():
        raise CliError(f"{w}: --image-weights must be auto, imagenet, none or an existing .pth file")
    if args.no_image:
        changes["use_image"] = False
    return SencaConfig(**changes)


def _cmd_run(args: argparse.Namespace) -> int:
    cfg = _config(args)
    inputs = _inputs(args)
    out = check_output_folder(args.out, inputs, overwrite=args.overwrite)  # before any work
    try:
        from .markers import rank_markers
        from .pipeline import annotate, check_run_settings
    except ImportError as exc:  # pragma: no cover - the pipeline ships with the package
        raise CliError(f"the training pipeline is not available ({exc})") from None
    from .errors import ConfigError
    from .export import adjusted_rand
    from .notes import describe_input
    from .section import CLUSTER_KEY, get_image

    adata = _read(args)
    k, why = _default_n_clusters(adata) if cfg.n_clusters is None else (int(cfg.n_clusters), "--n-clusters")
    check_run_settings(cfg, adata.n_obs, k)  # a too-small section is named as such, before training
    cfg = cfg.replace(n_clusters=k)
    img = "yes" if (get_image(adata) is not None and cfg.use_image) else "no (RNA-only)"
    print(
        f"{PROG}: {adata.n_obs} spots, {adata.n_vars} genes, image {img}; {cfg.n_clusters} regions ({why})",
        file=sys.stderr,
    )
    for field, value in describe_input(adata):  # excluded spots, label matching, warnings
        print(f"{PROG}: {field}: {value}", file=sys.stderr)

    t0 = time.perf_counter()
    result = _train(adata, cfg)
    annotate(adata, result)
    try:
        markers = rank_markers(adata, key=CLUSTER_KEY)
    except ConfigError as exc:
        import pandas as pd

        from .markers import MARKER_COLUMNS

        _error_line(f"no marker genes: {exc}", prefix="warning: ")
        markers = pd.DataFrame(columns=MARKER_COLUMNS)

    _write_outputs(adata, markers, out, inputs, cfg, args.overwrite)

    sizes = adata.obs[CLUSTER_KEY].value_counts().sort_index()
    print(f"regions: {', '.join(f'{c}: {int(n)}' for c, n in sizes.items())}")
    ari = adjusted_rand(adata, CLUSTER_KEY)
    if ari is not None:
        n_lab = int(adata.obs["label"].notna().sum())
        print(f"ARI: {ari:.4f} (against the labels, {n_lab} labelled spots)")
    print(f"device: {result.device}; image weights: {result.image_weights_used}; {time.perf_counter() - t0:.1f} s")
    print(f"wrote: {out} ({', '.join(OUTPUT_FILES)})")
    return 0


def _train(adata: AnnData, cfg: Any) -> Any:
    """Run the training generator with a progress bar; returns its result."""
    from .pipeline import run_senca_iter

    bar = ProgressPrinter(sys.stderr)
    gen = run_senca_iter(adata, cfg)
    try:
        while True:
            try:
                p = next(gen)
            except StopIteration as stop:
                return stop.value
            bar(p)
    finally:
        bar.close()
        gen.close()


def _write_outputs(
    adata: AnnData, markers: Any, out: Path, inputs: list[Path], cfg: Any, overwrite: bool
) -> None:
    """Write every output into a hidden folder beside ``out``, then move it into place.

    Any failure or interruption (Ctrl-C, SIGTERM) removes the hidden folder and
    any parent folders made for it; errors name ``out``, never the hidden folder.
    """
    from .export import default_mode, write_clusters_csv, write_markers_csv, write_overview_png
    from .io import write_h5ad
    from .section import CLUSTER_KEY

    made = [p for p in (out.parent, *out.parent.parents) if not p.exists()]
    tmp: Path | None = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
        write_h5ad(adata, tmp / "annotated.h5ad", overwrite=True)
        write_clusters_csv(adata, tmp / "clusters.csv", CLUSTER_KEY, overwrite=True)
        write_markers_csv(markers, tmp / "markers.csv", overwrite=True)
        write_overview_png(adata, tmp / "overview.png", CLUSTER_KEY, overwrite=True)
        write_marker(tmp, OUTPUT_FILES, inputs=inputs, config=cfg.to_dict())
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
            raise CliError(f"{out}: cannot write the output ({exc.strerror or _short(exc)})") from None
        raise


def _short(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
