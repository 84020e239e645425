"""The garbage collector's settings for the ``napari-senca`` program (napari_senca.gc_policy)."""

from __future__ import annotations

import gc
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from napari_senca.gc_policy import OLDER_THRESHOLD, YOUNG_THRESHOLD, command_process

ROOT = Path(__file__).resolve().parents[1]
TUNED = (YOUNG_THRESHOLD, OLDER_THRESHOLD, OLDER_THRESHOLD)


@pytest.fixture
def clean_gc():
    before = gc.get_threshold()
    yield
    gc.unfreeze()  # the test process lives on: give the frozen objects back to the collector
    gc.set_threshold(*before)


def test_collects_less_often_inside_and_freezes_at_the_end(clean_gc):
    gc.set_threshold(700, 10, 10)
    gc.unfreeze()
    with command_process():
        assert gc.get_threshold() == TUNED
        assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() > 0


def test_settings_come_back_when_the_command_fails(clean_gc):
    gc.set_threshold(500, 5, 5)
    with pytest.raises(RuntimeError), command_process():
        raise RuntimeError("the command failed")
    assert gc.get_threshold() == (500, 5, 5)
    assert gc.get_freeze_count() > 0


def test_garbage_cycles_are_finalised_before_the_freeze(clean_gc):
    finalised = []

    class Node:
        def __del__(self):
            finalised.append(True)

    gc.disable()  # keep the cycle uncollected until the block ends
    try:
        with command_process():
            a, b = Node(), Node()
            a.other, b.other = b, a
            del a, b
            assert not finalised
    finally:
        gc.enable()
    assert finalised == [True, True]


def test_cycles_are_still_collected_inside(clean_gc):
    class Node:
        pass

    with command_process():
        a, b = Node(), Node()
        a.other, b.other = b, a
        ref = __import__("weakref").ref(a)
        del a, b
        gc.collect()
        assert ref() is None


def _run(code: str) -> list[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


# main() reports the collector's thresholds while it runs; an atexit handler reports the freeze at the end
PROBE = (
    "import atexit, gc, sys\nimport napari_senca.cli as cli\n"
    "def fake_main(argv=None):\n    print(*gc.get_threshold())\n    return 0\n"
    "cli.main = fake_main\n"
    "atexit.register(lambda: print('frozen', gc.get_freeze_count() > 0))\n"
)


def test_the_console_script_and_python_m_run_the_command_in_a_tuned_process():
    scripts = re.search(r"^\[project\.scripts\]\n(.*?)(?:\n\[|\Z)", (ROOT / "pyproject.toml").read_text(), re.M | re.S)
    assert 'napari-senca = "napari_senca.cli:entry"' in scripts.group(1)
    expected = [str(v) for v in TUNED] + ["frozen", "True"]
    assert _run(PROBE + "sys.exit(cli.entry())") == expected
    assert _run(PROBE + "import runpy\nsys.argv = ['napari-senca']\n"
                "runpy.run_module('napari_senca.cli', run_name='__main__')") == expected


def test_main_leaves_the_collector_alone():
    # tests, notebooks and napari call main() in a process that goes on
    out = _run("import gc\nfrom napari_senca.cli import main\nbefore = gc.get_threshold()\nmain(['--version'])\n"
               "print('AFTER', gc.get_threshold() == before, gc.get_freeze_count())")
    assert out[-3:] == ["AFTER", "True", "0"]
