"""Error messages: one line, capped length, naming the real problem."""

from __future__ import annotations

import pytest

from napari_senca.config import SencaConfig
from napari_senca.errors import MAX_MESSAGE, ConfigError, DataError, shorten


def test_shorten():
    assert shorten("a  b\n c") == "a b c"
    long = "x" * 30_000
    s = shorten(long)
    assert len(s) == MAX_MESSAGE and s.endswith(f"... ({30_000 - s.index('.')} more characters)")
    assert len(shorten(long, 50)) == 50


def test_data_error_is_capped():
    e = DataError("/data/counts.tsv", "spot id " + "1," * 15_000 + " is bad")
    assert len(str(e)) == MAX_MESSAGE and str(e).startswith("/data/counts.tsv: spot id 1,1,")
    assert "more characters)" in str(e) and len(e.args[0]) > 30_000  # the full text is kept


def test_too_small_section_is_named_not_the_cluster_count():
    pipeline = pytest.importorskip("napari_senca.pipeline")
    for n, msg in [(1, "the section has 1 spot; at least 5 are needed"), (4, "the section has 4 spots; at least 5")]:
        with pytest.raises(ConfigError, match=msg):
            pipeline.check_run_settings(SencaConfig(), n, 2)
    with pytest.raises(ConfigError, match="at least 3 are needed"):
        pipeline.check_run_settings(SencaConfig(n_neighbors=2), 2, 2)
    pipeline.check_run_settings(SencaConfig(), 5, 5)
    with pytest.raises(ConfigError, match="more clusters"):
        pipeline.check_run_settings(SencaConfig(), 5, 6)
