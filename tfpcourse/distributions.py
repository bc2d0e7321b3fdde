"""Small helpers for working with TFP distributions: shapes and Monte Carlo KL divergence.

:func:`describe_shapes` answers "what shapes will I get?" for any distribution: its batch and
event shapes, and the shapes that ``sample(sample_shape)`` and ``log_prob`` of that sample
actually return (the helper draws once to find out)::

    print(describe_shapes(tfd.Normal(loc=[0.0, 1.0, 2.0], scale=1.0), sample_shape=5))
    # sample_shape (5,), batch_shape (3,), event_shape () -> sample (5, 3), log_prob (5, 3)

:func:`kl_monte_carlo` estimates :math:`KL(q \\| p) = E_{x \\sim q}[\\log q(x) - \\log p(x)]`
by averaging over ``n`` draws from ``q``, and reports the estimate's standard error. It works
for any pair of distributions over the same event space whose ``q`` has its support inside
``p``'s, including pairs with no closed-form KL divergence (a Normal against a mixture, for
example) and pairs for which ``tfd.kl_divergence`` has no formula registered.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from tfpcourse._validate import check_int

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf

__all__ = ["MonteCarloKL", "ShapeReport", "describe_shapes", "kl_monte_carlo"]

_DIST_ATTRIBUTES = ("sample", "log_prob", "batch_shape", "event_shape")


def _check_distribution(name: str, value: Any) -> Any:
    missing = [a for a in _DIST_ATTRIBUTES if not hasattr(value, a)]
    if missing:
        raise TypeError(
            f"{name} must be a TFP distribution (with sample, log_prob, batch_shape and "
            f"event_shape), got {type(value).__name__} (missing {', '.join(missing)})"
        )
    return value


def _check_sample_shape(sample_shape: Any) -> tuple[int, ...]:
    """Accept an int or a tuple/list of ints >= 0, like ``Distribution.sample`` does."""
    if isinstance(sample_shape, numbers.Integral) and not isinstance(sample_shape, bool):
        dims: Any = (sample_shape,)
    elif isinstance(sample_shape, tuple | list):
        dims = sample_shape
    else:
        raise TypeError(
            "sample_shape must be an int or a tuple of ints, "
            f"got {sample_shape!r} (type {type(sample_shape).__name__})"
        )
    return tuple(check_int("sample_shape entries", d, minimum=0) for d in dims)


def _as_seed(seed: Any) -> tf.Tensor:
    """An int (through :func:`tfpcourse.seeding.stateless_seed`) or a ``[2]`` integer tensor."""
    import tensorflow as tf

    from tfpcourse.seeding import stateless_seed

    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        return stateless_seed(int(seed))
    if not tf.is_tensor(seed) or not seed.dtype.is_integer:
        raise TypeError(
            "seed must be an int or a [2] integer tensor from tfpcourse.seeding.stateless_seed, "
            f"got {seed!r} (type {type(seed).__name__})"
        )
    if seed.shape.as_list() != [2]:
        raise ValueError(f"seed must have shape [2], got shape {seed.shape.as_list()}")
    return seed


def _shape_tuple(shape: Any) -> tuple[int | None, ...]:
    return tuple(shape.as_list()) if hasattr(shape, "as_list") else tuple(shape)


@dataclass(frozen=True)
class ShapeReport:
    """The shapes of a distribution and of what its ``sample`` and ``log_prob`` return.

    Attributes
    ----------
    sample_shape:
        The sample shape asked for: how many independent draws.
    batch_shape:
        How many distributions (different parameter values) the object holds.
    event_shape:
        The shape of one draw from one of those distributions.
    sample:
        Shape of ``dist.sample(sample_shape)``: ``sample_shape + batch_shape + event_shape``.
    log_prob:
        Shape of ``dist.log_prob`` of that sample: ``sample_shape + batch_shape`` (one number
        per event).
    """

    sample_shape: tuple[int, ...]
    batch_shape: tuple[int | None, ...]
    event_shape: tuple[int | None, ...]
    sample: tuple[int, ...]
    log_prob: tuple[int, ...]

    def __str__(self) -> str:
        return (
            f"sample_shape {self.sample_shape}, batch_shape {self.batch_shape}, "
            f"event_shape {self.event_shape} -> sample {self.sample}, log_prob {self.log_prob}"
        )


def describe_shapes(dist: Any, sample_shape: int | tuple[int, ...] = ()) -> ShapeReport:
    """Report a distribution's batch and event shapes and what ``sample``/``log_prob`` return.

    The helper really draws ``dist.sample(sample_shape)`` (with a fixed stateless seed) and
    evaluates ``dist.log_prob`` on it, so the reported shapes are the ones TFP produces, not a
    prediction. Print the result for a one-line summary.

    Parameters
    ----------
    dist:
        A TensorFlow Probability distribution.
    sample_shape:
        The sample shape to draw: an int ``n`` (meaning ``(n,)``) or a tuple of ints >= 0.

    Returns
    -------
    ShapeReport
        The five shapes, as tuples of ints.

    Raises
    ------
    TypeError
        If ``dist`` is not a distribution or ``sample_shape`` is not an int or tuple of ints.
    ValueError
        If an entry of ``sample_shape`` is negative.
    """
    dist = _check_distribution("dist", dist)
    dims = _check_sample_shape(sample_shape)
    from tfpcourse.seeding import stateless_seed

    x = dist.sample(dims, seed=stateless_seed(0))
    lp = dist.log_prob(x)
    return ShapeReport(
        sample_shape=dims,
        batch_shape=_shape_tuple(dist.batch_shape),
        event_shape=_shape_tuple(dist.event_shape),
        sample=tuple(int(d) for d in x.shape),
        log_prob=tuple(int(d) for d in lp.shape),
    )


class MonteCarloKL(NamedTuple):
    """A Monte Carlo estimate of a KL divergence.

    ``estimate`` and ``stderr`` are floats for distributions without a batch shape, and NumPy
    arrays of the batch shape otherwise.
    """

    estimate: Any
    stderr: Any
    n: int


def kl_monte_carlo(q: Any, p: Any, n: int, seed: int | tf.Tensor) -> MonteCarloKL:
    """Estimate :math:`KL(q \\| p)` as the mean of ``log q(x) - log p(x)`` over ``n`` draws
    ``x ~ q``.

    The estimate is unbiased; its standard error is the sample standard deviation of the
    ``n`` differences divided by :math:`\\sqrt{n}`, so it shrinks like :math:`1/\\sqrt{n}`.
    Unlike ``tfd.kl_divergence`` it needs no closed form, only ``q.sample``, ``q.log_prob``
    and ``p.log_prob``.

    Two conditions apply, and neither is checked:

    * ``q``'s support must lie inside ``p``'s. A draw where ``p`` has density 0 gives
      ``log p = -inf``; the KL divergence is then infinite, and so is the returned estimate
      (with a ``nan`` standard error).
    * The standard error is meaningful only when the variance of ``log q(x) - log p(x)``
      under ``q`` is finite, as it is for two Normals. It is infinite, for example, for a
      Student-t ``q`` with 3 degrees of freedom against a Normal ``p``: the difference grows
      like ``x**2 / 2``, whose mean under ``q`` is finite but whose variance is not. The
      estimate then still converges, but more slowly than :math:`1/\\sqrt{n}`, and the
      reported standard error is not a reliable measure of its error.

    Parameters
    ----------
    q:
        The distribution the expectation is taken under (samples are drawn from it).
    p:
        The distribution compared with; it must have the same event shape as ``q``.
    n:
        Number of draws, at least 2 (the standard error needs two).
    seed:
        A ``[2]`` stateless seed tensor, or an int, which is converted with
        :func:`tfpcourse.seeding.stateless_seed` (so it is stateless too, unlike an int
        passed straight to ``sample``): the same seed gives the same estimate.

    Returns
    -------
    MonteCarloKL
        ``(estimate, stderr, n)``, computed in float64 from the float log densities.

    Raises
    ------
    TypeError
        If ``q`` or ``p`` is not a distribution, ``n`` is not an int, or ``seed`` is neither an
        int nor an integer tensor.
    ValueError
        If ``n < 2``, the event shapes differ, or the seed tensor does not have shape ``[2]``.
    """
    q = _check_distribution("q", q)
    p = _check_distribution("p", p)
    n = check_int("n", n, minimum=2)
    q_event, p_event = _shape_tuple(q.event_shape), _shape_tuple(p.event_shape)
    if q_event != p_event:
        raise ValueError(
            f"p must have the same event shape as q {q_event}, got event shape {p_event}"
        )
    seed = _as_seed(seed)
    x = q.sample(n, seed=seed)
    diff = np.asarray(q.log_prob(x) - p.log_prob(x), dtype=np.float64)
    estimate = diff.mean(axis=0)
    with np.errstate(invalid="ignore"):  # inf - inf when q leaves p's support: nan, silently
        stderr = diff.std(axis=0, ddof=1) / np.sqrt(n)
    if estimate.ndim == 0:
        return MonteCarloKL(float(estimate), float(stderr), n)
    return MonteCarloKL(estimate, stderr, n)
