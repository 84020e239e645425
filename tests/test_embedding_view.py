"""2-D layouts of X_senca, plot selections and confidence colours (no Qt)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_senca.embedding_view import (
    NAN_COLOUR,
    cached_layout,
    compute_layout,
    confidence_colours,
    layout_2d,
    layout_key,
    points_in_lasso,
    points_in_rectangle,
)
from napari_senca.errors import ConfigError
from napari_senca.section import EMBED_KEY
from test_review import annotated_section  # tests/ is on sys.path


def test_lasso_and_rectangle_select_the_points_inside():
    xy = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [5.0, 5.0], [1.5, 0.2]])
    triangle = [(-1, -1), (4, -1), (-1, 1.5)]  # below y = 1 - (x + 1) / 2
    np.testing.assert_array_equal(points_in_lasso(xy, triangle), [0, 4])
    np.testing.assert_array_equal(points_in_lasso(xy, [(0, 0), (1, 1)]), [])  # not a polygon
    np.testing.assert_array_equal(points_in_rectangle(xy, (2.5, 2.5), (0.5, 0.5)), [1, 2])
    np.testing.assert_array_equal(points_in_rectangle(xy, (-1, -1), (6, 6)), np.arange(5))


def test_pca_layout_is_the_top_two_components_and_cached():
    adata = annotated_section()
    z = np.asarray(adata.obsm[EMBED_KEY], dtype=np.float64)
    xy = layout_2d(adata, "pca")
    assert xy.shape == (adata.n_obs, 2)
    zc = z - z.mean(0)
    var = np.linalg.svd(zc, compute_uv=False) ** 2
    np.testing.assert_allclose(np.sort(xy.var(0) * len(z))[::-1], var[:2], rtol=1e-4)
    assert layout_key("PCA") in adata.obsm
    np.testing.assert_allclose(cached_layout(adata, "pca"), xy, rtol=1e-6)
    # a new embedding (a new run) invalidates the cached layout
    adata.obsm[EMBED_KEY] = z[:, ::-1].copy() * 2
    assert cached_layout(adata, "pca") is None
    assert not np.allclose(layout_2d(adata, "pca"), xy)


def test_layout_errors():
    with pytest.raises(ConfigError, match="unknown layout"):
        compute_layout(np.zeros((20, 3)), "tsne")
    with pytest.raises(ConfigError, match="at least 15 spots"):
        compute_layout(np.zeros((5, 3)), "umap")
    from napari_senca.datasets import synthetic_section

    with pytest.raises(ConfigError, match="run the model first"):
        layout_2d(synthetic_section(n_side=4, n_genes=10))


def test_umap_without_umap_learn_is_one_clear_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "umap", None)  # makes `import umap` fail
    with pytest.raises(ConfigError, match="umap-learn"):
        compute_layout(np.zeros((20, 3)), "umap")


def test_confidence_colours():
    rgba = confidence_colours(np.array([0.0, 1.0, np.nan, 0.5]))
    assert rgba.shape == (4, 4)
    assert tuple(rgba[2]) == NAN_COLOUR
    assert not np.allclose(rgba[0], rgba[1])
    assert rgba[0, 0] > rgba[0, 2] and rgba[1, 2] > rgba[1, 0]  # uncertain red, confident blue


def test_core_modules_need_no_qt():
    import subprocess
    import sys

    code = (
        "import sys; import napari_senca.confidence, napari_senca.embedding_view, napari_senca.pipeline; "
        "bad = [k for k in sys.modules if k.split('.')[0] in ('qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'napari')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
