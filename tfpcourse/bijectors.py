"""Check that a bijector is what it claims to be.

A bijector promises four things, and a mistake in any of them silently gives wrong densities:

1. **Round trip**: ``inverse(forward(x)) == x``.
2. **Log-det-Jacobian**: ``forward_log_det_jacobian(x)`` equals ``log |det J(x)|``, where ``J`` is
   the Jacobian of ``forward``. :func:`check_bijector` compares it with the Jacobian that
   automatic differentiation computes, so a hand-written formula is checked against the code
   of ``forward`` itself.
3. **Consistency**: ``inverse_log_det_jacobian(forward(x)) == -forward_log_det_jacobian(x)``.
4. **Shapes**: ``forward`` returns ``forward_event_shape(x.shape)`` and the log-det broadcasts to
   the batch shape of ``x`` (its shape without the event dimensions).

>>> check = check_bijector(tfb.Exp(), np.linspace(-2, 2, 9))  # doctest: +SKIP
>>> check.passed                                                  # doctest: +SKIP
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tfpcourse._validate import check_choice, check_number

__all__ = ["BijectorCheck", "check_bijector"]

_ROUNDOFF = {"float32": 1e-6, "float64": 1e-12}


@dataclass(frozen=True)
class BijectorCheck:
    """The result of :func:`check_bijector`. Errors are the largest absolute differences over
    the points checked; ``passed`` applies the tolerances."""

    name: str
    event_ndims: int
    n_points: int
    roundtrip_error: float
    log_det_error: float
    consistency_error: float
    shapes_ok: bool
    nonfinite: int
    atol: float
    rtol: float
    roundtrip_ok: bool
    log_det_ok: bool
    consistency_ok: bool
    notes: tuple[str, ...] = ()
    roundoff: float = 0.0
    """Errors below this are reported as round-off instead of as a number: ``1e-6`` for a
    float32 bijector, ``1e-12`` for float64 (a few machine epsilons, at values of order 1).
    The exact digits of a round-off error change with the CPU and the TensorFlow version;
    that the error is at round-off level does not."""

    @property
    def passed(self) -> bool:
        """All four properties hold within the tolerances, at finite values."""
        return (
            self.roundtrip_ok
            and self.log_det_ok
            and self.consistency_ok
            and self.shapes_ok
            and self.nonfinite == 0
        )

    def __str__(self) -> str:
        def mark(ok: bool) -> str:
            return "ok  " if ok else "FAIL"

        rows = [
            (self.roundtrip_ok, "round trip", "max |inverse(forward(x)) - x|",
             self.roundtrip_error),
            (self.log_det_ok, "log-det vs autodiff", "max |fldj(x) - log|det J(x)||",
             self.log_det_error),
            (self.consistency_ok, "fldj + ildj = 0", "max |fldj(x) + ildj(forward(x))|",
             self.consistency_error),
        ]
        lines = [
            f"{self.name} (event_ndims={self.event_ndims}, {self.n_points} points, "
            f"atol={self.atol:g}, rtol={self.rtol:g})"
        ]
        def value(err: float) -> str:
            if err < self.roundoff:
                return f"< {self.roundoff:.0e} (round-off)"
            return f"= {err:.1e}"

        lines += [f"  {mark(ok)} {what:20s} {how:34s} {value(err)}"
                  for ok, what, how, err in rows]
        lines.append(f"  {mark(self.shapes_ok)} shapes")
        if self.nonfinite:
            lines.append(f"  FAIL {self.nonfinite} non-finite values (inf or nan)")
        lines += [f"  note: {n}" for n in self.notes]
        lines.append(f"  => {'passed' if self.passed else 'FAILED'}")
        return "\n".join(lines)

    def assert_ok(self) -> None:
        """Raise ``AssertionError`` with the report if the check failed."""
        if not self.passed:
            raise AssertionError(f"bijector check failed:\n{self}")


def _close(a: np.ndarray, b: np.ndarray, atol: float, rtol: float) -> bool:
    with np.errstate(invalid="ignore"):  # inf - inf: counted separately as non-finite
        return bool(np.all(np.abs(a - b) <= atol + rtol * np.abs(b)))


def _max_abs(a: np.ndarray) -> float:
    finite = a[np.isfinite(a)]
    return float(np.max(np.abs(finite))) if finite.size else 0.0


def check_bijector(
    bijector: Any,
    x: Any,
    *,
    event_ndims: int = 0,
    atol: float = 1e-5,
    rtol: float = 1e-4,
) -> BijectorCheck:
    """Check a bijector's round trip, log-det-Jacobian, consistency and shapes at points ``x``.

    Parameters
    ----------
    bijector:
        A ``tfp.bijectors.Bijector``.
    x:
        Points in the bijector's domain: an array whose last ``event_ndims`` dimensions are one
        event. Use points where the bijector is smooth (a log-det of ``-inf`` is reported as a
        failure, because densities there are not defined).
    event_ndims:
        0 for bijectors acting on scalars element by element, 1 for bijectors on vectors.
    atol, rtol:
        A value ``a`` matches a reference ``b`` when ``|a - b| <= atol + rtol * |b|``.

    Returns
    -------
    BijectorCheck
        Print it for a report; ``.passed`` is the verdict; ``.assert_ok()`` raises.
    """
    import tensorflow as tf
    import tensorflow_probability as tfp

    if not isinstance(bijector, tfp.bijectors.Bijector):
        raise TypeError(
            f"bijector must be a tfp.bijectors.Bijector, got {type(bijector).__name__}"
        )
    check_choice("event_ndims", event_ndims, (0, 1))
    atol = check_number("atol", atol, minimum=0.0)
    rtol = check_number("rtol", rtol, minimum=0.0)
    dtype = bijector.dtype or tf.float32
    x = tf.convert_to_tensor(np.asarray(x), dtype=dtype)
    if x.shape.rank is None or x.shape.rank < event_ndims or x.shape.num_elements() == 0:
        raise ValueError(
            f"x must have at least {event_ndims} dimension(s) and some points, "
            f"got shape {x.shape.as_list()}"
        )
    notes: list[str] = []

    # Forward and the Jacobian by automatic differentiation.
    if event_ndims == 0:
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = bijector.forward(x)
            total = tf.reduce_sum(y)
        derivative = tape.gradient(total, x)
        log_det_autodiff = tf.math.log(tf.abs(derivative))
    else:
        d = x.shape[-1]
        flat = tf.reshape(x, (-1, d))
        with tf.GradientTape() as tape:
            tape.watch(flat)
            y_flat = bijector.forward(flat)
        jac = tape.batch_jacobian(y_flat, flat)
        _, log_abs_det = tf.linalg.slogdet(jac)
        log_det_autodiff = tf.reshape(log_abs_det, x.shape[:-1])
        y = bijector.forward(x)

    fldj = bijector.forward_log_det_jacobian(x, event_ndims=event_ndims)
    # TFP caches forward/inverse pairs: inverse(y) of the very tensor forward returned gives
    # back the cached x without running _inverse. A fresh copy of y defeats the cache, so the
    # inverse and its log-det are really computed.
    y_fresh = tf.constant(np.asarray(y))
    x_back = bijector.inverse(y_fresh)
    ildj = bijector.inverse_log_det_jacobian(y_fresh, event_ndims=event_ndims)
    batch_shape = x.shape[: x.shape.rank - event_ndims]

    # Shapes.
    shapes_ok = True
    expected_y = bijector.forward_event_shape(x.shape)
    if y.shape != expected_y:
        shapes_ok = False
        notes.append(f"forward gave shape {y.shape}, forward_event_shape says {expected_y}")
    if x_back.shape != x.shape:
        shapes_ok = False
        notes.append(f"inverse(forward(x)) has shape {x_back.shape}, x has {x.shape}")
    for label, value in (("forward_log_det_jacobian", fldj), ("inverse_log_det_jacobian", ildj)):
        try:
            tf.broadcast_static_shape(value.shape, batch_shape)
        except ValueError:
            shapes_ok = False
            notes.append(f"{label} has shape {value.shape}, not broadcastable to {batch_shape}")
    if not shapes_ok:
        # Values cannot be compared element by element; report shapes only.
        nan = float("nan")
        return BijectorCheck(bijector.name, event_ndims, int(batch_shape.num_elements() or 0),
                             nan, nan, nan, False, 0, atol, rtol, False, False, False,
                             tuple(notes))

    fldj_b = np.broadcast_to(np.asarray(fldj), batch_shape).astype(np.float64)
    ildj_b = np.broadcast_to(np.asarray(ildj), batch_shape).astype(np.float64)
    x_np, back_np = np.asarray(x, np.float64), np.asarray(x_back, np.float64)
    auto = np.asarray(log_det_autodiff, np.float64)
    with np.errstate(invalid="ignore"):
        sums = fldj_b + ildj_b
    nonfinite = int(np.sum(~np.isfinite(fldj_b)) + np.sum(~np.isfinite(back_np))
                    + np.sum(~np.isfinite(auto)))
    if nonfinite:
        notes.append("non-finite values: the bijector is not smooth (or not invertible) at "
                     "some of the points")
    roundtrip_ok = _close(back_np, x_np, atol, rtol)
    log_det_ok = _close(fldj_b, auto, atol, rtol)
    consistency_ok = _close(-ildj_b, fldj_b, atol, rtol)
    return BijectorCheck(
        name=bijector.name,
        event_ndims=event_ndims,
        n_points=int(batch_shape.num_elements() or 1),
        roundtrip_error=_max_abs(back_np - x_np),
        log_det_error=_max_abs(np.subtract(fldj_b, auto, out=np.zeros_like(fldj_b),
                                           where=np.isfinite(auto) & np.isfinite(fldj_b))),
        consistency_error=_max_abs(sums),
        shapes_ok=True,
        nonfinite=nonfinite,
        atol=atol,
        rtol=rtol,
        roundtrip_ok=roundtrip_ok,
        log_det_ok=log_det_ok,
        consistency_ok=consistency_ok,
        notes=tuple(notes),
        roundoff=_ROUNDOFF.get(tf.as_dtype(dtype).name, 0.0),
    )
