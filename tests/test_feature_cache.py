"""The feature cache on disk removes only its own files (the folder may be the user's)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from napari_senca import feature_cache


@pytest.fixture
def user_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user's project folder named as the cache, already holding the user's own .npz files."""
    monkeypatch.setenv(feature_cache.ENV, str(tmp_path))
    for name in ("embeddings_final.npz", "segmentation.npz", "A" * 40 + ".npz"):
        np.savez(tmp_path / name, x=np.zeros(10))
    (tmp_path / "notes.npz.tmp").write_text("the user's")
    return tmp_path


def _foreign(folder: Path) -> list[str]:
    """The files of ``folder`` the cache did not write (not a lower-case sha1 key and .npz)."""
    own = re.compile(r"[0-9a-f]{40}\.npz|\.napari-senca-features-.*\.npz\.tmp")
    return sorted(f.name for f in folder.iterdir() if not own.fullmatch(f.name))


def test_pruning_keeps_foreign_npz_files(user_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = _foreign(user_folder)
    monkeypatch.setattr(feature_cache, "MAX_BYTES", 1)  # everything is past the limit
    feature_cache.save("a" * 40, np.zeros((5, 4), np.float32), "imagenet")
    feature_cache.save("b" * 40, np.zeros((5, 4), np.float32), "imagenet")
    assert _foreign(user_folder) == before
    assert not (user_folder / ("a" * 40 + ".npz")).exists()  # its own files are still pruned


def test_clear_removes_only_cached_features(user_folder: Path) -> None:
    before = _foreign(user_folder)
    feature_cache.save("c" * 40, np.zeros((5, 4), np.float32), "imagenet")
    assert feature_cache.load("c" * 40) is not None
    feature_cache.clear()
    assert _foreign(user_folder) == before
    assert feature_cache.load("c" * 40) is None


def test_clear_removes_the_leftover_of_an_interrupted_write(user_folder: Path) -> None:
    leftover = user_folder / ".napari-senca-features-x1y2.npz.tmp"
    leftover.write_bytes(b"interrupted write")
    feature_cache.save("d" * 40, np.zeros((5, 4), np.float32), "imagenet")
    assert feature_cache.clear() == 2
    assert not leftover.exists()
    assert not list(user_folder.glob(".napari-senca-features-*"))
