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


def _child_env(**extra: str) -> dict[str, str]:
    """The environment of a fresh child: this checkout's sources, numba's pool of 2 threads whatever the machine
    (so a reset is visible on one core too), no thread count inherited from CI or from Dask (whose nanny, in the
    batch tests, puts OMP_NUM_THREADS=1 and MKL_NUM_THREADS=1 into this process's environment; torch's MKL build
    starts from MKL_NUM_THREADS)."""
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), NUMBA_NUM_THREADS="2")
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(name, None)
    env.pop("NUMBA_THREADING_LAYER", None)
    env.update(extra)
    return env


def test_keep_torch_threads_gives_the_count_back():
    import torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        with threads.keep_torch_threads():
            torch.set_num_threads(2)  # what numba's first call does to the shared OpenMP runtime
        assert torch.get_num_threads() == 1
        with pytest.raises(RuntimeError), threads.keep_torch_threads():  # also when the body raises
            torch.set_num_threads(2)
            raise RuntimeError("scanpy failed")
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_keep_torch_threads_in_a_worker_thread():
    """The widgets train in a worker thread, dask runs tasks in one: OpenMP's count is per thread."""
    import torch

    seen: list[int] = []

    def work() -> None:
        torch.set_num_threads(1)
        with threads.keep_torch_threads():
            torch.set_num_threads(2)
        seen.append(torch.get_num_threads())

    before = torch.get_num_threads()
    try:
        t = threading.Thread(target=work)
        t.start()
        t.join(30)
        assert seen == [1]
    finally:
        torch.set_num_threads(before)


#: the first scanpy call of each guarded path, on a small section (fresh process: numba not started yet)
_FIRST_CALLS = {
    "preprocess": "from napari_senca.preprocess import preprocess_expression\n"
                  "preprocess_expression(ad, SencaConfig(n_top_genes=20))\n",
    "markers": "from napari_senca.markers import rank_markers\n"
               "ad.obs['senca_cluster'] = pd.Categorical(np.repeat(['0', '1'], 30))\n"
               "rank_markers(ad, 'senca_cluster', n_genes=3, min_gene_counts=1)\n",
    "joint": "from napari_senca.joint import joint_expression\n"
             "joint_expression([('a', ad), ('b', ad.copy())], SencaConfig(n_top_genes=20))\n",
}


@pytest.mark.parametrize("call", sorted(_FIRST_CALLS))
def test_scanpy_calls_keep_the_callers_torch_threads(call):
    """In a fresh process where torch has run but numba has not started: the caller's torch.set_num_threads(1)
    survives the first scanpy call, which starts numba's thread pool; without the guard it came back as numba's
    count, and two single-threaded runs side by side on 2 cores trained about 8x slower (docs/benchmarks.md,
    "Nineteenth session")."""
    code = (
        "import torch\ntorch.set_num_threads(1)\n"
        "torch.ones(100_000).exp().sum()  # torch has run (OpenMP started), as in a notebook or a benchmark\n"
        "import numpy as np, pandas as pd\nfrom anndata import AnnData\n"
        "rng = np.random.default_rng(0)\n"
        "ad = AnnData(rng.poisson(3.0, (60, 40)).astype(np.float32))\n"
        "ad.var_names = [f'g{i}' for i in range(40)]\n"
        "ad.obs_names = [f's{i}' for i in range(60)]\n"
        "from napari_senca.config import SencaConfig\n"
        + _FIRST_CALLS[call]
        + "print(torch.get_num_threads())\n"
        "import numba\n"
        "try:\n    print(numba.threading_layer())  # raises when numba's pool was not started\n"
        "except ValueError:\n    print('not-started')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_child_env(), timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    threads_after, layer = out.stdout.split()[-2:]
    if layer != "omp":  # tbb / workqueue share nothing with torch: no reset to guard against
        pytest.skip(f"numba's threading layer here is {layer!r}")
    assert threads_after == "1"


def test_run_honours_omp_num_threads(tmp_path):
    """`napari-senca run` on a shared node (SLURM sets OMP_NUM_THREADS): torch trains with the threads the user
    gave, recorded in uns["senca"]["cpu_threads"]; before keep_torch_threads numba's start made it numba's count."""
    import anndata

    out = tmp_path / "out"
    code = ("import sys\nfrom napari_senca.cli import main\n"
            f"sys.exit(main(['run', 'sample:synthetic', '--out', {str(out)!r}, '--epochs', '2', '--no-image']))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=_child_env(OMP_NUM_THREADS="1"), timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert anndata.read_h5ad(out / "annotated.h5ad").uns["senca"]["cpu_threads"] == 1


@pytest.mark.parametrize(("chosen", "expect"), [(None, "1"), (2, "2")])
def test_run_in_a_notebook_that_ran_scanpy_first_honours_the_callers_count(chosen, expect):
    """A notebook on a shared node: scanpy ran before torch was first used, so numba's pool set the shared
    OpenMP count to numba's and torch took it as its own; the run gives torch OMP_NUM_THREADS back. A count
    the caller then set with torch.set_num_threads (here numba's own, 2) is kept, on every run."""
    code = (
        "import numpy as np, scanpy as sc, scipy.sparse as sp\nfrom anndata import AnnData\n"
        "ad = AnnData(sp.csr_matrix(np.random.default_rng(0).poisson(3.0, (60, 40)).astype(np.float32)))\n"
        "sc.pp.normalize_total(ad)  # sparse counts, as read: numba's pool starts before torch is first used\n"
        "import torch\nbefore = torch.get_num_threads()\n"
        + (f"torch.set_num_threads({chosen})\n" if chosen else "")
        + "from napari_senca.config import SencaConfig\nfrom napari_senca.datasets import synthetic_section\n"
        "from napari_senca.pipeline import run_senca\n"
        "cfg = SencaConfig(epochs=2, use_image=False, n_clusters=3)\n"
        "res = run_senca(synthetic_section(), cfg)\n"
        "again = run_senca(synthetic_section(), cfg)  # a second run keeps it too\n"
        "import numba\n"
        "try:\n    layer = numba.threading_layer()\n"
        "except ValueError:\n    layer = 'not-started'\n"
        "print(before, res.cpu_threads, again.cpu_threads, layer)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=_child_env(OMP_NUM_THREADS="1"), timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    before, used, used_again, layer = out.stdout.split()[-4:]
    if layer != "omp":  # tbb / workqueue share nothing with torch: no reset to guard against
        pytest.skip(f"numba's threading layer here is {layer!r}")
    assert before == "2"  # the loss this guards against: numba's count, not OMP_NUM_THREADS
    assert (used, used_again) == (expect, expect)
