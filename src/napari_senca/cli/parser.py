"""The argument parser: ``info``, ``run`` and ``batch``, their inputs and the training settings."""

from __future__ import annotations

import argparse
from typing import Any

from .._version import __version__
from ..output_marker import MARKER
from .common import PROG
from .info import _cmd_info
from .run import _cmd_batch, _cmd_run


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
            "--section",
            metavar="S",
            help="section of a her2st repository, e.g. A1; table of a SpatialData store; library of an .h5ad file "
            'whose uns["spatial"] holds several',
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
        "--name-from",
        nargs="+",
        metavar="H5AD",
        help="annotated sections (.h5ad with named regions: the Review's names or a 'label' column); the "
        "regions are named after them: k + 3 clusters, each named after the region its spots resemble most, "
        "clusters with one name merged (several sections work far better than one)",
    )
    run.add_argument("--name-key", metavar="COLUMN", help="the annotated sections' obs column of region names "
                     "(default: named senca_region, else label)")
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
        "--fusion",
        choices=["rna-led", "gated"],
        help="how the H&E and the expression are fused: rna-led (default; the image refines what the expression "
        "suggests) or gated (for pathology or ImageNet weights: the image also finds regions the expression "
        "cannot see, counted as much as its structure agrees with the expression's)",
    )
    p.add_argument(
        "--count-random-image",
        action="store_true",
        help="let image features from random weights count (default: they do not, and are not encoded; "
        "random weights are what 'auto' falls back to offline)",
    )
    p.add_argument(
        "--no-feature-cache",
        action="store_true",
        help="do not keep image features on disk (default: cached per image, spots, encoder and patch settings)",
    )
    p.add_argument(
        "--patch-radius",
        type=float,
        metavar="R",
        help="half-width of each H&E patch in spot spacings, above 0 and at most 10 (default 3, the paper's)",
    )
    p.add_argument("--lr", type=float, metavar="LR", help="learning rate (default 5e-4)")


def _add_batch(sub: Any) -> None:
    b = sub.add_parser(
        "batch",
        help="run many sections on a Dask cluster",
        description="Run SENCA-st on every section (paths, glob patterns or a CSV manifest) on Dask: "
        "one output folder per section in --out, plus cohort.csv, region_vocabulary.csv and cohort.png. "
        "Sections whose output is complete and current are skipped; a failing section does not stop "
        "the others (exit code 1, the cohort table says why). A section whose folder holds review edits "
        "(files changed since batch wrote them) or other files is kept as it is (exit code 1) unless --overwrite.",
    )
    b.add_argument("sections", nargs="+", metavar="SECTION", help="section paths, glob patterns or manifest .csv files")
    b.add_argument("--out", required=True, metavar="DIR", help="cohort folder (new, empty, or a previous cohort output)")
    b.add_argument(
        "--section",
        metavar="S[,S...]",
        help="section(s) of a her2st repository, e.g. A1,B1,C1, or library(ies) of an .h5ad file",
    )
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
        "--overwrite",
        action="store_true",
        help="also re-run sections whose output files changed since batch wrote them (e.g. review edits saved "
        "into annotated.h5ad; for cohorts of older versions: files newer than cohort.csv) (default: kept as "
        "they are, left out of region matching); folders holding files napari-senca did not write are never "
        "replaced",
    )
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
