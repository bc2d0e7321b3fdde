"""Honest timings: warm up, repeat, report the median.

A single ``time.time()`` around one call measures tracing, memory allocation and whatever else
the machine was doing. :func:`measure` runs ``warmup`` untimed calls first (so a ``tf.function``
is traced before the clock starts), then ``repeats`` timed rounds of ``number`` calls each, and
reports the median and the best round per call.

TensorFlow runs ops asynchronously on GPUs: make ``fn`` return something that forces the result
(``.numpy()``), or the clock stops before the work does.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tfpcourse._validate import check_int

__all__ = ["Timing", "measure"]


@dataclass(frozen=True)
class Timing:
    """Seconds per call: ``median`` and ``best`` over ``repeats`` rounds of ``number`` calls."""

    median: float
    best: float
    repeats: int
    number: int

    @property
    def per_second(self) -> float:
        """Calls per second at the median time."""
        return 1.0 / self.median if self.median > 0 else float("inf")

    def __str__(self) -> str:
        return (
            f"{_fmt(self.median)} per call "
            f"(best {_fmt(self.best)}, {self.repeats}x{self.number} calls)"
        )


def _fmt(seconds: float) -> str:
    if seconds >= 1.0:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"


def measure(
    fn: Callable[[], Any], *, repeats: int = 5, number: int = 1, warmup: int = 1
) -> Timing:
    """Time ``fn()``: ``warmup`` untimed calls, then ``repeats`` rounds of ``number`` calls.

    >>> t = measure(lambda: sum(range(1000)), repeats=3, number=10)
    >>> t.median > 0
    True
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    repeats = check_int("repeats", repeats, minimum=1)
    number = check_int("number", number, minimum=1)
    warmup = check_int("warmup", warmup, minimum=0)
    for _ in range(warmup):
        fn()
    rounds = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        rounds.append((time.perf_counter() - start) / number)
    return Timing(
        median=statistics.median(rounds), best=min(rounds), repeats=repeats, number=number
    )
