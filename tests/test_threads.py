"""The OpenMP waiting policy set by the entry points before torch loads."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

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


def _policy_after(statement: str, busy: float | None) -> list[str]:
    """[OMP_WAIT_POLICY, torch loaded] after ``statement`` in a fresh process whose load sample reads ``busy``."""
    code = ("import os, sys\nimport napari_senca.threads as t\n"
            f"t.busy_cores_elsewhere = lambda interval=0.1: {busy!r}\n"
            f"{statement}\n"
            "print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | {"PYTHONPATH": SRC}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1].split()


def _cli_policy(argv: list[str], busy: float | None) -> list[str]:
    """:func:`_policy_after` the command line's ``main(argv)``."""
    return _policy_after(f"from napari_senca.cli import main\nmain({argv!r})", busy)


def test_run_waits_passively_only_beside_other_programs(tmp_path):
    # `run` on a missing path fails after the policy is chosen and before torch loads
    argv = ["run", str(tmp_path / "missing"), "--out", str(tmp_path / "out")]
    assert _cli_policy(argv, 1.0) == ["PASSIVE", "False"]  # another program keeps a core busy
    assert _cli_policy(argv, 0.1) == ["None", "False"]  # free cores: torch's default (spinning)
    assert _cli_policy(argv, None) == ["PASSIVE", "False"]  # cannot tell (no /proc/stat): the safe side


def test_other_commands_always_wait_passively(tmp_path):
    assert _cli_policy(["info", str(tmp_path / "missing")], 0.0) == ["PASSIVE", "False"]


def test_busy_cores_elsewhere_sees_a_busy_process():
    if threads.busy_cores_elsewhere(0.05) is None:
        pytest.skip("no /proc/stat here")
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        assert threads.busy_cores_elsewhere(0.3) >= 0.6
    finally:
        spin.kill()
        spin.wait()


def test_only_if_busy_measures_before_setting(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    monkeypatch.setattr(threads, "busy_cores_elsewhere", lambda interval=0.1: 0.2)
    assert not threads.prefer_passive_waiting(only_if_busy=True)
    assert "OMP_WAIT_POLICY" not in os.environ
    monkeypatch.setattr(threads, "busy_cores_elsewhere", lambda interval=0.1: threads.BUSY_CORES)
    assert threads.prefer_passive_waiting(only_if_busy=True)
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"


def test_busy_cores_elsewhere_leaves_out_this_process():
    if threads.busy_cores_elsewhere(0.05) is None:
        pytest.skip("no /proc/stat here")
    stop = threading.Event()

    def spin():  # this process's own work (napari drawing, say) is not "elsewhere"
        while not stop.is_set():
            pass

    seen = []
    for _ in range(3):  # other programs' load may change between two samples: a few tries
        before = threads.busy_cores_elsewhere(0.3)
        t = threading.Thread(target=spin, daemon=True)
        t.start()
        try:
            during = threads.busy_cores_elsewhere(0.3)
        finally:
            stop.set()
            t.join()
            stop.clear()
        seen.append((before, during))
        if during < before + threads.BUSY_CORES:  # a core of our own spinning adds (almost) nothing
            return
    pytest.fail(f"our own spinning thread counted as load elsewhere: (before, during) = {seen}")


@pytest.mark.parametrize(("busy", "policy"), [(1.0, "PASSIVE"), (0.0, "None")])
def test_the_widgets_sample_before_torch_loads(busy, policy):
    assert _policy_after("import napari_senca._qt", busy) == [policy, "False"]
