"""The OpenMP waiting policy set by the entry points before torch loads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from napari_senca import threads

SRC = str(Path(__file__).resolve().parents[1] / "src")


def test_passive_waiting_is_set_only_when_nobody_chose(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    assert threads.prefer_passive_waiting()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert not threads.prefer_passive_waiting()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_too_late_once_torch_is_loaded(monkeypatch):
    import torch  # noqa: F401

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert not threads.prefer_passive_waiting()
    assert "OMP_WAIT_POLICY" not in os.environ


def test_the_command_line_sets_it_before_torch_loads():
    code = ("import os, sys\nfrom napari_senca.cli import main\nmain(['--version'])\n"
            "print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | {"PYTHONPATH": SRC}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "PASSIVE False"
