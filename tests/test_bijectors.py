"""The bijector checker: it passes correct bijectors and catches each kind of mistake."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tfpcourse.bijectors import check_bijector


@pytest.fixture(scope="module")
def tfb(tf):
    import tensorflow_probability as tfp

    return tfp.bijectors


def _broken(tf, tfb, *, forward=None, inverse=None, fldj=None, name="broken"):
    """A scale-by-3 bijector with one of its parts replaced by a wrong one."""

    class Broken(tfb.Bijector):
        def __init__(self):
            super().__init__(forward_min_event_ndims=0, name=name)

        def _forward(self, x):
            return forward(x) if forward else 3.0 * x

        def _inverse(self, y):
            return inverse(y) if inverse else y / 3.0

        def _forward_log_det_jacobian(self, x):
            return fldj(x) if fldj else tf.math.log(3.0) * tf.ones_like(x)

        def _inverse_log_det_jacobian(self, y):
            return -tf.math.log(3.0) * tf.ones_like(y)

    return Broken()


X = np.linspace(-2.0, 2.0, 21)
FIXTURES_OK = [HealthCheck.function_scoped_fixture]  # the fixtures are session-wide: safe


def test_correct_bijector_passes_with_tiny_errors(tf, tfb):
    check = check_bijector(tfb.Chain([tfb.Shift(1.0), tfb.Scale(2.0), tfb.Exp()]), X)
    assert check.passed
    assert check.n_points == 21
    assert check.roundtrip_error < 1e-6 and check.log_det_error < 1e-5
    check.assert_ok()


def test_wrong_log_det_is_caught_and_reported(tf, tfb):
    check = check_bijector(_broken(tf, tfb, fldj=lambda x: tf.math.log(2.0) * tf.ones_like(x)), X)
    assert not check.passed
    assert check.roundtrip_ok and not check.log_det_ok
    assert check.log_det_error == pytest.approx(np.log(3.0) - np.log(2.0), rel=1e-5)
    assert "FAIL log-det vs autodiff" in str(check)
    with pytest.raises(AssertionError, match="bijector check failed"):
        check.assert_ok()


def test_wrong_inverse_is_caught(tf, tfb):
    check = check_bijector(_broken(tf, tfb, inverse=lambda y: y / 2.0), X)
    assert not check.roundtrip_ok and not check.passed


def test_inconsistent_forward_and_inverse_log_dets_are_caught(tf, tfb):
    # forward and its log-det agree (x -> 2x, log 2), but ildj still says -log 3
    check = check_bijector(
        _broken(tf, tfb, forward=lambda x: 2.0 * x, inverse=lambda y: y / 2.0,
                fldj=lambda x: tf.math.log(2.0) * tf.ones_like(x)), X)
    assert check.roundtrip_ok and check.log_det_ok
    assert not check.consistency_ok


def test_points_where_the_log_det_is_infinite_fail(tf, tfb):
    # x -> x^3 has derivative 0 at x = 0: no density can be transformed through that point
    cube = tfb.Power(3.0)
    check = check_bijector(cube, np.array([-1.0, 0.0, 1.0]))
    assert check.nonfinite > 0 and not check.passed


def test_vector_bijectors_use_the_full_jacobian(tf, tfb):
    tril = np.array([[1.5, 0.0], [0.7, 0.5]], np.float32)
    x = np.random.default_rng(0).normal(size=(6, 2))
    check = check_bijector(tfb.ScaleMatvecTriL(scale_tril=tril), x, event_ndims=1)
    assert check.passed and check.n_points == 6


def test_checker_validates_its_arguments(tf, tfb):
    with pytest.raises(TypeError, match=r"bijector must be a tfp\.bijectors\.Bijector"):
        check_bijector(lambda x: x, X)
    with pytest.raises(ValueError, match="event_ndims must be one of 0, 1; got 2"):
        check_bijector(tfb.Exp(), X, event_ndims=2)
    with pytest.raises(ValueError, match="x must have at least 1 dimension"):
        check_bijector(tfb.Exp(), np.float32(1.0), event_ndims=1)


@settings(max_examples=25, deadline=None, suppress_health_check=FIXTURES_OK)
@given(
    shift=st.floats(-5, 5),
    log_scale=st.floats(-2, 2),
    x=st.lists(st.floats(-3, 3), min_size=1, max_size=20),
)
def test_affine_then_softplus_passes_for_any_parameters(tf, tfb, shift, log_scale, x):
    bijector = tfb.Chain([tfb.Softplus(), tfb.Shift(shift), tfb.Scale(float(np.exp(log_scale)))])
    check = check_bijector(bijector, np.array(x), atol=1e-4, rtol=1e-3)
    assert check.passed, str(check)


@settings(max_examples=20, deadline=None, suppress_health_check=FIXTURES_OK)
@given(
    diag=st.lists(st.floats(0.2, 3.0), min_size=3, max_size=3),
    off=st.lists(st.floats(-2.0, 2.0), min_size=3, max_size=3),
    seed=st.integers(0, 10_000),
)
def test_lower_triangular_maps_pass_for_any_positive_diagonal(tf, tfb, diag, off, seed):
    tril = np.diag(diag)
    tril[np.tril_indices(3, -1)] = off
    x = np.random.default_rng(seed).normal(size=(4, 3))
    check = check_bijector(tfb.ScaleMatvecTriL(scale_tril=tril.astype(np.float32)), x,
                           event_ndims=1, atol=1e-4, rtol=1e-3)
    assert check.passed, str(check)


def test_report_calls_round_off_round_off_and_prints_real_errors():
    import tensorflow_probability as tfp

    exact = check_bijector(tfp.bijectors.Exp(), np.linspace(-1.0, 1.0, 9).astype(np.float32))
    text = str(exact)
    assert text.count("< 1e-06 (round-off)") == 3, text
    assert exact.roundoff == 1e-6
    wide = check_bijector(tfp.bijectors.Shift(np.float64(0.5)), np.linspace(-1.0, 1.0, 9))
    assert wide.roundoff == 1e-12
    # A real error is printed as a number, whatever the dtype.
    from dataclasses import replace

    broken = replace(exact, roundtrip_error=3.0e-3, roundtrip_ok=False)
    assert "max |inverse(forward(x)) - x|      = 3.0e-03" in str(broken)
