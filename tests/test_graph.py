"""Spatial kNN graph, its GCN normalisation and the padded neighbour lists."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from napari_senca import ConfigError
from napari_senca.graph import SpatialGraph, build_graph, neighbour_index, normalized_adjacency


def _grid(n_side: int, spacing: float = 1.0) -> np.ndarray:
    gy, gx = np.mgrid[0:n_side, 0:n_side]
    return np.stack([gx.ravel(), gy.ravel()], 1).astype(float) * spacing


def _random_xy(n: int = 40, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 100, size=(n, 2))


def _neighbours(a: sp.csr_matrix, i: int) -> set[int]:
    return set(a.indices[a.indptr[i] : a.indptr[i + 1]].tolist())


# --------------------------------------------------------------------------- build_graph


@pytest.mark.parametrize("k", [1, 4, 6])
def test_knn_graph_is_symmetric_without_self_loops(k: int) -> None:
    g = build_graph(_random_xy(), k)
    assert isinstance(g, SpatialGraph)
    a = g.adjacency
    assert sp.issparse(a) and a.format == "csr"
    assert a.shape == (40, 40) and g.n_spots == 40
    assert (a != a.T).nnz == 0
    assert np.all(a.diagonal() == 0)
    assert set(np.unique(a.data).tolist()) == {1.0}


@pytest.mark.parametrize("k", [1, 4, 6])
def test_every_spot_has_at_least_k_neighbours(k: int) -> None:
    xy = _random_xy()
    g = build_graph(xy, k)
    deg = np.diff(g.adjacency.indptr)
    assert (deg >= k).all()
    assert g.knn.shape == (40, k) and g.knn.dtype == np.int64
    assert g.distances.shape == (40, k)
    for i in range(40):
        assert i not in g.knn[i]
        assert len(set(g.knn[i].tolist())) == k
        # every kNN edge is in the symmetric adjacency
        assert set(g.knn[i].tolist()) <= _neighbours(g.adjacency, i)


def test_knn_are_the_nearest_and_distances_sorted() -> None:
    xy = _random_xy(30, seed=2)
    k = 5
    g = build_graph(xy, k)
    d = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    for i in range(len(xy)):
        np.testing.assert_allclose(np.sort(d[i])[:k], g.distances[i])
        np.testing.assert_allclose(d[i, g.knn[i]], g.distances[i])
    assert (np.diff(g.distances, axis=1) >= 0).all()


def test_duplicated_positions_are_fine() -> None:
    xy = _random_xy(20)
    xy = np.concatenate([xy, xy[:5], xy[:2]])  # three copies of spots 0 and 1
    g = build_graph(xy, 4)
    n = len(xy)
    assert np.all(g.adjacency.diagonal() == 0)
    assert (g.adjacency != g.adjacency.T).nnz == 0
    for i in range(n):
        assert i not in g.knn[i]
    # the copies of a spot are each other's nearest neighbours (distance 0)
    assert {20, 25} <= set(g.knn[0].tolist())
    assert g.distances[0, :2].tolist() == [0.0, 0.0]
    assert (np.diff(g.adjacency.indptr) >= 4).all()


def test_all_positions_identical() -> None:
    xy = np.zeros((6, 2))
    g = build_graph(xy, 3)
    assert np.all(g.adjacency.diagonal() == 0)
    for i in range(6):
        assert i not in g.knn[i]
    assert np.all(g.distances == 0)


@pytest.mark.parametrize("k", [10, 11, 50])
def test_k_not_below_n_spots_is_a_config_error(k: int) -> None:
    with pytest.raises(ConfigError, match="n_neighbors"):
        build_graph(_random_xy(10), k)


def test_k_zero_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="n_neighbors"):
        build_graph(_random_xy(10), 0)


def test_k_equal_n_minus_one_is_the_complete_graph() -> None:
    g = build_graph(_random_xy(8), 7)
    assert g.adjacency.nnz == 8 * 7


def test_regular_grid_k4_gives_the_orthogonal_neighbours() -> None:
    n_side = 7
    xy = _grid(n_side, spacing=40.0)
    g = build_graph(xy, 4)
    pos = {(int(x // 40), int(y // 40)): i for i, (x, y) in enumerate(xy)}
    for (c, r), i in pos.items():
        ortho = {pos[(c + dc, r + dr)] for dc, dr in ((1, 0), (-1, 0), (0, 1), (0, -1)) if (c + dc, r + dr) in pos}
        if 1 <= c <= n_side - 2 and 1 <= r <= n_side - 2:
            # interior: the 4 nearest are exactly the orthogonal neighbours
            assert set(g.knn[i].tolist()) == ortho
            np.testing.assert_allclose(g.distances[i], 40.0)
        if 2 <= c <= n_side - 3 and 2 <= r <= n_side - 3:
            # away from the border no other spot lists it: degree exactly 4
            assert _neighbours(g.adjacency, i) == ortho
        # border spots still have all their orthogonal neighbours
        assert ortho <= _neighbours(g.adjacency, i)


def test_order_of_spots_does_not_change_the_graph() -> None:
    xy = _random_xy(25, seed=4)
    perm = np.random.default_rng(1).permutation(25)
    a = build_graph(xy, 4).adjacency.toarray()
    b = build_graph(xy[perm], 4).adjacency.toarray()
    np.testing.assert_array_equal(a[np.ix_(perm, perm)], b)


# --------------------------------------------------------------------------- normalized_adjacency


def test_normalized_adjacency_is_the_gcn_matrix() -> None:
    g = build_graph(_random_xy(30, seed=5), 4)
    a = g.adjacency.toarray().astype(np.float64)
    n = normalized_adjacency(g)
    assert sp.issparse(n) and n.format == "csr"
    assert n.dtype == np.float32
    a_hat = a + np.eye(30)
    deg = a_hat.sum(1)
    expected = a_hat / np.sqrt(deg[:, None] * deg[None, :])
    np.testing.assert_allclose(n.toarray(), expected, rtol=1e-5)
    # symmetric, diagonal 1/(deg+1), rows have the same pattern as A + I
    np.testing.assert_allclose(n.toarray(), n.toarray().T, rtol=1e-6)
    np.testing.assert_allclose(n.diagonal(), 1.0 / deg, rtol=1e-5)
    np.testing.assert_array_equal(np.diff(n.indptr), np.diff(g.adjacency.indptr) + 1)


def test_normalized_adjacency_rows_sum_to_one_on_a_regular_graph() -> None:
    # points on a circle with k=2: every spot has exactly two neighbours
    t = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    g = build_graph(np.stack([np.cos(t), np.sin(t)], 1) * 50, 2)
    assert (np.diff(g.adjacency.indptr) == 2).all()
    n = normalized_adjacency(g)
    np.testing.assert_allclose(np.asarray(n.sum(1)).ravel(), 1.0, rtol=1e-5)
    np.testing.assert_allclose(n.diagonal(), 1.0 / 3.0, rtol=1e-5)


def test_normalized_adjacency_without_self_loops() -> None:
    g = build_graph(_random_xy(20, seed=6), 3)
    n = normalized_adjacency(g, self_loops=False)
    assert np.all(n.diagonal() == 0)
    deg = np.asarray(g.adjacency.sum(1)).ravel()
    expected = g.adjacency.toarray() / np.sqrt(deg[:, None] * deg[None, :])
    np.testing.assert_allclose(n.toarray(), expected, rtol=1e-5)


def test_normalized_adjacency_does_not_modify_the_graph() -> None:
    g = build_graph(_random_xy(20, seed=6), 3)
    before = g.adjacency.copy()
    normalized_adjacency(g)
    assert (g.adjacency != before).nnz == 0


# --------------------------------------------------------------------------- neighbour_index


@pytest.mark.parametrize("seed", [0, 1])
def test_neighbour_index_puts_the_spot_first_and_masks_padding(seed: int) -> None:
    g = build_graph(_random_xy(30, seed=seed), 4)
    index, mask = neighbour_index(g)
    deg = np.diff(g.adjacency.indptr)
    n = 30
    assert index.dtype == np.int64 and mask.dtype == bool
    assert index.shape == mask.shape == (n, 1 + deg.max())
    np.testing.assert_array_equal(index[:, 0], np.arange(n))
    assert mask[:, 0].all()
    np.testing.assert_array_equal(mask.sum(1), deg + 1)
    for i in range(n):
        # real entries first, then padding
        assert mask[i, : deg[i] + 1].all() and not mask[i, deg[i] + 1 :].any()
        assert set(index[i, 1 : deg[i] + 1].tolist()) == _neighbours(g.adjacency, i)
        # padding repeats the spot itself (always a valid index)
        assert (index[i, deg[i] + 1 :] == i).all()
    assert index.min() >= 0 and index.max() < n


def test_neighbour_index_on_a_grid() -> None:
    g = build_graph(_grid(5), 4)
    index, mask = neighbour_index(g)
    centre = 12  # (2, 2) on a 5 x 5 grid
    assert index[centre, 0] == centre
    assert set(index[centre][mask[centre]][1:].tolist()) == {7, 11, 13, 17}


def test_neighbour_mean_operator_averages_each_spot_and_its_neighbours():
    from napari_senca.graph import build_graph, neighbour_mean_operator

    xy = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [10.0, 0.0]])
    op = neighbour_mean_operator(xy, 1)
    adj = build_graph(xy, 1).adjacency.toarray() + np.eye(4)
    assert np.allclose(op.toarray(), adj / adj.sum(1, keepdims=True))
    assert np.allclose(op @ np.full(4, 7.0), 7.0) and (op.diagonal() > 0).all()  # a mean, the spot itself included
    assert op[3, 2] > 0 and op[2, 3] > 0  # the far spot's one neighbour, and the graph is symmetric
