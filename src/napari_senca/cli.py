"""The ``napari-senca`` command line.

``napari-senca info PATH`` summarises a section; ``napari-senca run PATH --out
DIR`` trains SENCA-st on it and writes ``annotated.h5ad``, ``clusters.csv``,
``markers.csv`` and ``overview.png`` into ``DIR``. Errors in the data or the
settings are reported as one line (``napari-senca: error: ...``, exit code 2);
Ctrl-C exits with 130 and leaves no partial output.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from anndata import AnnData

from ._version import __version__
from .errors import SencaError

__all__ = ["main", "build_parser", "summarize", "ProgressPrinter"]

PROG = "napari-senca"
OUTPUT_FILES = ("annotated.h5ad", "clusters.csv", "markers.csv", "overview.png")


class CliError(SencaError):
    """A problem with the command line itself (e.g. the output folder exists)."""


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
    run.add_argument("--out", required=True, metavar="DIR", help="output folder (must not exist or be empty)")
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
    run.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
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
        0 on success, 2 for bad data / settings / usage, 130 on Ctrl-C.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return int(exc.code) if isinstance(exc.code, int) else 2
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        _error_line("interrupted; no output was written", prefix="")
        return 130
    except SencaError as exc:
        _error_line(str(exc))
        return 2
    except OSError as exc:  # permissions, full disk, file exists...
        _error_line(str(exc))
        return 2


def _error_line(msg: str, prefix: str = "error: ") -> None:
    one = " ".join(str(msg).split())
    print(f"{PROG}: {prefix}{one}", file=sys.stderr)


# --------------------------------------------------------------------------- info


def _read(args: argparse.Namespace) -> AnnData:
    import warnings

    from .io import read_section
    from .notes import InputWarning

    with warnings.catch_warnings():  # printed from uns["senca_input"] by info / run
        warnings.simplefilter("ignore", InputWarning)
        return read_section(args.path, section=args.section, image=args.image, normalized=getattr(args, "normalized", False))


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


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise CliError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise CliError(f"{out}: output folder is not empty (use --overwrite to replace it)")


def _replace_dir(tmp: Path, out: Path) -> None:
    """Move ``tmp`` to ``out``, replacing ``out`` (the old one is removed only afterwards)."""
    old: Path | None = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.replace(out, old / out.name)
    try:
        os.replace(tmp, out)
    except BaseException:
        if old is not None:
            os.replace(old / out.name, out)
            shutil.rmtree(old, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


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
    out = Path(args.out).expanduser().absolute()
    _check_out(out, args.overwrite)
    try:
        from .markers import rank_markers
        from .pipeline import annotate, run_senca_iter
    except ImportError as exc:  # pragma: no cover - the pipeline ships with the package
        raise CliError(f"the training pipeline is not available ({exc})") from None
    from .errors import ConfigError
    from .export import (
        adjusted_rand,
        default_mode,
        write_clusters_csv,
        write_markers_csv,
        write_overview_png,
    )
    from .io import write_h5ad
    from .notes import describe_input
    from .section import CLUSTER_KEY, get_image

    cfg = _config(args)
    adata = _read(args)
    if cfg.n_clusters is None:
        k, why = _default_n_clusters(adata)
        cfg = cfg.replace(n_clusters=k)
    else:
        why = "--n-clusters"
    k_note = f"{cfg.n_clusters} regions ({why})"
    img = "yes" if (get_image(adata) is not None and cfg.use_image) else "no (RNA-only)"
    print(
        f"{PROG}: {adata.n_obs} spots, {adata.n_vars} genes, image {img}; {k_note}",
        file=sys.stderr,
    )
    for field, value in describe_input(adata):  # excluded spots, label matching, warnings
        print(f"{PROG}: {field}: {value}", file=sys.stderr)

    t0 = time.perf_counter()
    bar = ProgressPrinter(sys.stderr)
    gen = run_senca_iter(adata, cfg)
    try:
        while True:
            try:
                p = next(gen)
            except StopIteration as stop:
                result = stop.value
                break
            bar(p)
    finally:
        bar.close()
        gen.close()
    annotate(adata, result)
    try:
        markers = rank_markers(adata, key=CLUSTER_KEY)
    except ConfigError as exc:
        import pandas as pd

        from .markers import MARKER_COLUMNS

        _error_line(f"no marker genes: {exc}", prefix="warning: ")
        markers = pd.DataFrame(columns=MARKER_COLUMNS)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        write_h5ad(adata, tmp / "annotated.h5ad", overwrite=True)
        write_clusters_csv(adata, tmp / "clusters.csv", CLUSTER_KEY, overwrite=True)
        write_markers_csv(markers, tmp / "markers.csv", overwrite=True)
        write_overview_png(adata, tmp / "overview.png", CLUSTER_KEY, overwrite=True)
        _check_out(out, args.overwrite)
        os.chmod(tmp, default_mode(folder=True))  # mkdtemp makes 0700 folders
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    sizes = adata.obs[CLUSTER_KEY].value_counts().sort_index()
    print(f"regions: {', '.join(f'{c}: {int(n)}' for c, n in sizes.items())}")
    ari = adjusted_rand(adata, CLUSTER_KEY)
    if ari is not None:
        n_lab = int(adata.obs["label"].notna().sum())
        print(f"ARI: {ari:.4f} (against the labels, {n_lab} labelled spots)")
    print(f"device: {result.device}; image weights: {result.image_weights_used}; {time.perf_counter() - t0:.1f} s")
    print(f"wrote: {out} ({', '.join(OUTPUT_FILES)})")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
