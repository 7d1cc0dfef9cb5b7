"""Random bad input against every public function of ``simplex_lib.ops`` and ``simplex_lib.layers``.

Each draw builds a small valid call, then maybe breaks one thing (a shape, the head ratio, a
dtype, a window, the scale, ``causal``, an index, a NaN or a huge value in one tensor). The call
must either raise a ``ValueError`` whose message names one of the function's arguments, or return
what the brute-force loops of the other test files return (NaN where the loops give NaN).
Marked ``fuzz``: a fresh seed each run (``make fuzz``), printed; replay with ``SIMPLEX_SEED``.
"""

import inspect
import math
import random
import re

import pytest
import torch
from test_determinant import brute_attention as brute_det_attention
from test_determinant import brute_det_logits
from test_reference import brute_dot, brute_n, brute_two
from test_variants import brute_face_weights, brute_reduce
from test_windowed import _brute as brute_selected

from simplex_lib import layers, masks
from simplex_lib.ops import checks
from simplex_lib.ops.determinant import reference as det
from simplex_lib.ops.dot import reference as dot
from simplex_lib.ops.n_simplicial import reference as nsimp
from simplex_lib.ops.two_simplicial import reference as two
from simplex_lib.ops.two_simplicial import variants, windowed

f64 = torch.float64
DRAWS = 60


def _names_an_argument(fn, err: ValueError) -> bool:
    names = list(inspect.signature(fn).parameters)
    return any(re.search(rf"\b{re.escape(n)}\b", str(err)) for n in names)


def _outcome(fn, *args, **kwargs):
    """The result, or None after a ValueError that names an argument (anything else fails)."""
    try:
        return fn(*args, **kwargs)
    except ValueError as err:
        assert _names_an_argument(fn, err), f"{fn.__name__}: {err}"
        return None


def _same(out, want, ctx=""):
    assert out.shape == want.shape, (ctx, tuple(out.shape), tuple(want.shape))
    torch.testing.assert_close(out, want, rtol=1e-7, atol=1e-9, equal_nan=True, msg=lambda m: f"{ctx}\n{m}")


class Draw:
    """One random valid case and one random way to break it."""

    def __init__(self, rng: random.Random, gen: torch.Generator):
        self.rng, self.gen = rng, gen
        self.B, self.N = rng.choice([0, 1, 1, 2]), rng.choice([0, 1, 2, 3, 5])
        self.Hkv, self.G = rng.choice([1, 2]), rng.choice([1, 2, 3])
        self.D = rng.choice([3, 6])
        self.w1, self.w2 = (rng.choice([None, 1, 2, 4, 9]) for _ in range(2))
        self.scale = rng.choice([None, None, 0.5, 2.0])
        shapes = [(self.B, self.N, self.Hkv * self.G, self.D)] + [(self.B, self.N, self.Hkv, self.D)] * 4
        self.x = [torch.randn(*s, generator=gen, dtype=f64) for s in shapes]
        self.causal = True

    def perturb(self):
        """Break at most one thing; returns its name (for the failure message)."""
        rng, x = self.rng, self.x
        kind = rng.choice(["none", "none", "ndim", "seq", "batch", "head_dim", "heads", "dtype", "int",
                           "list", "window", "scale", "causal", "nan", "huge"])
        t = rng.randrange(len(x))
        if kind == "ndim":
            x[t] = x[t].flatten(0, 1) if rng.random() < 0.5 else x[t][None]
        elif kind in ("seq", "batch", "head_dim"):
            dim = {"batch": 0, "seq": 1, "head_dim": 3}[kind]
            shape = list(x[t].shape)
            shape[dim] += 1
            x[t] = torch.randn(*shape, generator=self.gen, dtype=f64)
        elif kind == "heads" and t > 0:
            shape = list(x[t].shape)
            shape[2] = rng.choice([0, self.Hkv * self.G + 1])
            x[t] = torch.randn(*shape, generator=self.gen, dtype=f64)
        elif kind == "dtype":
            x[t] = x[t].float()
        elif kind == "int":
            x[t] = x[t].long()
        elif kind == "list":
            x[t] = x[t].tolist()
        elif kind == "window":
            setattr(self, rng.choice(["w1", "w2"]), rng.choice([0, -1, 1.5, True, "3"]))
        elif kind == "scale":
            self.scale = rng.choice([float("nan"), float("inf"), "0.5", True, -1.0, 0.0, 1e20])
        elif kind == "causal":
            self.causal = rng.choice(["no", 1, None, False])
        elif kind == "nan" and x[t].numel():
            x[t] = x[t].clone()
            x[t].view(-1)[rng.randrange(x[t].numel())] = float("nan")
        elif kind == "huge":
            x[t] = x[t] * 1e12
        return kind


def _valid_windows(d):
    return all(w is None or (isinstance(w, int) and not isinstance(w, bool) and w >= 1) for w in (d.w1, d.w2))


def _scale(d):
    return 1 / math.sqrt(d.D) if d.scale is None else d.scale


@pytest.mark.fuzz
def test_fuzz_attention_functions(seed, gen):
    rng = random.Random(seed)
    for _ in range(DRAWS):
        d = Draw(rng, gen)
        kind = d.perturb()
        q, k1, k2, v1, v2 = d.x
        ctx = f"draw {kind}: B={d.B} N={d.N} Hkv={d.Hkv} G={d.G} D={d.D} w={d.w1},{d.w2} scale={d.scale}"
        w = {} if not d.causal else {"w1": d.w1, "w2": d.w2}
        cases = [
            (two.two_simplicial_attention, dict(causal=d.causal, scale=d.scale, **w),
             lambda: brute_two(q, k1, k2, v1, v2, d.w1 if d.causal else None, d.w2 if d.causal else None,
                               d.causal, _scale(d))),
            (windowed.windowed_two_simplicial_attention, dict(w1=d.w1, w2=d.w2, scale=d.scale),
             lambda: brute_two(q, k1, k2, v1, v2, d.w1, d.w2, True, _scale(d))),
            (det.determinant_attention, dict(causal=d.causal, scale=d.scale, **w),
             lambda: brute_det_attention(q, k1, k2, v1, v2, d.w1 if d.causal else None,
                                         d.w2 if d.causal else None, d.causal, _scale(d))),
            (variants.face_normalised_attention, dict(causal=d.causal, scale=d.scale, **w),
             lambda: brute_reduce(brute_face_weights(q, k1, k2, "ij", d.w1 if d.causal else None,
                                                     d.w2 if d.causal else None, d.causal, _scale(d)),
                                  v1, v2, "and")),
        ]
        for fn, kw, oracle in cases:
            out = _outcome(fn, q, k1, k2, v1, v2, **kw)
            if out is not None:
                if d.N == 0 or d.B == 0:
                    assert out.shape == q.shape, ctx
                    continue
                try:
                    _same(out, oracle(), ctx)
                except AssertionError as err:
                    raise AssertionError(f"{fn.__name__} {ctx}: {err}") from None
        out = _outcome(dot.dot_attention, q, k1, v1, causal=d.causal, scale=d.scale)
        if out is not None and out.numel():
            _same(out, brute_dot(q, k1, v1, d.causal, _scale(d)), f"dot {ctx}")
        n, reducer = rng.choice([1, 2, 3]), rng.choice(["and", "or"])
        keys, values = [k1, k2, v2][:n], [v1, v2, k1][:n]
        out = _outcome(nsimp.n_simplicial_attention, q, keys, values, causal=d.causal, scale=d.scale,
                       reducer=reducer)
        if out is not None and out.numel():
            _same(out, brute_n(q, keys, values, d.causal, reducer, _scale(d)), f"n={n} {reducer} {ctx}")
        out = _outcome(two.two_simplicial_logits, q, k1, k2, scale=d.scale)
        if out is not None and out.numel():
            _same(out, _brute_pairs(q, k1, k2, lambda i, j, k: True, _scale(d))[0], f"logits {ctx}")
        for fn in (det.det_logits, det.det_logits_sarrus):
            out = _outcome(fn, q, k1, k2)
            if out is not None and out.numel():
                _same(out, brute_det_logits(q, k1, k2), f"{fn.__name__} {ctx}")
        if rng.random() < 0.3 and isinstance(q, torch.Tensor):
            mask = torch.rand(*rng.choice([(d.N,) * 3, (1, 1, d.N, d.N, d.N), (d.N + 1,) * 3]), generator=gen) < 0.5
            mask = mask if rng.random() < 0.8 else mask.float()
            out = _outcome(two.two_simplicial_attention_masked, q, k1, k2, v1, v2, mask, scale=d.scale)
            if out is not None and out.numel():
                want = _brute_masked(q, k1, k2, v1, v2, mask.reshape(d.N, d.N, d.N), _scale(d))
                _same(out, want, f"masked {ctx}")
            p = torch.rand(q.shape[0], q.shape[2], d.N, d.N, d.N, generator=gen, dtype=f64)
            out = _outcome(two.reduce_values, p, v1, v2, reducer=rng.choice(["and", "or", "xor"]))
        out = _outcome(two.two_simplicial_weights, q, k1, k2, causal=d.causal, scale=d.scale, **w)
        if out is not None and out.numel():
            def vis(i, j, k):
                return not d.causal or (i - (d.w1 or i + 1) < j <= i and i - (d.w2 or i + 1) < k <= i)

            _same(out, _brute_pairs(q, k1, k2, vis, _scale(d))[1], f"weights {ctx}")


def _brute_masked(q, k1, k2, v1, v2, m, s):
    """Loops over (b, h, i): softmax over the pairs ``m[i].nonzero()``; no pair gives zeros."""
    B, N, Hq, _ = q.shape
    g = Hq // k1.shape[2]
    out = torch.zeros_like(q)
    for b in range(B):
        for h in range(Hq):
            hk = h // g
            for i in range(N):
                pairs = m[i].nonzero().tolist()
                if not pairs:
                    continue
                a = torch.stack([s * (q[b, i, h] * k1[b, j, hk] * k2[b, k, hk]).sum() for j, k in pairs])
                e = torch.exp(a - a.max())
                for t, (j, k) in enumerate(pairs):
                    out[b, i, h] += e[t] / e.sum() * v1[b, j, hk] * v2[b, k, hk]
    return out


def _brute_pairs(q, k1, k2, visible, s):
    """Loops: logits ``[b, h, i, j, k]`` and the softmax over each query's visible pairs."""
    B, N, Hq, _ = q.shape
    g = Hq // k1.shape[2]
    A = torch.zeros(B, Hq, N, N, N, dtype=q.dtype)
    P = torch.zeros_like(A)
    for b in range(B):
        for h in range(Hq):
            for i in range(N):
                pairs = [(j, k) for j in range(N) for k in range(N) if visible(i, j, k)]
                for j in range(N):
                    for k in range(N):
                        A[b, h, i, j, k] = s * (q[b, i, h] * k1[b, j, h // g] * k2[b, k, h // g]).sum()
                a = torch.stack([A[b, h, i, j, k] for j, k in pairs])
                e = torch.exp(a - a.max())
                for t, (j, k) in enumerate(pairs):
                    P[b, h, i, j, k] = e[t] / e.sum()
    return A, P


@pytest.mark.fuzz
def test_fuzz_selections(seed, gen):
    rng = random.Random(seed)
    for _ in range(DRAWS):
        d = Draw(rng, gen)
        d.perturb()
        q, k1, k2, v1, v2 = d.x
        N = d.N
        m = rng.choice([1, 2, 3])
        idx = torch.full((N, m), -1, dtype=torch.long)
        for i in range(N):
            pick = torch.randperm(i + 1, generator=gen)[:m]
            idx[i, : pick.numel()] = pick
        bad = rng.choice(["none", "none", "future", "below", "twice", "float", "shape", "3d"])
        if bad == "future" and N > 1:
            idx[0, 0] = N - 1
        elif bad == "below" and N:
            idx[-1, -1] = -2
        elif bad == "twice" and N and m > 1:
            idx[-1, :2] = 0
        elif bad == "float":
            idx = idx.double()
        elif bad == "shape":
            idx = idx[:, :, None]
        elif bad == "3d":
            idx = idx[None].expand(rng.choice([1, max(d.B, 1)]), N, m)
        out = _outcome(windowed.gathered_two_simplicial_attention, q, k1, k2, v1, v2, idx, scale=d.scale)
        if out is not None and out.numel():
            sel = (idx if idx.dim() == 3 else idx[None]).expand(q.shape[0], N, m)
            want = brute_selected(q, k1, k2, v1, v2, lambda b, i: ([j for j in sel[b, i].tolist() if j >= 0],) * 2,
                                  _scale(d))
            _same(out, want, f"gathered {bad}")
        n = rng.choice([0, 1, 3, -1, 2.0])
        w = rng.choice([1, 2, 0, None, 5])
        out = _outcome(masks.window_indices, n, w)
        if out is not None:
            assert out.shape == (n, min(w, n))


@pytest.mark.fuzz
def test_fuzz_small_helpers(seed, gen):
    rng = random.Random(seed)
    junk = [0, -1, 2, 3, 6, 1.5, True, None, "x", float("nan"), [1, 2, 3], torch.zeros(3), torch.zeros(2, 2),
            torch.float32, torch.int64, torch.tensor([0, 1, 2])]
    calls = [
        (two.two_simplicial_mask, 1), (dot.causal_window_mask, 1), (det.levi_civita, 1),
        (det.random_so3, 2), (det.so3_generator, 1), (det.so3_rotations, 2), (det.rope_rotations, 2),
        (det.rope_so3, 2), (det.rope, 2), (dot.per_query, 2), (two.masked_softmax_pairs, 2),
    ]
    # The checks name the caller's argument: it must appear in their message.
    for value in junk:
        for fn, args, name in ((checks.check_window, ("w1", value), "w1"), (checks.check_causal, (value,), "causal"),
                               (checks.default_scale, (4, value), "scale")):
            try:
                fn(*args)
            except ValueError as err:
                assert re.search(rf"\b{name}\b", str(err)), str(err)
    for _ in range(DRAWS):
        fn, n_args = rng.choice(calls)
        args = [rng.choice(junk) for _ in range(n_args)]
        if fn in (det.rope_so3, det.rope) and rng.random() < 0.7:
            args[0] = torch.randn(1, 3, 1, rng.choice([3, 4, 6]), generator=gen, dtype=f64)
        try:
            fn(*args)
        except ValueError as err:
            assert _names_an_argument(fn, err), f"{fn.__name__}{tuple(args)}: {err}"
        except TypeError as err:  # wrong number of positional arguments is Python's own error
            assert "argument" in str(err), f"{fn.__name__}{tuple(args)}: {err}"


@pytest.mark.fuzz
def test_fuzz_layers(seed, gen):
    rng = random.Random(seed)
    for _ in range(DRAWS // 4):
        d_model = rng.choice([0, 6, 12, 7])
        heads, kv = rng.choice([0, 1, 2, 3]), rng.choice([None, 1, 2, 0])
        head_dim = rng.choice([None, 3, 4, 0])
        w1, w2 = rng.choice([None, 1, 3, 0, 2.5]), rng.choice([None, 2, -1])
        backend = rng.choice(["reference", "torch", "triton", "cuda"])
        kind = rng.choice(["window", "topk", "dot"])
        if kind == "window":
            make = lambda: layers.TwoSimplicialAttention(d_model, heads, kv, head_dim, w1, w2,  # noqa: E731
                                                         backend=backend)
            fn = layers.TwoSimplicialAttention.__init__
        elif kind == "topk":
            topk = rng.choice([0, 1, 3, 2.0])
            make = lambda: layers.TopKTwoSimplicialAttention(d_model, heads, kv, head_dim, topk=topk,  # noqa: E731
                                                             backend=backend)
            fn = layers.TopKTwoSimplicialAttention.__init__
        else:
            make = lambda: layers.DotProductAttention(d_model, heads, kv, head_dim,  # noqa: E731
                                                      backend=rng.choice(["sdpa", "reference", "flash"]))
            fn = layers.DotProductAttention.__init__
        att = _construct(make, fn)
        if att is None or (kind == "window" and backend == "triton"):
            continue
        att = att.double()
        x = torch.randn(rng.choice([0, 1, 2]), rng.choice([0, 1, 4]), rng.choice([d_model, d_model + 1]),
                        generator=gen, dtype=f64)
        try:
            y = att(x)
        except ValueError as err:
            assert re.search(r"\bx\b", str(err)), str(err)
            continue
        assert y.shape == x.shape and (x.numel() == 0 or torch.isfinite(y).all())
        if kind == "window" and x.numel():
            ref = layers.TwoSimplicialAttention(d_model, heads, kv, head_dim, w1, w2, backend="reference").double()
            ref.load_state_dict(att.state_dict())
            _same(y, ref(x))


def _construct(make, init):
    """Build a layer; a ValueError must name a constructor argument."""
    try:
        return make()
    except ValueError as err:
        if not _names_an_argument(init, err):
            raise AssertionError(f"{init.__qualname__}: {err}") from None
        return None
