"""Answer checks for the exercises: each tells the student, in plain words, whether an answer
is right and, if not, what differs.

Every exercise in the course ends with a *check cell*::

    check.close("kl", kl, expected=0.4431, atol=1e-3)

which shows ``✓ Correct: ...`` or ``✗ Not yet: ...`` followed by the reason (a shape that
differs, the largest difference and where it is, a value that is still ``None`` because the
exercise cell has not been filled in yet). Checks never raise on a wrong answer, so "Run all"
still reaches the end of a notebook; each returns a :class:`CheckResult` whose ``passed``
attribute the course's tests read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tfpcourse._validate import check_number

__all__ = ["CheckResult", "bijector", "close", "equal", "shapes", "that"]

PASS_MARK = "✓ Correct"
FAIL_MARK = "✗ Not yet"


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: ``passed`` and a sentence for the student."""

    name: str
    passed: bool
    message: str

    def __str__(self) -> str:
        mark = PASS_MARK if self.passed else FAIL_MARK
        return f"{mark} ({self.name}): {self.message}"

    def __repr__(self) -> str:  # what a notebook shows for a check cell's last expression
        return str(self)

    def __bool__(self) -> bool:
        return self.passed


def _missing(name: str, answer: Any) -> CheckResult | None:
    if answer is None:
        return CheckResult(
            name, False,
            f"`{name}` is still None. Fill in the exercise cell above, run it, then run this "
            f"check again.",
        )
    if answer is Ellipsis:
        return CheckResult(name, False, f"`{name}` is still `...`: replace it with your answer.")
    return None


def _as_array(value: Any) -> np.ndarray:
    if hasattr(value, "numpy"):
        value = value.numpy()
    return np.asarray(value)


def close(
    name: str,
    answer: Any,
    expected: Any,
    *,
    atol: float = 1e-6,
    rtol: float = 1e-5,
) -> CheckResult:
    """Check that an array-like answer equals ``expected`` within a tolerance.

    Passes when ``|answer - expected| <= atol + rtol * |expected|`` everywhere (NumPy's
    ``allclose`` rule) and the shapes are equal. On failure the message says which: the shape,
    a NaN, or the largest difference, where it is, and the tolerance.
    """
    atol = check_number("atol", atol, minimum=0.0)
    rtol = check_number("rtol", rtol, minimum=0.0)
    missing = _missing(name, answer)
    if missing is not None:
        return missing
    try:
        got = _as_array(answer).astype(float)
    except (TypeError, ValueError):
        return CheckResult(
            name, False,
            f"`{name}` should be a number or an array of numbers, got {type(answer).__name__}.",
        )
    want = _as_array(expected).astype(float)
    if got.shape != want.shape:
        return CheckResult(
            name, False,
            f"`{name}` has shape {got.shape}, expected {want.shape}. Check which axes you "
            f"reduced or kept.",
        )
    if np.isnan(got).any() and not np.isnan(want).any():
        return CheckResult(name, False, f"`{name}` contains NaN (not a number) values.")
    if np.allclose(got, want, atol=atol, rtol=rtol, equal_nan=True):
        return CheckResult(name, True, f"`{name}` matches the expected value.")
    diff = np.abs(got - want)
    diff = np.where(np.isnan(diff), np.inf, diff)
    where = np.unravel_index(int(np.argmax(diff)), diff.shape) if diff.ndim else ()
    at = f" at index {tuple(int(i) for i in where)}" if diff.ndim else ""
    return CheckResult(
        name, False,
        f"`{name}` differs from the expected value: largest difference "
        f"{float(diff.max()):.3g}{at} (got {float(got[where]):.6g}, expected "
        f"{float(want[where]):.6g}); allowed: {atol:g} + {rtol:g} x |expected|.",
    )


def equal(name: str, answer: Any, expected: Any) -> CheckResult:
    """Check an exact answer: an integer, a string, a shape, a tuple."""
    missing = _missing(name, answer)
    if missing is not None:
        return missing
    if hasattr(answer, "as_list"):  # tf.TensorShape
        answer = tuple(answer.as_list())
    if hasattr(expected, "as_list"):
        expected = tuple(expected.as_list())
    if isinstance(answer, list):
        answer = tuple(answer)
    if isinstance(expected, list):
        expected = tuple(expected)
    if answer == expected:
        return CheckResult(name, True, f"`{name}` is {expected!r}.")
    return CheckResult(name, False, f"`{name}` is {answer!r}, expected {expected!r}.")


def that(name: str, condition: Any, explanation: str) -> CheckResult:
    """Check a property of an answer; ``explanation`` says what should hold (shown either way).

    ``condition`` may also be a function of no arguments (called here, so an exception in it,
    e.g. from an answer that is still ``None``, becomes a "not yet" with the error named).
    """
    if not isinstance(explanation, str) or not explanation:
        raise TypeError("explanation must be a non-empty sentence saying what should hold")
    if callable(condition):
        try:
            condition = condition()
        except Exception as error:  # the student's answer broke the check: explain, not crash
            return CheckResult(
                name, False,
                f"{explanation} - could not be checked: {type(error).__name__}: {error}",
            )
    if condition is None:
        return CheckResult(name, False, f"{explanation} - the answer is still None.")
    passed = bool(np.all(_as_array(condition)))
    return CheckResult(name, passed, explanation if passed else f"expected: {explanation}.")


def shapes(
    name: str,
    dist: Any,
    *,
    batch_shape: Sequence[int],
    event_shape: Sequence[int],
) -> CheckResult:
    """Check a TFP distribution's batch and event shapes."""
    missing = _missing(name, dist)
    if missing is not None:
        return missing
    if not hasattr(dist, "batch_shape") or not hasattr(dist, "event_shape"):
        return CheckResult(
            name, False, f"`{name}` should be a TFP distribution, got {type(dist).__name__}."
        )
    got_b = tuple(dist.batch_shape.as_list())
    got_e = tuple(dist.event_shape.as_list())
    want_b, want_e = tuple(batch_shape), tuple(event_shape)
    if (got_b, got_e) == (want_b, want_e):
        return CheckResult(
            name, True, f"batch shape {list(want_b)} and event shape {list(want_e)}."
        )
    parts = []
    if got_b != want_b:
        parts.append(f"batch shape is {list(got_b)}, expected {list(want_b)}")
    if got_e != want_e:
        parts.append(f"event shape is {list(got_e)}, expected {list(want_e)}")
    hint = (" (tfd.Independent moves batch dimensions into the event)"
            if got_b + got_e == want_b + want_e else "")
    return CheckResult(name, False, "; ".join(parts) + hint + ".")


def bijector(
    name: str,
    bij: Any,
    x: Any,
    *,
    event_ndims: int = 0,
    expected_forward: Callable[[Any], Any] | None = None,
    **kwargs: Any,
) -> CheckResult:
    """Check a bijector with chapter 03's checker (round trip, log-det against autodiff,
    shapes) at the points ``x``; optionally also its forward map against
    ``expected_forward``. Extra keyword arguments go to
    :func:`tfpcourse.bijectors.check_bijector`."""
    missing = _missing(name, bij)
    if missing is not None:
        return missing
    from tfpcourse.bijectors import check_bijector

    try:
        report = check_bijector(bij, x, event_ndims=event_ndims, **kwargs)
    except Exception as error:
        return CheckResult(name, False, f"the checker could not run: {type(error).__name__}: "
                                        f"{error}")
    if not report.passed:
        failed = [what for ok, what in (
            (report.roundtrip_ok, f"round trip (error {report.roundtrip_error:.1e})"),
            (report.log_det_ok, f"log-det-Jacobian vs autodiff (error {report.log_det_error:.1e})"),
            (report.consistency_ok, "forward and inverse log-dets do not cancel"),
            (report.shapes_ok, "output shapes"),
            (report.nonfinite == 0, f"{report.nonfinite} non-finite values"),
        ) if not ok]
        return CheckResult(name, False, "the bijector fails: " + "; ".join(failed) + ".")
    if expected_forward is not None:
        result = close(f"{name}.forward(x)", bij.forward(x), expected_forward(x),
                       atol=1e-5, rtol=1e-4)
        if not result.passed:
            return CheckResult(name, False, result.message)
    return CheckResult(name, True, "round trip, log-det-Jacobian and shapes all check out.")
