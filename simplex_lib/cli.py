"""Argument types for the command-line tools: a bad value is argparse's one-line ``error:``.

Each function here is an argparse ``type=``: it returns the parsed value or raises
``argparse.ArgumentTypeError``, which argparse prints as ``usage: ...`` plus one ``error:``
line naming the flag, and exits with status 2.

Examples
--------
>>> import argparse
>>> ap = argparse.ArgumentParser(prog="demo")
>>> _ = ap.add_argument("--steps", type=int_at_least(1))
>>> _ = ap.add_argument("--dims", type=int_list(1))
>>> ap.parse_args(["--steps", "3", "--dims", "64,128"])
Namespace(steps=3, dims=(64, 128))
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

__all__ = ["int_at_least", "int_list", "positive_float"]


def int_at_least(low: int) -> Callable[[str], int]:
    """An argparse type for an integer ``>= low``.

    Parameters
    ----------
    low : int
        The smallest value accepted.

    Returns
    -------
    callable ``str -> int``
    """

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    return parse


def int_list(low: int) -> Callable[[str], tuple[int, ...]]:
    """An argparse type for comma-separated integers, each ``>= low`` (``"64,128"``).

    Parameters
    ----------
    low : int
        The smallest value accepted for every entry.

    Returns
    -------
    callable ``str -> tuple[int, ...]``
    """
    one = int_at_least(low)

    def parse(text: str) -> tuple[int, ...]:
        parts = [p for p in text.split(",")]
        if not text or any(not p.strip() for p in parts):
            raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
        return tuple(one(p) for p in parts)

    return parse


def positive_float(text: str) -> float:
    """An argparse type for a finite number ``> 0``.

    Parameters
    ----------
    text : str
        The flag's value as typed.

    Returns
    -------
    float
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value
