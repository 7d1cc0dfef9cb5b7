"""NaN and infinity stay where they belong in the kernels' backward (windowed and top-k).

A non-finite entry in row ``p`` of an input poisons the queries that read it (their outputs are
NaN). The gradient rows that are NaN are exactly: ``dq`` of the poisoned queries, and the key
and value rows that a poisoned query reads. Every other gradient row is exact: it equals the
float64 reference's gradient with the bad row replaced by zeros (no clean query reads it).
"""

from __future__ import annotations

import pytest
import torch

from simplex_lib.ops.two_simplicial.interface import two_simplicial_attention as kernel_attention
from simplex_lib.ops.two_simplicial.reference import two_simplicial_attention as reference_attention
from simplex_lib.testing import assert_close

DEV = "cuda" if torch.cuda.is_available() else "cpu"
NAMES = ("q", "k1", "k2", "v1", "v2")


def _expected_nan_rows(N, Hq, Hkv, w1, w2, p, which, head):
    """Brute force over (query, key) pairs: which gradient rows a bad row at ``p`` poisons."""
    G = Hq // Hkv
    poisoned = torch.zeros(N, Hq, dtype=torch.bool)
    for i in range(N):
        for h in range(Hq):
            if which == "q":
                poisoned[i, h] = i == p and h == head
            elif which == "do":
                poisoned[i, h] = i == p and h == head
            else:
                w = w1 if which in ("k1", "v1") else w2
                poisoned[i, h] = h // G == head and i - w < p <= i
    read = {}
    for name, w in (("1", w1), ("2", w2)):
        r = torch.zeros(N, Hkv, dtype=torch.bool)
        for j in range(N):
            for g in range(Hkv):
                r[j, g] = any(poisoned[i, h] for i in range(N) for h in range(Hq)
                              if h // G == g and i - w < j <= i)
        read[name] = r
    return {"q": poisoned, "k1": read["1"], "v1": read["1"], "k2": read["2"], "v2": read["2"]}


CASES = [(hq, hkv, which, float("nan")) for hq, hkv in ((4, 2), (1, 1), (32, 1))  # (32, 1): ring
         for which in ("q", "k1", "k2", "v1", "v2", "do")]
CASES += [(4, 2, which, float("inf")) for which in ("q", "k1", "v2", "do")]


# (N, p, w1, w2): short windows; and 16-position tiles whose long-window tiles lie inside every
# row's window (a non-finite key there reaches every row of the tile that sees it, no other)
SHORT, SHARED = (13, 6, 4, 3), (80, 47, 48, 20)
CASES = [(*SHORT, *case) for case in CASES]
CASES += [(*SHARED, 2, 2, which, float("nan")) for which in ("q", "k1", "k2", "v1", "v2", "do")]
CASES = [(*case, "kv") for case in CASES]
# the fused short-window path (SIMPLEX_BWD_SHORT=fused) on tiles of several positions
CASES += [(*SHORT, 4, 2, which, float("nan"), "fused") for which in ("q", "k2", "v2", "do")]
CASES += [(*SHARED, 1, 1, which, float("inf"), "fused") for which in ("k1", "k2", "v2")]
# GQA 3: each tile has a padded head slot, whose rows see zeros (and must not turn an inf into
# NaN for the real heads of their position)
CASES += [(*SHARED, 3, 1, which, float("inf"), short) for which in ("k1", "v1", "k2", "v2")
          for short in ("kv", "fused")]


@pytest.mark.parametrize("N,p,w1,w2,Hq,Hkv,which,bad,short", CASES)
def test_backward_keeps_nonfinite_local(gen, monkeypatch, N, p, w1, w2, Hq, Hkv, which, bad, short):
    monkeypatch.setenv("SIMPLEX_BWD_SHORT", short)
    D = 16
    x = {n: torch.randn(1, N, Hq if n == "q" else Hkv, D, generator=gen, dtype=torch.float64)
         for n in NAMES}
    do = torch.randn(1, N, Hq, D, generator=gen, dtype=torch.float64)
    head = 0
    clean = {n: t.clone() for n, t in x.items()}
    clean_do = do.clone()
    if which == "do":
        do[0, p, head, 5] = bad
        clean_do[0, p, head] = 0
    else:
        x[which][0, p, head, 5] = bad
        clean[which][0, p, head] = 0

    ins = {n: t.float().to(DEV).requires_grad_() for n, t in x.items()}
    kernel_attention(*ins.values(), w1=w1, w2=w2).backward(do.float().to(DEV))
    ref = {n: t.clone().requires_grad_() for n, t in clean.items()}
    reference_attention(*ref.values(), w1=w1, w2=w2).backward(clean_do)

    expected = _expected_nan_rows(N, Hq, Hkv, w1, w2, p, which, head)
    for n in NAMES:
        got = ins[n].grad.cpu()[0]
        assert torch.equal(torch.isnan(got).any(-1), expected[n]), f"d{n}: NaN rows"
        keep = ~expected[n]
        assert_close(f"d{n} (clean rows)", ref[n].grad[0][keep], got[keep], 2e-5)


@pytest.mark.parametrize("kernel,deterministic", [("row", False), ("packed", False), ("packed", True)])
@pytest.mark.parametrize("which", ["q", "k1", "k2", "v1", "v2", "do"])
def test_topk_backward_keeps_nonfinite_local(gen, monkeypatch, which, kernel, deterministic):
    from simplex_lib.ops.topk.reference import topk_two_simplicial_attention as topk_reference
    from simplex_lib.ops.topk.triton import topk_two_simplicial_attention_triton as topk_kernel
    from simplex_lib.timing import random_causal_topk

    monkeypatch.setenv("SIMPLEX_TOPK_KERNEL", kernel)  # both passes (the selection is shared)
    N, Hq, Hkv, D, k, p = 10, 4, 2, 16, 3, 4
    G = Hq // Hkv
    x = {n: torch.randn(1, N, Hq if n == "q" else Hkv, D, generator=gen, dtype=torch.float64)
         for n in NAMES}
    do = torch.randn(1, N, Hq, D, generator=gen, dtype=torch.float64)
    idx = random_causal_topk(1, N, Hkv, k, device="cpu", generator=gen)  # [1, N, Hkv, k]
    clean = {n: t.clone() for n, t in x.items()}
    clean_do = do.clone()
    if which == "do":
        do[0, p, 0, 5] = float("nan")
        clean_do[0, p, 0] = 0
    else:
        x[which][0, p, 0, 5] = float("nan")
        clean[which][0, p, 0] = 0

    import simplex_lib.ops.topk.triton as tk

    packed_bwd = []
    orig = tk._packed_backward
    monkeypatch.setattr(tk, "_packed_backward", lambda *a, **kw: packed_bwd.append(1) or orig(*a, **kw))
    ins = {n: t.float().to(DEV).requires_grad_() for n, t in x.items()}
    topk_kernel(*ins.values(), idx.to(DEV), deterministic=deterministic).backward(do.float().to(DEV))
    assert len(packed_bwd) == (kernel == "packed")  # the wrapper runs the backward of the forward's kind
    ref = {n: t.clone().requires_grad_() for n, t in clean.items()}
    topk_reference(*ref.values(), idx).backward(clean_do)

    # brute force: poisoned queries, and the rows they select
    sel = idx[0].repeat_interleave(G, dim=1)  # [N, Hq, k]
    poisoned = torch.zeros(N, Hq, dtype=torch.bool)
    for i in range(N):
        for h in range(Hq):
            if which in ("q", "do"):
                poisoned[i, h] = (i, h) == (p, 0)
            else:
                poisoned[i, h] = h // G == 0 and p in sel[i, h].tolist()
    read = torch.zeros(N, Hkv, dtype=torch.bool)
    for i, h in poisoned.nonzero().tolist():
        for j in sel[i, h].tolist():
            if j >= 0:
                read[j, h // G] = True
    expected = {"q": poisoned, "k1": read, "k2": read, "v1": read, "v2": read}
    for n in NAMES:
        got = ins[n].grad.cpu()[0]
        assert torch.equal(torch.isnan(got).any(-1), expected[n]), f"d{n}: NaN rows"
        keep = ~expected[n]
        assert_close(f"d{n} (clean rows)", ref[n].grad[0][keep], got[keep], 2e-5)
