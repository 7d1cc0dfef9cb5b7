"""simplex_lib.graph against independent brute-force versions (float64, seeded random inputs)."""

import itertools
import math
import warnings

import networkx as nx
import numpy as np
import pytest
import torch

from simplex_lib import graph as G
from simplex_lib.ops.dot.reference import dot_attention


def rand_graph(gen, n, p=0.4):
    """A random undirected simple graph on 0..n-1 drawn from the test's generator."""
    g = nx.Graph()
    g.add_nodes_from(range(n))
    for i, j in itertools.combinations(range(n), 2):
        if torch.rand((), generator=gen).item() < p:
            g.add_edge(i, j)
    return g


def brute_attention(q, k, temperature, causal, scale):
    n, d = q.shape
    s = 1 / math.sqrt(d) if scale is None else scale
    out = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        vis = [j for j in range(n) if (j <= i or not causal)]
        logits = [sum(q[i, l].item() * k[j, l].item() for l in range(d)) * s / temperature for j in vis]
        m = max(logits)
        e = [math.exp(x - m) for x in logits]
        for j, x in zip(vis, e):
            out[i, j] = x / sum(e)
    return out


# ------------------------------------------------------------------------ attention matrix


@pytest.mark.parametrize("n", [1, 2, 7])
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("temperature", [0.3, 1.0, 4.0])
def test_attention_matrix_brute_force(gen, n, causal, temperature):
    q = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    k = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    a = G.attention_matrix(q, k, temperature=temperature, causal=causal)
    torch.testing.assert_close(a, brute_attention(q, k, temperature, causal, None))
    a2 = G.attention_matrix(q, k, temperature=temperature, causal=causal, scale=0.7)
    torch.testing.assert_close(a2, brute_attention(q, k, temperature, causal, 0.7))


def test_attention_matrix_times_v_is_reference(gen):
    n, d = 9, 4
    q, k, v = (torch.randn(n, d, generator=gen, dtype=torch.float64) for _ in range(3))
    for causal in (True, False):
        a = G.attention_matrix(q, k, causal=causal)
        ref = dot_attention(q[None, :, None], k[None, :, None], v[None, :, None], causal=causal)
        torch.testing.assert_close(a @ v, ref[0, :, 0])
        torch.testing.assert_close(G.diffuse(a, v, 1), ref[0, :, 0])


def test_attention_matrix_temperature_limits(gen):
    q = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    k = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    # "Cold" is relative to the closest runner-up (a fixed 1e-4 failed on ~1% of draws, near-ties):
    # put the smallest top-2 gap of the scaled logits at 100 temperatures, so every runner-up
    # weighs below 5 e^-100.
    top2 = (q @ k.T).topk(2, dim=-1).values
    gap = float((top2[:, 0] - top2[:, 1]).min() / q.shape[-1] ** 0.5)
    cold = G.attention_matrix(q, k, temperature=gap / 100, causal=False)
    onehot = torch.nn.functional.one_hot((q @ k.T).argmax(-1), 6).double()
    torch.testing.assert_close(cold, onehot, atol=1e-6, rtol=0)
    hot = G.attention_matrix(q, k, temperature=1e6, causal=True)
    torch.testing.assert_close(hot, torch.tril(torch.ones(6, 6, dtype=torch.float64))
                               / torch.arange(1, 7, dtype=torch.float64)[:, None], atol=1e-5, rtol=0)


def test_attention_matrix_errors():
    q = torch.randn(4, 3)
    with pytest.raises(ValueError, match="q"):
        G.attention_matrix(torch.randn(4), q)
    with pytest.raises(ValueError, match="k"):
        G.attention_matrix(q, torch.randn(5, 3))
    for t in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="temperature"):
            G.attention_matrix(q, q, temperature=t)
    with pytest.raises(ValueError, match="causal"):
        G.attention_matrix(q, q, causal="no")
    for s in (float("nan"), float("inf"), "1", True):
        with pytest.raises(ValueError, match="scale"):
            G.attention_matrix(q, q, scale=s)


# ------------------------------------------------------------------------ attention graph


@pytest.mark.parametrize("n", [1, 5])
def test_attention_graph_roundtrip(gen, n):
    q = torch.randn(n, 4, generator=gen, dtype=torch.float64)
    a = G.attention_matrix(q, q, causal=True)
    g = G.attention_graph(a)
    assert isinstance(g, nx.DiGraph) and sorted(g.nodes) == list(range(n))
    np.testing.assert_allclose(nx.to_numpy_array(g, nodelist=range(n), weight="weight"), a.numpy())
    # causal: no edge to a future key; out-weights sum to one
    assert all(j <= i for i, j in g.edges)
    for i in range(n):
        assert math.isclose(sum(w for _, _, w in g.out_edges(i, data="weight")), 1.0)


def test_attention_graph_threshold_top_k(gen):
    n = 7
    a = torch.softmax(torch.randn(n, n, generator=gen, dtype=torch.float64), -1).numpy()
    g = G.attention_graph(a, threshold=0.15)
    assert set(g.edges) == {(i, j) for i in range(n) for j in range(n) if a[i, j] >= 0.15}
    g = G.attention_graph(a, top_k=2, labels=[f"t{i}" for i in range(n)])
    for i in range(n):
        best = sorted(range(n), key=lambda j: -a[i, j])[:2]
        assert {j for _, j in g.out_edges(i)} == set(best)
        assert g.nodes[i]["label"] == f"t{i}"
    assert G.attention_graph(a, top_k=100).number_of_edges() == n * n


def test_attention_graph_errors():
    with pytest.raises(ValueError, match="square"):
        G.attention_graph(np.ones((2, 3)))
    with pytest.raises(ValueError, match="square"):
        G.attention_graph(np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="finite"):
        G.attention_graph(np.array([[np.nan]]))
    with pytest.raises(ValueError, match="a must be"):
        G.attention_graph([[1.0]])
    with pytest.raises(ValueError, match="top_k"):
        G.attention_graph(np.eye(2), top_k=0)
    with pytest.raises(ValueError, match="labels"):
        G.attention_graph(np.eye(2), labels=["a"])
    with pytest.raises(ValueError, match="threshold"):
        G.attention_graph(np.eye(2), threshold=float("nan"))


def test_draw_attention_graph_smoke(gen):
    import matplotlib.pyplot as plt

    a = torch.softmax(torch.randn(5, 5, generator=gen, dtype=torch.float64), -1)
    fig, ax = plt.subplots()
    g = G.draw_attention_graph(a, ax, top_k=2, highlight=1, title="t")
    assert g.number_of_edges() == 10 and ax.get_title() == "t"
    colorbar_axes = [a_ for a_ in fig.axes if a_ is not ax]
    assert colorbar_axes and "column sum" in colorbar_axes[0].get_ylabel()  # labelled colour bar
    G.draw_attention_graph(np.ones((1, 1)), ax, colorbar=False)
    with pytest.raises(ValueError, match="node_values"):
        G.draw_attention_graph(a, ax, node_values=np.ones(3))
    plt.close(fig)


# ------------------------------------------------------------------------ walks


def walk_sum(a, i, j, k):
    """Sum over every explicit walk i = v0 -> v1 -> ... -> vk = j of the product of edge weights."""
    n = a.shape[0]
    total = 0.0
    for mid in itertools.product(range(n), repeat=max(k - 1, 0)):
        path = (i, *mid, j) if k >= 1 else (i,)
        if k == 0:
            return 1.0 if i == j else 0.0
        total += math.prod(a[path[t], path[t + 1]] for t in range(k))
    return total


@pytest.mark.parametrize("n", [1, 4])
def test_k_hop_counts_walks(gen, n):
    adj = (torch.rand(n, n, generator=gen) < 0.5).long().numpy()
    w = torch.rand(n, n, generator=gen, dtype=torch.float64)
    for k in range(5):
        counts = G.k_hop(adj, k)
        weighted = G.k_hop(w, k)
        assert isinstance(counts, np.ndarray) and isinstance(weighted, torch.Tensor)
        for i in range(n):
            for j in range(n):
                assert counts[i, j] == walk_sum(adj, i, j, k)
                assert math.isclose(weighted[i, j].item(), walk_sum(w.numpy(), i, j, k),
                                    rel_tol=1e-12, abs_tol=1e-12)


def test_k_hop_errors():
    with pytest.raises(ValueError, match="square"):
        G.k_hop(np.ones((3, 2)), 1)
    for bad in (-1, 1.5, True, None):
        with pytest.raises(ValueError, match="k"):
            G.k_hop(np.eye(2), bad)


@pytest.mark.parametrize("n", [1, 6])
def test_reach_matches_shortest_paths(gen, n):
    adj = (torch.rand(n, n, generator=gen) < 0.25).double()
    dg = nx.DiGraph()
    dg.add_nodes_from(range(n))
    dg.add_edges_from((i, j) for i in range(n) for j in range(n) if adj[i, j] > 0)
    dist = dict(nx.all_pairs_shortest_path_length(dg))
    for k in range(n + 1):
        r = G.reach(adj, k)
        assert r.dtype == torch.bool
        for i in range(n):
            for j in range(n):
                assert bool(r[i, j]) == (j in dist[i] and dist[i][j] <= k)
    with pytest.raises(ValueError, match="tol"):
        G.reach(adj, 1, tol=-1.0)
    with pytest.raises(ValueError, match="k"):
        G.reach(adj, -2)


@pytest.mark.parametrize("n", [1, 5])
def test_diffuse_and_trajectory(gen, n):
    a = torch.softmax(torch.randn(n, n, generator=gen, dtype=torch.float64), -1)
    f = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    traj = G.diffusion_trajectory(a, f, 4)
    assert traj.shape == (5, n, 3)
    x = f.clone()
    for t in range(5):
        torch.testing.assert_close(traj[t], x)
        torch.testing.assert_close(G.diffuse(a, f, t), x)
        x = torch.stack([sum(a[i, j] * x[j] for j in range(n)) for i in range(n)])
    f1 = f[:, 0].numpy()
    np.testing.assert_allclose(G.diffuse(a.numpy(), f1, 2), a.numpy() @ a.numpy() @ f1)


def test_diffuse_errors():
    a = np.eye(3)
    with pytest.raises(ValueError, match="f must have shape"):
        G.diffuse(a, np.ones(4))
    with pytest.raises(ValueError, match="f must have shape"):
        G.diffuse(a, np.ones((3, 2, 2)))
    with pytest.raises(ValueError, match="f must be"):
        G.diffuse(a, torch.ones(3))
    with pytest.raises(ValueError, match="k"):
        G.diffusion_trajectory(a, np.ones(3), -1)


def test_causal_attention_collapses_onto_first_token(gen):
    """Token 0 attends only to itself, an absorbing state: A^k -> rows e_0."""
    q = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    k = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    a = G.attention_matrix(q, k, causal=True)
    lam = a.diagonal()[1:].max().item()  # the second-largest eigenvalue of a triangular matrix
    assert a[0, 0] == 1 and lam < 1
    limit = G.k_hop(a, int(60 / -math.log(lam)) + 50)
    expect = torch.zeros(6, 6, dtype=torch.float64)
    expect[:, 0] = 1
    torch.testing.assert_close(limit, expect, atol=1e-8, rtol=0)


@pytest.mark.parametrize("n", [1, 5])
def test_compose_layers(gen, n):
    mats = [torch.softmax(torch.randn(n, n, generator=gen, dtype=torch.float64), -1) for _ in range(3)]
    torch.testing.assert_close(G.compose_layers(mats), mats[2] @ mats[1] @ mats[0])
    torch.testing.assert_close(G.compose_layers([mats[0]] * 4), G.k_hop(mats[0], 4))
    eye = torch.eye(n, dtype=torch.float64)
    r = 0.3
    expect = eye
    for m in mats:
        expect = ((1 - r) * m + r * eye) @ expect
    torch.testing.assert_close(G.compose_layers(mats, residual=r), expect)
    np_mats = [m.numpy() for m in mats]
    np.testing.assert_allclose(G.compose_layers(np_mats, residual=r), expect.numpy())
    torch.testing.assert_close(G.compose_layers(mats, residual=1.0), eye)


def test_compose_layers_errors():
    with pytest.raises(ValueError, match="mats"):
        G.compose_layers([])
    with pytest.raises(ValueError, match="mats\\[1\\]"):
        G.compose_layers([np.eye(2), np.eye(3)])
    with pytest.raises(ValueError, match="mats\\[1\\]"):
        G.compose_layers([np.eye(2), torch.eye(2)])
    with pytest.raises(ValueError, match="residual"):
        G.compose_layers([np.eye(2)], residual=1.5)


def test_attention_received(gen):
    n = 6
    a = G.attention_matrix(torch.randn(n, 3, generator=gen, dtype=torch.float64),
                           torch.randn(n, 3, generator=gen, dtype=torch.float64))
    rec = G.attention_received(a)
    for j in range(n):
        assert math.isclose(rec[j].item(), sum(a[i, j].item() for i in range(n)))
    assert math.isclose(rec.sum().item(), n)


# ------------------------------------------------------------------------ Weisfeiler-Lehman


def partition(colours):
    classes = {}
    for v, c in colours.items():
        classes.setdefault(c, set()).add(v)
    return {frozenset(s) for s in classes.values()}


def naive_wl_partition(g):
    """Independent 1-WL: tuple signatures, iterate until the number of classes stops growing.

    The signature keeps the neighbour colours as a sorted tuple, so a node with no neighbours
    (``()``) and a node with one neighbour of the empty colour (``("",)``) differ in round one.
    (An earlier version joined the colours into one string, where both gave ``""``.)
    """
    col = {v: "" for v in g}
    while True:
        new = {v: (col[v], tuple(sorted(col[u] for u in g[v]))) for v in g}
        # rename to keep signatures short; renaming keeps the partition
        names = {s: str(i) for i, s in enumerate(sorted(set(new.values())))}
        new = {v: names[s] for v, s in new.items()}
        if len(set(new.values())) == len(set(col.values())):
            return partition(col)
        col = new


def networkx_wl_partition(g):
    """The stable 1-WL partition from networkx's WL subgraph hashes (an implementation we did not write).

    networkx starts from the degrees (our round one); ``n`` iterations reach the stable partition.
    """
    n = g.number_of_nodes()
    if g.number_of_edges() == 0:  # networkx hashes need an edge to iterate
        return {frozenset(g.nodes)}
    with warnings.catch_warnings():  # networkx notes that its hash values changed in 3.5
        warnings.simplefilter("ignore", UserWarning)
        hashes = nx.weisfeiler_lehman_subgraph_hashes(g, iterations=n)
    return partition({v: h[-1] for v, h in hashes.items()})


def is_equitable(g, part):
    """Every node of a class has the same number of neighbours in each class."""
    for cls in part:
        for other in part:
            if len({sum(u in other for u in g[v]) for v in cls}) > 1:
                return False
    return True


def test_wl_hand_computed_path():
    hist = G.wl_colours(nx.path_graph(5))
    assert len(hist) == 3  # initial, ends split off, then {1, 3} from {2}; round 3 splits nothing
    assert partition(hist[0]) == {frozenset(range(5))}
    assert partition(hist[1]) == {frozenset({0, 4}), frozenset({1, 2, 3})}
    assert partition(hist[2]) == {frozenset({0, 4}), frozenset({1, 3}), frozenset({2})}
    assert G.stable_partition(nx.path_graph(5)) == [frozenset({0, 4}), frozenset({1, 3}),
                                                    frozenset({2})]
    star = nx.star_graph(3)  # centre 0, leaves 1..3
    assert G.stable_partition(star) == [frozenset({1, 2, 3}), frozenset({0})]
    assert G.wl_colours(nx.empty_graph(1)) == [{0: 0}]
    assert len(G.wl_colours(nx.path_graph(5), rounds=0)) == 1
    assert len(G.wl_colours(nx.path_graph(5), rounds=6)) == 7


def check_wl_partitions(g):
    part = set(G.stable_partition(g))
    assert part == naive_wl_partition(g)
    assert part == networkx_wl_partition(g)
    assert is_equitable(g, part)
    tri = set(G.stable_partition(g, method="triangle"))
    # the triangle-aware partition refines the 1-WL one and keeps triangle counts constant per class
    assert all(any(c <= p for p in part) for c in tri)
    t = nx.triangles(g)
    assert all(len({t[v] for v in c}) == 1 for c in tri)


@pytest.mark.parametrize("n", [1, 6, 9])
def test_wl_random_graphs(gen, n):
    check_wl_partitions(rand_graph(gen, n))


def test_wl_isolated_vs_degree_one_regression():
    """The draw (seed 1630389528, n = 6) on which the old string-joining oracle failed.

    Nodes 3 and 5 are isolated, 0, 4, 1, 2 have one neighbour each: 1-WL splits them in round one.
    """
    g = nx.Graph()
    g.add_nodes_from(range(6))
    g.add_edges_from([(0, 4), (1, 2)])
    assert naive_wl_partition(g) == {frozenset({3, 5}), frozenset({0, 1, 2, 4})}
    check_wl_partitions(g)
    hist = G.wl_colours(g)
    assert partition(hist[1]) == {frozenset({3, 5}), frozenset({0, 1, 2, 4})}


@pytest.mark.fuzz
@pytest.mark.parametrize("n", [2, 5, 8, 11])
def test_wl_random_graphs_fuzz(gen, n):
    for _ in range(20):
        p = torch.rand((), generator=gen).item()
        check_wl_partitions(rand_graph(gen, n, p=p))


def test_wl_isomorphism_invariance(gen):
    g = rand_graph(gen, 8)
    perm = torch.randperm(8, generator=gen).tolist()
    h = nx.relabel_nodes(g, dict(enumerate(perm)))
    for method in ("wl", "triangle", "2fwl"):
        assert not G.wl_distinguishes(g, h, method=method)


def test_wl_distinguishes_implies_not_isomorphic(gen):
    for _ in range(5):
        g1, g2 = rand_graph(gen, 6), rand_graph(gen, 6)
        for method in ("wl", "triangle", "2fwl"):
            if G.wl_distinguishes(g1, g2, method=method):
                assert not nx.is_isomorphic(g1, g2)
    # different edge counts are caught in one round
    assert G.wl_distinguishes(nx.path_graph(4), nx.cycle_graph(4))


def test_initial_labels():
    g = nx.path_graph(3)
    assert G.stable_partition(g, initial={0: "a", 1: "b", 2: "c"}) == [
        frozenset({0}), frozenset({1}), frozenset({2})]
    nx.set_node_attributes(g, {0: 1, 1: 0, 2: 0}, "tag")
    assert len(G.stable_partition(g, initial="tag")) == 3
    c6, tt = G.cycle_vs_triangles()
    assert G.wl_distinguishes(c6, tt, initial1={v: v == 0 for v in c6},
                              initial2={v: v == 0 for v in tt})
    with pytest.raises(ValueError, match="initial"):
        G.wl_colours(g, initial="missing")
    with pytest.raises(ValueError, match="initial"):
        G.wl_colours(g, initial={0: 1})
    with pytest.raises(ValueError, match="initial"):
        G.wl_colours(g, initial=[1, 2, 3])


def test_the_ladder_of_pairs():
    c6, tt = G.cycle_vs_triangles()
    assert not nx.is_isomorphic(c6, tt)
    assert not G.wl_distinguishes(c6, tt)
    assert G.wl_distinguishes(c6, tt, method="triangle")
    assert G.wl_distinguishes(c6, tt, method="2fwl")
    c8, two_c4 = G.cycle_vs_triangles(4)
    assert not G.wl_distinguishes(c8, two_c4, method="triangle")  # no triangles anywhere
    assert G.wl_distinguishes(c8, two_c4, method="2fwl")
    # strongly regular graphs with equal parameters defeat 2-FWL too
    rook = nx.cartesian_product(nx.complete_graph(4), nx.complete_graph(4))
    shr = nx.Graph((a, ((a[0] + d[0]) % 4, (a[1] + d[1]) % 4))
                   for a in itertools.product(range(4), repeat=2) for d in ((0, 1), (1, 0), (1, 1)))
    assert not nx.is_isomorphic(rook, shr)
    assert not G.wl_distinguishes(rook, shr, method="2fwl")


def test_folklore_wl_hand_computed():
    hist = G.folklore_wl_colours(nx.path_graph(3))
    final = partition(hist[-1])
    # pairs split by distance and by end/middle: (0,0),(2,2) | (1,1) | 0-1,2-1 | 1-0,1-2 | 0-2,2-0
    assert final == {frozenset({(0, 0), (2, 2)}), frozenset({(1, 1)}),
                     frozenset({(0, 1), (2, 1)}), frozenset({(1, 0), (1, 2)}),
                     frozenset({(0, 2), (2, 0)})}
    assert len(G.folklore_wl_colours(nx.path_graph(3), rounds=0)) == 1


def test_wl_errors():
    for fn in (G.wl_colours, G.stable_partition, G.folklore_wl_colours):
        with pytest.raises(ValueError, match="g must"):
            fn(nx.DiGraph([(0, 1)]))
        with pytest.raises(ValueError, match="g must"):
            fn(np.eye(2))
    with pytest.raises(ValueError, match="multigraph"):
        G.wl_colours(nx.MultiGraph([(0, 1)]))
    with pytest.raises(ValueError, match="method"):
        G.wl_colours(nx.path_graph(2), method="3wl")
    with pytest.raises(ValueError, match="method"):
        G.wl_distinguishes(nx.path_graph(2), nx.path_graph(2), method="x")
    with pytest.raises(ValueError, match="g2"):
        G.wl_distinguishes(nx.path_graph(2), nx.DiGraph())
    with pytest.raises(ValueError, match="rounds"):
        G.wl_colours(nx.path_graph(2), rounds=-1)
    with pytest.raises(ValueError, match="n must"):
        G.cycle_vs_triangles(2)


@pytest.mark.parametrize("attention", [False, True])
def test_message_passing_bounded_by_wl(gen, attention):
    d = 4
    weights = [(torch.randn(d, d, generator=gen, dtype=torch.float64),
                torch.randn(d, d, generator=gen, dtype=torch.float64)) for _ in range(3)]
    x0 = torch.randn(1, d, generator=gen, dtype=torch.float64)
    g = rand_graph(gen, 9)
    h = G.message_passing(g, x0.expand(9, d), weights, attention=attention)
    for cls in G.stable_partition(g):  # equal 1-WL colour -> equal state
        members = sorted(cls)
        for v in members[1:]:
            torch.testing.assert_close(h[v], h[members[0]])
    c6, tt = G.cycle_vs_triangles()
    h1 = G.message_passing(c6, x0.expand(6, d), weights, attention=attention)
    h2 = G.message_passing(tt, x0.expand(6, d), weights, attention=attention)
    torch.testing.assert_close(h1.sum(0), h2.sum(0))
    # brute force one sum-aggregation layer
    ws, wn = weights[0]
    x = torch.randn(5, d, generator=gen, dtype=torch.float64)
    p = nx.path_graph(5)
    out = G.message_passing(p, x, [(ws, wn)])
    for v in range(5):
        torch.testing.assert_close(out[v], torch.tanh(x[v] @ ws + sum(x[u] @ wn for u in p[v])))
    with pytest.raises(ValueError, match="x must"):
        G.message_passing(p, torch.ones(4, d), weights)
    with pytest.raises(ValueError, match="nodes 0..n-1"):
        G.message_passing(nx.relabel_nodes(p, {0: 9}), x, weights)


# ------------------------------------------------------------------------ simplices and stars


def brute_simplices(g, max_dim):
    u = nx.Graph(g)
    out = {}
    for d in range(max_dim + 1):
        out[d] = sorted(c for c in itertools.combinations(sorted(u.nodes), d + 1)
                        if all(u.has_edge(a, b) for a, b in itertools.combinations(c, 2)))
    return out


@pytest.mark.parametrize("n", [1, 4, 8])
def test_simplices_brute_force(gen, n):
    g = rand_graph(gen, n, p=0.6)
    for max_dim in range(4):
        assert G.simplices(g, max_dim) == brute_simplices(g, max_dim)
        for v in g:
            st = G.star(g, v, max_dim)
            for d, simp in brute_simplices(g, max_dim).items():
                assert st[d] == [s for s in simp if v in s]


def test_simplices_directed_and_loops():
    dg = nx.DiGraph([(0, 1), (2, 1), (0, 2), (2, 2)])
    s = G.simplices(dg, 3)
    assert s[0] == [(0,), (1,), (2,)] and s[1] == [(0, 1), (0, 2), (1, 2)]
    assert s[2] == [(0, 1, 2)] and s[3] == []
    assert G.star(dg, 1, 1) == {0: [(1,)], 1: [(0, 1), (1, 2)]}
    k5 = nx.complete_graph(5)
    assert [len(G.simplices(k5, 4)[d]) for d in range(5)] == [math.comb(5, d + 1) for d in range(5)]


def test_simplices_errors():
    with pytest.raises(ValueError, match="max_dim"):
        G.simplices(nx.path_graph(2), -1)
    with pytest.raises(ValueError, match="g must"):
        G.simplices(np.eye(2), 1)
    with pytest.raises(ValueError, match="node"):
        G.star(nx.path_graph(2), 5)


@pytest.mark.parametrize("n", [1, 6])
def test_effective_neighbours(gen, n):
    a = torch.softmax(torch.randn(n, n, generator=gen, dtype=torch.float64) * 3, -1)
    eff = G.effective_neighbours(a)
    for i in range(n):
        h = -sum(p * math.log(p) for p in a[i].tolist() if p > 0)
        assert math.isclose(eff[i].item(), math.exp(h), rel_tol=1e-12)
    np.testing.assert_allclose(G.effective_neighbours(np.eye(n)), np.ones(n))
    np.testing.assert_allclose(G.effective_neighbours(np.full((n, n), 1 / n)), np.full(n, float(n)))
    with pytest.raises(ValueError, match="sum to one"):
        G.effective_neighbours(np.full((2, 2), 0.2))
    with pytest.raises(ValueError, match="non-negative"):
        G.effective_neighbours(np.array([[1.5, -0.5], [0.5, 0.5]]))


def test_draw_query_key_points(gen):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    q = torch.randn(4, 2, generator=gen)
    G.draw_query_key_points(q, q + 1, ax, title="x")
    assert ax.get_xlabel().startswith("coordinate 1") and len(ax.collections) == 2
    with pytest.raises(ValueError, match="shape"):
        G.draw_query_key_points(torch.randn(4, 3), torch.randn(4, 3), ax)
    plt.close(fig)


def test_draw_coloured_graph():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    g = nx.lollipop_graph(4, 3)
    pos = G.draw_coloured_graph(g, G.wl_colours(g)[-1], ax, title="stable")
    assert set(pos) == set(g) and ax.get_title() == "stable"
    assert G.draw_coloured_graph(g, G.wl_colours(g)[0], ax, pos=pos) is pos
    G.draw_coloured_graph(nx.empty_graph(1), {0: 0}, ax)
    plt.close(fig)


def test_argument_errors():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    g = nx.path_graph(3)
    d = 2
    cases = [
        (lambda: G.colour_histogram([0, 1]), "colours"),
        (lambda: G.draw_coloured_graph(np.eye(3), {0: 0}, ax), "g must"),
        (lambda: G.draw_coloured_graph(g, {0: 0, 1: 1}, ax), "colours"),
        (lambda: G.draw_coloured_graph(g, {0: 0, 1: 1, 2: "red"}, ax), "colours"),
        (lambda: G.draw_coloured_graph(g, {0: 0, 1: 1, 2: 0}, ax, pos={0: (0, 0)}), "pos"),
        (lambda: G.draw_attention_graph(np.eye(3), ax, highlight=3), "highlight"),
        (lambda: G.draw_attention_graph(np.eye(3), ax, max_width=0), "max_width"),
        (lambda: G.message_passing(g, torch.ones(3, d), [(torch.eye(d),)]), "weights\\[0\\]"),
        (lambda: G.message_passing(g, torch.ones(3, d), [(torch.eye(d), torch.eye(d + 1))]), "weights\\[0\\]"),
    ]
    for fn, match in cases:
        with pytest.raises(ValueError, match=match):
            fn()
    plt.close(fig)


def test_package_exports_every_public_name():
    """``from simplex_lib import graph; graph.<name>`` works for every public name of every sub-module."""
    for mod in (G.attention, G.walks, G.weisfeiler_lehman, G.complexes, G.drawing):
        for name in mod.__all__:
            if name != "CLASS_CMAP":
                assert getattr(G, name) is getattr(mod, name) and name in G.__all__


def test_persistent_class_colours_keep_a_class_colour_while_it_splits():
    g = nx.lollipop_graph(4, 3)
    hist = G.wl_colours(g)
    kept = G.persistent_class_colours(hist)
    for old, new in zip(hist, kept):  # the same partitions
        assert sorted(map(sorted, _classes(old))) == sorted(map(sorted, _classes(new)))
    for prev, cur in zip(kept, kept[1:]):
        for c in set(prev.values()):  # every old class keeps its number on one of its parts
            assert c in {cur[v] for v in prev if prev[v] == c}
    assert kept[0] == {v: 0 for v in g}
    with pytest.raises(ValueError, match="same nodes"):
        G.persistent_class_colours([{0: 0}, {1: 0}])
    with pytest.raises(ValueError, match="non-empty"):
        G.persistent_class_colours([])


def _classes(colours):
    out = {}
    for v, c in colours.items():
        out.setdefault(c, []).append(v)
    return list(out.values())


def test_clique_refinement_sees_four_cliques():
    rook = nx.convert_node_labels_to_integers(
        nx.cartesian_product(nx.complete_graph(4), nx.complete_graph(4)))
    shrikhande = nx.convert_node_labels_to_integers(nx.Graph(
        (a, ((a[0] + d[0]) % 4, (a[1] + d[1]) % 4)) for a in itertools.product(range(4), repeat=2)
        for d in [(0, 1), (1, 0), (1, 1)]))
    got = [G.wl_distinguishes(rook, shrikhande, method=m) for m in ("wl", "triangle", "clique")]
    assert got == [False, False, True]
    c6, tt = G.cycle_vs_triangles()
    assert G.wl_distinguishes(c6, tt, method="clique")
    perm = dict(enumerate(np.random.default_rng(0).permutation(16).tolist()))
    assert not G.wl_distinguishes(rook, nx.relabel_nodes(rook, perm), method="clique")


def test_draw_attention_graph_shared_node_range(gen):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    a = torch.softmax(torch.randn(4, 4, generator=gen, dtype=torch.float64), -1)
    G.draw_attention_graph(a, ax, node_range=(0.0, 4.0), node_size=200, colorbar=False)
    for bad in [(1.0, 1.0), (2.0,)]:
        with pytest.raises(ValueError, match="node_range"):
            G.draw_attention_graph(a, ax, node_range=bad)
    with pytest.raises(ValueError, match="node_size"):
        G.draw_attention_graph(a, ax, node_size=0)
    plt.close(fig)
