"""Dask execution: the client (local cluster, scheduler address or cluster object) and the task loop."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import SencaConfig
from ..errors import ConfigError
from .jobs import SectionJob
from .table import _one_line, _row
from .task import _run_job


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


def _submit_all(
    client: Any, todo: list[tuple[SectionJob, SencaConfig, Path]], overwrite: bool = False
) -> dict[Any, SectionJob]:
    """One task per section (a GPU each when the workers have GPUs and the section may use one)."""
    threads = _threads_per_task(client)
    gpu = _workers_have_gpu(client)
    futures = {}
    for j, cfg, sec_out in todo:
        kw: dict[str, Any] = {"pure": False, "key": f"senca-{j.name}-{time.time_ns()}"}
        if gpu and (cfg.device == "auto" or str(cfg.device).startswith("cuda")):
            kw["resources"] = {"GPU": 1}
        futures[client.submit(_run_job, j, cfg, str(sec_out), threads, overwrite, **kw)] = j
    return futures


def _run_on_dask(
    todo: list[tuple[SectionJob, SencaConfig, Path]],
    root: Path,
    rows: dict[str, dict[str, Any]],
    *,
    scheduler: Any,
    n_workers: int | None,
    on_update: Callable[[dict[str, Any], int, int], None] | None,
    done: int,
    total: int,
    overwrite: bool = False,
) -> int:
    """Run ``todo`` on Dask, recording each finished row in ``rows``; returns the number finished.

    ``overwrite``: replace any previous output, else only unchanged ones (see :func:`._run_job`).
    """
    client, cluster, own = _client(scheduler, len(todo), n_workers)
    try:
        futures = _submit_all(client, todo, overwrite)
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
    return done
