"""Timing the kernels: FLOP conventions, one timed measurement, and the benchmark grids.

The command line ``python -m simplex_lib.bench`` drives these functions and writes the JSON
records; chapters re-measure through them too. Nothing here imports the command line.

FLOPs come from the one cost model, :mod:`simplex_lib.cost`; the convention
(``FLOPS_CONVENTION``, stored in every record) is:

- forward FLOPs ``4 * B * Hq * N * D * w1 * w2`` (the two tensor-core GEMMs; the ramp at the
  start of the sequence is ignored), backward ``2.5x`` that, forward+backward ``3.5x``;
- top-k attention the same with ``w1 * w2 = kA * kB``;
- causal dot-product attention ``4 * B * H * N^2 * D / 2`` (and ``2.5x`` for its backward);
- times are medians of ``triton.testing.do_bench``.
"""

from __future__ import annotations

from functools import partial

import torch
from tqdm.auto import tqdm
from triton.testing import do_bench

from simplex_lib.ops.topk.triton import topk_dispatch, topk_two_simplicial_attention_triton
from simplex_lib.ops.two_simplicial.backward import short_window_path
from simplex_lib.ops.two_simplicial.configs import bwd_config, fwd_config, tma_available
from simplex_lib.ops.two_simplicial.interface import kernel_backend, two_simplicial_attention
from simplex_lib.cost import dot_flops, equal_cost_dot_length, indexer_flops, topk_flops, windowed_flops
from simplex_lib.provenance import provenance
from simplex_lib.ops.two_simplicial.windowed import windowed_two_simplicial_attention as reference_attention

__all__ = [
    "FLOPS_CONVENTION", "MODES", "DEFAULT_WINDOWS", "TABLE1_WINDOWS", "SHAPE_GRID", "record_meta",
    "time_and_peak_memory",
    "random_causal_topk", "compiled_kernels", "BACKENDS", "IMPLS", "bench_simplicial", "bench_sdpa", "run_benchmark",
    "bench_topk",
]

FLOPS_CONVENTION = ("fwd 4*B*Hq*N*D*w1*w2 (top-k: w1*w2 = kA*kB); bwd 2.5x; fwdbwd 3.5x; "
                    "dot causal 4*B*H*N^2*D/2")
DEFAULT_WINDOWS = ((512, 32), (256, 64), (1024, 16), (128, 128))
TABLE1_WINDOWS = ((1024, 32), (512, 64), (128, 128), (256, 64), (512, 32), (1024, 16), (256, 32))
MODES = ("fwd", "bwd", "fwdbwd")
#: The grid of attention shapes a model would use (``python -m simplex_lib.bench --shapes``):
#: B 2, N 8192, GQA 1, 4, 8, 64 with 16, 32, 32, 64 query heads, D 64 and 128, three windows.
SHAPE_GRID = dict(windows=((512, 32), (256, 64), (128, 128)), dims=(64, 128), gqa=(1, 4, 8, 64),
                  heads=(16, 32, 32, 64), seqlens=(8192,), tokens=16384)


def _error_line(e: BaseException, limit: int = 300) -> str:
    """A failed measurement's reason in one line: the type and the message's last line (a
    Triton ``CompilationError`` puts the kernel source first and the cause last)."""
    lines = str(e).strip().splitlines() or [""]
    return f"{type(e).__name__}: {lines[-1][:limit]}"


def record_meta(device=None) -> dict:
    """The ``"meta"`` of a benchmark record: :func:`simplex_lib.provenance.provenance` plus the
    FLOP convention the TFLOPS were computed with.

    Parameters
    ----------
    device : torch.device or str, optional
        The device the measurements ran on, passed to :func:`~simplex_lib.provenance.provenance`.

    Returns
    -------
    dict, the provenance fields plus ``flops_convention`` (:data:`FLOPS_CONVENTION`).
    """
    return {**provenance(device), "flops_convention": FLOPS_CONVENTION}


def time_and_peak_memory(make_fn, repeats: int = 1):
    """Median ms of ``fn = make_fn()`` (``triton.testing.do_bench``) and its peak extra memory.

    ``make_fn`` builds the callable (allocating its inputs or graph state); the peak counts
    every byte allocated above what existed before ``make_fn`` ran, during one call of ``fn``.
    Needs a CUDA device (it synchronises and reads the CUDA allocator's statistics).

    Parameters
    ----------
    make_fn : callable
        No arguments; returns the zero-argument callable to time.
    repeats : int, default 1
        Independent ``do_bench`` measurements of the same callable; their spread is the noise
        of the measurement (clock, other work on the GPU), which a comparison must exceed.

    Returns
    -------
    (ms, peak_bytes) : (float, int), or with ``repeats > 1`` (ms, peak_bytes, ms_each)
        Median milliseconds of ``do_bench(fn, warmup=25, rep=100)`` (the median over the
        repeats), the peak in bytes (what ``make_fn`` allocated included), and each repeat's
        median.
    """
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn = make_fn()
    fn()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats!r}")
    each = [do_bench(fn, warmup=25, rep=100, return_mode="median") for _ in range(repeats)]
    if repeats == 1:
        return each[0], peak
    return sorted(each)[(repeats - 1) // 2], peak, each


def random_causal_topk(B: int, N: int, H: int, k: int, *, device="cuda", generator=None) -> torch.Tensor:
    """Random causal selections ``[B, N, H, k]``: ``min(k, i + 1)`` distinct positions ``<= i``
    per query, sorted ascending, the rest ``-1`` (a worst case for memory locality).

    Parameters
    ----------
    B, N, H : int >= 1
        Batch, sequence length and heads of the selection.
    k : int >= 1
        Slots per query (``k > N`` allowed: the extra slots are ``-1``).
    device : torch.device or str, default ``"cuda"``
    generator : torch.Generator, optional
        On ``device``; default: the global RNG.

    Returns
    -------
    int64 Tensor ``[B, N, H, k]``, contiguous; the ``-1`` slots sort first.

    Examples
    --------
    >>> idx = random_causal_topk(1, 5, 1, 3, device="cpu")
    >>> idx[0, 0, 0].tolist(), bool((idx[0, :, 0] <= torch.arange(5)[:, None]).all())
    ([-1, -1, 0], True)
    """
    scores = torch.rand(B, H, N, N, device=device, generator=generator)
    causal = torch.ones(N, N, dtype=torch.bool, device=device).tril()
    scores = scores.masked_fill(~causal, -1.0)
    val, idx = scores.topk(min(k, N), dim=-1)
    idx = torch.where(val >= 0, idx, torch.full_like(idx, -1))
    if k > N:
        idx = torch.cat([idx, idx.new_full((B, H, N, k - N), -1)], dim=-1)
    return idx.sort(dim=-1).values.permute(0, 2, 1, 3).contiguous()


def compiled_kernels(modules=None) -> list[dict]:
    """What the compiler made of every Triton kernel launched so far: registers, spills, shared memory.

    Walks the ``@triton.jit`` functions of ``modules`` (default: the windowed forward and backward
    and the top-k kernels) and reports one row per compiled specialisation. A kernel that has not
    run in this process has no row. ``n_spills > 0`` means values went to local memory (slow);
    ``n_regs`` is per thread, at most 255.

    Parameters
    ----------
    modules : sequence of module, optional
        Where to look for ``@triton.jit`` functions (also those wrapped by ``triton.autotune``).

    Returns
    -------
    list of dict with ``kernel``, ``num_warps``, ``num_stages``, ``shared_bytes``, ``n_regs``,
    ``n_spills`` and ``constexprs`` (the compile-time arguments that name the specialisation).
    """
    from triton.runtime.jit import JITFunction

    if modules is None:
        from simplex_lib.ops.topk import triton as topk_kernels
        from simplex_lib.ops.two_simplicial import backward, forward

        modules = (forward, backward, topk_kernels)
    rows = []
    for mod in modules:
        for name, obj in sorted(vars(mod).items()):
            fn = obj if isinstance(obj, JITFunction) else getattr(obj, "fn", None)  # autotuner: .fn
            if not isinstance(fn, JITFunction):
                continue
            for entry in list(getattr(fn, "device_caches", {}).values()):
                for ck in list(entry[0].values()):
                    if getattr(ck, "n_regs", None) is None:
                        try:
                            ck._init_handles()  # loads the binary, which reports registers and spills
                        except Exception:  # noqa: BLE001  (a kernel that cannot load has no figures)
                            continue
                    md = ck.metadata
                    consts = getattr(ck.src, "constants", {}) or {}
                    named = {}
                    for key, value in consts.items():
                        idx = key[0] if isinstance(key, tuple) else key
                        arg = fn.arg_names[idx] if isinstance(idx, int) and idx < len(fn.arg_names) else str(idx)
                        if isinstance(value, (int, float, str, bool)) and arg.isupper():
                            named[arg] = value
                    rows.append(dict(kernel=name, num_warps=md.num_warps, num_stages=md.num_stages,
                                     shared_bytes=md.shared, n_regs=ck.n_regs, n_spills=ck.n_spills,
                                     constexprs=named))
    return rows


def _timed(make_fn, repeats: int, flops: float) -> dict:
    """``ms``, ``tflops`` and ``peak_extra_bytes`` of one shape; with ``repeats > 1`` also every
    repeat's ``ms_each`` and the TFLOPS range ``tflops_min`` / ``tflops_max``."""
    out = time_and_peak_memory(make_fn, repeats)
    ms, peak = out[0], out[1]
    rec = dict(ms=ms, tflops=flops / ms / 1e9, flops=flops, peak_extra_bytes=int(peak))
    if repeats > 1:
        rec.update(ms_each=out[2], tflops_min=flops / max(out[2]) / 1e9, tflops_max=flops / min(out[2]) / 1e9)
    return rec


def _inputs(B, N, Hq, Hkv, D, dtype, device, grad):
    g = torch.Generator(device=device).manual_seed(0)
    q = torch.randn(B, N, Hq, D, device=device, dtype=dtype, generator=g)
    kv = [torch.randn(B, N, Hkv, D, device=device, dtype=dtype, generator=g) for _ in range(4)]
    return [t.requires_grad_(grad) for t in [q] + kv]


def _mode_fn(f, xs, mode):
    """A zero-argument callable running ``mode`` (``fwd``, ``bwd``, ``fwdbwd``) of ``f(xs)``."""
    if mode == "fwd":
        def fn():
            with torch.no_grad():
                return f(xs)
        return fn
    out = f(xs)
    do = torch.randn_like(out)
    if mode == "bwd":
        return lambda: torch.autograd.grad(out, xs, do, retain_graph=True)
    return lambda: torch.autograd.grad(f(xs), xs, do)


def _hopper_pipelined(q, k1, k2, v1, v2, w1, w2):
    """The pipelined variant of the Gluon Hopper forward as an attention call (forward only)."""
    from simplex_lib.ops.two_simplicial.hopper import hopper_forward
    return hopper_forward(q, k1, k2, v1, v2, w1, w2, q.shape[-1] ** -0.5, pipeline=True)[0]


#: What ``bench_simplicial(impl=...)`` times: the kernels' entry point with a forward backend, the
#: pipelined Gluon forward, or the PyTorch windowed path.
IMPLS = {"kernel": partial(two_simplicial_attention, backend="auto"),
         "portable": partial(two_simplicial_attention, backend="portable"),
         "hopper": partial(two_simplicial_attention, backend="hopper"),
         "hopper-pipelined": _hopper_pipelined, "reference": reference_attention}
#: The ``backend`` a record of each ``impl`` names (``"kernel"``: whichever ``"auto"`` picked).
BACKENDS = {"kernel": "auto", "portable": "portable", "hopper": "hopper",
            "hopper-pipelined": "hopper (pipelined)", "reference": "reference"}


def bench_simplicial(B, N, Hq, Hkv, D, w1, w2, mode, impl="kernel", dtype=torch.bfloat16, repeats=1) -> dict:
    """One timing record of the kernel (or the reference) for one shape and mode.

    Inputs are standard-normal ``q [B, N, Hq, D]`` and ``k1, k2, v1, v2 [B, N, Hkv, D]`` on the
    CUDA device, with seed 0. Needs a GPU.

    Parameters
    ----------
    B, N, Hq, Hkv, D : int
        Batch, sequence length, query heads, key/value heads, head dimension.
    w1, w2 : int
        Windows of the two key sets.
    mode : ``"fwd"``, ``"bwd"`` or ``"fwdbwd"``
        What is timed: the forward (without autograd), the backward of a stored graph, or both.
    impl : ``"kernel"`` (default), ``"portable"``, ``"hopper"``, ``"hopper-pipelined"`` or ``"reference"``
        The kernels' entry point
        (:func:`simplex_lib.ops.two_simplicial.interface.two_simplicial_attention`) with the
        backends it picks (``"kernel"``) or forced ones (``"portable"``, ``"hopper"``), the
        pipelined Gluon forward
        (:func:`simplex_lib.ops.two_simplicial.hopper.hopper_forward`, ``fwd`` only), or the
        PyTorch windowed path. Recorded as ``impl``, ``backend`` (the forward kernel that ran)
        and, where a backward ran, ``bwd_backend``.
    dtype : torch.dtype, default ``torch.bfloat16``
    repeats : int, default 1
        Independent measurements (see :func:`time_and_peak_memory`).

    Returns
    -------
    dict with the shape, ``impl``, ``backend``, ``mode``, ``dtype``, ``ms``, ``tflops``, ``flops`` (from
    :func:`simplex_lib.cost.windowed_flops`), ``peak_extra_bytes``, ``us_per_token`` and
    ``fwd_walk`` and ``bwd_walk`` (the walks the shape's launches take,
    :func:`simplex_lib.ops.two_simplicial.configs.pick_walk`) and ``bwd_short`` (the kernels
    that give the short window's key gradients, ``"ring"``, ``"fused"`` or ``"kv"``,
    :func:`simplex_lib.ops.two_simplicial.backward.short_window_path`; where it is ``"fused"``,
    ``fused_walk`` too, and ``fused_masks`` where ``$SIMPLEX_FUSED_MASKS`` forces it),
    ``fwd_loads`` and ``bwd_loads`` (gathers or TMA tiles,
    :func:`simplex_lib.ops.two_simplicial.configs.pick_loads`) and ``fwd_tail`` (the forward
    offset walk's narrow last tile, 0 for none,
    :func:`simplex_lib.ops.two_simplicial.configs.tail_width`) and ``fwd_tail_pass`` (whether
    that tile is a launch of its own, ``FwdConfig.TAIL_PASS``);
    with ``repeats > 1``
    also ``ms_each``, ``tflops_min`` and ``tflops_max``.

    Raises
    ------
    ValueError
        If ``impl`` is unknown, or ``"hopper-pipelined"`` with a mode other than ``"fwd"``.
    """
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {sorted(IMPLS)}, got {impl!r}")
    if impl == "hopper-pipelined" and mode != "fwd":
        raise ValueError(f"impl 'hopper-pipelined' has a forward only, got mode {mode!r}")
    attn = IMPLS[impl]
    xs = _inputs(B, N, Hq, Hkv, D, dtype, "cuda", grad=mode != "fwd")
    backend = BACKENDS[impl]
    if backend == "auto":
        backend = kernel_backend("forward", xs[0], xs[1], w1, w2)
    kernels = {}
    if impl in ("kernel", "portable", "hopper") and mode != "fwd":
        kernels["bwd_backend"] = kernel_backend("backward", xs[0], xs[1], w1, w2, None, BACKENDS[impl])
    F = windowed_flops(N, w1, w2, batch=B, heads=Hq, head_dim=D, mode=mode)
    rec = _timed(lambda: _mode_fn(lambda x: attn(*x, w1=w1, w2=w2), xs, mode), repeats, F)
    tma = tma_available(*xs[1:])
    bwd = bwd_config(D, Hq // Hkv, w1, w2, tma)
    short = short_window_path(Hq // Hkv, D, min(w1, w2), bwd)
    if short == "fused":  # and how its kernel walks the short window
        kernels["fused_walk"] = bwd.FUSED_WALK
        if bwd.FUSED_MASKS != "every":  # an experiment, where it is forced
            kernels["fused_masks"] = bwd.FUSED_MASKS
    fwd = fwd_config(D, Hq // Hkv, max(w1, w2), min(w1, w2), tma)
    return dict(impl=impl, backend=backend, **kernels, mode=mode, B=B, N=N, Hq=Hq, Hkv=Hkv, D=D, w1=w1, w2=w2,
                dtype=str(dtype).replace("torch.", ""), **rec, us_per_token=1e3 * rec["ms"] / (B * N),
                fwd_walk=fwd.WALK, bwd_walk=bwd.WALK, bwd_short=short, fwd_loads=fwd.LOADS,
                bwd_loads=bwd.LOADS, fwd_tail=fwd.BLOCK_TAIL if fwd.WALK == "offset" else 0,
                fwd_tail_pass=fwd.WALK == "offset" and fwd.TAIL_PASS)


def bench_sdpa(B, N, H, D, mode, dtype=torch.bfloat16, repeats=1) -> dict:
    """Causal torch SDPA, restricted to its flash backend, for comparison.

    The record names the backend that ran (``sdpa_backend``): ``"flash"``, or ``"default"``
    (PyTorch's own choice among cuDNN, flash and memory-efficient) where flash cannot take the
    shape or dtype.

    Parameters
    ----------
    B, N, H, D : int
        Batch, sequence length, heads (no grouping) and head dimension; the inputs are
        ``[B, H, N, D]`` standard-normal CUDA tensors (SDPA's layout).
    mode : ``"fwd"``, ``"bwd"`` or ``"fwdbwd"``
    dtype : torch.dtype, default ``torch.bfloat16``
    repeats : int, default 1
        Independent measurements (see :func:`time_and_peak_memory`).

    Returns
    -------
    dict in the format of :func:`bench_simplicial` (``impl="sdpa"``, ``Hq = Hkv = H``), the
    FLOPs from :func:`simplex_lib.cost.dot_flops`, and ``sdpa_backend``.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel

    g = mode != "fwd"
    xs = [torch.randn(B, H, N, D, device="cuda", dtype=dtype, requires_grad=g) for _ in range(3)]
    F = dot_flops(N, batch=B, heads=H, head_dim=D, mode=mode)

    def sdpa(x):
        return torch.nn.functional.scaled_dot_product_attention(*x, is_causal=True)

    try:
        with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
            rec, backend = _timed(lambda: _mode_fn(sdpa, xs, mode), repeats, F), "flash"
    except RuntimeError:  # no flash kernel for this shape or dtype
        rec, backend = _timed(lambda: _mode_fn(sdpa, xs, mode), repeats, F), "default"
    return dict(impl="sdpa", mode=mode, B=B, N=N, Hq=H, Hkv=H, D=D, **rec, sdpa_backend=backend,
                us_per_token=1e3 * rec["ms"] / (B * N))


def run_benchmark(windows=DEFAULT_WINDOWS, dims=(64, 128), gqa=(64, 1), seqlens=(4096, 8192, 16384),
                  modes=MODES, tokens=16384, heads_gqa=64, heads_mha=16, table1=False,
                  compare_sdpa=True, reference_max_n=0, claim48k=False, progress=True,
                  heads=None, repeats=1, hopper=False, backend="auto") -> dict:
    """Time the kernels over a grid; return ``{"meta", "records"}``.

    ``B = max(1, tokens // N)`` keeps the token count fixed across lengths. A GQA ratio of 1 uses
    ``heads_mha`` query heads (each with its own KV head), a larger ratio ``heads_gqa`` query
    heads sharing ``heads_gqa // ratio`` KV heads. With ``compare_sdpa`` each shape is paired with
    causal SDPA at the context of equal FLOPs (same B, heads, D; ``n = sqrt(2 N w1 w2)``).
    ``reference_max_n > 0`` also times the einsum reference up to that length (forward only).
    A shape that fails is recorded with its ``error`` and the run goes on.

    Parameters
    ----------
    windows : sequence of ``(w1, w2)``, default :data:`DEFAULT_WINDOWS`
    dims : sequence of int, default ``(64, 128)``
        Head dimensions.
    gqa : sequence of int, default ``(64, 1)``
        Query heads per key/value head.
    seqlens : sequence of int, default ``(4096, 8192, 16384)``
    modes : sequence of str, default :data:`MODES`
    tokens : int, default 16384
        ``B * N`` of every shape (``B = max(1, tokens // N)``).
    heads_gqa, heads_mha : int, default 64 and 16
        Query heads with a GQA ratio above 1, and with ratio 1.
    table1 : bool, default False
        Also time the window shapes of the paper's Table 1 (:data:`TABLE1_WINDOWS`) at
        ``B=2, N=8192, Hq=64, Hkv=1, D=128``, forward and forward+backward.
    compare_sdpa : bool, default True
    reference_max_n : int, default 0
    claim48k : bool, default False
        Also time the kernel at ``512 x 32`` and SDPA at 32k and 48k tokens (the crossover claim).
    progress : bool, default True
        Show a progress bar.
    heads : sequence of int, optional
        Query heads for each entry of ``gqa`` (same length; each a multiple of its ratio),
        instead of ``heads_mha`` / ``heads_gqa``; :data:`SHAPE_GRID` uses 16, 32, 32, 64.
    repeats : int, default 1
        Independent measurements of every shape (records then carry their spread).
    hopper : bool, default False
        Also time the Gluon Hopper kernels (``backend="hopper"``; the pipelined forward in
        ``fwd``) beside the portable ones, for each of ``modes``, in group ``"hopper"``, at
        ``B=2, N=8192, Hq=64, Hkv=1``, ``512 x 32``, D 64 and 128.
    backend : ``"auto"`` (default), ``"portable"`` or ``"hopper"``
        The kernels of the grid's records, each direction's
        (:func:`simplex_lib.ops.two_simplicial.interface.kernel_backend`);
        each record names those that ran (``backend``, ``bwd_backend``).

    Returns
    -------
    dict with ``meta`` (:func:`record_meta`) and ``records`` (list of dicts as
    :func:`bench_simplicial` and :func:`bench_sdpa` return, plus ``group``; SDPA records also
    ``paired_with``).
    """
    if heads is None:
        heads = [heads_mha if ratio == 1 else heads_gqa for ratio in gqa]
    if len(heads) != len(gqa) or any(h % r for h, r in zip(heads, gqa)):
        raise ValueError(f"heads must give one multiple of each GQA ratio {list(gqa)}, got {list(heads)}")
    jobs = []
    for (w1, w2) in windows:
        for D in dims:
            for ratio, Hq in zip(gqa, heads):
                Hkv = Hq // ratio
                for N in seqlens:
                    B = max(1, tokens // N)
                    for mode in modes:
                        jobs.append(("kernel", B, N, Hq, Hkv, D, w1, w2, mode))
                        if compare_sdpa:
                            n_eq = int(round(equal_cost_dot_length(N, w1, w2)))
                            jobs.append(("sdpa", B, n_eq, Hq, Hq, D, w1, w2, mode))
                        if mode == "fwd" and N <= reference_max_n:
                            jobs.append(("reference", B, N, Hq, Hkv, D, w1, w2, mode))
    if table1:
        for (w1, w2) in TABLE1_WINDOWS:
            for mode in ("fwd", "fwdbwd"):
                jobs.append(("table1", 2, 8192, 64, 1, 128, w1, w2, mode))
    if hopper:
        for D in (64, 128):
            for mode in modes:
                for impl in ("hopper", "hopper-pipelined", "portable"):
                    if impl != "hopper-pipelined" or mode == "fwd":
                        jobs.append((f"hopper:{impl}", 2, 8192, 64, 1, D, 512, 32, mode))
    if claim48k:
        jobs.append(("claim-kernel", 1, 8192, 64, 1, 128, 512, 32, "fwd"))
        for n in (32768, 49152):
            jobs.append(("claim-sdpa", 1, n, 64, 64, 128, 0, 0, "fwd"))

    records = []
    it = tqdm(jobs, desc="bench", disable=not progress)
    for impl, B, N, Hq, Hkv, D, w1, w2, mode in it:
        it.set_postfix_str(f"{impl} {mode} N{N} D{D} {w1}x{w2} G{Hq // Hkv}")
        try:
            if impl in ("sdpa", "claim-sdpa"):
                rec = bench_sdpa(B, N, Hq, D, mode, repeats=repeats)
                rec["paired_with"] = [w1, w2]
                if impl == "sdpa":
                    rec["paired_N"] = int(round(N ** 2 / (2 * w1 * w2) / 256)) * 256
            elif impl.startswith("hopper:"):
                rec = bench_simplicial(B, N, Hq, Hkv, D, w1, w2, mode, repeats=repeats, impl=impl[7:])
            else:
                grid_impl = {"auto": "kernel"}.get(backend, backend)
                rec = bench_simplicial(B, N, Hq, Hkv, D, w1, w2, mode, repeats=repeats,
                                       impl="reference" if impl == "reference" else grid_impl)
            rec["group"] = impl.split(":")[0]
        except Exception as e:  # record and continue: one failing shape must not lose the run
            rec = dict(group=impl, mode=mode, B=B, N=N, Hq=Hq, Hkv=Hkv, D=D, w1=w1, w2=w2,
                       error=_error_line(e))
        records.append(rec)
        torch.cuda.empty_cache()
    return {"meta": record_meta(), "records": records}


def _bench_indexer(B, N, k, heads, dim, dtype, device="cuda") -> list:
    """Two records of the indexer (scores of every past key and the top-``k`` selection):
    ``"topk-indexer"``, the reference path of :mod:`simplex_lib.selection` (all ``n^2`` scores,
    then a sort), and ``"topk-indexer-fused"``, the fused kernel
    :func:`simplex_lib.ops.topk.indexer.indexer_topk_triton`."""
    from simplex_lib.ops.topk.indexer import indexer_topk_triton
    from simplex_lib.selection import indexer_scores, topk_indices

    qi = torch.randn(B, N, heads, dim, device=device, dtype=dtype)
    ki = torch.randn(B, N, 1, dim, device=device, dtype=dtype)
    F = indexer_flops(N, batch=B, indexer_heads=heads, indexer_dim=dim)
    out = []
    for group, f in (("topk-indexer", lambda: topk_indices(indexer_scores(qi, ki), k)),
                     ("topk-indexer-fused", lambda: indexer_topk_triton(qi, ki, k))):
        rec = dict(group=group, mode="fwd", B=B, N=N, k=k, indexer_heads=heads, indexer_dim=dim,
                   dtype=str(dtype))
        try:
            ms, peak = time_and_peak_memory(lambda: f)
            out.append({**rec, "ms": ms, "tflops": F / ms / 1e9, "flops": F, "peak_extra_bytes": peak})
        except Exception as e:  # keep the run going; the record says what failed
            out.append({**rec, "error": _error_line(e)})
    return out


def bench_topk(seqlens=(2048, 4096, 8192), pairs=((128, (512, 32)), (64, (128, 32))), tokens=8192,
               Hq=64, Hkv=1, D=128, modes=("fwd", "bwd"), dtype=torch.bfloat16,
               indexer_heads=4, indexer_dim=32) -> list:
    """Time the top-k kernel (random causal selections shared by all heads) beside the windowed
    kernel at the same pair count ``k^2 = w1 * w2``; records in the format of
    :mod:`simplex_lib.bench_plots` (groups ``"topk-kernel"`` and ``"window-kernel"``).

    Needs a GPU; prints each record as it is made.

    Parameters
    ----------
    seqlens : sequence of int, default ``(2048, 4096, 8192)``
    pairs : sequence of ``(k, (w1, w2))``, default ``((128, (512, 32)), (64, (128, 32)))``
        Top-k size and the window shape it is compared with.
    tokens : int, default 8192
        ``B * N`` of every shape (``B = max(1, tokens // N)``).
    Hq, Hkv, D : int, default 64, 1, 128
        Query heads, key/value heads, head dimension.
    modes : sequence of str, default ``("fwd", "bwd")``
    dtype : torch.dtype, default ``torch.bfloat16``
    indexer_heads, indexer_dim : int, default 4 and 32
        The DSA-style indexer timed per length: ReLU scores of every past key and the
        selection of the largest ``k``, by the reference path
        (:func:`simplex_lib.selection.indexer_scores`, then
        :func:`simplex_lib.selection.topk_indices`; group ``"topk-indexer"``) and by the fused
        kernel (:func:`simplex_lib.ops.topk.indexer.indexer_topk_triton`; group
        ``"topk-indexer-fused"``), both counted with :func:`simplex_lib.cost.indexer_flops`.

    Returns
    -------
    list of dict
        Shape, ``group``, ``mode``, ``ms``, ``tflops``, ``flops`` (every attention group counted
        with :func:`simplex_lib.cost.topk_flops` at ``k``), ``peak_extra_bytes`` and ``k`` or
        ``w1, w2``; a failed measurement has ``error`` instead of the numbers. The groups:
        ``"topk-kernel"`` (one selection shared by all heads), ``"topk-kernel-deterministic"``
        (the same with ``deterministic=True``, backward only), ``"topk-kernel-per-head"`` (a
        selection per query head) and ``"window-kernel"``. Top-k records also name the forward
        that ran, ``topk_kernel`` (``"packed"`` or ``"row"``, see
        :func:`simplex_lib.ops.topk.triton.topk_dispatch`; ``$SIMPLEX_TOPK_KERNEL`` forces one).
    """
    recs = []
    for N in seqlens:
        B = max(1, tokens // N)
        xs = [torch.randn(B, N, h, D, device="cuda", dtype=dtype) for h in (Hq, Hkv, Hkv, Hkv, Hkv)]
        for rec in _bench_indexer(B, N, max(k for k, _ in pairs), indexer_heads, indexer_dim, dtype):
            recs.append(rec)
            print(rec, flush=True)
        for k, (w1, w2) in pairs:
            idx = random_causal_topk(B, N, 1, k)
            # one selection per query head, drawn 8 heads at a time (the scores are [B, H, N, N])
            idx_heads = torch.cat([random_causal_topk(B, N, min(8, Hq - h), k) for h in range(0, Hq, 8)], 2)
            runs = (("topk-kernel", lambda x: topk_two_simplicial_attention_triton(*x, idx),
                     dict(k=k, topk_kernel=topk_dispatch(1, None, Hq, Hkv))),
                    ("topk-kernel-deterministic",
                     lambda x: topk_two_simplicial_attention_triton(*x, idx, deterministic=True),
                     dict(k=k, topk_kernel=topk_dispatch(1, None, Hq, Hkv), deterministic=True)),
                    ("topk-kernel-per-head", lambda x: topk_two_simplicial_attention_triton(*x, idx_heads),
                     dict(k=k, topk_kernel=topk_dispatch(Hq, None, Hq, Hkv))),
                    ("window-kernel", lambda x: two_simplicial_attention(*x, w1=w1, w2=w2),
                     dict(w1=w1, w2=w2)))
            for group, f, extra in runs:
                for mode in modes:
                    if group == "topk-kernel-deterministic" and mode == "fwd":
                        continue  # the forward is the default one
                    leaves = [t.detach().requires_grad_(mode != "fwd") for t in xs]
                    try:
                        ms, peak = time_and_peak_memory(lambda: _mode_fn(f, leaves, mode))
                        F = topk_flops(N, k, batch=B, heads=Hq, head_dim=D, mode=mode)
                        recs.append(dict(group=group, mode=mode, B=B, N=N, Hq=Hq, Hkv=Hkv, D=D,
                                         dtype=str(dtype), ms=ms, tflops=F / ms / 1e9, flops=F,
                                         selection="window" if group == "window-kernel" else "random",
                                         peak_extra_bytes=peak, **extra))
                    except Exception as e:  # keep the run going; the record says what failed
                        recs.append(dict(group=group, mode=mode, B=B, N=N, Hq=Hq, Hkv=Hkv, D=D,
                                         error=_error_line(e), **extra))
                    print(recs[-1], flush=True)
                    torch.cuda.empty_cache()
    return recs
