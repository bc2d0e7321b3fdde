"""Tests of :mod:`tfpcourse.distributions`: shape reports and the Monte Carlo KL estimator."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tfpcourse import distributions as dists


@pytest.fixture(scope="module")
def tfd(tf):
    import tensorflow_probability as tfp

    return tfp.distributions


# ---- describe_shapes ---------------------------------------------------------------------


def test_describe_shapes_batch_of_univariate_normals(tfd):
    report = dists.describe_shapes(tfd.Normal(loc=[0.0, 1.0, 2.0], scale=1.0), sample_shape=5)
    assert report == dists.ShapeReport(
        sample_shape=(5,), batch_shape=(3,), event_shape=(), sample=(5, 3), log_prob=(5, 3)
    )
    assert str(report) == (
        "sample_shape (5,), batch_shape (3,), event_shape () -> sample (5, 3), log_prob (5, 3)"
    )


def test_describe_shapes_event_dimensions_are_consumed_by_log_prob(tf, tfd):
    one_mvn = tfd.MultivariateNormalDiag(loc=[0.0, 0.0], scale_diag=[1.0, 2.0])
    three_mvn = tfd.MultivariateNormalDiag(loc=tf.zeros([3, 2]), scale_diag=tf.ones([3, 2]))
    r1 = dists.describe_shapes(one_mvn, (4, 5))
    assert (r1.batch_shape, r1.event_shape, r1.sample, r1.log_prob) == ((), (2,), (4, 5, 2),
                                                                        (4, 5))
    r3 = dists.describe_shapes(three_mvn, [4])
    assert (r3.batch_shape, r3.event_shape, r3.sample, r3.log_prob) == ((3,), (2,), (4, 3, 2),
                                                                        (4, 3))


def test_describe_shapes_default_is_a_single_draw_and_sees_independent(tfd):
    bern = tfd.Bernoulli(probs=[[0.3, 0.5, 0.7], [0.1, 0.2, 0.9]])
    assert dists.describe_shapes(bern).sample == (2, 3)
    assert dists.describe_shapes(bern).log_prob == (2, 3)
    ind = dists.describe_shapes(tfd.Independent(bern, reinterpreted_batch_ndims=1))
    assert (ind.sample_shape, ind.batch_shape, ind.event_shape) == ((), (2,), (3,))
    assert ind.log_prob == (2,)


def test_describe_shapes_accepts_a_zero_sample_size(tfd):
    report = dists.describe_shapes(tfd.Normal(0.0, 1.0), sample_shape=(0,))
    assert report.sample == (0,) and report.log_prob == (0,)


@pytest.mark.parametrize(
    "bad, error, message",
    [
        (2.5, TypeError, r"sample_shape must be an int or a tuple of ints, got 2.5"),
        ("5", TypeError, r"sample_shape must be an int or a tuple of ints, got '5'"),
        (True, TypeError, r"sample_shape must be an int or a tuple of ints, got True"),
        ((3, -1), ValueError, r"sample_shape entries must be >= 0, got -1"),
        ((3, 1.0), TypeError, r"sample_shape entries must be an integer, got 1.0"),
    ],
)
def test_describe_shapes_rejects_bad_sample_shapes(tfd, bad, error, message):
    with pytest.raises(error, match=message):
        dists.describe_shapes(tfd.Normal(0.0, 1.0), sample_shape=bad)


def test_describe_shapes_rejects_non_distributions():
    with pytest.raises(TypeError, match=r"dist must be a TFP distribution .* got ndarray"):
        dists.describe_shapes(np.zeros(3))


# ---- kl_monte_carlo ----------------------------------------------------------------------


def _normal_kl(m1: float, s1: float, m2: float, s2: float) -> float:
    return math.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5


def test_kl_monte_carlo_agrees_with_the_closed_form(tfd):
    q, p = tfd.Normal(1.0, 0.5), tfd.Normal(0.0, 1.0)
    exact = _normal_kl(1.0, 0.5, 0.0, 1.0)  # 0.8181...
    result = dists.kl_monte_carlo(q, p, 20_000, seed=3)
    assert isinstance(result, dists.MonteCarloKL) and result.n == 20_000
    assert isinstance(result.estimate, float) and isinstance(result.stderr, float)
    assert 0.0 < result.stderr < 0.02
    assert abs(result.estimate - exact) < 4 * result.stderr


def test_kl_monte_carlo_stderr_shrinks_like_one_over_sqrt_n(tfd):
    q, p = tfd.Normal(1.0, 0.5), tfd.Normal(0.0, 1.0)
    small = dists.kl_monte_carlo(q, p, 2_000, seed=0).stderr
    large = dists.kl_monte_carlo(q, p, 32_000, seed=0).stderr
    assert large / small == pytest.approx(0.25, rel=0.1)  # 16 times the draws: a quarter


def test_kl_monte_carlo_is_repeatable_and_changes_with_the_seed(tf, tfd):
    from tfpcourse import seeding

    q, p = tfd.Normal(1.0, 0.5), tfd.Normal(0.0, 1.0)
    a = dists.kl_monte_carlo(q, p, 500, seed=7)
    b = dists.kl_monte_carlo(q, p, 500, seed=seeding.stateless_seed(7))
    c = dists.kl_monte_carlo(q, p, 500, seed=8)
    assert a == b
    assert a.estimate != c.estimate


def test_kl_monte_carlo_of_a_distribution_with_itself_is_zero(tfd):
    q = tfd.MultivariateNormalDiag(loc=[0.5, -1.0], scale_diag=[1.0, 3.0])
    result = dists.kl_monte_carlo(q, q, 100, seed=0)
    assert result.estimate == 0.0 and result.stderr == 0.0


def test_kl_monte_carlo_handles_batches_and_mixtures(tf, tfd):
    q = tfd.Normal(loc=[0.0, 1.0], scale=[1.0, 0.5])
    p = tfd.Normal(0.0, 1.0)
    result = dists.kl_monte_carlo(q, p, 20_000, seed=1)
    exact = np.array([0.0, _normal_kl(1.0, 0.5, 0.0, 1.0)])
    assert result.estimate.shape == (2,) and result.stderr.shape == (2,)
    assert result.estimate[0] == 0.0  # log q - log p is zero for every draw
    assert np.all(np.abs(result.estimate - exact) <= 4 * result.stderr + 1e-12)
    # No closed form exists for a Normal against a mixture; the estimate is still positive.
    mixture = tfd.MixtureSameFamily(
        tfd.Categorical(probs=[0.5, 0.5]), tfd.Normal(loc=[-2.0, 2.0], scale=[0.5, 0.5])
    )
    kl = dists.kl_monte_carlo(tfd.Normal(0.0, 1.0), mixture, 5_000, seed=2)
    assert kl.estimate > 10 * kl.stderr > 0


def test_kl_monte_carlo_int_seed_is_stateless_unlike_an_int_given_to_sample(tf, tfd):
    from tfpcourse import seeding

    q, p = tfd.Normal(1.0, 0.5), tfd.Normal(0.0, 1.0)
    # An int given straight to sample() is a stateful seed: two calls differ ...
    assert not np.array_equal(q.sample(5, seed=5).numpy(), q.sample(5, seed=5).numpy())
    # ... while the helper turns it into stateless_seed(5), so repeated calls agree.
    first = dists.kl_monte_carlo(q, p, 50, seed=5)
    assert first == dists.kl_monte_carlo(q, p, 50, seed=5)
    assert first == dists.kl_monte_carlo(q, p, 50, seed=seeding.stateless_seed(5))


def test_kl_monte_carlo_is_infinite_when_q_leaves_the_support_of_p(tfd):
    import warnings

    q, p = tfd.Normal(0.0, 1.0), tfd.HalfNormal(1.0)  # p has no density below 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # inf - inf must not leak a RuntimeWarning
        result = dists.kl_monte_carlo(q, p, 100, seed=0)
    assert result.estimate == math.inf
    assert math.isnan(result.stderr)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"n": 1}, ValueError, r"n must be >= 2, got 1"),
        ({"n": 10.0}, TypeError, r"n must be an integer, got 10.0"),
        ({"seed": "7"}, TypeError, r"seed must be an int or a \[2\] integer tensor.* got '7'"),
        ({"seed": 1.5}, TypeError, r"seed must be an int or a \[2\] integer tensor.* got 1.5"),
        ({"seed": -1}, ValueError, r"seed must be >= 0, got -1"),
    ],
)
def test_kl_monte_carlo_rejects_bad_numbers(tfd, kwargs, error, message):
    args = {"q": tfd.Normal(0.0, 1.0), "p": tfd.Normal(1.0, 1.0), "n": 10, "seed": 0, **kwargs}
    with pytest.raises(error, match=message):
        dists.kl_monte_carlo(**args)


def test_kl_monte_carlo_rejects_bad_seed_tensors_and_distributions(tf, tfd):
    normal = tfd.Normal(0.0, 1.0)
    with pytest.raises(ValueError, match=r"seed must have shape \[2\], got shape \[3\]"):
        dists.kl_monte_carlo(normal, normal, 10, seed=tf.constant([1, 2, 3]))
    with pytest.raises(TypeError, match=r"seed must be an int or a \[2\] integer tensor"):
        dists.kl_monte_carlo(normal, normal, 10, seed=tf.constant([1.0, 2.0]))
    with pytest.raises(TypeError, match=r"q must be a TFP distribution .* got float"):
        dists.kl_monte_carlo(0.5, normal, 10, seed=0)
    with pytest.raises(TypeError, match=r"p must be a TFP distribution .* got str"):
        dists.kl_monte_carlo(normal, "normal", 10, seed=0)
    mvn = tfd.MultivariateNormalDiag(loc=[0.0, 0.0])
    with pytest.raises(ValueError, match=r"p must have the same event shape as q \(\), "
                                         r"got event shape \(2,\)"):
        dists.kl_monte_carlo(normal, mvn, 10, seed=0)


def test_importing_the_module_does_not_import_tensorflow():
    import subprocess
    import sys

    code = (
        "import sys, tfpcourse.distributions\n"
        "print(sorted(m for m in ('tensorflow', 'tensorflow_probability') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
