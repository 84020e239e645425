"""The helper process that runs GIL-holding work (UMAP) away from the viewer."""

from __future__ import annotations

import os

import numpy as np
import pytest

from napari_senca import isolated
from napari_senca.embedding_view import compute_layout, compute_layout_isolated
from napari_senca.errors import ConfigError, SencaError


@pytest.fixture
def helper():
    isolated.shutdown()
    isolated._unavailable = False
    yield isolated
    isolated.shutdown()
    isolated._unavailable = False


def test_runs_in_another_process_reused_and_raises_what_the_function_raises(helper):
    pid = helper.call_isolated(os.getpid)
    assert pid != os.getpid() and pid == helper.helper_pid()
    assert helper.call_isolated(os.getpid) == pid  # one helper for the session
    x = np.arange(12.0).reshape(6, 2)
    np.testing.assert_array_equal(helper.call_isolated(np.cumsum, x, 0), np.cumsum(x, 0))
    with pytest.raises(ConfigError, match="at least 15 spots"):  # raised in the helper, raised here
        compute_layout_isolated(np.zeros((5, 3)), "umap")
    assert helper.call_isolated(os.getpid) == pid  # an error does not end the helper
    z = np.random.default_rng(0).normal(size=(40, 4))
    np.testing.assert_allclose(compute_layout_isolated(z, "pca"), compute_layout(z, "pca"))  # PCA: no helper needed


def test_a_helper_that_dies_is_reported_and_replaced(helper):
    pid = helper.call_isolated(os.getpid)
    with pytest.raises(SencaError, match="stopped"):
        helper.call_isolated(os._exit, 3)
    assert helper.helper_pid() is None
    assert helper.call_isolated(os.getpid) not in (pid, os.getpid())


def test_runs_here_when_no_helper_can_start(helper, monkeypatch):
    monkeypatch.setattr(isolated.sys, "executable", "/nonexistent/python")
    assert helper.call_isolated(os.getpid) == os.getpid()
    assert helper.helper_pid() is None and helper._unavailable


def test_prints_to_stdout_and_calls_it_cannot_read_leave_the_helper_working(helper):
    import sys
    import types

    pid = helper.call_isolated(os.getpid)
    assert helper.call_isolated(os.write, 1, b"\x08\x00garbage") == 9  # C-level write to fd 1: not in the answers
    assert helper.call_isolated(print, "to stdout") is None
    mod = types.ModuleType("only_in_this_process")
    exec("def f():\n    return 1\n", mod.__dict__)
    sys.modules[mod.__name__] = mod
    try:
        with pytest.raises(SencaError, match="could not read the call"):
            helper.call_isolated(mod.f)
    finally:
        del sys.modules[mod.__name__]
    assert helper.call_isolated(os.getpid) == pid  # the same helper, still in step
