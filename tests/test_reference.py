"""The references against independent brute force: explicit loops over queries and key tuples.

Also: NaN stays where it belongs, extreme logits, empty batch/sequence, and argument checks.
"""

import itertools
import math
from types import SimpleNamespace

import pytest
import torch

from simplex_lib.ops.dot import reference as dot_ref
from simplex_lib.ops.n_simplicial import reference as n_ref
from simplex_lib.ops.two_simplicial import reference as two_ref
from simplex_lib.testing import assert_close

# One namespace over the three reference modules keeps the tests short.
ref = SimpleNamespace(**{name: getattr(m, name) for m in (dot_ref, two_ref, n_ref) for name in m.__all__})
TOL = 1e-10  # float64 against float64 loops: rounding only

f64 = torch.float64


def rand(gen, *shape):
    return torch.randn(*shape, generator=gen, dtype=f64)


def brute_dot(q, k, v, causal=True, scale=None):
    B, N, Hq, D = q.shape
    g = Hq // k.shape[2]
    s = 1 / math.sqrt(D) if scale is None else scale
    out = torch.zeros_like(q)
    for b, h, i in itertools.product(range(B), range(Hq), range(N)):
        js = [j for j in range(N) if (j <= i or not causal)]
        a = torch.stack([s * (q[b, i, h] * k[b, j, h // g]).sum() for j in js])
        p = torch.exp(a - a.max())
        p = p / p.sum()
        out[b, i, h] = sum(p[t] * v[b, j, h // g] for t, j in enumerate(js))
    return out


def visible(i, j, w, causal):
    if not causal:
        return True
    return j <= i and (w is None or j > i - w)


def brute_two(q, k1, k2, v1, v2, w1=None, w2=None, causal=True, scale=None):
    B, N, Hq, D = q.shape
    g = Hq // k1.shape[2]
    s = 1 / math.sqrt(D) if scale is None else scale
    out = torch.zeros_like(q)
    for b, h, i in itertools.product(range(B), range(Hq), range(N)):
        hk = h // g
        pairs = [(j, k) for j in range(N) for k in range(N)
                 if visible(i, j, w1, causal) and visible(i, k, w2, causal)]
        a = torch.stack([s * (q[b, i, h] * k1[b, j, hk] * k2[b, k, hk]).sum() for j, k in pairs])
        p = torch.exp(a - a.max())
        p = p / p.sum()
        out[b, i, h] = sum(p[t] * v1[b, j, hk] * v2[b, k, hk] for t, (j, k) in enumerate(pairs))
    return out


def brute_n(q, keys, values, causal=True, reducer="and", scale=None):
    B, N, Hq, D = q.shape
    g = Hq // keys[0].shape[2]
    s = 1 / math.sqrt(D) if scale is None else scale
    n = len(keys)
    out = torch.zeros_like(q)
    for b, h, i in itertools.product(range(B), range(Hq), range(N)):
        hk = h // g
        tuples = [t for t in itertools.product(range(N), repeat=n) if not causal or max(t) <= i]
        logits = []
        for t in tuples:
            prod = q[b, i, h].clone()
            for m, j in enumerate(t):
                prod = prod * keys[m][b, j, hk]
            logits.append(s * prod.sum())
        a = torch.stack(logits)
        p = torch.exp(a - a.max())
        p = p / p.sum()
        for w, t in zip(p, tuples):
            if reducer == "and":
                val = torch.ones(D, dtype=q.dtype)
                for m, j in enumerate(t):
                    val = val * values[m][b, j, hk]
            else:
                val = sum(values[m][b, j, hk] for m, j in enumerate(t))
            out[b, i, h] += w * val
    return out


SHAPES = [  # (B, N, Hq, Hkv, D)
    (1, 1, 1, 1, 4),
    (2, 5, 2, 1, 3),
    (1, 7, 4, 2, 5),
    (1, 6, 4, 4, 2),
    (2, 3, 4, 1, 6),
]


@pytest.mark.parametrize("B,N,Hq,Hkv,D", SHAPES)
@pytest.mark.parametrize("causal", [True, False])
def test_dot_attention_matches_loops(gen, B, N, Hq, Hkv, D, causal):
    q, k, v = rand(gen, B, N, Hq, D), rand(gen, B, N, Hkv, D), rand(gen, B, N, Hkv, D)
    assert_close("o", brute_dot(q, k, v, causal), ref.dot_attention(q, k, v, causal=causal), TOL)


def test_dot_attention_scale(gen):
    q, k, v = (rand(gen, 1, 4, 2, 4) for _ in range(3))
    assert_close("o", brute_dot(q, k, v, scale=0.7), ref.dot_attention(q, k, v, scale=0.7), TOL)


@pytest.mark.parametrize("B,N,Hq,Hkv,D", SHAPES)
@pytest.mark.parametrize("w1,w2", [(None, None), (1, 1), (2, 3), (3, None), (50, 2), (None, 100)])
def test_two_simplicial_matches_loops(gen, B, N, Hq, Hkv, D, w1, w2):
    q = rand(gen, B, N, Hq, D)
    k1, k2, v1, v2 = (rand(gen, B, N, Hkv, D) for _ in range(4))
    got = ref.two_simplicial_attention(q, k1, k2, v1, v2, w1=w1, w2=w2)
    assert_close("o", brute_two(q, k1, k2, v1, v2, w1, w2), got, TOL)


@pytest.mark.parametrize("N", [1, 4])
def test_two_simplicial_non_causal(gen, N):
    q = rand(gen, 1, N, 2, 3)
    k1, k2, v1, v2 = (rand(gen, 1, N, 1, 3) for _ in range(4))
    got = ref.two_simplicial_attention(q, k1, k2, v1, v2, causal=False, scale=0.3)
    assert_close("o", brute_two(q, k1, k2, v1, v2, causal=False, scale=0.3), got, TOL)


def test_weights_are_a_distribution_with_exact_zeros(gen):
    q = rand(gen, 2, 6, 2, 3)
    k1, k2 = rand(gen, 2, 6, 1, 3), rand(gen, 2, 6, 1, 3)
    p = ref.two_simplicial_weights(q, k1, k2, w1=2, w2=4)
    assert_close("sum", torch.ones(2, 2, 6, dtype=f64), p.sum((-1, -2)), TOL)
    mask = ref.two_simplicial_mask(6, w1=2, w2=4)
    assert (p[..., ~mask] == 0).all()
    assert (p[..., mask] > 0).all()


def test_mask_rule():
    m = ref.two_simplicial_mask(9, w1=3, w2=5)
    for i, j, k in itertools.product(range(9), repeat=3):
        assert bool(m[i, j, k]) == (i - 3 < j <= i and i - 5 < k <= i)


def test_masked_form_handles_empty_rows(gen):
    q = rand(gen, 1, 4, 1, 3)
    k1, k2, v1, v2 = (rand(gen, 1, 4, 1, 3) for _ in range(4))
    mask = ref.two_simplicial_mask(4).clone()
    mask[2] = False
    q.requires_grad_(True)
    out = ref.two_simplicial_attention_masked(q, k1, k2, v1, v2, mask)
    assert (out[0, 2] == 0).all()
    out.sum().backward()
    assert torch.isfinite(q.grad).all()


@pytest.mark.parametrize("N,Hq,Hkv", [(1, 1, 1), (4, 2, 1), (3, 4, 2)])
@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("reducer", ["and", "or"])
def test_n_simplicial_matches_loops(gen, N, Hq, Hkv, n, reducer):
    D = 3
    q = rand(gen, 1, N, Hq, D)
    keys = [rand(gen, 1, N, Hkv, D) for _ in range(n)]
    values = [rand(gen, 1, N, Hkv, D) for _ in range(n)]
    got = ref.n_simplicial_attention(q, keys, values, reducer=reducer)
    assert_close("o", brute_n(q, keys, values, reducer=reducer), got, TOL)


def test_n_simplicial_non_causal(gen):
    q = rand(gen, 1, 3, 1, 2)
    keys = [rand(gen, 1, 3, 1, 2) for _ in range(2)]
    values = [rand(gen, 1, 3, 1, 2) for _ in range(2)]
    assert_close("o", brute_n(q, keys, values, causal=False),
                 ref.n_simplicial_attention(q, keys, values, causal=False), TOL)


def test_n_equals_one_and_two_identities(gen):
    q = rand(gen, 2, 5, 4, 6)
    k1, k2, v1, v2 = (rand(gen, 2, 5, 2, 6) for _ in range(4))
    assert_close("n=1", ref.dot_attention(q, k1, v1), ref.n_simplicial_attention(q, [k1], [v1]), TOL)
    assert_close("n=2", ref.two_simplicial_attention(q, k1, k2, v1, v2),
                 ref.n_simplicial_attention(q, [k1, k2], [v1, v2]), TOL)


def test_gradcheck_references(gen):
    g = gen
    mk = lambda *s: torch.randn(*s, generator=g, dtype=f64, requires_grad=True)  # noqa: E731
    q = mk(1, 4, 2, 3)
    k1, k2, v1, v2 = (mk(1, 4, 1, 3) for _ in range(4))
    assert torch.autograd.gradcheck(lambda *a: ref.dot_attention(*a[:3]), (q, k1, v1))
    assert torch.autograd.gradcheck(lambda *a: ref.two_simplicial_attention(*a), (q, k1, k2, v1, v2))
    assert torch.autograd.gradcheck(
        lambda *a: ref.two_simplicial_attention(*a, w1=2, w2=3), (q, k1, k2, v1, v2)
    )
    assert torch.autograd.gradcheck(
        lambda *a: ref.n_simplicial_attention(a[0], a[1:3], a[3:], reducer="or"), (q, k1, k2, v1, v2)
    )


def test_dtype_preserved(gen):
    q = torch.randn(1, 5, 2, 4, generator=gen)
    kv = [torch.randn(1, 5, 2, 4, generator=gen) for _ in range(4)]
    assert ref.two_simplicial_attention(q, *kv, w1=2, w2=2).dtype == torch.float32


# ---- errors -------------------------------------------------------------------------------


def _inputs(Hq=2, Hkv=1, N=4, D=4):
    return torch.randn(1, N, Hq, D), [torch.randn(1, N, Hkv, D) for _ in range(4)]


@pytest.mark.parametrize("w", [0, -3, 1.5, True])
def test_bad_windows(w):
    q, kv = _inputs()
    with pytest.raises(ValueError, match="w1"):
        ref.two_simplicial_attention(q, *kv, w1=w)
    with pytest.raises(ValueError, match="w2"):
        ref.two_simplicial_attention(q, *kv, w2=w)


def test_windows_need_causal():
    q, kv = _inputs()
    with pytest.raises(ValueError, match="causal"):
        ref.two_simplicial_attention(q, *kv, w1=2, causal=False)


def test_gqa_ratio_must_divide():
    q, kv = _inputs(Hq=3, Hkv=2)
    with pytest.raises(ValueError, match="multiple"):
        ref.two_simplicial_attention(q, *kv)
    with pytest.raises(ValueError, match="multiple"):
        ref.dot_attention(q, kv[0], kv[1])


def test_mismatched_shapes():
    q, kv = _inputs()
    bad = torch.randn(1, 5, 1, 4)
    with pytest.raises(ValueError, match="k2 has seq"):
        ref.two_simplicial_attention(q, kv[0], bad, kv[2], kv[3])
    with pytest.raises(ValueError, match="head_dim"):
        ref.two_simplicial_attention(q, kv[0], kv[1], torch.randn(1, 4, 1, 3), kv[3])
    with pytest.raises(ValueError, match="heads"):
        ref.two_simplicial_attention(q, kv[0], kv[1], kv[2], torch.randn(1, 4, 2, 4))
    with pytest.raises(ValueError, match=r"\[batch, seq, heads, head_dim\]"):
        ref.dot_attention(torch.randn(4, 2, 4), kv[0], kv[1])


def test_n_simplicial_errors():
    q, kv = _inputs()
    with pytest.raises(ValueError, match="keys"):
        ref.n_simplicial_attention(q, [], [])
    with pytest.raises(ValueError, match="values"):
        ref.n_simplicial_attention(q, kv[:2], kv[:1])
    with pytest.raises(ValueError, match="reducer"):
        ref.n_simplicial_attention(q, kv[:1], kv[1:2], reducer="xor")


def test_masked_form_errors():
    q, kv = _inputs()
    with pytest.raises(ValueError, match="mask"):
        ref.two_simplicial_attention_masked(q, *kv, torch.ones(4, 4, 4))
    with pytest.raises(ValueError, match="mask"):
        ref.two_simplicial_attention_masked(q, *kv, torch.ones(3, 3, 3, dtype=torch.bool))


def test_masked_form_matches_loops_for_a_random_mask(gen):
    N = 5
    q = rand(gen, 2, N, 2, 3)
    k1, k2, v1, v2 = (rand(gen, 2, N, 1, 3) for _ in range(4))
    mask = torch.rand(N, N, N, generator=gen) < 0.4
    mask[:, 0, 0] = True  # no empty row here (empty rows are checked above)
    got = ref.two_simplicial_attention_masked(q, k1, k2, v1, v2, mask)
    want = torch.zeros_like(q)
    for b, h, i in itertools.product(range(2), range(2), range(N)):
        pairs = mask[i].nonzero().tolist()
        a = torch.stack([(q[b, i, h] * k1[b, j, 0] * k2[b, k, 0]).sum() / math.sqrt(3) for j, k in pairs])
        p = torch.softmax(a, 0)
        want[b, i, h] = sum(p[t] * v1[b, j, 0] * v2[b, k, 0] for t, (j, k) in enumerate(pairs))
    assert_close("o", want, got, TOL)


def test_reduce_values_with_mask_drops_nan_values(gen):
    q = rand(gen, 1, 4, 1, 2)
    k1, k2, v1, v2 = (rand(gen, 1, 4, 1, 2) for _ in range(4))
    p = ref.two_simplicial_weights(q, k1, k2)
    v1[0, 3] = float("nan")  # only query 3 sees position 3
    out = ref.reduce_values(p, v1, v2, mask=ref.two_simplicial_mask(4))
    assert torch.isfinite(out[:, :3]).all() and torch.isnan(out[:, 3]).all()
    assert torch.isnan(ref.reduce_values(p, v1, v2)[:, :3]).any()  # without the mask: 0 * nan


# ---- NaN stays where it belongs -----------------------------------------------------------


def _sees(i, p, w, causal=True):
    return visible(i, p, w, causal)


NAN_CASES = [  # (w1, w2, causal)
    (None, None, True), (3, 2, True), (1, 4, True), (None, None, False),
]


@pytest.mark.parametrize("w1,w2,causal", NAN_CASES)
@pytest.mark.parametrize("which", ["q", "k1", "k2", "v1", "v2"])
def test_two_simplicial_nan_reaches_only_rows_that_see_it(gen, w1, w2, causal, which):
    N, p = 7, 2
    names = ["q", "k1", "k2", "v1", "v2"]
    x = dict(zip(names, [rand(gen, 1, N, 2, 3)] + [rand(gen, 1, N, 1, 3) for _ in range(4)]))
    clean = ref.two_simplicial_attention(*x.values(), w1=w1, w2=w2, causal=causal)
    x[which] = x[which].clone()
    x[which][0, p] = float("nan")
    out = ref.two_simplicial_attention(*x.values(), w1=w1, w2=w2, causal=causal)
    for i in range(N):
        if which == "q":
            hit = i == p
        else:
            hit = _sees(i, p, w1 if which in ("k1", "v1") else w2, causal)
        if hit:
            assert torch.isnan(out[0, i]).all(), i
        else:
            assert_close(f"row {i}", clean[0, i], out[0, i], TOL)


@pytest.mark.parametrize("which", ["k", "v"])
def test_dot_and_n_simplicial_nan_locality(gen, which):
    N, p = 6, 3
    q, k, v = rand(gen, 1, N, 2, 3), rand(gen, 1, N, 1, 3), rand(gen, 1, N, 1, 3)
    bad = {"k": k.clone(), "v": v.clone()}
    bad[which][0, p] = float("nan")
    for out in (ref.dot_attention(q, bad["k"], bad["v"]),
                ref.n_simplicial_attention(q, [bad["k"], k], [bad["v"], v]),
                ref.n_simplicial_attention(q, [k, bad["k"], k], [v, bad["v"], v], reducer="or")):
        assert torch.isfinite(out[0, :p]).all()
        assert torch.isnan(out[0, p:]).all()
    w = ref.dot_attention_weights(q, bad["k"])
    assert torch.isfinite(w[..., :p, :]).all() and (w[..., :p, p:] == 0).all()


def test_gradients_stay_finite_before_a_nan_key(gen):
    N, p = 5, 3
    q = rand(gen, 1, N, 1, 2).requires_grad_()
    k1, k2, v1, v2 = (rand(gen, 1, N, 1, 2) for _ in range(4))
    k1[0, p] = float("nan")
    out = ref.two_simplicial_attention(q, k1, k2, v1, v2, w1=2, w2=2)
    out[:, :p].sum().backward()
    assert torch.isfinite(q.grad[:, :p]).all()  # queries 3 and 4 see the NaN themselves


# ---- extreme finite logits ----------------------------------------------------------------


def test_logits_near_minus_1e30_give_the_right_answer(gen):
    # Every visible logit is exactly -1e30: the softmax is uniform over the visible pairs
    # (an implementation that fills masked entries with -1e30 would return zeros instead).
    N, D = 5, 4
    q = torch.full((1, N, 1, D), -1.0, dtype=f64)
    ones = torch.ones(1, N, 1, D, dtype=f64)
    v1, v2 = rand(gen, 1, N, 1, D), rand(gen, 1, N, 1, D)
    s = 1e30 / D
    out = ref.two_simplicial_attention(q, ones, ones, v1, v2, w1=3, w2=2, scale=s)
    assert_close("o", brute_two(q, ones, ones, v1, v2, 3, 2, scale=s), out, TOL)
    want = torch.stack([(v1[0, max(0, i - 2): i + 1, None] * v2[0, None, max(0, i - 1): i + 1]).mean((0, 1))
                        for i in range(N)])
    assert_close("uniform", want, out[0], TOL)
    assert_close("dot", brute_dot(q, ones, v1, scale=s), ref.dot_attention(q, ones, v1, scale=s), TOL)


def test_huge_scale_matches_loops(gen):
    q = rand(gen, 1, 6, 2, 3)
    k1, k2, v1, v2 = (rand(gen, 1, 6, 1, 3) for _ in range(4))
    got = ref.two_simplicial_attention(q, k1, k2, v1, v2, w1=4, w2=3, scale=1e28)
    assert_close("o", brute_two(q, k1, k2, v1, v2, 4, 3, scale=1e28), got, TOL)


# ---- empty batch or sequence --------------------------------------------------------------


@pytest.mark.parametrize("B,N", [(0, 4), (2, 0), (0, 0)])
def test_empty_batch_or_sequence_gives_empty_results(B, N):
    q = torch.randn(B, N, 2, 3, dtype=f64)
    kv = [torch.randn(B, N, 1, 3, dtype=f64) for _ in range(4)]
    assert ref.dot_attention(q, kv[0], kv[1]).shape == (B, N, 2, 3)
    assert ref.dot_attention_weights(q, kv[0]).shape == (B, 2, N, N)
    for w in (None, 2):
        assert ref.two_simplicial_attention(q, *kv, w1=w, w2=w).shape == (B, N, 2, 3)
    assert ref.two_simplicial_weights(q, kv[0], kv[1]).shape == (B, 2, N, N, N)
    assert ref.two_simplicial_mask(N).shape == (N, N, N)
    mask = ref.two_simplicial_mask(N)
    assert ref.two_simplicial_attention_masked(q, *kv, mask).shape == (B, N, 2, 3)
    assert ref.n_simplicial_attention(q, kv[:3], kv[1:4]).shape == (B, N, 2, 3)


# ---- argument checks ----------------------------------------------------------------------


def test_mixed_dtypes_are_refused():
    q, kv = _inputs()
    with pytest.raises(ValueError, match="k2 has dtype"):
        ref.two_simplicial_attention(q, kv[0], kv[1].double(), kv[2], kv[3])
    with pytest.raises(ValueError, match="v has dtype"):
        ref.dot_attention(q, kv[0], kv[1].half())
    with pytest.raises(ValueError, match=r"values\[1\] has dtype"):
        ref.n_simplicial_attention(q, kv[:2], [kv[2], kv[3].double()])


@pytest.mark.parametrize("scale", [float("nan"), float("inf"), -float("inf"), "0.5", True, [1.0]])
def test_bad_scale(scale):
    q, kv = _inputs()
    for call in (lambda: ref.two_simplicial_attention(q, *kv, scale=scale),
                 lambda: ref.dot_attention(q, kv[0], kv[1], scale=scale),
                 lambda: ref.two_simplicial_logits(q, kv[0], kv[1], scale=scale),
                 lambda: ref.n_simplicial_attention(q, kv[:1], kv[1:2], scale=scale)):
        with pytest.raises(ValueError, match="scale"):
            call()


@pytest.mark.parametrize("causal", ["no", 0, 1, None, "False"])
def test_causal_must_be_a_bool(causal):
    q, kv = _inputs()
    for call in (lambda: ref.two_simplicial_attention(q, *kv, causal=causal),
                 lambda: ref.two_simplicial_weights(q, kv[0], kv[1], causal=causal),
                 lambda: ref.two_simplicial_mask(4, causal=causal),
                 lambda: ref.dot_attention(q, kv[0], kv[1], causal=causal),
                 lambda: ref.n_simplicial_attention(q, kv[:1], kv[1:2], causal=causal)):
        with pytest.raises(ValueError, match="causal"):
            call()


def test_degenerate_heads_and_head_dim():
    with pytest.raises(ValueError, match="head_dim"):
        ref.dot_attention(torch.randn(1, 3, 2, 0), torch.randn(1, 3, 1, 0), torch.randn(1, 3, 1, 0))
    with pytest.raises(ValueError, match="heads"):
        ref.two_simplicial_attention(*(torch.randn(1, 3, 0, 4) for _ in range(5)))


def test_numpy_integer_windows_are_accepted(gen):
    np = pytest.importorskip("numpy")
    q = rand(gen, 1, 5, 1, 2)
    kv = [rand(gen, 1, 5, 1, 2) for _ in range(4)]
    assert_close("o", ref.two_simplicial_attention(q, *kv, w1=3, w2=2),
                 ref.two_simplicial_attention(q, *kv, w1=np.int64(3), w2=np.int32(2)), TOL)


def test_autocast_mixed_dtypes_are_accepted(gen):
    """Under ``torch.autocast`` the operands of one call differ in dtype by design."""
    q = torch.randn(1, 5, 2, 4, generator=gen)
    kv = [torch.randn(1, 5, 2, 4, generator=gen) for _ in range(4)]
    want = two_ref.two_simplicial_attention(q, *kv, w1=3, w2=2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = two_ref.two_simplicial_attention(q, *[t.bfloat16() for t in kv], w1=3, w2=2)
    assert got.shape == want.shape and (got.float() - want).abs().max() < 0.1
    with pytest.raises(ValueError, match="dtype"):  # outside autocast: refused
        two_ref.two_simplicial_attention(q, *[t.bfloat16() for t in kv], w1=3, w2=2)
