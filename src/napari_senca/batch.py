"""Many sections on a Dask cluster: ``napari-senca batch`` and :func:`run_batch`.

Every section is one Dask task running :func:`napari_senca.runner.run_section`
into ``OUT/<name>/`` (the folder ``run`` writes). A failing section does not
stop the others: its one-line error goes into the cohort table. A section whose
output is complete and current (same input files by size and modification
time, same settings; see :func:`napari_senca.runner.is_current`) is skipped, so
re-running an interrupted cohort resumes it. Afterwards the regions of all
sections are matched to one vocabulary (:mod:`napari_senca.vocabulary`) and
``OUT/cohort.csv``, ``OUT/region_vocabulary.csv`` and ``OUT/cohort.png`` are
written.

The scheduler is ``"local"`` (a :class:`distributed.LocalCluster` of
single-threaded worker processes, one per section up to the number of cores),
the address of a running scheduler (``tcp://host:8786``) or its scheduler
file (``scheduler.json``), or, from Python, a
``distributed.Client`` or any cluster object (``SLURMCluster``...).
"""

from __future__ import annotations

import csv
import dataclasses
import glob
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import pandas as pd

from .config import SencaConfig
from .errors import ConfigError, DataError, SencaError, shorten
from .outputs import MARKER, check_output_folder, read_marker, write_marker

__all__ = [
    "SectionJob",
    "BatchResult",
    "COHORT_FILES",
    "collect_sections",
    "read_manifest",
    "apply_overrides",
    "run_batch",
    "run_joint_batch",
    "cohort_table_columns",
]

#: Files ``batch`` writes into the cohort folder besides one folder per section.
COHORT_FILES = ("cohort.csv", "region_vocabulary.csv", "cohort.png")

#: Manifest columns that are not settings.
MANIFEST_COLUMNS = ("path", "name", "section", "image", "label_column", "bin_size")

STAGES = ("read", "preprocess", "patches", "train", "cluster", "markers", "write", "total")


def cohort_table_columns() -> list[str]:
    """Columns of ``cohort.csv`` in order."""
    return [
        "section", "path", "status", "error", "spots", "genes", "regions", "image", "ari", "labelled_spots",
        "device", "image_weights", "worker", *[f"time_{s}" for s in STAGES], "out",
    ]  # fmt: skip


@dataclass
class SectionJob:
    """One section of a cohort (a row of the manifest)."""

    name: str
    path: str
    section: str | None = None
    image: str | None = None
    label_column: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    bin_size: int | None = None  # Visium HD: the bins to read (um); None: the reader's default (16)


@dataclass
class BatchResult:
    """What :func:`run_batch` produced."""

    table: pd.DataFrame
    out: Path
    vocabulary: pd.DataFrame | None = None

    @property
    def n_failed(self) -> int:
        return int((self.table["status"] == "failed").sum())


# --------------------------------------------------------------------------- sections


def _name_for(path: str, section: str | None) -> str:
    if section:
        return str(section)
    p = Path(path)
    if p.name in ("outs",) and p.parent.name:
        return p.parent.name
    return p.stem if p.suffix in (".h5ad",) else p.name


def _has_glob(s: str) -> bool:
    return any(c in s for c in "*?[")


def collect_sections(items: Sequence[str | PathLike], section: str | None = None) -> list[SectionJob]:
    """Sections from paths, glob patterns and CSV manifests (in the order given).

    Raises
    ------
    ConfigError
        No section, a glob that matches nothing, or two sections with one name.
    """
    if section and "," in section:  # one her2st repository, several sections
        names = [x.strip() for x in section.split(",") if x.strip()]
        return [j for sec in names for j in collect_sections(items, sec)] if names else collect_sections(items)
    jobs: list[SectionJob] = []
    for item in items:
        s = str(item)
        if s.lower().endswith(".csv") and Path(s).is_file():
            jobs += read_manifest(s)
        elif _has_glob(s) and not Path(s).exists():
            hits = sorted(glob.glob(os.path.expanduser(s)))
            if not hits:
                raise ConfigError(f"{s}: the pattern matches no file or folder")
            jobs += [SectionJob(_name_for(h, section), h, section) for h in hits]
        else:
            jobs.append(SectionJob(_name_for(s, section), s, section))
    if not jobs:
        raise ConfigError("no sections given")
    _check_names(jobs)
    return jobs


def _jobs(sections: Sequence[str | PathLike | SectionJob], section: str | None, bin_size: int | None) -> list[SectionJob]:
    """The jobs of ``sections``; ``bin_size`` for every job whose manifest row does not set one."""
    jobs = [s for s in sections if isinstance(s, SectionJob)]
    plain = [s for s in sections if not isinstance(s, SectionJob)]
    if plain or not jobs:
        jobs += collect_sections(plain, section)
    _check_names(jobs)
    if bin_size is not None:
        jobs = [j if j.bin_size is not None else dataclasses.replace(j, bin_size=int(bin_size)) for j in jobs]
    return jobs


def _check_names(jobs: list[SectionJob]) -> None:
    seen: dict[str, int] = {}
    for j in jobs:
        seen[j.name] = seen.get(j.name, 0) + 1
        if not j.name or j.name.startswith(".") or "/" in j.name or "\\" in j.name or j.name in COHORT_FILES:
            raise ConfigError(f"{j.path}: {j.name!r} cannot name an output folder; give the section a name")
    dup = [n for n, c in seen.items() if c > 1]
    if dup:
        raise ConfigError(
            f"{len(dup)} section name(s) used twice ({', '.join(dup[:3])}); give each section its own name "
            "(a 'name' column in the manifest)"
        )


def _convert(name: str, value: str, default: Any) -> Any:
    """A manifest cell as the type of the setting's default."""
    v = value.strip()
    try:
        if isinstance(default, bool):
            low = v.lower()
            if low not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(v)
            return low in ("true", "1", "yes")
        if isinstance(default, int):
            return int(v)
        if isinstance(default, float):
            return float(v)
    except ValueError:
        raise ConfigError(f"setting {name}: {v!r} is not a {type(default).__name__}") from None
    if default is None:  # n_clusters, target_sum: a number when given
        try:
            return int(v)
        except ValueError:
            try:
                return float(v)
            except ValueError:
                return v
    return v


def read_manifest(path: str | PathLike) -> list[SectionJob]:
    """Sections of a CSV manifest: ``path`` (required), ``name``, ``section``, ``image``,
    ``label_column``, ``bin_size`` (Visium HD bins in um) and any
    :class:`~napari_senca.config.SencaConfig` setting as a per-row override (empty
    cells: no override). Relative paths are relative to the manifest.

    Raises
    ------
    DataError
        Unreadable file, no ``path`` column, unknown columns or bad values (naming row and column).
    """
    p = Path(path)
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
            cols = [c.strip() for c in (rows[0].keys() if rows else [])]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(p, f"cannot read the manifest ({exc})") from None
    if not rows:
        raise DataError(p, "the manifest has no rows")
    if "path" not in cols:
        raise DataError(p, f"the manifest needs a 'path' column (it has {', '.join(cols[:6])})")
    defaults = {f.name: f.default for f in dataclasses.fields(SencaConfig)}
    unknown = [c for c in cols if c not in MANIFEST_COLUMNS and c not in defaults]
    if unknown:
        raise DataError(p, f"unknown column(s) {', '.join(unknown[:5])}; use {', '.join(MANIFEST_COLUMNS)} or settings")
    jobs = []
    for i, raw in enumerate(rows, start=2):
        row = {str(k).strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        if not row.get("path"):
            raise DataError(p, f"row {i} has no path")
        sec_path = row["path"]
        if not sec_path.startswith("sample:") and not Path(sec_path).expanduser().is_absolute():
            sec_path = str(p.parent / sec_path)
        image = row.get("image") or None
        if image and not Path(image).expanduser().is_absolute():
            image = str(p.parent / image)
        overrides = {}
        for c in cols:
            if c in defaults and row.get(c):
                try:
                    overrides[c] = _convert(c, row[c], defaults[c])
                except ConfigError as exc:
                    raise DataError(p, f"row {i}: {exc}") from None
        section = row.get("section") or None
        bin_size = None
        if row.get("bin_size"):
            try:
                bin_size = int(float(row["bin_size"]))
            except ValueError:
                raise DataError(p, f"row {i}: bin_size must be a number of um (2, 8 or 16), got {row['bin_size']!r}") from None
        jobs.append(
            SectionJob(
                row.get("name") or _name_for(row["path"], section),
                sec_path,
                section,
                image,
                row.get("label_column") or None,
                overrides,
                bin_size,
            )
        )
    return jobs


def apply_overrides(config: SencaConfig, overrides: dict[str, Any]) -> SencaConfig:
    """``config`` with a manifest row's settings (validated; an error names the setting)."""
    if not overrides:
        return config
    try:
        return config.replace(**overrides)
    except TypeError as exc:
        raise ConfigError(f"bad setting in the manifest ({exc})") from None


# --------------------------------------------------------------------------- one task


def _run_job(job: SectionJob, config: SencaConfig, out: str, threads: int) -> dict[str, Any]:
    """One section on a worker: never raises for the section's own problems, returns the table row."""
    import socket

    row = _row(job, out)
    row["worker"] = socket.gethostname()
    try:
        import torch

        torch.set_num_threads(max(1, threads))
        from .runner import run_section

        rep = run_section(
            job.path,
            out,
            config,
            section=job.section,
            image=job.image,
            label_column=job.label_column,
            bin_size=job.bin_size,
            overwrite=True,  # replaces only a previous napari-senca output (checked)
        )
        row.update(_report_fields(dataclasses.asdict(rep)))
        row["status"] = "done"
    except Exception as exc:  # the section's own problem: recorded, the cohort goes on
        row["status"] = "failed"
        row["error"] = _one_line(exc)
    return row


def _one_line(exc: BaseException) -> str:
    msg = str(exc) if isinstance(exc, SencaError) else f"{type(exc).__name__}: {exc}"
    return shorten(msg, 300)


def _row(job: SectionJob, out: str) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(cohort_table_columns())
    row.update(section=job.name, path=str(job.path), out=str(out), error="")
    return row


def _report_fields(rep: dict[str, Any]) -> dict[str, Any]:
    t = rep.get("timings", {}) or {}
    fields = {
        "spots": rep.get("spots"),
        "genes": rep.get("genes"),
        "regions": rep.get("regions"),
        "image": rep.get("image"),
        "ari": rep.get("ari"),
        "labelled_spots": rep.get("n_labelled"),
        "device": rep.get("device"),
        "image_weights": rep.get("image_weights"),
    }
    fields.update({f"time_{s}": (round(float(t[s]), 3) if s in t else None) for s in STAGES})
    return fields


# --------------------------------------------------------------------------- cohort


def _check_root(out: Path, inputs: list[Path], names: list[str]) -> Path:
    """The cohort folder: new, empty, or a previous cohort output (its marker lists what it holds)."""
    from .errors import OutputError
    from .outputs import check_not_input, check_writable

    o = out.expanduser().absolute()
    check_not_input(o, inputs)
    if o.exists() and not o.is_dir():
        raise OutputError(f"{out}: exists and is not a folder; choose a new folder")
    if o.is_dir() and any(o.iterdir()):
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
    check_writable(o)
    o.mkdir(parents=True, exist_ok=True)
    return o


def _client(scheduler: Any, n_sections: int, n_workers: int | None) -> tuple[Any, Any, bool]:
    """(client, cluster we started or None, whether the client is ours to close)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:  # pragma: no cover - a dependency
        raise ConfigError("batch needs dask.distributed: pip install 'dask[distributed]'") from None
    if isinstance(scheduler, Client):
        return scheduler, None, False
    if scheduler is None or scheduler == "local":
        cores = os.cpu_count() or 1
        n = max(1, min(n_sections, cores if n_workers is None else n_workers))
        cluster = LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40
        )
        return Client(cluster), cluster, True
    if isinstance(scheduler, str):
        try:
            if scheduler.endswith(".json") and Path(scheduler).is_file():  # dask scheduler --scheduler-file
                return Client(scheduler_file=scheduler, timeout="20s"), None, True
            return Client(scheduler, timeout="20s"), None, True
        except (OSError, TimeoutError) as exc:
            raise ConfigError(f"cannot reach the Dask scheduler at {scheduler} ({exc})") from None
    return Client(scheduler), None, True  # a cluster object (SLURMCluster, ...)


def _threads_per_task(client: Any) -> int:
    """Torch threads for one section: a host's cores shared by the worker threads on that host."""
    info = client.scheduler_info().get("workers", {}) or {}
    threads: dict[str, int] = {}
    cores: dict[str, int] = {}
    for addr, w in info.items():
        host = str(w.get("host") or addr)
        threads[host] = threads.get(host, 0) + max(1, int(w.get("nthreads") or 1))
        cores[host] = int((w.get("metrics", {}) or {}).get("cpu_count") or w.get("nthreads") or 1)
    return min((max(1, cores[h] // threads[h]) for h in threads), default=1)


def _workers_have_gpu(client: Any) -> bool:
    info = client.scheduler_info().get("workers", {}) or {}
    return any(float((w.get("resources", {}) or {}).get("GPU", 0)) > 0 for w in info.values())


def run_batch(
    sections: Sequence[str | PathLike | SectionJob],
    out: str | PathLike,
    config: SencaConfig | None = None,
    *,
    scheduler: Any = "local",
    n_workers: int | None = None,
    section: str | None = None,
    match_regions: bool = True,
    reference: str | PathLike | None = None,
    min_corr: float = 0.1,
    on_update: Callable[[dict[str, Any], int, int], None] | None = None,
    bin_size: int | None = None,
) -> BatchResult:
    """Run SENCA-st on every section of a cohort on Dask.

    Parameters
    ----------
    sections
        Paths, glob patterns, CSV manifests (see :func:`read_manifest`) or :class:`SectionJob`.
    out
        Cohort folder: one folder per section plus ``cohort.csv``,
        ``region_vocabulary.csv`` and ``cohort.png``.
    config
        Settings for every section (a manifest row overrides them for its section).
    scheduler
        ``"local"`` (default), a scheduler address, a ``distributed.Client`` or a cluster object.
    n_workers
        Worker processes of the local cluster (default: min(sections, cores)).
    section
        Section of a her2st repository, for paths without a manifest.
    match_regions, reference
        Match every section's regions to one vocabulary (reference: a previous
        ``annotated.h5ad``, default the first section that ran).
    min_corr
        Lowest centroid correlation for a region to join a vocabulary entry (else it opens a new one).
    on_update
        Called with each finished row, the number finished and the total.
    bin_size
        Visium HD sections: the bins to read (2, 8 or 16 um; a manifest's
        ``bin_size`` column overrides it per section). None: 16 um.

    Returns
    -------
    BatchResult
        The cohort table (``status`` done / skipped / failed) and the vocabulary.
    """
    from .runner import is_current, request_of, section_inputs

    base = config or SencaConfig()
    jobs = _jobs(sections, section, bin_size)
    all_inputs: list[Path] = []
    plans: list[tuple[SectionJob, SencaConfig, list[Path]]] = []
    rows: dict[str, dict[str, Any]] = {}
    for j in jobs:
        cfg, inputs = base, []
        try:
            cfg = apply_overrides(base, j.overrides)
            inputs = section_inputs(j.path, j.image, cfg.image_weights)
        except SencaError as exc:  # a bad row: recorded, the others run
            rows[j.name] = {**_row(j, ""), "status": "failed", "error": str(exc)}
        all_inputs += inputs
        plans.append((j, cfg, inputs))
    names = [j.name for j in jobs]
    root = _check_root(Path(out), all_inputs, names)
    before = (read_marker(root) or {}).get("sections", []) or []
    sections_here = [*map(str, before), *[n for n in names if n not in before]]
    write_marker(root, COHORT_FILES, config=base.to_dict(), extra={"cohort": True, "sections": sections_here})

    todo: list[tuple[SectionJob, SencaConfig, Path]] = []
    total, done = len(plans), 0
    for j, cfg, inputs in plans:
        sec_out = root / j.name
        if j.name in rows:
            rows[j.name]["out"] = str(sec_out)
        elif is_current(sec_out, inputs, request_of(cfg, j.section, j.image, j.label_column, j.bin_size)):
            rows[j.name] = _skipped_row(j, sec_out)
        else:
            try:
                check_output_folder(sec_out, inputs, overwrite=True)
                todo.append((j, cfg, sec_out))
                continue
            except SencaError as exc:
                rows[j.name] = {**_row(j, str(sec_out)), "status": "failed", "error": str(exc)}
        done += 1
        if on_update is not None:
            on_update(rows[j.name], done, total)

    if todo:
        client, cluster, own = _client(scheduler, len(todo), n_workers)
        try:
            threads = _threads_per_task(client)
            gpu = _workers_have_gpu(client)
            futures = {}
            for j, cfg, sec_out in todo:
                kw: dict[str, Any] = {"pure": False, "key": f"senca-{j.name}-{time.time_ns()}"}
                if gpu and (cfg.device == "auto" or str(cfg.device).startswith("cuda")):
                    kw["resources"] = {"GPU": 1}
                futures[client.submit(_run_job, j, cfg, str(sec_out), threads, **kw)] = j
            from distributed import as_completed

            for fut in as_completed(list(futures)):
                j = futures[fut]
                try:
                    row = fut.result()
                except Exception as exc:  # the worker died (memory, killed...)
                    row = {**_row(j, str(root / j.name)), "status": "failed", "error": _one_line(exc)}
                rows[j.name] = row
                done += 1
                if on_update is not None:
                    on_update(row, done, total)
        finally:
            if own:
                client.close()
            if cluster is not None:
                cluster.close()

    table = pd.DataFrame([rows[j.name] for j in jobs], columns=cohort_table_columns())
    vocab = None
    if match_regions:
        from .vocabulary import match_cohort_outputs

        ok = [(r["section"], Path(r["out"])) for r in table.to_dict("records") if r["status"] in ("done", "skipped")]
        vocab = match_cohort_outputs(ok, reference=reference, min_corr=min_corr)
    _write_table(table, root / "cohort.csv")
    if vocab is not None:
        _write_table(vocab, root / "region_vocabulary.csv")
    from .cohort_figure import write_cohort_png

    write_cohort_png(table, root / "cohort.png")
    return BatchResult(table=table, out=root, vocabulary=vocab)


def _skipped_row(job: SectionJob, sec_out: Path) -> dict[str, Any]:
    row = _row(job, str(sec_out))
    marker = read_marker(sec_out) or {}
    row.update(_report_fields(marker.get("report", {}) or {}))
    row["status"] = "skipped"
    row["error"] = "up to date"
    return row


def _write_table(df: pd.DataFrame, path: Path) -> None:
    from .export import atomic_write

    with atomic_write(path, overwrite=True) as fh:
        df.to_csv(fh, index=False)


# --------------------------------------------------------------------------- joint


def run_joint_batch(
    sections: Sequence[str | PathLike | SectionJob],
    out: str | PathLike,
    config: SencaConfig | None = None,
    *,
    section: str | None = None,
    batch: str = "scale",
    progress: Callable[[Any], None] | None = None,
    on_update: Callable[[dict[str, Any], int, int], None] | None = None,
    bin_size: int | None = None,
) -> BatchResult:
    """One model over all sections (:mod:`napari_senca.joint`), in this process.

    Writes the same cohort folder as :func:`run_batch`: one output folder per
    section (``senca_cluster`` is the joint region, the same tissue in every
    section; ``obs["cohort_region"]`` is ``Region k``), ``cohort.csv``,
    ``region_vocabulary.csv`` (one row per section and region) and
    ``cohort.png``. A section that cannot be read is recorded as failed and the
    others train together (at least two are needed). Joint runs always retrain
    (no resume: the model depends on every section). Training is RNA-only.
    ``bin_size`` is as in :func:`run_batch`.

    Raises
    ------
    ConfigError
        Per-section settings in a manifest (one model has one config), fewer
        than two readable sections, or an unknown ``batch``.
    """
    from .generators import drain
    from .joint import BATCH_MODES, run_joint_iter, split
    from .runner import finish_section, read_input, request_of, section_inputs
    from .vocabulary import COHORT_KEY

    if batch not in BATCH_MODES:
        raise ConfigError(f"unknown batch handling {batch!r}; use one of {', '.join(BATCH_MODES)}")
    cfg = (config or SencaConfig()).replace(use_image=False)
    jobs = _jobs(sections, section, bin_size)
    with_settings = [j.name for j in jobs if j.overrides]
    if with_settings:
        raise ConfigError(f"--joint trains one model with one config; {len(with_settings)} manifest row(s) set their "
                          f"own settings ({', '.join(with_settings[:3])})")  # fmt: skip
    rows: dict[str, dict[str, Any]] = {}
    inputs: dict[str, list[Path]] = {}
    for j in jobs:
        try:
            inputs[j.name] = section_inputs(j.path, j.image, cfg.image_weights)
        except SencaError as exc:  # a bad row: recorded, the others train together
            inputs[j.name] = []
            rows[j.name] = {**_row(j, ""), "status": "failed", "error": str(exc)}
    root = _check_root(Path(out), [p for v in inputs.values() for p in v], [j.name for j in jobs])
    write_marker(root, COHORT_FILES, config=cfg.to_dict(), extra={"cohort": True, "joint": True, "sections": [j.name for j in jobs]})
    read: list[tuple[SectionJob, Any, float]] = []
    for j in jobs:
        if j.name in rows:
            continue
        t0 = time.perf_counter()
        try:
            check_output_folder(root / j.name, inputs[j.name], overwrite=True)
            read.append((j, read_input(j.path, j.section, j.image, j.label_column, bin_size=j.bin_size), time.perf_counter() - t0))
        except SencaError as exc:
            rows[j.name] = {**_row(j, str(root / j.name)), "status": "failed", "error": str(exc)}
    if len(read) < 2:
        raise ConfigError(f"joint training needs at least 2 readable sections, got {len(read)}"
                          + (f" ({next(iter(rows.values()))['error']})" if rows else ""))  # fmt: skip
    pairs = [(j.name, a) for j, a, _ in read]
    t0 = time.perf_counter()
    joint = drain(run_joint_iter(pairs, cfg, batch), progress)
    t_train = time.perf_counter() - t0
    res = joint.result
    cfg_k = res.config.replace(n_clusters=int(res.n_clusters))
    done = len(rows)
    for (j, _, t_read), (name, a) in zip(read, split(joint, pairs), strict=True):
        a.obs[COHORT_KEY] = pd.Categorical(
            [f"Region {c}" for c in a.obs["senca_cluster"].astype(str)],
            categories=[f"Region {i}" for i in range(int(res.n_clusters))],
        )
        request = {**request_of(cfg, j.section, j.image, j.label_column, j.bin_size), "joint": joint.names, "batch": batch}
        row = _row(j, str(root / name))
        try:
            rep = finish_section(a, res, cfg_k, root / name, inputs[name], overwrite=True, request=request,
                                 train_total=t_train)  # fmt: skip
            rep.timings = {"read": t_read, **rep.timings, "total": t_read + t_train + rep.timings.get("markers", 0.0)
                           + rep.timings.get("write", 0.0)}  # fmt: skip
            row.update(_report_fields(dataclasses.asdict(rep)), status="done")
        except SencaError as exc:
            row.update(status="failed", error=str(exc))
        rows[name] = row
        done += 1
        if on_update is not None:
            on_update(row, done, len(jobs))
    table = pd.DataFrame([rows[j.name] for j in jobs], columns=cohort_table_columns())
    vocab = _joint_vocabulary(table, dict(pairs))
    _write_table(table, root / "cohort.csv")
    _write_table(vocab, root / "region_vocabulary.csv")
    from .cohort_figure import write_cohort_png

    write_cohort_png(table, root / "cohort.png")
    return BatchResult(table=table, out=root, vocabulary=vocab)


def _joint_vocabulary(table: pd.DataFrame, adatas: dict[str, Any]) -> pd.DataFrame:
    """One row per (section, joint region): the region is its own cohort region."""
    from .vocabulary import COHORT_KEY

    recs = []
    for name in table.loc[table["status"] == "done", "section"]:
        a = adatas[name]
        sizes = a.obs["senca_cluster"].value_counts()
        for r in a.obs["senca_cluster"].cat.categories:
            if int(sizes.get(r, 0)):
                recs.append({"section": name, "region": str(r), COHORT_KEY: f"Region {r}", "correlation": None,
                             "new_entry": False, "spots": int(sizes.get(r, 0))})  # fmt: skip
    return pd.DataFrame(recs, columns=["section", "region", COHORT_KEY, "correlation", "new_entry", "spots"])
