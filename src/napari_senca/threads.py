"""How torch's CPU threads wait between operations.

By default OpenMP threads spin while they wait for the next parallel region.
When the cores are also busy with something else (another program, napari
drawing, a second run), each of the model's many small operations then waits
for a thread that the system has descheduled: on the 2-core machine a HER2ST
section's training ran 3-6x slower under load than with one thread. Passive
waiting (threads sleep until there is work) removes that stall; measured in
docs/benchmarks.md ("Thread waiting policy").

The policy is read once, when torch's OpenMP runtime starts, so it is set by
the entry points (the command line and the napari widgets) before torch is
imported, and never over a value the user set.
"""

from __future__ import annotations

import os
import sys

__all__ = ["prefer_passive_waiting"]


def prefer_passive_waiting() -> bool:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` if the user has not set it and torch is not loaded yet.

    Returns
    -------
    bool
        True when the policy was set here.
    """
    if "OMP_WAIT_POLICY" in os.environ or "torch" in sys.modules:
        return False
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return True
