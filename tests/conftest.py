"""Shared fixtures: tiny data folders built in ``tmp_path`` and the shared real data."""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- real data


def _shared_root() -> Path | None:
    env = os.environ.get("NAPARI_SENCA_SHARED")
    candidates = [Path(env)] if env else []
    candidates += [Path("/work/shared/data"), REPO_ROOT.parent / "shared" / "data"]
    for c in candidates:
        if c.is_dir():
            return c
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared real data folder (env ``NAPARI_SENCA_SHARED``); skips when absent."""
    root = _shared_root()
    if root is None:
        pytest.skip("shared real data not available (set NAPARI_SENCA_SHARED)")
    return root


# --------------------------------------------------------------------------- legacy ST


def write_png(path: Path, h: int, w: int, seed: int = 0) -> Path:
    """A random RGB PNG of ``h`` x ``w`` pixels."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)).save(path)
    return path


def build_st_folder(
    folder: Path,
    *,
    nx: int = 4,
    ny: int = 3,
    n_genes: int = 5,
    spacing: float = 100.0,
    origin: float = 60.0,
    gz: bool = True,
    labels: bool = True,
    image: bool = True,
    scale: float | None = 0.5,
    extra_spots: int = 1,
    seed: int = 0,
) -> Path:
    """Write a tiny legacy ST section folder (ids ``"<x>x<y>"``, x in 1..nx, y in 1..ny).

    The spot file lists ``extra_spots`` more spots than the counts (as HER2ST
    A1 does); labels alternate 'tumour' / 'stroma' with one 'undetermined'.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    coords = [(x, y) for y in range(1, ny + 1) for x in range(1, nx + 1)]
    ids = [f"{x}x{y}" for x, y in coords]
    counts = pd.DataFrame(
        rng.poisson(3.0, size=(len(ids), n_genes)),
        index=ids,
        columns=[f"G{i}" for i in range(n_genes)],
    )
    text = counts.to_csv(sep="\t")
    if gz:
        with gzip.open(folder / "counts.tsv.gz", "wt") as fh:
            fh.write(text)
    else:
        (folder / "counts.tsv").write_text(text)
    rows = []
    all_coords = coords + [(nx + 1 + i, 1) for i in range(extra_spots)]
    for x, y in all_coords:
        rows.append(
            {
                "x": x,
                "y": y,
                "new_x": x + 0.02,
                "new_y": y - 0.03,
                "pixel_x": origin + (x - 1) * spacing,
                "pixel_y": origin + (y - 1) * spacing,
                "selected": 1,
            }
        )
    pd.DataFrame(rows).to_csv(folder / "spots.tsv", sep="\t", index=False)
    if labels:
        lab = []
        for i, (x, y) in enumerate(all_coords):
            name = "undetermined" if i == 0 else ("tumour" if x <= nx // 2 else "stroma")
            lab.append(
                {
                    "Row.names": f"{x * 100}x{y * 100}",
                    "x": x + 0.2,
                    "y": y - 0.1,
                    "pixel_x": 1.0,
                    "pixel_y": 2.0,
                    "label": name,
                }
            )
        lab.append({"Row.names": "NAxNA", "x": np.nan, "y": np.nan, "pixel_x": np.nan, "pixel_y": np.nan, "label": "stroma"})
        pd.DataFrame(lab).to_csv(folder / "labels.tsv", sep="\t", index=False, na_rep="NA")
    if image:
        s = 1.0 if scale is None else scale
        w = int((origin * 2 + (nx + extra_spots) * spacing) * s) + 1
        h = int((origin * 2 + ny * spacing) * s) + 1
        write_png(folder / "he.png", h, w)
        if scale is not None:
            (folder / "he.json").write_text(json.dumps({"spot_to_image_scale": scale}))
    return folder


@pytest.fixture
def st_folder(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``st_folder(name="S1", **kw)`` writes a tiny legacy ST folder."""

    def make(name: str = "S1", **kw: Any) -> Path:
        return build_st_folder(tmp_path / name, **kw)

    return make


@pytest.fixture
def her2st_repo(tmp_path: Path) -> Path:
    """A tiny fake of the almaan/her2st repository layout with sections A1 and B1."""
    root = tmp_path / "her2st"
    for sec, img in (("A1", True), ("B1", False)):
        src = build_st_folder(tmp_path / f"_src_{sec}", image=img, scale=None, seed=len(sec))
        (root / "data" / "ST-cnts").mkdir(parents=True, exist_ok=True)
        (root / "data" / "ST-spotfiles").mkdir(parents=True, exist_ok=True)
        (root / "data" / "ST-cnts" / f"{sec}.tsv.gz").write_bytes((src / "counts.tsv.gz").read_bytes())
        (root / "data" / "ST-spotfiles" / f"{sec}_selection.tsv").write_bytes((src / "spots.tsv").read_bytes())
        if img:
            d = root / "data" / "ST-imgs" / sec[0] / sec
            d.mkdir(parents=True)
            (d / "HE_BT0000_C1.jpg").write_bytes(_png_as_jpeg(src / "he.png"))
            lbl = root / "data" / "ST-pat" / "lbl"
        else:
            lbl = root / "res" / "ST-pat" / "lbl"
        lbl.mkdir(parents=True, exist_ok=True)
        (lbl / f"{sec}_labeled_coordinates.tsv").write_bytes((src / "labels.tsv").read_bytes())
    return root


def _png_as_jpeg(png: Path) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    with Image.open(png) as im:
        im.convert("RGB").save(buf, format="JPEG", quality=90)
    return buf.getvalue()


# --------------------------------------------------------------------------- Visium


def write_10x_h5(
    path: Path,
    counts: np.ndarray,
    barcodes: list[str],
    gene_ids: list[str],
    gene_names: list[str],
    *,
    library_id: str | None = "lib1",
    drop: tuple[str, ...] = (),
) -> Path:
    """Write a 10x HDF5 (``matrix/`` layout) for a barcodes x genes count array."""
    import h5py
    import scipy.sparse as sp

    m = sp.csc_matrix(np.asarray(counts).T)  # genes x barcodes
    with h5py.File(path, "w") as f:
        if library_id is not None:
            f.attrs["library_ids"] = np.array([library_id.encode()])
        g = f.create_group("matrix")
        fields: dict[str, Any] = {
            "data": m.data.astype(np.int32),
            "indices": m.indices.astype(np.int64),
            "indptr": m.indptr.astype(np.int64),
            "shape": np.array(m.shape, dtype=np.int32),
            "barcodes": np.array([b.encode() for b in barcodes]),
            "features/id": np.array([s.encode() for s in gene_ids]),
            "features/name": np.array([s.encode() for s in gene_names]),
            "features/feature_type": np.array([b"Gene Expression"] * len(gene_ids)),
        }
        for k, v in fields.items():
            if k not in drop:
                g.create_dataset(k, data=v)
    return path


def build_visium(
    root: Path,
    *,
    n: int = 12,
    n_genes: int = 6,
    v1: bool = False,
    outs: bool = True,
    hires: bool = True,
    lowres: bool = True,
    labels: bool = True,
    off_tissue: int = 2,
    seed: int = 0,
) -> Path:
    """Write a tiny Space Ranger folder; returns ``root`` (``root/outs`` holds the data when ``outs``).

    Spots lie on a 4-wide grid 200 full-res px apart starting at (300, 300);
    ``off_tissue`` more barcodes are listed as not in tissue (and have no counts).
    Gene names contain one duplicate ('GENE1' twice).
    """
    d = root / "outs" if outs else root
    sp_dir = d / "spatial"
    sp_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    barcodes = [f"AAAC{i:04d}-1" for i in range(n)]
    ids = [f"ENSG{i:05d}" for i in range(n_genes)]
    names = [f"GENE{i}" for i in range(n_genes)]
    if n_genes > 2:
        names[2] = "GENE1"
    write_10x_h5(d / "filtered_feature_bc_matrix.h5", rng.poisson(4.0, size=(n, n_genes)), barcodes, ids, names)
    rows = []
    for i, b in enumerate(barcodes + [f"TTTT{i:04d}-1" for i in range(off_tissue)]):
        r, c = divmod(i, 4)
        in_t = 1 if i < n else 0
        rows.append((b, in_t, r, c, 300 + 200 * r, 300 + 200 * c))
    df = pd.DataFrame(rows, columns=["barcode", "in_tissue", "array_row", "array_col", "pxl_row_in_fullres", "pxl_col_in_fullres"])
    if v1:
        df.to_csv(sp_dir / "tissue_positions_list.csv", header=False, index=False)
    else:
        df.to_csv(sp_dir / "tissue_positions.csv", index=False)
    full = 300 + 200 * ((n + off_tissue) // 4 + 1) + 300
    sf = {"spot_diameter_fullres": 90.0, "fiducial_diameter_fullres": 130.0}
    if hires:
        sf["tissue_hires_scalef"] = 0.5
        write_png(sp_dir / "tissue_hires_image.png", int(full * 0.5), int(full * 0.5))
    if lowres:
        sf["tissue_lowres_scalef"] = 0.1
        write_png(sp_dir / "tissue_lowres_image.png", int(full * 0.1), int(full * 0.1), seed=1)
    (sp_dir / "scalefactors_json.json").write_text(json.dumps(sf))
    if labels:
        lab = ["L1" if i % 2 else "L2" for i in range(n)]
        lab[0] = ""
        (root / "labels.tsv").write_text("\tlabel\n" + "".join(f"{b}\t{v}\n" for b, v in zip(barcodes, lab, strict=True)))
    return root


@pytest.fixture
def visium_folder(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``visium_folder(name="V1", **kw)`` writes a tiny Space Ranger folder."""

    def make(name: str = "V1", **kw: Any) -> Path:
        return build_visium(tmp_path / name, **kw)

    return make


@pytest.fixture
def h5_writer() -> Callable[..., Path]:
    """:func:`write_10x_h5`, for tests that craft their own count matrix."""
    return write_10x_h5


@pytest.fixture
def png_writer() -> Callable[..., Path]:
    """:func:`write_png`, for tests that craft their own image."""
    return write_png


@pytest.fixture(scope="module")
def section():
    """A 36-spot hexagonal section with an H&E-like image (image-feature tests; one per module)."""
    from napari_senca.datasets import crossmodal_section

    return crossmodal_section(36, "hex", n_genes=40, seed=0)


@pytest.fixture(scope="module")
def torch_one_thread() -> Iterator[None]:
    """Tiny models train faster on one thread (and CI machines are shared)."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def notes(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Collect the plugin's napari notifications (error / info / warning) instead of showing them."""
    from napari_senca._qt import _common

    got: dict[str, list[str]] = {"error": [], "info": [], "warning": []}
    monkeypatch.setattr(_common, "show_error", lambda m: got["error"].append(str(m)))
    monkeypatch.setattr(_common, "show_info", lambda m: got["info"].append(str(m)))
    monkeypatch.setattr(_common, "show_warning", lambda m: got["warning"].append(str(m)))
    return got


@pytest.fixture
def viewer(make_napari_viewer: Any) -> Any:
    """A napari viewer (closed by pytest-napari after the test)."""
    return make_napari_viewer()


def exported(qtbot: Any, widget: Any, fmt: str, path: Any = None) -> Path | None:
    """``widget.export_<fmt>(path)`` of the Export widget, waited for: the path written, or None."""
    widget.last_path = None
    if getattr(widget, f"export_{fmt}")(path) is None:
        return None
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    return widget.last_path


# --------------------------------------------------------------------------- Visium HD


def he_like(h: int, w: int, split: int, seed: int = 0) -> np.ndarray:
    """An H&E-like RGB image: pink stroma left of column ``split``, purple tumour right of it."""
    rng = np.random.default_rng(seed)
    img = np.empty((h, w, 3), dtype=np.uint8)
    img[:] = (236, 226, 234)  # glass
    img[:, :split] = (222, 150, 190)
    img[:, split:] = (140, 90, 170)
    noise = rng.integers(-12, 12, size=(h, w, 1))
    return np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def build_visium_hd(
    root: Path,
    *,
    nx: int = 12,
    ny: int = 10,
    bin_sizes: tuple[int, ...] = (8, 16),
    mpp: float = 0.5,
    n_genes: int = 30,
    slide: bool = True,
    labels: bool = True,
    shuffle_columns: bool = False,
    seed: int = 0,
) -> Path:
    """Write a small Visium HD Space Ranger output in the real layout; returns ``root`` (``root/outs``).

    ``outs/binned_outputs/square_XXXum/`` holds ``filtered_feature_bc_matrix.h5`` (10x HDF5 schema)
    and ``spatial/`` with ``tissue_positions.parquet``, ``scalefactors_json.json`` and the hires /
    lowres PNGs; ``outs/spatial/`` has the run's images too. The tissue is ``nx`` x ``ny`` bins of
    16 um (``mpp`` um per full-resolution pixel) at 64 px from the image's corner, left half
    'stroma', right half 'tumour' (genes 0-9 vs 10-19). Per bin size, one more row of bins lies
    off the tissue (in the parquet, in_tissue 0) and the last tissue bin has no counts (in the
    parquet, in tissue, not in the h5). ``labels.tsv`` (16 um barcodes) is in ``square_016um``;
    with ``slide`` the full-resolution H&E is a pyramidal BigTIFF in ``root/microscope_image/``.
    """
    from napari_senca.io.slide import write_pyramid

    rng = np.random.default_rng(seed)
    outs = root / "outs"
    px16 = 16.0 / mpp
    W, H = int(128 + nx * px16), int(128 + (ny + 1) * px16)
    full = he_like(H, W, split=int(64 + nx * px16 / 2), seed=seed)
    hires_f, lowres_f = 0.25, 0.05
    from PIL import Image

    def images(d: Path) -> None:
        d.mkdir(parents=True, exist_ok=True)
        for name, f in (("hires", hires_f), ("lowres", lowres_f)):
            Image.fromarray(full).resize((round(W * f), round(H * f))).save(d / f"tissue_{name}_image.png")

    images(outs / "spatial")
    (outs / "spatial" / "scalefactors_json.json").write_text(
        json.dumps({"tissue_hires_scalef": hires_f, "tissue_lowres_scalef": lowres_f, "spot_diameter_fullres": px16})
    )
    gene_ids = [f"ENSG{i:05d}" for i in range(n_genes)]
    gene_names = [f"GENE{i}" for i in range(n_genes)]
    for size in bin_sizes:
        sq = outs / "binned_outputs" / f"square_{size:03d}um"
        images(sq / "spatial")
        step = size / mpp
        k = int(round(16 / size))
        rows = []
        for r in range(ny * k + k):  # the last k rows are off the tissue
            for c in range(nx * k):
                bc = f"s_{size:03d}um_{r:05d}_{c:05d}-1"
                rows.append((bc, int(r < ny * k), r, c, 64 + (r + 0.5) * step, 64 + (c + 0.5) * step))
        df = pd.DataFrame(
            rows, columns=["barcode", "in_tissue", "array_row", "array_col", "pxl_row_in_fullres", "pxl_col_in_fullres"]
        )
        if shuffle_columns:
            df = df[["pxl_col_in_fullres", "array_col", "barcode", "pxl_row_in_fullres", "in_tissue", "array_row"]]
        df.to_parquet(sq / "spatial" / "tissue_positions.parquet", index=False)
        sf = {
            "spot_diameter_fullres": step,
            "bin_size_um": float(size),
            "microns_per_pixel": mpp,
            "tissue_hires_scalef": hires_f,
            "tissue_lowres_scalef": lowres_f,
            "fiducial_diameter_fullres": 4 * step,
            "regist_target_img_scalef": 0.3,
        }
        (sq / "spatial" / "scalefactors_json.json").write_text(json.dumps(sf))
        tissue = df[df["in_tissue"] == 1].iloc[:-1]  # the last tissue bin has no counts
        tumour = (tissue["array_col"].to_numpy() >= nx * k / 2)
        lam = np.full((len(tissue), n_genes), 0.3 * (size / 16) ** 2)
        lam[~tumour, :10] *= 12
        lam[tumour, 10:20] *= 12
        write_10x_h5(sq / "filtered_feature_bc_matrix.h5", rng.poisson(lam), tissue["barcode"].tolist(), gene_ids, gene_names)
        if size == 16 and labels:
            lab = np.where(tumour, "tumour", "stroma")
            (sq / "labels.tsv").write_text(
                "barcode\tlabel\n" + "".join(f"{b}\t{v}\n" for b, v in zip(tissue["barcode"], lab, strict=True))
            )
    if slide:
        (root / "microscope_image").mkdir(parents=True, exist_ok=True)
        write_pyramid(full, root / "microscope_image" / "slide.btf", tile=128, min_side=128)
    return root


@pytest.fixture
def visium_hd_folder(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``visium_hd_folder(name="HD1", **kw)`` writes a small Visium HD output (see :func:`build_visium_hd`)."""

    def make(name: str = "HD1", **kw: Any) -> Path:
        return build_visium_hd(tmp_path / name, **kw)

    return make


@pytest.fixture(autouse=True, scope="session")
def _feature_cache_in_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Image features cached on disk go to a temporary folder, never the user's cache."""
    before = os.environ.get("NAPARI_SENCA_CACHE")
    os.environ["NAPARI_SENCA_CACHE"] = str(tmp_path_factory.mktemp("feature-cache"))
    yield
    if before is None:
        os.environ.pop("NAPARI_SENCA_CACHE", None)
    else:
        os.environ["NAPARI_SENCA_CACHE"] = before


@pytest.fixture
def fast_layout(monkeypatch):
    """PCA instead of UMAP in the overview (UMAP's JIT costs seconds)."""
    from napari_senca import export

    monkeypatch.setattr(export.layout, "embedding_2d", lambda e, seed=0: (np.asarray(e, float)[:, :2], "PCA"))


@pytest.fixture
def fake_pipeline(monkeypatch, fast_layout):
    """Replace training by a generator that 'clusters' spots by their grid column.

    Returns the list of ``(adata, config)`` each run was given.
    """
    from types import SimpleNamespace

    pipeline = pytest.importorskip("napari_senca.pipeline")
    runs: list[tuple[Any, Any]] = []

    def run_iter(adata, config):
        runs.append((adata, config))
        yield pipeline.Progress("train", 1, 1, "fake epoch", {"total": 0.0})
        k = config.n_clusters
        labels = adata.obs["array_col"].to_numpy().astype(int) % k
        emb = np.random.default_rng(0).normal(size=(adata.n_obs, 4)).astype(np.float32)
        return SimpleNamespace(labels=labels, embedding=emb, n_clusters=k, device="cpu", cpu_threads=1, image_weights_used="none")

    def annotate(adata, result):
        adata.obs["senca_cluster"] = pd.Categorical([str(v) for v in result.labels])
        adata.obsm["X_senca"] = result.embedding
        adata.uns["senca"] = {"n_clusters": result.n_clusters}
        return adata

    monkeypatch.setattr(pipeline, "run_senca_iter", run_iter)
    monkeypatch.setattr(pipeline, "annotate", annotate)
    return runs
