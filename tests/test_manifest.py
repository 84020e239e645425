"""The npe2 manifest: valid, importable, and wired to napari's menus."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "src" / "napari_senca" / "napari.yaml"


@pytest.fixture(scope="module")
def manifest():
    from npe2 import PluginManifest

    return PluginManifest.from_file(MANIFEST)


def test_top_level_manifest_is_the_package_one():
    top = ROOT / "napari.yaml"
    assert top.exists()
    assert top.resolve() == MANIFEST.resolve()


def test_registered_through_the_entry_point(manifest):
    from npe2 import PluginManifest

    pm = PluginManifest.from_distribution("napari-senca")
    assert pm.name == "napari-senca"
    assert [c.id for c in pm.contributions.commands] == [c.id for c in manifest.contributions.commands]


def test_validate_with_imports(manifest):
    # the python API behind `npe2 validate --imports`
    manifest.validate_imports()


def test_npe2_validate_cli():
    exe = Path(sys.executable).with_name("npe2")
    cmd = [str(exe)] if exe.exists() else [shutil.which("npe2") or "npe2"]
    res = subprocess.run([*cmd, "validate", "napari-senca", "--imports"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "valid" in res.stdout


def test_contents(manifest):
    c = manifest.contributions
    assert {w.display_name for w in c.widgets} == {"Load section", "Run SENCA-st", "Review regions", "Export regions",
                                              "Embedding view", "Cohort"}
    assert {s.key for s in c.sample_data} == {"her2st_A1", "synthetic"}
    exts = {ext for w in c.writers for ext in w.filename_extensions}
    assert {".csv", ".geojson", ".h5ad"} <= exts
    assert c.readers[0].accepts_directories


def test_menus_are_contributable(manifest):
    from napari._app_model.constants._menus import is_menu_contributable

    submenus = {s.id for s in manifest.contributions.submenus or []}
    commands = {c.id for c in manifest.contributions.commands}
    layer_menus = 0
    for menu_id, items in manifest.contributions.menus.items():
        assert menu_id in submenus or is_menu_contributable(menu_id), menu_id
        layer_menus += menu_id.startswith("napari/layers/")
        for item in items:
            ref = getattr(item, "command", None) or getattr(item, "submenu", None)
            assert ref in commands | submenus
    assert layer_menus >= 2


def test_reader_and_samples_need_no_qt():
    code = (
        "import sys; import napari_senca._napari as m; import napari_senca.review; "
        "bad = [k for k in sys.modules if k.split('.')[0] in ('qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'napari')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
