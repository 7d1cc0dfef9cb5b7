"""One comparison helper for the tests and the chapters.

Every fast path in the library is checked against a float64 reference the same way: the relative
L2 error of the output, and of each gradient, must stay under a tolerance.  Where an exact
gradient vanishes (a single position, say) only rounding is left, and an absolute bound on the
difference takes the place of the relative one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

__all__ = ["rel_error", "assert_close", "gradients", "assert_gradients_close"]


def rel_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    """Relative L2 error ``‖out − ref‖ / ‖ref‖``, computed in float64 on the CPU.

    When ``ref`` is all zeros the absolute norm ``‖out‖`` is returned instead.

    Parameters
    ----------
    out : Tensor, any shape, dtype and device
        The value to judge (detached first).
    ref : Tensor of ``out``'s shape
        The reference, typically float64.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If the shapes differ.

    Examples
    --------
    >>> rel_error(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0]))
    0.0
    >>> round(rel_error(torch.tensor([3.0, 4.0]), torch.tensor([0.0, 0.0])), 6)
    5.0
    """
    if out.shape != ref.shape:
        raise ValueError(f"out has shape {tuple(out.shape)} but ref has {tuple(ref.shape)}")
    o = out.detach().to("cpu", torch.float64)
    r = ref.detach().to("cpu", torch.float64)
    denom = r.norm()
    diff = (o - r).norm()
    return float(diff / denom) if denom > 0 else float(diff)


def assert_close(name: str, ref: torch.Tensor, out: torch.Tensor, tol: float, *,
                 atol_if_vanishing: float | None = 1e-4) -> float:
    """Assert that ``out`` matches ``ref`` to relative L2 error ``tol``; return the error.

    ``out`` must be finite and have ``ref``'s shape.  If ``ref`` vanishes (every entry below
    1e-12 in magnitude) only rounding is left, and ``max |out − ref| < atol_if_vanishing``
    is accepted instead (pass ``None`` to demand the relative bound regardless).

    Parameters
    ----------
    name : str
        What is compared, for the error message (``"o"``, ``"dq"``, ...).
    ref : Tensor
        The reference (note the order: reference first).
    out : Tensor of ``ref``'s shape
    tol : float
        Bound on :func:`rel_error` (strict: ``err < tol``).
    atol_if_vanishing : float or None, default 1e-4

    Returns
    -------
    float, the relative error.

    Raises
    ------
    AssertionError
        If the shapes differ, ``out`` has a non-finite entry, or the error is not below ``tol``
        (and the vanishing-reference exception does not apply).

    Examples
    --------
    >>> assert_close("o", torch.ones(3), torch.ones(3) * (1 + 1e-9), 1e-6) < 1e-6
    True
    """
    if out.shape != ref.shape:
        raise AssertionError(f"{name}: shape {tuple(out.shape)}, expected {tuple(ref.shape)}")
    if not torch.isfinite(out).all():
        raise AssertionError(f"{name}: not finite ({int((~torch.isfinite(out)).sum())} entries)")
    err = rel_error(out, ref)
    if err < tol:
        return err
    r = ref.detach().to("cpu", torch.float64)
    if atol_if_vanishing is not None and r.abs().max() < 1e-12:
        worst = float((out.detach().to("cpu", torch.float64) - r).abs().max())
        if worst < atol_if_vanishing:
            return err
    raise AssertionError(f"{name}: relative error {err:.2e} ≥ {tol:.1e}")


def gradients(out: torch.Tensor, inputs: Sequence[torch.Tensor],
              grad_out: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``d(out · grad_out)/d inputs`` for every input (``torch.autograd.grad``, graph kept).

    Parameters
    ----------
    out : Tensor
        A result of ``inputs`` with a graph.
    inputs : sequence of Tensor
        Leaves (or graph nodes) that require grad; each must be used by ``out``.
    grad_out : Tensor of ``out``'s shape
        Cast to ``out``'s device and dtype first.

    Returns
    -------
    tuple of Tensor, one gradient per input, each of its input's shape.
    """
    return torch.autograd.grad(out, list(inputs), grad_out.to(out.device, out.dtype),
                               retain_graph=True)


def assert_gradients_close(fn: Callable[..., torch.Tensor], ref_fn: Callable[..., torch.Tensor],
                           inputs: Sequence[torch.Tensor], *, names: Sequence[str] | None = None,
                           tol: float, dtype: torch.dtype = torch.float32,
                           device: str | torch.device = "cpu",
                           generator: torch.Generator | None = None) -> dict[str, float]:
    """Check ``fn`` against ``ref_fn`` in float64: the output and every input's gradient.

    ``inputs`` are float64 CPU tensors.  ``fn`` receives copies cast to ``dtype`` on ``device``;
    ``ref_fn`` receives float64 copies.  One random output gradient (drawn from ``generator``)
    is back-propagated through both.  Returns the relative error of each checked quantity,
    keyed ``"out"`` and then by ``names`` (default ``x0, x1, …``).

    Parameters
    ----------
    fn : callable
        The path under test, ``fn(*inputs) -> Tensor``.
    ref_fn : callable
        The float64 reference with the same signature.
    inputs : sequence of Tensor
        Floating tensors (any shapes).
    names : sequence of str, optional
        One per input, for the result's keys and the messages.
    tol : float
        Bound on each relative error, as in :func:`assert_close`.
    dtype : torch.dtype, default ``torch.float32``
    device : str or torch.device, default ``"cpu"``
    generator : torch.Generator, optional
        A CPU generator for the output gradient (default: the global RNG).

    Returns
    -------
    dict ``{name: float}``

    Raises
    ------
    ValueError
        If ``names`` does not have one entry per input.
    AssertionError
        If the output or a gradient fails :func:`assert_close`.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(4, 3, generator=g, dtype=torch.float64)
    >>> errs = assert_gradients_close(torch.tanh, torch.tanh, [x], tol=1e-6, generator=g)
    >>> sorted(errs)
    ['out', 'x0']
    """
    names = list(names) if names is not None else [f"x{i}" for i in range(len(inputs))]
    if len(names) != len(inputs):
        raise ValueError(f"names has {len(names)} entries but inputs has {len(inputs)}")
    xs = [t.detach().to(device, dtype).requires_grad_(True) for t in inputs]
    xr = [t.detach().to("cpu", torch.float64).requires_grad_(True) for t in inputs]
    out, ref = fn(*xs), ref_fn(*xr)
    errors = {"out": assert_close("out", ref, out, tol)}
    grad_out = torch.randn(ref.shape, generator=generator, dtype=torch.float64)
    for name, g, w in zip(names, gradients(out, xs, grad_out), gradients(ref, xr, grad_out)):
        errors[name] = assert_close(f"d{name}", w, g, tol)
    return errors
