"""simplex_lib.cost: the forward kernel's cycle budget (chapter 8) against counts by hand."""

import pytest

from simplex_lib import cost
from simplex_lib.ops.two_simplicial import configs


def test_tensor_cycles_reproduce_the_peak():
    # A step's FLOPs at the tensor-core rate of every SM give back the device's peak.
    dev = cost.H100_SXM
    c = cost.forward_step_cycles(64, 128, 128)
    clock_ghz = dev["peak_tflops"] * 1e3 / (dev["sms"] * dev["tensor_flops"])
    tflops = c["useful_flops"] / c["tensor"] * dev["sms"] * clock_ghz / 1e3
    assert tflops == pytest.approx(dev["peak_tflops"])
    assert 1.82 < clock_ghz < 1.84


@pytest.mark.parametrize("m,n,d", [(64, 128, 128), (64, 128, 64), (16, 32, 16)])
def test_cycles_by_hand(m, n, d):
    c = cost.forward_step_cycles(m, n, d)
    assert c["useful_flops"] == 2 * (2 * m * n * d)  # S = (q * k2) @ K1^T and P @ V1
    assert c["tensor"] == c["useful_flops"] / 4096
    assert c["exp2"] == (m * n + m) / 16  # P and the rescaling factors
    assert c["fp32"] == (4 * m * n + 4 * m * d) / 128
    # operands staged through shared memory: the estimate of configs.fwd_smem_bytes, without
    # its slack, counts each buffer once; the budget writes and reads q * k2 and P, reads K1, V1
    staged = configs.fwd_smem_bytes(configs.FwdConfig(m, n, 4, 2), d, 2) - configs.SMEM_SLACK
    assert c["smem"] * 128 == staged + 2 * (m * d + m * n)


def test_bounds_order_and_exp_share():
    for d in (64, 128):
        over, serial = cost.forward_tflops_bounds(cost.forward_step_cycles(64, 128, d))
        assert serial < over <= cost.H100_SXM["peak_tflops"]
    # The exponentials cost as much as the GEMMs at D = 64 (4 D FLOPs per exp2 vs 4096 / 16).
    c = cost.forward_step_cycles(64, 128, 64)
    assert c["exp2"] == pytest.approx(c["tensor"], rel=0.01)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_rejects_bad_sizes(bad):
    with pytest.raises(ValueError):
        cost.forward_step_cycles(bad, 128, 64)
