"""simplex_lib.ops.checks.nonfinite_rows against a brute-force scan of every row."""

import pytest
import torch

from simplex_lib.ops.checks import nonfinite_rows

DEV = "cuda" if torch.cuda.is_available() else "cpu"  # the reductions differ by device


def _brute(t):
    # one row at a time, one value at a time, in float64
    B, N, H, _ = t.shape
    t = t.cpu()
    out = torch.zeros(B, N, H, dtype=torch.bool)
    for b in range(B):
        for n in range(N):
            for h in range(H):
                out[b, n, h] = not all(torch.isfinite(v) for v in t[b, n, h].double())
    return out


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32, torch.float64],
                         ids=str)
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_nonfinite_rows_finds_every_bad_value(dtype, value):
    g = torch.Generator().manual_seed(7)
    shapes = [(2, 5, 3, 4), (2, 5, 1, 4), (1, 1, 1, 1)]
    where = [(0, 0, 0, 0), (1, 4, 0, 3), (0, 0, 0, 0)]  # first value, last value, N = 1
    for i in range(len(shapes)):  # the bad value in one tensor at a time
        ts = [torch.randn(s, generator=g).to(dtype).to(DEV) for s in shapes]
        ts[i][where[i]] = value
        rows = nonfinite_rows(*ts)
        assert rows is not None
        for t, r in zip(ts, rows):
            assert torch.equal(r.cpu(), _brute(t))


def test_nonfinite_rows_none_when_finite_even_at_the_dtype_limits():
    g = torch.Generator().manual_seed(8)
    for dtype in (torch.bfloat16, torch.float16, torch.float32):
        big = torch.finfo(dtype).max
        t = torch.randn(2, 7, 3, 5, generator=g).to(dtype).to(DEV)
        t[0, 3, 1] = big  # the largest finite values, both signs, are not infinities
        t[1, 6, 2] = -big
        assert nonfinite_rows(t, t.transpose(1, 2), torch.empty(0, 4, 3, 5, dtype=dtype, device=DEV)) is None


def test_nonfinite_rows_of_non_contiguous_tensors():
    g = torch.Generator().manual_seed(9)
    base = torch.randn(2, 6, 4, 8, generator=g, dtype=torch.bfloat16).to(DEV)
    base[1, 2, 3, 5] = float("nan")
    view = base[:, ::2, 1:]  # rows 0, 2, 4 of heads 1-3: holds the NaN at [1, 1, 2]
    rows = nonfinite_rows(view, torch.zeros(0, 3, 3, 8, device=DEV))
    assert torch.equal(rows[0].cpu(), _brute(view)) and rows[0].sum() == 1 and rows[0][1, 1, 2]
    assert rows[1].shape == (0, 3, 3)
    assert nonfinite_rows(base[:, 3:]) is None
