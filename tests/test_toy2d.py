"""Tests of the 2-D toy densities in :mod:`tfpcourse.toy2d`."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tfpcourse import toy2d

SAMPLERS = sorted(toy2d.TOY_DENSITIES)


@pytest.fixture(scope="module")
def tf():
    """TensorFlow, started through the course's quiet set-up (only the mixture tests need it)."""
    from tfpcourse import device

    device.setup(verbose=False)
    import tensorflow as tf

    return tf


def test_the_six_samplers_are_registered():
    assert SAMPLERS == sorted(
        ["two_moons", "circles", "eight_gaussians", "pinwheel", "checkerboard", "gaussian_mixture"]
    )


# --------------------------------------------------------------------------------------------
# Every sampler


@pytest.mark.parametrize("name", SAMPLERS)
def test_sampler_returns_float32_n_by_2_deterministic_per_seed(name):
    points = toy2d.sample(name, 1000, seed=3)
    assert points.dtype == np.float32
    assert points.shape == (1000, 2)
    assert np.isfinite(points).all()
    np.testing.assert_array_equal(toy2d.sample(name, 1000, seed=3), points)
    np.testing.assert_array_equal(toy2d.TOY_DENSITIES[name](1000, seed=3), points)
    other = toy2d.sample(name, 1000, seed=4)
    assert not np.array_equal(other, points)
    assert np.abs(other - points).mean() > 0.1  # really different draws, not a tiny shift
    assert np.unique(points, axis=0).shape[0] > 100  # not a handful of repeated points


@settings(max_examples=60, deadline=None, database=None)
@given(
    name=st.sampled_from(SAMPLERS),
    n=st.integers(min_value=1, max_value=500),
    seed=st.integers(min_value=0, max_value=2**63),
)
def test_any_size_and_seed_gives_finite_n_by_2_float32(name, n, seed):
    points = toy2d.sample(name, n, seed=seed)
    assert points.shape == (n, 2)
    assert points.dtype == np.float32
    assert np.isfinite(points).all()


# --------------------------------------------------------------------------------------------
# Geometry


def test_two_moons_without_noise_lie_on_two_unit_half_circles():
    points = toy2d.two_moons(4000, noise=0.0, seed=0).astype(np.float64)
    r_upper = np.hypot(points[:, 0], points[:, 1])
    r_lower = np.hypot(points[:, 0] - 1.0, points[:, 1] - 0.5)
    upper = np.abs(r_upper - 1.0) < 1e-5
    lower = np.abs(r_lower - 1.0) < 1e-5
    assert (upper | lower).all()
    assert (points[upper, 1] >= -1e-6).all()  # the upper moon is the top half of its circle
    assert (points[lower, 1] <= 0.5 + 1e-6).all()  # the lower moon is the bottom half
    assert 0.45 < upper.mean() < 0.55  # about half the points each
    assert points[:, 0].min() >= -1 - 1e-6 and points[:, 0].max() <= 2 + 1e-6


def test_two_moons_noise_spreads_points_off_the_circles():
    points = toy2d.two_moons(4000, noise=0.1, seed=0).astype(np.float64)
    distance = np.minimum(
        np.abs(np.hypot(points[:, 0], points[:, 1]) - 1),
        np.abs(np.hypot(points[:, 0] - 1, points[:, 1] - 0.5) - 1),
    )
    assert 0.03 < distance.mean() < 0.1


@pytest.mark.parametrize("factor", [0.3, 0.5, 1.0])
def test_circles_without_noise_have_radii_one_and_factor(factor):
    points = toy2d.circles(3000, noise=0.0, factor=factor, seed=1)
    radii = np.hypot(points[:, 0].astype(np.float64), points[:, 1])
    on_outer = np.abs(radii - 1.0) < 1e-5
    on_inner = np.abs(radii - factor) < 1e-5
    assert (on_outer | on_inner).all()
    if factor < 1.0:
        assert 0.45 < on_outer.mean() < 0.55
    angles = np.arctan2(points[:, 1], points[:, 0])
    assert np.histogram(angles, bins=8, range=(-np.pi, np.pi))[0].min() > 250  # all round


def test_eight_gaussians_without_spread_sit_on_eight_points_of_the_circle():
    points = toy2d.eight_gaussians(4000, std=0.0, seed=2).astype(np.float64)
    np.testing.assert_allclose(np.hypot(points[:, 0], points[:, 1]), 2.0, rtol=1e-6)
    centres = np.unique(np.round(points, 4), axis=0)
    assert len(centres) == 8
    angles = np.sort(np.mod(np.arctan2(centres[:, 1], centres[:, 0]), 2 * np.pi))
    np.testing.assert_allclose(angles, np.arange(8) * np.pi / 4, atol=1e-4)
    counts = np.unique(np.round(points, 4), axis=0, return_counts=True)[1]
    assert counts.min() > 400  # 4000 / 8 = 500 each, roughly


def test_eight_gaussians_radius_and_std_are_used():
    points = toy2d.eight_gaussians(20000, radius=3.0, std=0.2, seed=0).astype(np.float64)
    angle = np.round(np.arctan2(points[:, 1], points[:, 0]) / (np.pi / 4)) * (np.pi / 4)
    centres = 3.0 * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    offsets = points - centres
    np.testing.assert_allclose(offsets.mean(axis=0), 0.0, atol=0.01)
    np.testing.assert_allclose(offsets.std(axis=0), 0.2, rtol=0.05)


def test_checkerboard_points_fill_the_dark_squares_evenly():
    n = 16000
    points = toy2d.checkerboard(n, seed=0)
    assert (points >= -2.0).all() and (points < 2.0).all()
    col = np.floor(points[:, 0]).astype(int)
    row = np.floor(points[:, 1]).astype(int)
    assert ((col + row) % 2 == 0).all()  # only squares with an even floor sum are dark
    squares, counts = np.unique(np.stack([col, row], axis=1), axis=0, return_counts=True)
    assert len(squares) == 8  # every dark square of the 4x4 board is used
    assert np.abs(counts - n / 8).max() < 0.1 * n / 8  # evenly: about 5 standard errors
    within = points - np.floor(points)  # uniform inside each square
    np.testing.assert_allclose(within.mean(axis=0), 0.5, atol=0.01)


def test_pinwheel_has_the_requested_number_of_arms():
    for arms in (3, 5):
        points = toy2d.pinwheel(6000, arms=arms, tangential_std=0.0, radial_std=0.0, seed=0)
        # With no spread every point of an arm is the same point: one point per arm.
        assert len(np.unique(np.round(points, 4), axis=0)) == arms
        np.testing.assert_allclose(np.hypot(points[:, 0], points[:, 1]), 2.0, rtol=1e-5)


# --------------------------------------------------------------------------------------------
# The Gaussian mixture and its exact density


def test_gaussian_mixture_samples_match_the_distribution_moments(tf):
    dist = toy2d.gaussian_mixture_distribution()
    assert dist.event_shape.as_list() == [2]
    samples = toy2d.gaussian_mixture(200_000, seed=0).astype(np.float64)
    mean = dist.mean().numpy()
    covariance = dist.covariance().numpy()
    # The mixture's coordinates have standard deviations of about 1.3, so the standard error
    # of a mean over 200k samples is ~0.003 and of a (co)variance ~0.01.
    np.testing.assert_allclose(samples.mean(axis=0), mean, atol=0.015)
    np.testing.assert_allclose(np.cov(samples, rowvar=False), covariance, atol=0.05)
    assert abs(covariance[0, 1]) > 0.1  # the correlated component shows in the covariance


def test_gaussian_mixture_log_prob_integrates_to_one(tf):
    dist = toy2d.gaussian_mixture_distribution()
    step = 0.02
    axis = np.arange(-7.0, 7.0, step) + step / 2
    xx, yy = np.meshgrid(axis, axis)
    grid = np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float32)
    density = np.exp(dist.log_prob(grid).numpy().astype(np.float64))
    assert density.sum() * step**2 == pytest.approx(1.0, abs=2e-3)


def test_gaussian_mixture_samples_are_likely_under_the_distribution(tf):
    dist = toy2d.gaussian_mixture_distribution()
    samples = toy2d.gaussian_mixture(20_000, seed=1)
    # Average log density of its own samples (about minus the entropy) versus that of samples
    # from a different density over the same region: the true density must score better.
    own = dist.log_prob(samples).numpy().mean()
    other = dist.log_prob(toy2d.eight_gaussians(20_000, seed=1) * 0.75).numpy().mean()
    reference = dist.log_prob(dist.sample(20_000, seed=(0, 1))).numpy().mean()  # stateless
    assert own == pytest.approx(reference, abs=0.05)
    assert own > other + 0.5


# --------------------------------------------------------------------------------------------
# standardize


def test_standardize_gives_zero_mean_unit_std_and_returns_the_stats():
    points = toy2d.two_moons(5000, seed=0) * np.float32(3.0) + np.float32(7.0)
    z, mean, std = toy2d.standardize(points)
    assert z.dtype == np.float32
    assert z.shape == points.shape
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=0), 1.0, atol=1e-5)
    np.testing.assert_allclose(mean, points.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(std, points.std(axis=0), rtol=1e-6)


def test_standardize_reuses_training_statistics_for_held_out_data():
    train = toy2d.circles(4000, seed=0) + np.float32(1.0)
    held_out = toy2d.circles(1000, seed=1) * np.float32(2.0)
    _, mean, std = toy2d.standardize(train)
    z, mean_again, std_again = toy2d.standardize(held_out, mean=mean, std=std)
    np.testing.assert_array_equal(mean_again, mean)
    np.testing.assert_array_equal(std_again, std)
    np.testing.assert_allclose(z, (held_out - mean) / std, rtol=1e-6)
    assert np.abs(z.mean(axis=0)).max() > 0.5  # shifted by the training mean, not its own


@pytest.mark.parametrize(
    ("points", "kwargs", "pattern"),
    [
        ([[0.0, 1.0], [2.0, 3.0]], {}, "points must be a 2-D NumPy array"),
        (np.zeros(5), {}, "points must be a 2-D NumPy array"),
        (np.zeros((3, 2, 1)), {}, "points must be a 2-D NumPy array"),
        (np.array([[0.0, 1.0], [0.0, 3.0]]), {}, "std must be positive"),
        (np.ones((4, 2)), {"mean": [0.0, 0.0], "std": [1.0, 0.0]}, "std must be positive"),
        (np.ones((4, 2)), {"std": [-1.0, 1.0]}, "std must be positive"),
    ],
)
def test_standardize_rejects_bad_input(points, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        toy2d.standardize(points, **kwargs)


# --------------------------------------------------------------------------------------------
# Bad arguments


@pytest.mark.parametrize(
    ("call", "error", "pattern"),
    [
        (lambda: toy2d.two_moons(0), ValueError, "n must be >= 1"),
        (lambda: toy2d.two_moons(10.0), TypeError, "n must be an integer"),
        (lambda: toy2d.circles(True), TypeError, "n must be an integer"),
        (lambda: toy2d.checkerboard(10, seed=-1), ValueError, "seed must be >= 0"),
        (lambda: toy2d.pinwheel(10, seed="1"), TypeError, "seed must be an integer"),
        (lambda: toy2d.two_moons(10, noise=-0.1), ValueError, "noise must be >= 0"),
        (lambda: toy2d.two_moons(10, noise="a"), TypeError, "noise must be a real number"),
        (lambda: toy2d.circles(10, factor=0.0), ValueError, "factor must be > 0"),
        (lambda: toy2d.circles(10, factor=1.5), ValueError, "factor must be <= 1"),
        (lambda: toy2d.circles(10, noise=float("nan")), ValueError, "noise must not be NaN"),
        (lambda: toy2d.eight_gaussians(10, radius=0.0), ValueError, "radius must be > 0"),
        (lambda: toy2d.eight_gaussians(10, std=-1.0), ValueError, "std must be >= 0"),
        (lambda: toy2d.pinwheel(10, arms=0), ValueError, "arms must be >= 1"),
        (lambda: toy2d.pinwheel(10, radial_std=-1.0), ValueError, "radial_std must be >= 0"),
        (lambda: toy2d.gaussian_mixture(-5), ValueError, "n must be >= 1"),
        (lambda: toy2d.sample("spiral", 10), ValueError, "name must be one of .*'two_moons'"),
        (lambda: toy2d.sample("circles", 10, radius=2.0), TypeError, "radius"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()
