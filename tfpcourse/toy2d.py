"""Two-dimensional toy densities for the bijector and flow chapters.

Each sampler is seeded and vectorised (NumPy only) and returns a ``float32`` array of shape
``(n, 2)``:

``two_moons``         two interleaving half circles
``circles``           two concentric rings
``eight_gaussians``   eight small Gaussians on a circle
``pinwheel``          five curved arms
``checkerboard``      uniform density on the dark squares of a 4x4 board
``gaussian_mixture``  a three-component Gaussian mixture whose exact density is available as a
                      TFP distribution (:func:`gaussian_mixture_distribution`)

:func:`log_prob` gives the *true* log-density of every sampler but the pinwheel, so a learned
density can be scored against the truth (its NLL gap estimates the KL divergence): in closed
form for the eight Gaussians, the checkerboard and the mixture, and by numerical quadrature
along the curve for the two moons and the circles (a curve blurred by Gaussian noise).

>>> sample("two_moons", 3, seed=0).shape
(3, 2)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from tfpcourse._validate import check_choice, check_int, check_number

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow_probability as tfp

__all__ = [
    "TOY_DENSITIES",
    "checkerboard",
    "circles",
    "eight_gaussians",
    "gaussian_mixture",
    "gaussian_mixture_distribution",
    "log_prob",
    "pinwheel",
    "sample",
    "standardize",
    "two_moons",
]


def _rng(n: int, seed: int) -> np.random.Generator:
    check_int("n", n, minimum=1)
    check_int("seed", seed, minimum=0)
    return np.random.default_rng(seed)


def _moon_curve(t: np.ndarray, moon: int) -> tuple[np.ndarray, np.ndarray]:
    """The points at parameter ``t`` in [0, pi] of the upper (0) or lower (1) moon."""
    if moon == 0:
        return np.cos(t), np.sin(t)
    return 1.0 - np.cos(t), 0.5 - np.sin(t)


def two_moons(
    n: int, *, noise: float = 0.05, seed: int = 0, return_labels: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles of radius 1 (half the points each), plus Gaussian noise
    with standard deviation ``noise``.

    With ``return_labels=True`` also returns which moon each point came from (0: upper,
    1: lower), as ``int32``.
    """
    rng = _rng(n, seed)
    noise = check_number("noise", noise, minimum=0.0)
    upper = rng.random(n) < 0.5
    t = rng.uniform(0.0, np.pi, n)
    (x0, y0), (x1, y1) = _moon_curve(t, 0), _moon_curve(t, 1)
    x, y = np.where(upper, x0, x1), np.where(upper, y0, y1)
    points = (np.stack([x, y], axis=1) + noise * rng.standard_normal((n, 2))).astype(np.float32)
    if return_labels:
        return points, (~upper).astype(np.int32)
    return points


def circles(n: int, *, noise: float = 0.05, factor: float = 0.5, seed: int = 0) -> np.ndarray:
    """Two concentric rings of radius 1 and ``factor`` (half the points each), plus noise."""
    rng = _rng(n, seed)
    noise = check_number("noise", noise, minimum=0.0)
    factor = check_number("factor", factor, minimum=0.0, maximum=1.0, strict_minimum=True)
    radius = np.where(rng.random(n) < 0.5, 1.0, factor)
    t = rng.uniform(0.0, 2 * np.pi, n)
    points = radius[:, None] * np.stack([np.cos(t), np.sin(t)], axis=1)
    return (points + noise * rng.standard_normal((n, 2))).astype(np.float32)


def eight_gaussians(n: int, *, radius: float = 2.0, std: float = 0.15, seed: int = 0) -> np.ndarray:
    """Eight isotropic Gaussians (standard deviation ``std``) evenly spaced on a circle."""
    rng = _rng(n, seed)
    radius = check_number("radius", radius, minimum=0.0, strict_minimum=True)
    std = check_number("std", std, minimum=0.0)
    angles = rng.integers(0, 8, n) * (np.pi / 4)
    centres = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return (centres + std * rng.standard_normal((n, 2))).astype(np.float32)


def pinwheel(
    n: int,
    *,
    arms: int = 5,
    radial_std: float = 0.3,
    tangential_std: float = 0.1,
    rate: float = 0.25,
    seed: int = 0,
) -> np.ndarray:
    """Points on ``arms`` curved arms: Gaussian blobs stretched along x, pushed out to x = 1,
    rotated by an angle that grows with the distance from the centre, one arm per rotation."""
    rng = _rng(n, seed)
    arms = check_int("arms", arms, minimum=1)
    radial_std = check_number("radial_std", radial_std, minimum=0.0)
    tangential_std = check_number("tangential_std", tangential_std, minimum=0.0)
    rate = check_number("rate", rate)
    arm = rng.integers(0, arms, n)
    local = rng.standard_normal((n, 2)) * np.array([radial_std, tangential_std])
    local[:, 0] += 1.0
    angle = arm * (2 * np.pi / arms) + rate * np.exp(local[:, 0])
    cos, sin = np.cos(angle), np.sin(angle)
    x = cos * local[:, 0] - sin * local[:, 1]
    y = sin * local[:, 0] + cos * local[:, 1]
    return (2.0 * np.stack([x, y], axis=1)).astype(np.float32)


def checkerboard(n: int, *, seed: int = 0) -> np.ndarray:
    """Uniform density on the 8 dark squares of a 4x4 board covering [-2, 2]^2."""
    rng = _rng(n, seed)
    col = rng.integers(0, 4, n)
    row = 2 * rng.integers(0, 2, n) + (col % 2)  # dark squares: row + col even
    offsets = rng.random((n, 2))
    points = np.stack([col + offsets[:, 0], row + offsets[:, 1]], axis=1) - 2.0
    return points.astype(np.float32)


# Parameters of the mixture with a known density. Chosen to be clearly multimodal, with one
# correlated component so that a diagonal model cannot fit it exactly.
_GM_WEIGHTS = (0.3, 0.4, 0.3)
_GM_MEANS = ((-1.5, -1.0), (1.5, -1.0), (0.0, 1.5))
_GM_SCALE_TRIL = (
    ((0.5, 0.0), (0.0, 0.5)),
    ((0.6, 0.0), (-0.4, 0.3)),
    ((0.8, 0.0), (0.0, 0.25)),
)


def gaussian_mixture_distribution() -> tfp.distributions.Distribution:
    """The exact density behind :func:`gaussian_mixture`, as a TFP ``MixtureSameFamily`` of
    three full-covariance Gaussians (event shape ``[2]``)."""
    import tensorflow as tf
    import tensorflow_probability as tfp

    tfd = tfp.distributions
    return tfd.MixtureSameFamily(
        mixture_distribution=tfd.Categorical(probs=tf.constant(_GM_WEIGHTS, tf.float32)),
        components_distribution=tfd.MultivariateNormalTriL(
            loc=tf.constant(_GM_MEANS, tf.float32),
            scale_tril=tf.constant(_GM_SCALE_TRIL, tf.float32),
        ),
        name="toy_gaussian_mixture",
    )


def gaussian_mixture(n: int, *, seed: int = 0) -> np.ndarray:
    """Samples from :func:`gaussian_mixture_distribution`, drawn with NumPy (so no TensorFlow
    is needed to make data) from exactly the same parameters."""
    rng = _rng(n, seed)
    component = rng.choice(len(_GM_WEIGHTS), size=n, p=_GM_WEIGHTS)
    means = np.asarray(_GM_MEANS)[component]
    tril = np.asarray(_GM_SCALE_TRIL)[component]
    eps = rng.standard_normal((n, 2))
    return (means + np.einsum("nij,nj->ni", tril, eps)).astype(np.float32)


def _check_points(points: object) -> np.ndarray:
    array = np.asarray(points, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(
            f"points must have shape (n, 2), got {getattr(points, 'shape', np.shape(points))}"
        )
    return array


def _log_normal_2d(points: np.ndarray, centres: np.ndarray, std: float) -> np.ndarray:
    """log N(points[i]; centres[j], std^2 I) for every pair, shape (n, m)."""
    sq = ((points[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
    return -sq / (2 * std**2) - np.log(2 * np.pi * std**2)


def _logmeanexp(values: np.ndarray, axis: int) -> np.ndarray:
    top = values.max(axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    return np.log(np.mean(np.exp(values - top), axis=axis)) + np.squeeze(top, axis=axis)


def _curve_log_prob(points, curve, noise, nodes, chunk=2048):
    """log of the mean over t ~ U(0, pi) of N(x; curve(t), noise^2 I), by the midpoint rule."""
    t = (np.arange(nodes) + 0.5) * (np.pi / nodes)
    centres = np.stack(curve(t), axis=1)
    out = np.empty(len(points))
    for start in range(0, len(points), chunk):
        part = points[start : start + chunk]
        out[start : start + chunk] = _logmeanexp(_log_normal_2d(part, centres, noise), axis=1)
    return out


def log_prob(name: str, points: object, *, nodes: int = 4000, component: int | None = None,
             **kwargs: float) -> np.ndarray:
    """The true log-density of the toy density ``name`` at ``points`` (shape ``(n, 2)``), in
    ``float64``, for the same keyword arguments as its sampler.

    ``two_moons`` and ``circles`` are a curve (or two) blurred by Gaussian noise: their density
    is an integral along the curve, computed by the midpoint rule with ``nodes`` nodes per
    curve. The rule's error shrinks like ``(pi / nodes / noise)^2``; compare two values of
    ``nodes`` to see it. ``component`` (two moons: 0 upper, 1 lower; eight Gaussians: 0-7)
    gives the density of one component alone, e.g. a class-conditional density.
    The checkerboard's density is ``-inf`` off its dark squares.
    """
    check_choice("name", name, TOY_DENSITIES)
    x = _check_points(points)
    nodes = check_int("nodes", nodes, minimum=2)
    if name == "pinwheel":
        raise NotImplementedError(
            "log_prob has no true density for 'pinwheel' (its arms are a non-invertible warp of "
            "Gaussian blobs); choose one of two_moons, circles, eight_gaussians, checkerboard, "
            "gaussian_mixture"
        )
    allowed = {"two_moons": ("noise",), "circles": ("noise", "factor"),
               "eight_gaussians": ("radius", "std")}.get(name, ())
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise TypeError(f"log_prob({name!r}) got unexpected keyword arguments {unknown}; "
                        f"its sampler takes {list(allowed)}")
    components = {"two_moons": 2, "eight_gaussians": 8}
    if component is not None:
        if name not in components:
            raise ValueError(f"component is only defined for {sorted(components)}, not {name!r}")
        component = check_int("component", component, minimum=0, maximum=components[name] - 1)
    if name == "two_moons":
        noise = check_number("noise", kwargs.get("noise", 0.05), minimum=0.0,
                             strict_minimum=True)
        per_moon = [_curve_log_prob(x, lambda t, m=m: _moon_curve(t, m), noise, nodes)
                    for m in (0, 1)]
        if component is not None:
            return per_moon[component]
        return np.logaddexp(*per_moon) + np.log(0.5)
    if name == "circles":
        noise = check_number("noise", kwargs.get("noise", 0.05), minimum=0.0,
                             strict_minimum=True)
        factor = check_number("factor", kwargs.get("factor", 0.5), minimum=0.0, maximum=1.0,
                              strict_minimum=True)
        rings = [_curve_log_prob(x, lambda t, r=r: (r * np.cos(2 * t), r * np.sin(2 * t)),
                                 noise, nodes) for r in (1.0, factor)]
        return np.logaddexp(*rings) + np.log(0.5)
    if name == "eight_gaussians":
        radius = check_number("radius", kwargs.get("radius", 2.0), minimum=0.0,
                              strict_minimum=True)
        std = check_number("std", kwargs.get("std", 0.15), minimum=0.0, strict_minimum=True)
        angles = np.arange(8) * (np.pi / 4)
        centres = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        each = _log_normal_2d(x, centres, std)
        if component is not None:
            return each[:, component]
        return _logmeanexp(each, axis=1)
    if name == "checkerboard":
        inside = np.all((x >= -2.0) & (x < 2.0), axis=1)
        col, row = np.floor(x[:, 0] + 2.0), np.floor(x[:, 1] + 2.0)
        dark = inside & ((col + row) % 2 == 0)
        return np.where(dark, -np.log(8.0), -np.inf)
    # gaussian_mixture, in NumPy from the same parameters as its TFP distribution
    means, tril = np.asarray(_GM_MEANS), np.asarray(_GM_SCALE_TRIL)
    logs = []
    for w, mu, lower in zip(_GM_WEIGHTS, means, tril):
        solved = np.linalg.solve(lower, (x - mu).T).T
        log_det = np.sum(np.log(np.abs(np.diag(lower))))
        logs.append(np.log(w) - 0.5 * (solved**2).sum(1) - log_det - np.log(2 * np.pi))
    return np.logaddexp.reduce(np.stack(logs, axis=1), axis=1)


TOY_DENSITIES: dict[str, Callable[..., np.ndarray]] = {
    "two_moons": two_moons,
    "circles": circles,
    "eight_gaussians": eight_gaussians,
    "pinwheel": pinwheel,
    "checkerboard": checkerboard,
    "gaussian_mixture": gaussian_mixture,
}


def sample(name: str, n: int, *, seed: int = 0, **kwargs: float) -> np.ndarray:
    """Draw ``n`` points from the toy density called ``name`` (see :data:`TOY_DENSITIES`)."""
    check_choice("name", name, TOY_DENSITIES)
    return TOY_DENSITIES[name](n, seed=seed, **kwargs)


def standardize(
    points: np.ndarray, *, mean: np.ndarray | None = None, std: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shift and scale ``points`` to zero mean and unit standard deviation per coordinate.

    Pass the training set's ``mean`` and ``std`` to standardise held-out data the same way.
    Remember that standardising changes densities by the log-det of the scaling:
    ``log p_x(x) = log p_z(z) - sum(log std)``.

    Returns
    -------
    (standardised points, mean, std)
    """
    if not isinstance(points, np.ndarray) or points.ndim != 2:
        raise ValueError(
            f"points must be a 2-D NumPy array (n, d), got "
            f"{getattr(points, 'shape', type(points).__name__)}"
        )
    mean = points.mean(axis=0) if mean is None else np.asarray(mean)
    std = points.std(axis=0) if std is None else np.asarray(std)
    if np.any(std <= 0):
        raise ValueError(f"std must be positive in every coordinate, got {std}")
    return ((points - mean) / std).astype(np.float32), mean, std
