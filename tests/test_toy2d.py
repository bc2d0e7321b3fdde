"""Tests of the 2-D toy densities in :mod:`tfpcourse.toy2d`."""

from __future__ import annotations

from itertools import pairwise

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


# --------------------------------------------------------------------------------------------
# log_prob: the true densities


def _grid(low, high, step):
    axis = np.arange(low, high, step) + step / 2  # cell midpoints
    xx, yy = np.meshgrid(axis, axis)
    return np.stack([xx.ravel(), yy.ravel()], axis=1)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("eight_gaussians", {}),
        ("eight_gaussians", {"radius": 1.5, "std": 0.3}),
        ("checkerboard", {}),
        ("gaussian_mixture", {}),
        # A curve density from the midpoint rule is a mean of Gaussians, so it has mass 1 for
        # any number of nodes: few nodes keep the grid fast and still test the normalisation.
        ("two_moons", {"nodes": 32}),
        ("two_moons", {"nodes": 32, "component": 1}),
        ("circles", {"nodes": 32}),
        ("circles", {"nodes": 32, "factor": 0.3, "noise": 0.1}),
    ],
)
def test_log_prob_integrates_to_one_over_the_support(name, kwargs):
    step = 0.02  # a quarter of the smallest noise scale or less: the grid sum is accurate
    grid = _grid(-4.0, 4.0, step)  # every sampler's support lies well inside [-4, 4]^2
    log_p = toy2d.log_prob(name, grid, **kwargs)
    assert log_p.dtype == np.float64 and log_p.shape == (len(grid),)
    assert np.exp(log_p).sum() * step**2 == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize(
    ("name", "true", "wrong"),
    [
        ("eight_gaussians", {"std": 0.15}, [{"std": 0.3}, {"std": 0.075}, {"radius": 2.2}]),
        ("two_moons", {"noise": 0.05}, [{"noise": 0.1}, {"noise": 0.025}]),
        ("circles", {"noise": 0.05, "factor": 0.5},
         [{"noise": 0.1, "factor": 0.5}, {"noise": 0.05, "factor": 0.6}]),
    ],
)
def test_samples_are_likelier_under_the_true_density_than_under_a_perturbed_one(name, true,
                                                                                wrong):
    points = toy2d.sample(name, 4000, seed=2, **true)
    own = toy2d.log_prob(name, points, nodes=1000, **true).mean()
    for kwargs in wrong:
        # The gap estimates KL(true || wrong) > 0: about 0.3 nats or more for each of these.
        other = toy2d.log_prob(name, points, nodes=1000, **kwargs).mean()
        assert own > other + 0.2, (kwargs, own, other)


def test_eight_gaussians_mean_log_prob_is_minus_the_entropy():
    std = 0.15
    points = toy2d.eight_gaussians(20_000, std=std, seed=0)
    # The components are 10 standard deviations apart, so they barely overlap and the entropy
    # is log 8 plus that of one isotropic Gaussian, log(2 pi e std^2).
    entropy = np.log(8.0) + np.log(2 * np.pi * np.e * std**2)
    # The log density of a sample has standard deviation 1 here: standard error 0.007.
    assert toy2d.log_prob("eight_gaussians", points).mean() == pytest.approx(-entropy, abs=0.03)


def test_gaussian_mixture_log_prob_equals_the_tfp_distribution(tf):
    points = np.random.default_rng(0).normal(0.0, 2.5, size=(500, 2))
    expected = toy2d.gaussian_mixture_distribution().log_prob(points.astype(np.float32))
    expected = expected.numpy().astype(np.float64)
    assert expected.min() < -20 and expected.max() > -2  # tails and modes both covered
    np.testing.assert_allclose(toy2d.log_prob("gaussian_mixture", points), expected,
                               rtol=1e-5, atol=1e-4)


def test_eight_gaussians_components_are_normals_whose_mean_is_the_mixture():
    radius, std = 3.0, 0.4
    points = np.random.default_rng(1).uniform(-4.0, 4.0, size=(300, 2))
    each = []
    for k in range(8):
        centre = radius * np.array([np.cos(k * np.pi / 4), np.sin(k * np.pi / 4)])
        by_hand = (-((points - centre) ** 2).sum(axis=1) / (2 * std**2)
                   - np.log(2 * np.pi * std**2))
        got = toy2d.log_prob("eight_gaussians", points, component=k, radius=radius, std=std)
        np.testing.assert_allclose(got, by_hand, rtol=1e-12, atol=1e-12)
        each.append(by_hand)
    mixture = np.logaddexp.reduce(np.stack(each), axis=0) - np.log(8.0)
    np.testing.assert_allclose(
        toy2d.log_prob("eight_gaussians", points, radius=radius, std=std), mixture,
        rtol=1e-12, atol=1e-10,
    )


def test_two_moons_quadrature_error_falls_fourfold_when_the_nodes_double():
    points = toy2d.two_moons(200, seed=1)
    reference = toy2d.log_prob("two_moons", points, nodes=6400)
    errors = [np.abs(toy2d.log_prob("two_moons", points, nodes=n) - reference).max()
              for n in (100, 200, 400)]
    assert errors[0] > 1e-3  # coarse enough for the error to be measurable
    for coarse, fine in pairwise(errors):
        assert 3.5 < coarse / fine < 4.5, errors  # the midpoint rule's O(h^2)
    # The default number of nodes is accurate to far better than a training run's noise.
    default = np.abs(toy2d.log_prob("two_moons", points) - reference).max()
    assert default < 1e-4


def test_two_moons_components_average_to_the_mixture_and_match_the_labels():
    points, labels = toy2d.two_moons(1000, seed=3, return_labels=True)
    upper = toy2d.log_prob("two_moons", points, component=0, nodes=1000)
    lower = toy2d.log_prob("two_moons", points, component=1, nodes=1000)
    np.testing.assert_allclose(toy2d.log_prob("two_moons", points, nodes=1000),
                               np.logaddexp(upper, lower) + np.log(0.5), rtol=1e-12)
    # Each point is far likelier under the moon it was drawn from (the Bayes classifier).
    assert np.mean((lower > upper) == (labels == 1)) > 0.99
    tops = np.array([[0.0, 1.0], [1.0, -0.5]])  # the top of the upper, bottom of the lower moon
    c0 = toy2d.log_prob("two_moons", tops, component=0)
    c1 = toy2d.log_prob("two_moons", tops, component=1)
    assert c0[0] > c1[0] + 50 and c1[1] > c0[1] + 50


def test_checkerboard_log_prob_is_minus_log_8_on_dark_squares_and_minus_inf_elsewhere():
    centres = np.array([[i - 1.5, j - 1.5] for i in range(4) for j in range(4)])
    dark = np.array([(i + j) % 2 == 0 for i in range(4) for j in range(4)])
    log_p = toy2d.log_prob("checkerboard", centres)
    np.testing.assert_array_equal(log_p[dark], -np.log(8.0))
    assert dark.sum() == 8 and np.all(log_p[~dark] == -np.inf)
    outside = np.array([[-2.5, -1.5], [2.5, -1.5], [-1.5, 3.0], [-1.5, -2.01], [2.0, -1.5]])
    assert np.all(toy2d.log_prob("checkerboard", outside) == -np.inf)
    samples = toy2d.checkerboard(5000, seed=1)
    np.testing.assert_array_equal(toy2d.log_prob("checkerboard", samples), -np.log(8.0))


def test_two_moons_labels_mark_the_upper_moon_0_and_the_lower_moon_1():
    points, labels = toy2d.two_moons(4000, seed=5, return_labels=True)
    np.testing.assert_array_equal(points, toy2d.two_moons(4000, seed=5))  # same draws
    assert labels.dtype == np.int32 and labels.shape == (4000,)
    assert set(np.unique(labels)) == {0, 1} and 0.45 < labels.mean() < 0.55
    # Mean height of a unit half circle is 2 / pi; the lower moon is flipped and raised by 0.5.
    assert points[labels == 0, 1].mean() == pytest.approx(2 / np.pi, abs=0.03)
    assert points[labels == 1, 1].mean() == pytest.approx(0.5 - 2 / np.pi, abs=0.03)
    exact, exact_labels = toy2d.two_moons(1000, noise=0.0, seed=5, return_labels=True)
    exact = exact.astype(np.float64)
    centre = np.where(exact_labels[:, None] == 0, [0.0, 0.0], [1.0, 0.5])
    np.testing.assert_allclose(np.hypot(*(exact - centre).T), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    ("call", "error", "pattern"),
    [
        (lambda: toy2d.log_prob("two_moons", np.zeros(4)), ValueError,
         r"points must have shape \(n, 2\), got \(4,\)"),
        (lambda: toy2d.log_prob("circles", np.zeros((5, 3))), ValueError,
         r"points must have shape \(n, 2\), got \(5, 3\)"),
        (lambda: toy2d.log_prob("checkerboard", [[1.0, 2.0, 3.0]]), ValueError,
         r"points must have shape \(n, 2\), got \(1, 3\)"),
        (lambda: toy2d.log_prob("pinwheel", np.zeros((2, 2))), NotImplementedError,
         "no true density for 'pinwheel'"),
        (lambda: toy2d.log_prob("spiral", np.zeros((2, 2))), ValueError, "name must be one of"),
        (lambda: toy2d.log_prob("two_moons", np.zeros((2, 2)), radius=2.0), TypeError,
         r"unexpected keyword arguments \['radius'\]"),
        (lambda: toy2d.log_prob("checkerboard", np.zeros((2, 2)), noise=0.1), TypeError,
         r"unexpected keyword arguments \['noise'\]"),
        (lambda: toy2d.log_prob("two_moons", np.zeros((2, 2)), component=2), ValueError,
         "component must be <= 1"),
        (lambda: toy2d.log_prob("eight_gaussians", np.zeros((2, 2)), component=8), ValueError,
         "component must be <= 7"),
        (lambda: toy2d.log_prob("eight_gaussians", np.zeros((2, 2)), component=-1), ValueError,
         "component must be >= 0"),
        (lambda: toy2d.log_prob("circles", np.zeros((2, 2)), component=0), ValueError,
         "component is only defined for .*not 'circles'"),
        (lambda: toy2d.log_prob("gaussian_mixture", np.zeros((2, 2)), component=0), ValueError,
         "component is only defined for"),
        (lambda: toy2d.log_prob("two_moons", np.zeros((2, 2)), nodes=1), ValueError,
         "nodes must be >= 2"),
        (lambda: toy2d.log_prob("two_moons", np.zeros((2, 2)), noise=0.0), ValueError,
         "noise must be > 0"),
        (lambda: toy2d.log_prob("eight_gaussians", np.zeros((2, 2)), std=0.0), ValueError,
         "std must be > 0"),
    ],
)
def test_log_prob_rejects_bad_arguments_clearly(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()
