"""How torch's CPU threads wait between operations.

By default OpenMP threads spin while they wait for the next parallel region.
On free cores that is the fastest way to run the model's many small
operations. When the cores are also busy with something else (another
program, napari drawing, a second run), each operation instead waits for a
thread that the system has descheduled: on the 2-core machine a HER2ST
section's training ran 2-3x slower under load than with passive waiting
(threads sleep until there is work). On idle cores passive waiting costs the
other way round: 1.5-2.2x on the same machine. Measured in docs/benchmarks.md
("Thread waiting policy").

The policy is read once, when torch's OpenMP runtime starts, so it is set by
the entry points before torch is imported, and never over a value the user
set. ``napari-senca run`` and the napari widgets sample the cores for a tenth
of a second and wait passively only when other programs are keeping a core
busy (napari's own drawing costs spinning less than it gains: see the
benchmark "Training in napari"). The waiting policy never changes a result
(the thread count would, so it is left alone).

The thread count is the caller's (``torch.set_num_threads``, or
``OMP_NUM_THREADS`` read when torch is first used; ``batch`` gives each section
its share of a host's cores). numba, which scanpy calls, starts its thread pool
on first use and sets the calling thread's OpenMP count to its own
(``NUMBA_NUM_THREADS``, by default every CPU the process may use); on Linux it
shares torch's OpenMP runtime, so that silently undid the caller's count (two
1-thread runs side by side on 2 cores then trained about 8x slower).
:func:`keep_torch_threads` puts it back around the scanpy calls
(docs/benchmarks.md, "Nineteenth session"). Where numba started before torch
was first used (a notebook that ran scanpy first), torch takes numba's count
as its own; :func:`restore_torch_threads` gives it the caller's count back
when a run starts.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = [
    "BUSY_CORES", "busy_cores_elsewhere", "keep_torch_threads", "prefer_passive_waiting", "restore_torch_threads",
]

#: Other programs keeping at least this many of our cores busy -> passive waiting.
BUSY_CORES = 0.5


def _cpu_times(cpus: set[int]) -> tuple[int, int] | None:
    """(busy, total) jiffies summed over ``cpus`` from ``/proc/stat``; None where it cannot be read."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    busy = total = 0
    for line in lines:
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or not name[3:].isdigit() or int(name[3:]) not in cpus:
            continue
        f = [int(v) for v in rest.split()[:8]]  # user nice system idle iowait irq softirq steal
        total += sum(f)
        busy += sum(f) - f[3] - f[4]
    return (busy, total) if total else None


def busy_cores_elsewhere(interval: float = 0.1) -> float | None:
    """Cores of this process's CPU set kept busy by other programs, sampled over ``interval`` s.

    The CPU time of this process (all its threads: napari drawing, say) in
    the interval is subtracted, so what is left is everyone else. Linux only
    (``/proc/stat``); None elsewhere or when it cannot be read.
    """
    try:
        cpus = set(os.sched_getaffinity(0))
        hz = float(os.sysconf("SC_CLK_TCK"))
    except (AttributeError, OSError, ValueError):
        return None
    first, own = _cpu_times(cpus), os.times()
    if first is None:
        return None
    time.sleep(interval)
    second, own2 = _cpu_times(cpus), os.times()
    if second is None or second[1] <= first[1]:
        return None
    own_s = (own2.user - own.user) + (own2.system - own.system)
    wall_s = (second[1] - first[1]) / hz / len(cpus)  # the interval as /proc/stat counted it
    return max(0.0, ((second[0] - first[0]) / hz - own_s) / wall_s)


def prefer_passive_waiting(only_if_busy: bool = False) -> bool:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` if the user has not set it and torch is not loaded yet.

    Parameters
    ----------
    only_if_busy
        Set it only when other programs keep at least :data:`BUSY_CORES`
        cores busy (:func:`busy_cores_elsewhere`); where that cannot be
        measured, set it.

    Returns
    -------
    bool
        True when the policy was set here.
    """
    if "OMP_WAIT_POLICY" in os.environ or "torch" in sys.modules:
        return False
    if only_if_busy:
        busy = busy_cores_elsewhere()
        if busy is not None and busy < BUSY_CORES:
            return False
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return True


@contextmanager
def keep_torch_threads() -> Iterator[None]:
    """Give torch's CPU thread count back to what it was before the body.

    For code that may call numba for the first time in the process (scanpy's
    ``normalize_total`` asks numba for its thread count, which starts numba's
    OpenMP thread pool): numba sets the calling thread's count of the OpenMP
    runtime it shares with torch to numba's count. Reading torch's count on
    entry also fixes it for this thread (from ``torch.set_num_threads`` or
    ``OMP_NUM_THREADS``), so it is kept whether or not torch has run here before.
    OpenMP counts are per thread: use the guard in the thread that trains.
    Where torch is not loaded there is nothing to keep; torch then takes the
    thread's count when first used, numba's if numba started before
    (:func:`restore_torch_threads` gives it back when a run starts).
    """
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def restore_torch_threads() -> bool:
    """Give this thread torch's own count back where numba's thread pool replaced it.

    In a notebook that ran scanpy before torch was first used, numba's pool
    set the OpenMP count it shares with torch to numba's (every CPU by
    default), and torch then took that as its own, so ``OMP_NUM_THREADS``
    (which SLURM and most schedulers set) was lost. A fresh thread still
    starts from torch's own setting (``torch.set_num_threads`` if the caller
    called it, else ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` or torch's
    default), so that count is asked of one and set here where they differ.
    A count the caller set with ``torch.set_num_threads`` is therefore kept.

    Returns
    -------
    bool
        True when this thread's count was changed.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return False  # torch takes the thread's count when first used: nothing to give back yet
    seen: list[int] = []
    probe = threading.Thread(target=lambda: seen.append(torch.get_num_threads()), name="senca-thread-count")
    probe.start()
    probe.join()
    if not seen or seen[0] == torch.get_num_threads():
        return False
    torch.set_num_threads(seen[0])
    return True
