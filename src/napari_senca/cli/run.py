"""``napari-senca run`` and ``napari-senca batch``: the settings they share, training, and what they print.

The output folder is checked before any work (see :mod:`napari_senca.outputs`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from ..outputs import check_output_folder
from .common import PROG, CliError, Terminated, _error_line, _read
from .progress import ProgressPrinter


def _inputs(args: argparse.Namespace) -> list[Path]:
    """Every path ``run`` reads: the output folder must be none of them and hold none of them."""
    from ..runner import section_inputs

    inputs = section_inputs(args.path, args.image, getattr(args, "image_weights", None))
    enc = getattr(args, "encoder", None)
    if enc and Path(enc).expanduser().is_file():  # a checkpoint given as the encoder is an input too
        inputs.append(Path(enc).expanduser())
    inputs += [Path(p).expanduser() for p in getattr(args, "name_from", None) or []]
    return inputs


def _config(args: argparse.Namespace) -> Any:
    """The settings given on the command line (checked before any data are read)."""
    from ..config import FUSIONS, SencaConfig

    changes: dict[str, Any] = dict(FUSIONS[getattr(args, "fusion", None) or "rna-led"])
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
            from ..encoders import checkpoint_arch

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
    if getattr(args, "count_random_image", False):
        changes["random_weights_gate"] = 1.0
    if getattr(args, "patch_radius", None) is not None:
        changes["patch_radius_spacings"] = args.patch_radius
    return SencaConfig(**changes)


def _cmd_batch(args: argparse.Namespace) -> int:
    from ..batch import run_batch
    from ..progress import Progress

    cfg = _config(args)
    bar = ProgressPrinter(sys.stderr)

    def update(row: dict[str, Any], done: int, total: int) -> None:
        bar.close()
        status = row["status"]
        if status in ("failed", "kept"):
            what = f"{status}: {row['error']}"
        else:
            ari = f", ARI {row['ari']:.3f}" if isinstance(row.get("ari"), float) and row["ari"] == row["ari"] else ""
            secs = f", {row['time_total']:.1f} s" if isinstance(row.get("time_total"), float) else ""
            what = f"{status}: {row['spots']} spots, {row['regions']} regions{ari}{secs}"
            what += " (up to date)" if status == "skipped" else ""
        print(f"[{done}/{total}] {row['section']}: {what}", file=sys.stderr)
        bar(Progress("cohort", done, total, f"{done}/{total} sections"))

    try:
        if getattr(args, "joint", False):
            from ..batch import run_joint_batch

            res = run_joint_batch(
                args.sections, args.out, cfg, section=args.section, batch=args.batch_correction,
                progress=bar, on_update=update, bin_size=args.bin_size, overwrite=args.overwrite,
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
                overwrite=args.overwrite,
            )
    except (KeyboardInterrupt, Terminated) as exc:
        bar.close()
        what = "interrupted" if isinstance(exc, KeyboardInterrupt) else "terminated"
        _error_line(f"{what}; finished sections are kept: run the same command to resume", prefix="")
        return 130 if isinstance(exc, KeyboardInterrupt) else 143
    finally:
        bar.close()
    return _batch_summary(res)


def _batch_summary(res: Any) -> int:
    """Print what a batch did; the exit status: 1 when a section failed or was kept, else 0."""
    t = res.table
    n, failed, kept = len(t), res.n_failed, res.n_kept
    skipped = int((t["status"] == "skipped").sum())
    print(f"sections: {n - failed - skipped - kept} done, {skipped} up to date, {kept} kept, {failed} failed")
    if res.vocabulary is not None and len(res.vocabulary):
        print(f"region vocabulary: {res.vocabulary['cohort_region'].nunique()} cohort regions")
    print(f"wrote: {res.out} (cohort.csv, region_vocabulary.csv, cohort.png, one folder per section)")
    if kept:
        names = ", ".join(t.loc[t["status"] == "kept", "section"].astype(str).head(5))
        _error_line(f"{kept} of {n} sections kept as they were, not re-run ({names}): their folders hold files "
                    "changed or added since batch wrote them; --overwrite replaces changed ones "
                    f"(see {res.out / 'cohort.csv'})", prefix="")  # fmt: skip
    if failed:
        _error_line(f"{failed} of {n} sections failed (see {res.out / 'cohort.csv'})", prefix="")
    return 1 if failed or kept else 0


def _cmd_run(args: argparse.Namespace) -> int:
    from .. import runner

    cfg = _config(args)
    if args.spatialdata:
        runner.check_spatialdata_output()
    inputs = _inputs(args)
    out = check_output_folder(args.out, inputs, overwrite=args.overwrite)  # before any work
    from ..notes import describe_input

    request = runner.request_of(cfg, args.section, args.image, bin_size=getattr(args, "bin_size", None))
    references = None
    if args.name_key and not args.name_from:
        raise CliError("--name-key needs --name-from (the annotated sections it names a column of)")
    if args.name_from:
        from ..review.naming import read_references

        references = read_references(args.name_from, args.name_key)  # a file without names fails before training
        request["name_from"] = [str(Path(p).expanduser().resolve()) for p in args.name_from]
        request["name_key"] = args.name_key
    t0 = time.perf_counter()
    adata = _read(args)
    t_read = time.perf_counter() - t0
    if references:
        from ..reference import shared_genes

        shared_genes(adata, references)  # before training, not after
        references = list(args.name_from)  # read again after training: not held in memory while it runs
    cfg, why = runner.resolve_n_clusters(adata, cfg)
    from ..section import get_image

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
            references=references,
            reference_key=args.name_key,
        )
    finally:
        bar.close()
    if rep.named:
        print(rep.named)

    print(f"regions: {', '.join(f'{c}: {n}' for c, n in rep.region_sizes.items())}")
    if rep.ari is not None:
        print(f"ARI: {rep.ari:.4f} (against the labels, {rep.n_labelled} labelled spots)")
    total = time.perf_counter() - t0 - t_read
    info = adata.uns.get("senca", {})
    gate = info.get("image_gate")  # how much the image counted (docs/method.md, "Fusion")
    fusion = info.get("fusion")
    counted = "" if gate is None else f"; {fusion + ' fusion, ' if fusion else ''}image counted {gate:.2f} (0-1)"
    library = info.get("library_gate")  # docs/method.md, "The clustered embedding"
    library_note = "" if library is None else f"; library size counted {library:.2f} (0-1)"
    print(f"device: {rep.device}; image weights: {rep.image_weights}{counted}{library_note}; {total:.1f} s")
    from ..image_weights import weak_features_note, weights_are_random

    if rep.image and weights_are_random(rep.image_weights):
        how = None if cfg.image_gate is None else "--count-random-image"  # a measured gate: no flag overrides it
        _error_line(weak_features_note(counted=bool(gate), count_how=how), prefix="warning: ")
    print(f"wrote: {out} ({', '.join(runner.output_files(args.spatialdata))})")
    return 0
