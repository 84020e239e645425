"""Patch features on disk, so that a new run or a re-cluster does not re-encode (issue 9, item 4).

One ``.npz`` per key (see :func:`napari_senca.features.feature_key`: image
content, spot centres, encoder and weights, patch settings) in the user cache
folder (``platformdirs.user_cache_dir("napari-senca")/features``), or in the
folder named by the environment variable ``NAPARI_SENCA_CACHE``; set it to
``off`` (or ``SencaConfig(cache_features=False)``, ``--no-feature-cache``) to
keep nothing on disk. Files are written atomically; the oldest are removed when
the folder grows past :data:`MAX_BYTES`. A file that cannot be read is ignored
(and re-made), never an error.

Pruning and :func:`clear` touch only the cache's own files (a 40-hex-digit key
and ``.npz``, and the temporary files of an interrupted write), so a folder
named by ``NAPARI_SENCA_CACHE`` may hold other files: they are never removed.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["ENV", "MAX_BYTES", "cache_dir", "load", "save", "clear"]

ENV = "NAPARI_SENCA_CACHE"
#: the folder is pruned (oldest first) to this size
MAX_BYTES = 2 * 1024**3
_OFF = ("off", "0", "false", "no", "none")
#: the cache's own file names: a key (:func:`napari_senca.features.feature_key`, sha1 hex) and .npz
_OWN = re.compile(r"[0-9a-f]{40}\.npz")
#: prefix and suffix of the temporary file of a write in progress (left behind if it was interrupted)
_TMP_PREFIX, _TMP_SUFFIX = ".napari-senca-features-", ".npz.tmp"


def cache_dir() -> Path | None:
    """The feature cache folder, or None when disabled (``NAPARI_SENCA_CACHE=off``)."""
    env = os.environ.get(ENV)
    if env is not None:
        if env.strip().lower() in _OFF or not env.strip():
            return None
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("napari-senca")) / "features"


def _path(key: str) -> Path | None:
    d = cache_dir()
    return None if d is None else d / f"{key}.npz"


def load(key: str) -> tuple[np.ndarray, str] | None:
    """``(features, weights_used)`` stored under ``key``, or None."""
    p = _path(key)
    if p is None or not p.is_file():
        return None
    try:
        with np.load(p, allow_pickle=False) as z:
            feats, used = np.asarray(z["feats"], dtype=np.float32), str(z["weights_used"])
        os.utime(p)  # recently used: pruned last
        return feats, used
    except Exception:  # truncated or foreign file: encode again
        return None


def save(key: str, feats: np.ndarray, weights_used: str) -> Path | None:
    """Store ``feats`` under ``key`` (atomically); None when the cache is off or not writable."""
    p = _path(key)
    if p is None:
        return None
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix=_TMP_SUFFIX, dir=p.parent)
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, feats=np.asarray(feats, dtype=np.float32), weights_used=np.str_(weights_used))
        os.replace(tmp, p)
    except OSError:
        return None
    _prune(p.parent)
    return p


def _own_files(d: Path) -> list[Path]:
    """The cached feature files in ``d`` (named by a key); never another file of the folder."""
    return [f for f in d.glob("*.npz") if _OWN.fullmatch(f.name) and f.is_file()]


def _own_temporaries(d: Path) -> list[Path]:
    """Temporary files of writes into ``d`` (left behind when a write was interrupted)."""
    return [f for f in d.glob(f"{_TMP_PREFIX}*{_TMP_SUFFIX}") if f.is_file()]


def clear() -> int:
    """Remove every cached feature file (not the folder's other files).

    Returns
    -------
    int
        How many files were removed.
    """
    d = cache_dir()
    if d is None or not d.is_dir():
        return 0
    n = 0
    for f in _own_files(d) + _own_temporaries(d):
        try:
            f.unlink()
            n += 1
        except OSError:
            pass
    return n


def _prune(d: Path) -> None:
    """Remove the oldest cached feature files of ``d`` until they fit in :data:`MAX_BYTES`."""
    files = sorted(_own_files(d), key=lambda f: f.stat().st_mtime)
    total = sum(f.stat().st_size for f in files)
    while files and total > MAX_BYTES:
        f = files.pop(0)
        total -= f.stat().st_size
        f.unlink(missing_ok=True)
