"""The fast integer path for wide count tables reads what pandas reads, or steps aside."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_senca.io.counts_table import read_integer_counts


def _write(path: Path, text: str) -> Path:
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["counts.tsv", "counts.tsv.gz"])
def test_same_table_as_pandas(tmp_path: Path, name: str) -> None:
    rng = np.random.default_rng(0)
    X = rng.integers(0, 3, size=(7, 40)) * rng.integers(0, 10**rng.integers(1, 12, size=40), size=(7, 40))
    X[0, 0], X[1, 1] = 123456789012345, 0
    genes = [f"G{i}" for i in range(39)] + ["ERBB2"]
    df = pd.DataFrame(X, index=[f"{i}x{i + 1}" for i in range(7)], columns=genes)
    path = tmp_path / name
    df.to_csv(path, sep="\t")
    got = read_integer_counts(path)
    assert got is not None
    ids, names, values = got
    ref = pd.read_csv(path, sep="\t", index_col=0)
    assert ids == [str(i) for i in ref.index]
    assert names == [str(c) for c in ref.columns]
    assert values.dtype == np.float64 and np.array_equal(values, ref.to_numpy(np.float64))


@pytest.mark.parametrize(
    "body",
    [
        "\tA\tB\n1x1\t1.5\t2\n",  # decimals
        "\tA\tB\n1x1\t-1\t2\n",  # a sign
        "\tA\tB\n1x1\tNA\t2\n",  # a missing value
        "\tA\tB\n1x1\t\t2\n",  # an empty field
        "\tA\tB\n1x1\t1\n",  # a ragged row
        "\tA\tB\n1x1\t1\t2\t3\n",
        '\t"A"\t"B"\n"1x1"\t1\t2\n',  # quotes
        "\tA\tB\r\n1x1\t1\t2\r\n",  # CRLF
        "A\tB\n1x1\t1\t2\n",  # a header without the index column
        "\tA \tB\n1x1\t1\t2\n",  # a padded gene name (pandas keeps the space)
        "\tA\t\tB\n1x1\t1\t2\t3\n",  # an empty gene name (pandas: 'Unnamed: 2')
        "\tA\tB\n\t1\t2\n",  # an empty spot id
        "\tA\tB\n",  # no rows
        "",
    ],
)
def test_anything_else_is_left_to_pandas(tmp_path: Path, body: str) -> None:
    assert read_integer_counts(_write(tmp_path / "counts.tsv", body)) is None


def test_text_that_is_not_utf8_is_left_to_pandas(tmp_path: Path) -> None:
    path = tmp_path / "counts.tsv"
    path.write_bytes(b"\tA\xff\tB\n1x1\t1\t2\n")
    assert read_integer_counts(path) is None


def test_unreadable_files_are_left_to_pandas(tmp_path: Path) -> None:
    assert read_integer_counts(tmp_path / "missing.tsv") is None
    bad = tmp_path / "counts.tsv.gz"
    bad.write_bytes(b"not gzip at all")
    assert read_integer_counts(bad) is None
