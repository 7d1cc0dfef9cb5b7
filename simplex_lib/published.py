"""The published numbers the book checks, as plain data (no code).

From Roy et al. (2025), the paper on fast 2-simplicial attention the book studies:

- :data:`TABLE1`: forward latency of their kernel for several window shapes;
- :data:`TABLE2_NLL`: negative log-likelihoods of the Transformer and the 2-simplicial Transformer
  on four benchmarks (:data:`BENCHMARKS`) at three model sizes (:data:`ACTIVE_PARAMS`,
  :data:`TOTAL_PARAMS`), with the printed relative changes :data:`TABLE2_DELTA_PERCENT`;
- :data:`TABLE3`: the printed power-law slopes ``alpha`` and intercepts ``beta`` (and
  :data:`TABLE3_DELTA_PERCENT`);
- :data:`TABLE4`: the printed ``R^2`` and residuals of those fits;
- :data:`KERNEL_TFLOPS`: the forward throughput reported for the paper's kernel.

Every value is copied as printed; the code that recomputes them lives in
:mod:`simplex_lib.scaling` and :mod:`simplex_lib.cost`.
"""

from __future__ import annotations

__all__ = [
    "TABLE1",
    "BENCHMARKS",
    "MODELS",
    "ACTIVE_PARAMS",
    "TOTAL_PARAMS",
    "TABLE2_NLL",
    "TABLE2_DELTA_PERCENT",
    "TABLE3",
    "TABLE3_DELTA_PERCENT",
    "TABLE4",
    "KERNEL_TFLOPS",
]

#: Table 1: forward latency of the paper's kernel for window shapes ``(w1, w2)``, grouped by the
#: product ``w1 * w2`` (the batch/sequence/head shape of the measurement is not stated).
TABLE1 = (
    {"product": 32768, "w1": 1024, "w2": 32, "latency_ms": 104.1},
    {"product": 32768, "w1": 512, "w2": 64, "latency_ms": 110.7},
    {"product": 16384, "w1": 128, "w2": 128, "latency_ms": 59.2},
    {"product": 16384, "w1": 256, "w2": 64, "latency_ms": 55.8},
    {"product": 16384, "w1": 512, "w2": 32, "latency_ms": 55.1},
    {"product": 16384, "w1": 1024, "w2": 16, "latency_ms": 55.1},
    {"product": 8192, "w1": 256, "w2": 32, "latency_ms": 28.3},
)

#: The four benchmarks of Tables 2-4, in the printed column order.
BENCHMARKS = ("GSM8k", "MMLU", "MMLU-pro", "MBPP")

#: The two model families, in the printed row order.
MODELS = ("Transformer", "2-simplicial")

#: Active parameters of the three mixture-of-experts sizes (Table 2, column "Active Params").
ACTIVE_PARAMS = (1.0e9, 2.0e9, 3.5e9)

#: Total parameters of the same three models (Table 2, column "Total Params").
TOTAL_PARAMS = (57e9, 100e9, 176e9)

#: Table 2: negative log-likelihood per benchmark, one value per size in ACTIVE_PARAMS order.
TABLE2_NLL = {
    "Transformer": {
        "GSM8k": (0.3277, 0.2987, 0.2781),
        "MMLU": (0.6411, 0.5932, 0.5543),
        "MMLU-pro": (0.8718, 0.8193, 0.7858),
        "MBPP": (0.2690, 0.2435, 0.2203),
    },
    "2-simplicial": {
        "GSM8k": (0.3302, 0.2942, 0.2718),
        "MMLU": (0.6423, 0.5862, 0.5484),
        "MMLU-pro": (0.8718, 0.8135, 0.7689),
        "MBPP": (0.2714, 0.2411, 0.2193),
    },
}

#: Table 2's printed relative change ``(simplicial - transformer) / transformer`` in percent.
TABLE2_DELTA_PERCENT = {
    "GSM8k": (0.79, -1.51, -2.27),
    "MMLU": (0.19, -1.19, -1.06),
    "MMLU-pro": (-0.01, -0.71, -2.15),
    "MBPP": (0.88, -1.0, -0.45),
}

#: Table 3 as printed: ``(alpha, beta)`` of ``-log L = alpha log N + beta`` per model and benchmark.
TABLE3 = {
    "Transformer": {
        "GSM8k": (0.1420, -1.8280),
        "MMLU": (0.1256, -2.1606),
        "MMLU-pro": (0.0901, -1.7289),
        "MBPP": (0.1720, -2.2569),
    },
    "2-simplicial": {
        "GSM8k": (0.1683, -2.3939),
        "MMLU": (0.1364, -2.3960),
        "MMLU-pro": (0.1083, -2.1181),
        "MBPP": (0.1837, -2.5201),
    },
}

#: Table 3's printed relative increase of ``alpha`` (2-simplicial over Transformer), percent.
TABLE3_DELTA_PERCENT = {"GSM8k": 18.5, "MMLU": 8.5, "MMLU-pro": 20.2, "MBPP": 6.8}

#: Table 4 as printed: ``(R^2, residual)`` of each fit in Table 3.
TABLE4 = {
    "Transformer": {
        "GSM8k": (0.9998, 2.8e-6),
        "MMLU": (0.9995, 4.7e-6),
        "MMLU-pro": (0.9972, 1.5e-5),
        "MBPP": (0.9962, 7.5e-5),
    },
    "2-simplicial": {
        "GSM8k": (0.9974, 4.9e-5),
        "MMLU": (0.9989, 1.3e-5),
        "MMLU-pro": (0.9999, 4.6e-8),
        "MBPP": (0.9999, 1.5e-6),
    },
}

#: Forward throughput the paper reports for its Triton kernel (Section 6), in its own count
#: (``6 * N * w1 * w2`` FLOPs per head-dim unit, the elementwise product included).
KERNEL_TFLOPS = 520
